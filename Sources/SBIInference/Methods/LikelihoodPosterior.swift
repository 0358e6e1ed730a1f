import Foundation
import SBIBackend

/// Standard Bayesian inference where the simulator's likelihood is known: the posterior
/// ∝ p(x_o | θ)·p(θ) sampled by batched slice sampling, every step one batched likelihood over
/// all chains (a batched render on the device for the galaxy). It is the reference posterior
/// that NPE and NLE are measured against on tasks that ship none, images above all.
public struct LikelihoodPosterior {
    public let simulator: any ExplicitLikelihood
    /// Where the likelihood is evaluated (nil: the host).
    public let backend: Backend?

    public init(simulator: any ExplicitLikelihood, backend: Backend? = nil) {
        self.simulator = simulator
        self.backend = backend
    }

    /// log p(x_o | θ) + log p(θ) for each row of θ; −∞ outside the prior's support. Rows outside
    /// it are evaluated at a stand-in row inside, so every batch keeps its size (one device plan)
    /// and a renderer never sees an invalid θ.
    public func logPosterior(_ theta: [Float], observation: [Float]) throws -> [Double] {
        let d = simulator.parameterDimension, rows = theta.count / d
        let prior = (0..<rows).map { simulator.prior.logDensity(theta[($0 * d)..<(($0 + 1) * d)]) }
        guard let standIn = prior.firstIndex(where: { $0 > -Double.infinity }) else {
            return Array(repeating: -Double.infinity, count: rows)
        }
        var evaluated = theta
        for r in 0..<rows where prior[r] == -Double.infinity {
            evaluated.replaceSubrange((r * d)..<((r + 1) * d), with: theta[(standIn * d)..<((standIn + 1) * d)])
        }
        let likelihood = try simulator.logLikelihood(observation: observation, theta: evaluated, rows: rows, backend: backend)
        return (0..<rows).map { prior[$0] == -Double.infinity ? -Double.infinity : prior[$0] + likelihood[$0] }
    }

    /// Posterior samples for one observation (count × the parameter dimension), with R̂ and the
    /// effective sample size of each parameter.
    public func sample(_ count: Int, observation: [Float], sampler: SliceSampler) throws -> SliceSampler.Result {
        guard observation.count == simulator.observationDimension else {
            throw SBIError.sizeMismatch("\(simulator.name): the observation has \(observation.count) values; expected \(simulator.observationShape.map(String.init).joined(separator: "×"))")
        }
        if let bad = observation.firstIndex(where: { !$0.isFinite }) {
            throw SBIError.invalidArgument("\(simulator.name): observation value \(bad) is \(observation[bad])")
        }
        return try sampler.run(count: count, prior: simulator.prior) { theta in
            try self.logPosterior(theta, observation: observation)
        }
    }
}
