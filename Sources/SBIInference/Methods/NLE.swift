import Foundation
import SBIBackend
import SBIGraph
import SBIModels

/// Neural likelihood estimation: a conditional density q(x | θ) trained on simulated pairs; the
/// posterior ∝ q(x_o | θ)·p(θ) is sampled by batched slice sampling.
public final class NLE {
    public let estimator: DensityEstimator
    public let prior: ParameterPrior

    public init(estimator: DensityEstimator, prior: ParameterPrior) {
        self.estimator = estimator
        self.prior = prior
    }

    @discardableResult
    public func train(theta: [Float], x: [Float], configuration: TrainingConfiguration, checkpoint: URL? = nil,
                      resume: Bool = false, progress: ((EpochRecord) -> Void)? = nil) throws -> [EpochRecord] {
        try estimator.fit(x, context: theta, configuration: configuration, checkpoint: checkpoint, resume: resume,
                          progress: progress)
    }

    /// log q(x_o | θ) + log p(θ) for each row of θ.
    public func logPosterior(_ theta: [Float], observation: [Float]) throws -> [Double] {
        let d = prior.dimension, rows = theta.count / d
        let repeated = Array([[Float]](repeating: observation, count: rows).joined())
        let likelihood = try estimator.logProb(repeated, context: theta)
        return (0..<rows).map { r in
            let p = prior.logDensity(theta[(r * d)..<((r + 1) * d)])
            return p == -Double.infinity ? -Double.infinity : p + Double(likelihood[r])
        }
    }

    /// Posterior samples for one observation. Chains start from prior draws resampled by their
    /// posterior weight (sampling–importance resampling over 50 draws per chain).
    public func sample(_ count: Int, observation: [Float], sampler: SliceSampler) throws -> SliceSampler.Result {
        guard observation.count == estimator.features else {
            throw SBIError.sizeMismatch("observation has \(observation.count) values; the likelihood models \(estimator.features)")
        }
        let d = prior.dimension
        let candidates = prior.sample(50 * sampler.chains, seed: sampler.seed &+ 17)
        let weights = try logPosterior(candidates, observation: observation)
        let maximum = weights.max() ?? 0
        guard maximum > -Double.infinity else { throw SBIError.invalidArgument("no prior draw has positive posterior density") }
        var cumulative: [Double] = []
        var total = 0.0
        for w in weights { total += Foundation.exp(w - maximum); cumulative.append(total) }
        var initial: [Float] = []
        for c in 0..<sampler.chains {
            let u = Double(Philox.unit(Philox.word(at: UInt64(c), seed: sampler.seed &+ 29))) * total
            let index = cumulative.firstIndex { $0 >= u } ?? (cumulative.count - 1)
            initial += candidates[(index * d)..<((index + 1) * d)]
        }
        return try sampler.run(count: count, dimension: d, initial: initial) { theta in
            try self.logPosterior(theta, observation: observation)
        }
    }
}
