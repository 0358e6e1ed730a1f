import Foundation
import SBIBackend
import SBIModels

/// The outcome of simulation-based calibration: per-dimension ranks, their histograms and two
/// uniformity tests per dimension.
public struct SBCResult: Sendable {
    /// N, the held-out (θ, x) pairs.
    public let simulations: Int
    /// D, the parameter dimension.
    public let dimension: Int
    /// L, the posterior samples each rank is taken among; ranks lie in 0...L.
    public let posteriorSamples: Int
    /// Rank of θ_i's coordinate j among the L posterior samples' coordinates j, at [i·D + j].
    public let ranks: [Int]
    /// B, the histogram bins over the L + 1 rank values.
    public let bins: Int
    /// counts[j][b]: ranks of dimension j in bin b. Rank r falls into bin ⌊r·B/(L + 1)⌋.
    public let histograms: [[Int]]
    /// Counts each bin expects under uniform ranks (N × the share of the L + 1 rank values it
    /// holds; all equal to N/B when B divides L + 1).
    public let expectedCounts: [Double]
    /// Pearson χ² of each dimension's histogram against `expectedCounts`, and its p-value with
    /// B − 1 degrees of freedom.
    public let chiSquare: [Double]
    public let chiSquarePValues: [Double]
    /// One-sample KS statistic and p-value, per dimension, of the randomized normalized ranks
    /// u = (r + v)/(L + 1), v ~ U(0, 1) seeded; u ~ U(0, 1) exactly when ranks are uniform.
    public let ksStatistics: [Double]
    public let ksPValues: [Double]

    /// The N ranks of dimension j.
    public func ranks(ofDimension j: Int) -> [Int] {
        (0..<simulations).map { ranks[$0 * dimension + j] }
    }

    /// The smaller of each dimension's two p-values.
    public var minimumPValues: [Double] { zip(chiSquarePValues, ksPValues).map { min($0, $1) } }
}

/// Simulation-based calibration (Talts et al. 2018, "Validating Bayesian inference algorithms
/// with simulation-based calibration"). For prior draws θ_i and x_i ~ p(x | θ_i), the rank of
/// θ_i's coordinate among L draws from the posterior estimate q(θ | x_i) is uniform on 0...L for
/// every dimension if q is the true posterior. An overconfident q piles ranks at both ends (a ∪
/// histogram), an underconfident one in the middle (∩), a biased one at one end.
///
/// Ranks count the posterior samples strictly below θ_i, as sbi's `run_sbc` does; exact ties
/// (discrete parameters) are split at random so that the null distribution stays uniform.
///
/// Uniformity is tested per dimension two ways, both reported:
/// - Pearson's χ² on the B-bin rank histogram (the histogram Talts et al. plot), with the
///   expected counts computed exactly when B does not divide L + 1;
/// - the one-sample Kolmogorov–Smirnov test of the randomized normalized ranks (r + v)/(L + 1),
///   v ~ U(0, 1). (sbi's `check_sbc` runs KS on the raw ranks against U(0, L), which is slightly
///   off for a discrete statistic; the jitter makes the null exactly U(0, 1).)
/// Samples are grouped per observation like `NPE.sample`: the L·D floats of observation i
/// follow those of observation i − 1.
public enum SBC {
    /// Ranks of each θ_i (N·D row-major) among its L posterior samples (N·L·D, grouped per
    /// observation): rank[i·D + j] = #{l : s_ilj < θ_ij} (+ a uniform share of exact ties).
    public static func ranks(theta: [Float], posteriorSamples: [Float], dimension d: Int, samplesPerPosterior l: Int,
                             seed: UInt64 = 0) throws -> [Int] {
        guard d > 0, l > 0, theta.count % d == 0, !theta.isEmpty else {
            throw SBIError.sizeMismatch("SBC: θ has \(theta.count) values, not rows of \(d) (and L = \(l) must be positive)")
        }
        let n = theta.count / d
        guard posteriorSamples.count == n * l * d else {
            throw SBIError.sizeMismatch("SBC: \(posteriorSamples.count) posterior sample values; expected \(n) observations × \(l) samples × \(d)")
        }
        var ranks = [Int](repeating: 0, count: n * d)
        for i in 0..<n {
            for j in 0..<d {
                let t = theta[i * d + j]
                var below = 0, ties = 0
                let base = i * l * d + j
                for s in 0..<l {
                    let v = posteriorSamples[base + s * d]
                    if v < t { below += 1 } else if v == t { ties += 1 }
                }
                if ties > 0 {
                    below += DiagnosticRandom.integer(below: ties + 1, UInt64(i * d + j), seed: DiagnosticRandom.derive(seed, 1))
                }
                ranks[i * d + j] = below
            }
        }
        return ranks
    }

    /// The default bin count: 20 (Talts et al.'s plots), fewer when there are fewer than 10 ranks
    /// a bin or fewer than 20 rank values.
    public static func defaultBins(simulations n: Int, samplesPerPosterior l: Int) -> Int {
        max(2, min(20, l + 1, n / 10))
    }

    /// Histograms and uniformity tests of precomputed ranks (N·D row-major, each in 0...L).
    public static func analyze(ranks: [Int], dimension d: Int, samplesPerPosterior l: Int, bins: Int? = nil,
                               seed: UInt64 = 0) throws -> SBCResult {
        guard d > 0, l > 0, ranks.count % d == 0, !ranks.isEmpty else {
            throw SBIError.sizeMismatch("SBC: \(ranks.count) ranks are not rows of \(d) (and L = \(l) must be positive)")
        }
        if let bad = ranks.first(where: { $0 < 0 || $0 > l }) {
            throw SBIError.invalidArgument("SBC: rank \(bad) outside 0...\(l)")
        }
        let n = ranks.count / d
        let b = bins ?? defaultBins(simulations: n, samplesPerPosterior: l)
        guard b >= 2, b <= l + 1 else {
            throw SBIError.invalidArgument("SBC: \(b) bins for \(l + 1) rank values; use 2...\(l + 1)")
        }
        func bin(_ r: Int) -> Int { r * b / (l + 1) }
        var expected = [Double](repeating: 0, count: b)
        for r in 0...l { expected[bin(r)] += Double(n) / Double(l + 1) }
        var histograms: [[Int]] = [], chi: [Double] = [], chiP: [Double] = [], ks: [Double] = [], ksP: [Double] = []
        let jitterSeed = DiagnosticRandom.derive(seed, 2)
        for j in 0..<d {
            var counts = [Int](repeating: 0, count: b)
            var u = [Double](repeating: 0, count: n)
            for i in 0..<n {
                let r = ranks[i * d + j]
                counts[bin(r)] += 1
                u[i] = (Double(r) + DiagnosticRandom.uniform(UInt64(i * d + j), seed: jitterSeed)) / Double(l + 1)
            }
            let (statistic, p) = StatisticalTests.chiSquareTest(observed: counts, expected: expected)
            let (dks, pks) = StatisticalTests.kolmogorovSmirnovUniform(u)
            histograms.append(counts)
            chi.append(statistic)
            chiP.append(p)
            ks.append(dks)
            ksP.append(pks)
        }
        return SBCResult(simulations: n, dimension: d, posteriorSamples: l, ranks: ranks, bins: b, histograms: histograms,
                         expectedCounts: expected, chiSquare: chi, chiSquarePValues: chiP, ksStatistics: ks, ksPValues: ksP)
    }

    /// SBC from posterior samples drawn beforehand (N·L·D, grouped per observation).
    public static func run(theta: [Float], posteriorSamples: [Float], dimension d: Int, samplesPerPosterior l: Int,
                           bins: Int? = nil, seed: UInt64 = 0) throws -> SBCResult {
        let r = try ranks(theta: theta, posteriorSamples: posteriorSamples, dimension: d, samplesPerPosterior: l, seed: seed)
        return try analyze(ranks: r, dimension: d, samplesPerPosterior: l, bins: bins, seed: seed)
    }

    /// SBC with a sampler: `sampler(i, x_i)` returns L posterior samples (L·D floats) for held-out
    /// observation i (`observations` holds N rows of equal width).
    public static func run(theta: [Float], observations: [Float], dimension d: Int, samplesPerPosterior l: Int,
                           bins: Int? = nil, seed: UInt64 = 0,
                           sampler: (_ index: Int, _ observation: ArraySlice<Float>) throws -> [Float]) throws -> SBCResult {
        let samples = try PosteriorSampling.collect(theta: theta, observations: observations, dimension: d,
                                                    samplesPerPosterior: l, sampler: sampler)
        return try run(theta: theta, posteriorSamples: samples, dimension: d, samplesPerPosterior: l, bins: bins, seed: seed)
    }

    /// SBC of a conditional density estimator q(θ | x): L samples for every observation in one
    /// `sample` call. (For NPE with prior-support rejection, pass a sampler closure that calls
    /// `NPE.sample` instead.)
    public static func run(estimator: DensityEstimator, theta: [Float], observations: [Float], samplesPerPosterior l: Int,
                           bins: Int? = nil, seed: UInt64 = 0) throws -> SBCResult {
        let samples = try PosteriorSampling.sample(estimator: estimator, thetaCount: theta.count,
                                                   observations: observations, samplesPerPosterior: l, seed: seed)
        return try run(theta: theta, posteriorSamples: samples, dimension: estimator.features, samplesPerPosterior: l,
                       bins: bins, seed: seed)
    }
}

/// Gathers per-observation posterior samples from a sampler closure, checking their sizes.
enum PosteriorSampling {
    /// L samples of q(θ | x_i) for every observation row, grouped per observation.
    static func sample(estimator: DensityEstimator, thetaCount: Int, observations: [Float], samplesPerPosterior l: Int,
                       seed: UInt64) throws -> [Float] {
        let d = estimator.features
        let (n, width) = try observationWidth(thetaCount: thetaCount, observations: observations, dimension: d)
        guard width == estimator.contextFeatures else {
            throw SBIError.sizeMismatch("observations have \(width) features, the estimator's context \(estimator.contextFeatures)")
        }
        guard l > 0 else { throw SBIError.invalidArgument("need at least one posterior sample per observation") }
        let samples = try estimator.sample(l, context: observations, seed: seed)
        guard samples.count == n * l * d else {
            throw SBIError.sizeMismatch("the estimator returned \(samples.count) sample values; expected \(n) × \(l) × \(d)")
        }
        return samples
    }

    static func observationWidth(thetaCount: Int, observations: [Float], dimension d: Int) throws -> (n: Int, width: Int) {
        guard d > 0, thetaCount % d == 0, thetaCount > 0 else {
            throw SBIError.sizeMismatch("θ has \(thetaCount) values, not rows of \(d)")
        }
        let n = thetaCount / d
        guard observations.count % n == 0, !observations.isEmpty else {
            throw SBIError.sizeMismatch("\(observations.count) observation values do not split into \(n) rows")
        }
        return (n, observations.count / n)
    }

    static func collect(theta: [Float], observations: [Float], dimension d: Int, samplesPerPosterior l: Int,
                        sampler: (Int, ArraySlice<Float>) throws -> [Float]) throws -> [Float] {
        let (n, width) = try observationWidth(thetaCount: theta.count, observations: observations, dimension: d)
        var all: [Float] = []
        all.reserveCapacity(n * l * d)
        for i in 0..<n {
            let draws = try sampler(i, observations[(i * width)..<((i + 1) * width)])
            guard draws.count == l * d else {
                throw SBIError.sizeMismatch("sampler returned \(draws.count) values for observation \(i); expected \(l) samples × \(d)")
            }
            all += draws
        }
        return all
    }
}
