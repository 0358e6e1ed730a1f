import Foundation
import SBIBackend
import SBIModels

/// An expected-coverage curve: for each credibility level α, the share of held-out θ_i that lie
/// inside the highest-posterior-density region of level α of q(θ | x_i).
public struct CoverageResult: Sendable {
    /// The credibility levels α, ascending.
    public let levels: [Double]
    /// Empirical coverage at each level: the share of i with credibility[i] < α.
    public let coverage: [Double]
    /// Per held-out pair, the share of the L posterior samples whose log q exceeds log q(θ_i): the
    /// level of the smallest HPD region that still contains θ_i. Uniform on [0, 1] (in steps of
    /// 1/L) when q is calibrated.
    public let credibility: [Double]
    /// L.
    public let posteriorSamples: Int

    /// max_α |coverage(α) − α| over the grid.
    public var maximumDeviation: Double {
        zip(levels, coverage).map { abs($1 - $0) }.max() ?? 0
    }

    /// ∫ (coverage − α) dα over the grid by the trapezoid rule: negative for an overconfident
    /// (too narrow or biased) estimator, positive for an underconfident one.
    public var signedArea: Double {
        guard levels.count > 1 else { return 0 }
        var area = 0.0
        for k in 1..<levels.count {
            let a = coverage[k - 1] - levels[k - 1], b = coverage[k] - levels[k]
            area += 0.5 * (a + b) * (levels[k] - levels[k - 1])
        }
        return area
    }
}

/// Sample-based expected coverage of highest-posterior-density regions (Deistler et al. 2022;
/// sbi's `run_sbc(..., reduce_fns=posterior.log_prob)` then the CDF of the ranks): θ_i lies in
/// the HPD region of level α of q(θ | x_i) when fewer than α·L of L samples from q(θ | x_i) have a
/// higher log q than θ_i. A calibrated q gives coverage(α) ≈ α; an overconfident one falls below
/// the diagonal, an underconfident one above it.
public enum ExpectedCoverage {
    /// `count` evenly spaced levels from 0 to 1 inclusive.
    public static func levels(_ count: Int = 21) -> [Double] {
        precondition(count >= 2, "a coverage grid needs at least two levels")
        return (0..<count).map { Double($0) / Double(count - 1) }
    }

    /// Coverage from log densities evaluated beforehand: `truthLogDensity[i]` = log q(θ_i | x_i)
    /// and `sampleLogDensity[i·L + l]` = log q(s_il | x_i) for the L samples of observation i.
    public static func compute(truthLogDensity: [Double], sampleLogDensity: [Double], samplesPerPosterior l: Int,
                               levels: [Double] = ExpectedCoverage.levels()) throws -> CoverageResult {
        let n = truthLogDensity.count
        guard n > 0, l > 0, sampleLogDensity.count == n * l else {
            throw SBIError.sizeMismatch("coverage: \(sampleLogDensity.count) sample log densities for \(n) truths × \(l) samples")
        }
        guard levels.allSatisfy({ $0.isFinite }), zip(levels, levels.dropFirst()).allSatisfy({ $0 <= $1 }) else {
            throw SBIError.invalidArgument("coverage: levels must be finite and ascending")
        }
        let credibility: [Double] = (0..<n).map { i in
            let t = truthLogDensity[i]
            // NaN log q(θ) (outside the estimator's support) counts as the least dense point.
            let above = (0..<l).reduce(0) { count, s in
                let v = sampleLogDensity[i * l + s]
                return count + ((t.isNaN || v > t) ? 1 : 0)
            }
            return Double(above) / Double(l)
        }
        let coverage = levels.map { alpha in
            Double(credibility.reduce(0) { $0 + ($1 < alpha ? 1 : 0) }) / Double(n)
        }
        return CoverageResult(levels: levels, coverage: coverage, credibility: credibility, posteriorSamples: l)
    }

    /// Coverage with closures: `sampler(i, x_i)` gives L samples (L·D floats) of q(θ | x_i) and
    /// `logDensity(rows, x_i)` gives log q of each θ row (rows·D floats) given x_i. It is called
    /// once per observation with θ_i first and then its L samples.
    public static func run(theta: [Float], observations: [Float], dimension d: Int, samplesPerPosterior l: Int,
                           levels: [Double] = ExpectedCoverage.levels(),
                           sampler: (_ index: Int, _ observation: ArraySlice<Float>) throws -> [Float],
                           logDensity: (_ theta: [Float], _ observation: ArraySlice<Float>) throws -> [Double])
        throws -> CoverageResult {
        let (n, width) = try PosteriorSampling.observationWidth(thetaCount: theta.count, observations: observations, dimension: d)
        var truth: [Double] = [], samples: [Double] = []
        truth.reserveCapacity(n)
        samples.reserveCapacity(n * l)
        for i in 0..<n {
            let x = observations[(i * width)..<((i + 1) * width)]
            let draws = try sampler(i, x)
            guard draws.count == l * d else {
                throw SBIError.sizeMismatch("sampler returned \(draws.count) values for observation \(i); expected \(l) samples × \(d)")
            }
            let values = try logDensity(Array(theta[(i * d)..<((i + 1) * d)]) + draws, x)
            guard values.count == l + 1 else {
                throw SBIError.sizeMismatch("logDensity returned \(values.count) values for \(l + 1) rows")
            }
            truth.append(values[0])
            samples += values[1...]
        }
        return try compute(truthLogDensity: truth, sampleLogDensity: samples, samplesPerPosterior: l, levels: levels)
    }

    /// Coverage of a conditional density estimator q(θ | x): all samples in one `sample` call, the
    /// log densities in `logProb` calls of whole observations (each sample row with its
    /// observation's context row).
    public static func run(estimator: DensityEstimator, theta: [Float], observations: [Float], samplesPerPosterior l: Int,
                           levels: [Double] = ExpectedCoverage.levels(), seed: UInt64 = 0) throws -> CoverageResult {
        let samples = try PosteriorSampling.sample(estimator: estimator, thetaCount: theta.count,
                                                   observations: observations, samplesPerPosterior: l, seed: seed)
        let d = estimator.features, n = theta.count / d, width = estimator.contextFeatures
        let truth = try estimator.logProb(theta, context: observations).map(Double.init)
        // The samples' log densities in chunks of whole observations (≤ 2¹⁶ rows where L allows),
        // each sample row with its observation's context row.
        var sampleLogq: [Double] = []
        sampleLogq.reserveCapacity(n * l)
        let perChunk = max(1, 65_536 / l)
        var first = 0
        while first < n {
            let end = min(n, first + perChunk)
            var context: [Float] = []
            context.reserveCapacity((end - first) * l * width)
            for i in first..<end {
                let x = observations[(i * width)..<((i + 1) * width)]
                for _ in 0..<l { context += x }
            }
            sampleLogq += try estimator.logProb(Array(samples[(first * l * d)..<(end * l * d)]), context: context)
                .map(Double.init)
            first = end
        }
        guard truth.count == n, sampleLogq.count == n * l else {
            throw SBIError.sizeMismatch("coverage: the estimator returned \(truth.count) and \(sampleLogq.count) log densities; expected \(n) and \(n * l)")
        }
        return try compute(truthLogDensity: truth, sampleLogDensity: sampleLogq, samplesPerPosterior: l, levels: levels)
    }
}
