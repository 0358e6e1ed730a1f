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

    /// Posterior samples for one observation, by `SliceSampler.run(count:prior:logPosterior:)`.
    public func sample(_ count: Int, observation: [Float], sampler: SliceSampler) throws -> SliceSampler.Result {
        guard observation.count == estimator.features else {
            throw SBIError.sizeMismatch("observation has \(observation.count) values; the likelihood models \(estimator.features)")
        }
        return try sampler.run(count: count, prior: prior) { theta in
            try self.logPosterior(theta, observation: observation)
        }
    }
}
