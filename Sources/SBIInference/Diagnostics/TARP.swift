import Foundation
import SBIBackend
import SBIModels

/// The outcome of a TARP test: the expected-coverage-probability curve against the credibility
/// grid, and its summaries.
public struct TARPResult: Sendable {
    /// Credibility grid α: the B + 1 histogram bin edges of the coverage values.
    public let alpha: [Double]
    /// Expected coverage probability at each edge: 0, then the cumulative share of the coverage
    /// values in bins 0...k.
    public let ecp: [Double]
    /// f_i: the share of θ_i's posterior samples closer to its reference point than θ_i is.
    public let coverageValues: [Double]
    /// The reference points used (N·D, in the original parameter units).
    public let references: [Float]
    /// Area to curve, as sbi's `check_tarp`: Σ_{k ≥ ⌊(B+1)/2⌋} (ecp_k − α_k)·Δα. ≈ 0 when
    /// calibrated; negative for overconfident (too narrow) estimators, positive for
    /// underconfident (too wide) ones. A bias has no fixed sign here and, when moderate, can
    /// leave the upper half of the curve on the diagonal (as sbi's tests note): read it with
    /// `ksPValue` and `totalAbsoluteDeviation`.
    public let atc: Double
    /// Two-sample KS test between the ecp and α values (scipy `kstest(ecp, alpha)`), as sbi's
    /// `check_tarp`: a p-value near 1 when the curve follows the diagonal.
    public let ksStatistic: Double
    public let ksPValue: Double

    /// Σ_k |ecp_k − α_k| over the whole grid, the criterion of sbi's TARP tests (> 3 on their
    /// 30-to-50-bin grids for miscalibrated estimators). Unlike the ATC, which sees only the
    /// upper half of the curve, it also catches biased estimators whose curve crosses the
    /// diagonal.
    public var totalAbsoluteDeviation: Double { zip(ecp, alpha).reduce(0) { $0 + abs($1.0 - $1.1) } }
    /// max_k |ecp_k − α_k|.
    public var maximumDeviation: Double { zip(ecp, alpha).map { abs($0 - $1) }.max() ?? 0 }
}

/// TARP, "Tests of Accuracy with Random Points" (Lemos, Coogan et al. 2023, "Sampling-based
/// accuracy testing of posterior estimators for general inference"), as the `tarp` package's
/// `get_tarp_coverage` and sbi's `run_tarp`/`check_tarp` compute it:
///
/// 1. With normalization (default), θ, samples and references are mapped by the per-dimension
///    min and max of the held-out θ: (v − lo)/(hi − lo + 1e-10).
/// 2. Reference points (one per held-out pair) are drawn uniformly over [lo, hi] per dimension —
///    the unit cube after normalization — from a seeded Philox stream, unless given.
/// 3. f_i = #{l : dist(r_i, s_il) < dist(r_i, θ_i)} / L, with the Euclidean (default) or
///    Manhattan distance.
/// 4. The f_i are histogrammed into B bins (default N/10) over [min f, max f] like `np.histogram`
///    and `torch.histogram` do (or over [0, 1] with `alphaRange: .unit`); ecp is the cumulative
///    share, prefixed with 0, and α the bin edges.
/// A posterior estimator is accurate iff ecp(α) = α for every α (for random references).
public enum TARP {
    public enum Distance: Sendable { case euclidean, manhattan }
    /// Where the α grid (histogram range) comes from.
    public enum AlphaRange: Sendable {
        /// [min f, max f], the behaviour of `np.histogram`/`torch.histogram` in tarp and sbi.
        case data
        /// [0, 1], the range f lives in.
        case unit
    }

    /// - Parameters:
    ///   - theta: N held-out parameters (N·D).
    ///   - posteriorSamples: L samples per held-out observation, grouped per observation (N·L·D).
    ///   - references: N reference points (N·D, original units); nil draws them (step 2).
    ///   - bins: histogram bins B; nil gives max(1, N/10).
    public static func run(theta: [Float], posteriorSamples: [Float], dimension d: Int, samplesPerPosterior l: Int,
                           references: [Float]? = nil, bins: Int? = nil, normalize: Bool = true,
                           distance: Distance = .euclidean, alphaRange: AlphaRange = .data,
                           seed: UInt64 = 0) throws -> TARPResult {
        guard d > 0, l > 0, !theta.isEmpty, theta.count % d == 0 else {
            throw SBIError.sizeMismatch("TARP: θ has \(theta.count) values, not rows of \(d) (and L = \(l) must be positive)")
        }
        let n = theta.count / d
        guard posteriorSamples.count == n * l * d else {
            throw SBIError.sizeMismatch("TARP: \(posteriorSamples.count) posterior sample values; expected \(n) observations × \(l) samples × \(d)")
        }
        let b = bins ?? max(1, n / 10)
        guard b >= 1 else { throw SBIError.invalidArgument("TARP: \(b) bins") }

        var lo = [Double](repeating: .infinity, count: d), hi = [Double](repeating: -.infinity, count: d)
        for i in 0..<n {
            for j in 0..<d {
                lo[j] = min(lo[j], Double(theta[i * d + j]))
                hi[j] = max(hi[j], Double(theta[i * d + j]))
            }
        }
        let refs: [Float]
        if let references {
            guard references.count == n * d else {
                throw SBIError.sizeMismatch("TARP: \(references.count) reference values; expected \(n)×\(d)")
            }
            refs = references
        } else {
            let stream = DiagnosticRandom.derive(seed, 3)
            refs = (0..<(n * d)).map { k in
                let j = k % d
                return Float(lo[j] + (hi[j] - lo[j]) * DiagnosticRandom.uniform(UInt64(k), seed: stream))
            }
        }
        // Normalization maps every point by (v − lo)/(hi − lo + 1e-10); distances between two
        // mapped points only see the scale.
        let scale = (0..<d).map { normalize ? 1 / (hi[$0] - lo[$0] + 1e-10) : 1 }
        func dist(_ a: UnsafeBufferPointer<Float>, _ ai: Int, _ r: UnsafeBufferPointer<Float>, _ ri: Int) -> Double {
            var s = 0.0
            for j in 0..<d {
                let delta = (Double(a[ai + j]) - Double(r[ri + j])) * scale[j]
                s += distance == .euclidean ? delta * delta : abs(delta)
            }
            return distance == .euclidean ? s.squareRoot() : s
        }
        let f: [Double] = refs.withUnsafeBufferPointer { r in
            theta.withUnsafeBufferPointer { t in
                posteriorSamples.withUnsafeBufferPointer { s in
                    (0..<n).map { i in
                        let thetaDistance = dist(t, i * d, r, i * d)
                        var closer = 0
                        for k in 0..<l where dist(s, (i * l + k) * d, r, i * d) < thetaDistance { closer += 1 }
                        return Double(closer) / Double(l)
                    }
                }
            }
        }
        let (ecp, alpha) = curve(coverageValues: f, bins: b, range: alphaRange)
        let summary = check(ecp: ecp, alpha: alpha)
        return TARPResult(alpha: alpha, ecp: ecp, coverageValues: f, references: refs, atc: summary.atc,
                          ksStatistic: summary.ksStatistic, ksPValue: summary.ksPValue)
    }

    /// TARP of a conditional density estimator q(θ | x): L samples for every held-out observation
    /// in one `sample` call, then `run(theta:posteriorSamples:…)`.
    public static func run(estimator: DensityEstimator, theta: [Float], observations: [Float], samplesPerPosterior l: Int,
                           references: [Float]? = nil, bins: Int? = nil, normalize: Bool = true,
                           distance: Distance = .euclidean, alphaRange: AlphaRange = .data,
                           seed: UInt64 = 0) throws -> TARPResult {
        let samples = try PosteriorSampling.sample(estimator: estimator, thetaCount: theta.count,
                                                   observations: observations, samplesPerPosterior: l, seed: seed)
        return try run(theta: theta, posteriorSamples: samples, dimension: estimator.features, samplesPerPosterior: l,
                       references: references, bins: bins, normalize: normalize, distance: distance,
                       alphaRange: alphaRange, seed: seed)
    }

    /// The ECP curve of coverage values: a B-bin histogram (edges α_0…α_B, the last bin closed,
    /// like `np.histogram`), ecp = [0, cumulative shares].
    public static func curve(coverageValues f: [Double], bins b: Int, range: AlphaRange = .data)
        -> (ecp: [Double], alpha: [Double]) {
        precondition(b >= 1 && !f.isEmpty, "TARP needs coverage values and at least one bin")
        var low = 0.0, high = 1.0
        if range == .data {
            low = f.min()!
            high = f.max()!
            if low == high { low -= 0.5; high += 0.5 }  // np.histogram's degenerate range
        }
        let width = (high - low) / Double(b)
        let alpha = (0...b).map { low + Double($0) * width }
        var counts = [Int](repeating: 0, count: b)
        for v in f where v >= low && v <= high {
            counts[min(b - 1, Int((v - low) / width))] += 1
        }
        let total = Double(counts.reduce(0, +))
        var ecp = [0.0], running = 0
        for c in counts {
            running += c
            ecp.append(total > 0 ? Double(running) / total : 0)
        }
        return (ecp, alpha)
    }

    /// sbi's `check_tarp`: the area to curve over the upper half of the grid and the two-sample
    /// KS test between the ecp and α values.
    public static func check(ecp: [Double], alpha: [Double]) -> (atc: Double, ksStatistic: Double, ksPValue: Double) {
        precondition(ecp.count == alpha.count && alpha.count >= 2, "ecp and alpha must match, with two or more points")
        let mid = alpha.count / 2
        let delta = alpha[1] - alpha[0]
        var atc = 0.0
        for k in mid..<alpha.count { atc += (ecp[k] - alpha[k]) * delta }
        let ks = StatisticalTests.twoSampleKolmogorovSmirnov(ecp, alpha)
        return (atc, ks.statistic, ks.pValue)
    }
}
