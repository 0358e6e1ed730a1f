import Foundation
import SBIBackend

/// The goodness-of-fit tests the calibration diagnostics report: Pearson's chi-square on binned
/// counts, the one-sample Kolmogorov–Smirnov test against U(0, 1) and the two-sample
/// Kolmogorov–Smirnov test. Everything is computed in double precision.
public enum StatisticalTests {
    // MARK: chi-square

    /// Pearson's χ² = Σ (O − E)² / E over the bins with E > 0, and its upper-tail p-value with
    /// (bins − 1) degrees of freedom (the expected counts are fixed, none estimated).
    public static func chiSquareTest(observed: [Int], expected: [Double]) -> (statistic: Double, pValue: Double) {
        precondition(observed.count == expected.count, "chi-square: \(observed.count) observed bins, \(expected.count) expected")
        var statistic = 0.0, bins = 0
        for (o, e) in zip(observed, expected) where e > 0 {
            statistic += (Double(o) - e) * (Double(o) - e) / e
            bins += 1
        }
        guard bins > 1 else { return (statistic, 1) }
        return (statistic, chiSquareSurvival(statistic, degreesOfFreedom: bins - 1))
    }

    /// P(χ²_k ≥ x) = Q(k/2, x/2), the regularized upper incomplete gamma function.
    public static func chiSquareSurvival(_ x: Double, degreesOfFreedom k: Int) -> Double {
        precondition(k > 0, "chi-square needs a positive number of degrees of freedom")
        guard x > 0 else { return 1 }
        return regularizedUpperGamma(Double(k) / 2, x / 2)
    }

    /// Q(a, x) = Γ(a, x)/Γ(a), accurate when tiny (see `IncompleteGamma`).
    public static func regularizedUpperGamma(_ a: Double, _ x: Double) -> Double {
        IncompleteGamma.regularized(a, x).q
    }

    // MARK: Kolmogorov–Smirnov

    /// The Kolmogorov distribution's survival function Q(λ) = 2 Σ_{k≥1} (−1)^{k−1} e^{−2k²λ²}.
    public static func kolmogorovSurvival(_ lambda: Double) -> Double {
        guard lambda > 0.2 else { return 1 }
        var sum = 0.0, sign = 1.0
        for k in 1...200 {
            let term = Foundation.exp(-2 * Double(k * k) * lambda * lambda)
            sum += sign * term
            if term < 1e-17 { break }
            sign = -sign
        }
        return min(1, max(0, 2 * sum))
    }

    /// One-sample KS test of values against U(0, 1): D = sup |F_n(u) − u| and its p-value from the
    /// asymptotic distribution with Stephens' small-sample correction,
    /// Q((√n + 0.12 + 0.11/√n)·D) (accurate to a few per cent of p from n ≈ 5 on).
    public static func kolmogorovSmirnovUniform(_ values: [Double]) -> (statistic: Double, pValue: Double) {
        kolmogorovSmirnov(values) { min(1, max(0, $0)) }
    }

    /// One-sample KS test of values against a continuous CDF (see `kolmogorovSmirnovUniform`).
    public static func kolmogorovSmirnov(_ values: [Double], cdf: (Double) -> Double) -> (statistic: Double, pValue: Double) {
        let n = values.count
        guard n > 0 else { return (0, 1) }
        let sorted = values.sorted()
        var d = 0.0
        for (i, v) in sorted.enumerated() {
            let f = cdf(v)
            d = max(d, Double(i + 1) / Double(n) - f, f - Double(i) / Double(n))
        }
        let root = Double(n).squareRoot()
        return (d, kolmogorovSurvival((root + 0.12 + 0.11 / root) * d))
    }

    /// Two-sample KS test (scipy's `ks_2samp`, two-sided): D = max |F_a − F_b| over the pooled
    /// values (ties handled by comparing the ECDFs at each distinct value). The p-value is exact —
    /// the share of monotone lattice paths from (0, 0) to (m, n) that leave the band
    /// |i/m − j/n| < D, by the normalized path-counting recursion — when m·n ≤ 10⁶, and the
    /// asymptotic Kolmogorov tail with m·n/(m + n) otherwise.
    public static func twoSampleKolmogorovSmirnov(_ a: [Double], _ b: [Double]) -> (statistic: Double, pValue: Double) {
        let m = a.count, n = b.count
        guard m > 0, n > 0 else { return (0, 1) }
        let sa = a.sorted(), sb = b.sorted()
        var i = 0, j = 0, d = 0.0
        while i < m || j < n {
            let v = min(i < m ? sa[i] : .infinity, j < n ? sb[j] : .infinity)
            while i < m && sa[i] <= v { i += 1 }
            while j < n && sb[j] <= v { j += 1 }
            d = max(d, abs(Double(i) / Double(m) - Double(j) / Double(n)))
        }
        guard d > 0 else { return (0, 1) }
        if m * n <= 1_000_000 {
            // D·m·n is an integer |i·n − j·m| (up to rounding); a path stays inside while every
            // point has |i·n − j·m| < that integer.
            let h = Int((d * Double(m) * Double(n)).rounded())
            var row = [Double](repeating: 0, count: n + 1)  // P(path to (i, j) stayed inside)
            for ii in 0...m {
                for jj in 0...n {
                    guard abs(ii * n - jj * m) < h else { row[jj] = 0; continue }
                    if ii == 0 && jj == 0 { row[jj] = 1; continue }
                    let total = Double(ii + jj)
                    let fromLeft = ii > 0 ? row[jj] * Double(ii) / total : 0  // row[jj] still holds (ii − 1, jj)
                    let fromBelow = jj > 0 ? row[jj - 1] * Double(jj) / total : 0
                    row[jj] = fromLeft + fromBelow
                }
            }
            return (d, min(1, max(0, 1 - row[n])))
        }
        let en = Double(m) * Double(n) / Double(m + n)
        return (d, kolmogorovSurvival(en.squareRoot() * d))
    }
}

/// Seeded host-side draws for the diagnostics: Philox stream positions of `seed`.
enum DiagnosticRandom {
    /// U(0, 1) (open interval) at stream position `index`.
    static func uniform(_ index: UInt64, seed: UInt64) -> Double {
        Double(Philox.unit(Philox.word(at: index, seed: seed)))
    }

    /// A uniform integer in 0..<bound at stream position `index`.
    static func integer(below bound: Int, _ index: UInt64, seed: UInt64) -> Int {
        precondition(bound > 0)
        return Int((UInt64(Philox.word(at: index, seed: seed)) * UInt64(bound)) >> 32)
    }

    /// A Fisher–Yates permutation of 0..<count from the stream of `seed`.
    static func permutation(_ count: Int, seed: UInt64) -> [Int] {
        var order = Array(0..<count)
        guard count > 1 else { return order }
        for i in stride(from: count - 1, to: 0, by: -1) {
            order.swapAt(i, integer(below: i + 1, UInt64(i), seed: seed))
        }
        return order
    }

    /// A seed of its own for each (seed, stream) pair.
    static func derive(_ seed: UInt64, _ stream: UInt64) -> UInt64 {
        var z = seed &+ (stream &+ 1) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
