import Foundation
import SBIBackend
import SBIGraph
import SBIModels

/// What the inference methods need of a prior: its dimension, its log density (−∞ outside the
/// support) and seeded draws.
public protocol ParameterPrior {
    var dimension: Int { get }
    func logDensity(_ theta: ArraySlice<Float>) -> Double
    func sample(_ count: Int, seed: UInt64) -> [Float]
}

/// Neural posterior estimation: a conditional density q(θ | x) trained on simulated pairs, then
/// amortized — posterior samples for any observation need no further training.
public final class NPE {
    public let estimator: DensityEstimator
    public let prior: ParameterPrior?

    public init(estimator: DensityEstimator, prior: ParameterPrior?) {
        self.estimator = estimator
        self.prior = prior
    }

    @discardableResult
    public func train(theta: [Float], x: [Float], configuration: TrainingConfiguration, checkpoint: URL? = nil,
                      resume: Bool = false, progress: ((EpochRecord) -> Void)? = nil) throws -> [EpochRecord] {
        try estimator.fit(theta, context: x, configuration: configuration, checkpoint: checkpoint, resume: resume,
                          progress: progress)
    }

    /// `count` posterior samples for each observation row (grouped in order), drawn from q and
    /// rejected outside the prior's support; the acceptance rate of each observation tells how
    /// much mass q leaks outside it. Gives up on an observation after `maxDraws`·count proposals.
    public func sample(_ count: Int, observations: [Float], seed: UInt64, maxDraws: Int = 100)
        throws -> (samples: [Float], acceptance: [Double]) {
        let d = estimator.features, c = estimator.contextFeatures
        guard c > 0, observations.count % c == 0, !observations.isEmpty else {
            throw SBIError.sizeMismatch("observations have \(observations.count) values; expected rows of \(c) features")
        }
        let rows = observations.count / c
        guard let prior else {
            let samples = try estimator.sample(count, context: observations, seed: seed)
            return (samples, Array(repeating: 1, count: rows))
        }
        var all: [Float] = [], rates: [Double] = []
        all.reserveCapacity(rows * count * d)
        for r in 0..<rows {
            let observation = Array(observations[(r * c)..<((r + 1) * c)])
            var kept: [Float] = [], proposed = 0, round: UInt64 = 0
            var batch = count
            while kept.count < count * d && proposed < maxDraws * max(count, 1) {
                let draws = try estimator.sample(batch, context: observation,
                                                 seed: seed &+ UInt64(r) &* 0x9E37_79B9 &+ round &* 0x85EB_CA6B)
                proposed += batch
                round += 1
                for i in 0..<batch {
                    let theta = draws[(i * d)..<((i + 1) * d)]
                    if prior.logDensity(theta) > -Double.infinity && kept.count < count * d { kept += theta }
                }
                let rate = Double(kept.count / d) / Double(proposed)
                batch = min(maxDraws * count, max(64, Int(Double(count - kept.count / d) / max(rate, 0.01) * 1.2)))
            }
            guard kept.count == count * d else {
                throw SBIError.invalidArgument("observation \(r): only \(kept.count / d) of \(proposed) posterior samples fell inside the prior's support; the estimator leaks almost all its mass (train longer or check the observation)")
            }
            all += kept
            rates.append(Double(count) / Double(proposed))
        }
        return (all, rates)
    }
}
