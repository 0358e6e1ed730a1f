import XCTest

/// The conditional-estimator check shared by the flow and MDN tests: θ ~ N(0, I₂),
/// x = Aθ + ε, ε ~ N(0, 0.25·I₂), so θ | x ~ N(ΣAᵀx/0.25, Σ) with Σ = (I + AᵀA/0.25)⁻¹.
enum LinearGaussianPosterior {
    static let a = [[1.0, 0.5], [-0.3, 0.8]], noise = 0.25
    static let observed = [0.8, -0.4]

    /// n simulated (θ, x) pairs, rows of two.
    static func simulations(_ n: Int = 10_000) -> (theta: [Float], x: [Float]) {
        let z = normalValues(4 * n, seed: 31)
        var theta: [Float] = [], x: [Float] = []
        for i in 0..<n {
            let t = [z[4 * i], z[4 * i + 1]]
            theta += t.map(Float.init)
            for r in 0..<2 { x.append(Float(a[r][0] * t[0] + a[r][1] * t[1] + noise.squareRoot() * z[4 * i + 2 + r])) }
        }
        return (theta, x)
    }

    /// The analytic posterior at `observed`: precision P = I + AᵀA/σ², mean P⁻¹Aᵀx/σ².
    static var posterior: (mean: [Double], covariance: [[Double]]) {
        var p = [[1.0, 0.0], [0.0, 1.0]]
        for i in 0..<2 { for j in 0..<2 { for k in 0..<2 { p[i][j] += a[k][i] * a[k][j] / noise } } }
        let det = p[0][0] * p[1][1] - p[0][1] * p[1][0]
        let cov = [[p[1][1] / det, -p[0][1] / det], [-p[1][0] / det, p[0][0] / det]]
        let b = (0..<2).map { i in (0..<2).reduce(0.0) { $0 + a[$1][i] * observed[$1] / noise } }
        return ((0..<2).map { i in cov[i][0] * b[0] + cov[i][1] * b[1] }, cov)
    }

    /// Samples (rows of two) have the posterior's mean within 0.05 and covariance entries within
    /// 0.03: 5000 samples have standard errors ≈ 0.005 and ≈ 0.004; the rest is model error.
    static func assertMoments(of samples: [Double], file: StaticString = #filePath, line: UInt = #line) {
        let (mean, cov) = posterior
        let n = Double(samples.count / 2)
        let m = (0..<2).map { j in stride(from: j, to: samples.count, by: 2).reduce(0.0) { $0 + samples[$1] } / n }
        for j in 0..<2 { XCTAssertEqual(m[j], mean[j], accuracy: 0.05, "mean[\(j)]", file: file, line: line) }
        for i in 0..<2 {
            for j in 0..<2 {
                let c = stride(from: 0, to: samples.count, by: 2).reduce(0.0) {
                    $0 + (samples[$1 + i] - m[i]) * (samples[$1 + j] - m[j])
                } / (n - 1)
                XCTAssertEqual(c, cov[i][j], accuracy: 0.03, "cov[\(i)][\(j)]", file: file, line: line)
            }
        }
    }
}
