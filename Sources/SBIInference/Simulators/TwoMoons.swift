import Foundation
import SBIBackend

/// sbibm's two_moons: θ ∈ U[−1, 1]²; a ~ U(−π/2, π/2), r ~ N(0.1, 0.01²),
/// p = (r·cos a + 0.25, r·sin a), x = p + (−|θ₁ + θ₂|/√2, (−θ₁ + θ₂)/√2).
///
/// Row r uses Philox block r of the seed's stream: a from word 0 (a uniform at position 4r), the
/// radius from the normal at position 4r + 2 (Box–Muller on words 2, 3). Computed on the host
/// in double precision; the backend is not used.
public struct TwoMoons: Simulator {
    public let name = "two_moons"
    public let summary = "sbibm two moons: θ ∈ U[-1,1]², x ∈ R² a crescent around (−|θ₁+θ₂|/√2, (θ₂−θ₁)/√2)"
    public let parameterNames = ["theta1", "theta2"]
    public let observationShape = [2]
    public let prior = Prior.uniform(low: [-1, -1], high: [1, 1])

    public init() {}

    public func simulate(theta: [Float], rows: Int, seed: UInt64, backend: Backend?) throws -> [Float] {
        try checkTheta(theta, rows: rows)
        var x = [Float](repeating: 0, count: rows * 2)
        x.withUnsafeMutableBufferPointer { out in
            parallelRows(rows, workPerRow: 64) { range in
                for r in range {
                    let b = Philox.block(counter: UInt64(r), seed: seed)
                    let a = Double.pi * (Double(Philox.unit(b.0)) - 0.5)
                    let radius = 0.1 + 0.01 * PhiloxDraws.boxMuller(b.2, b.3).0
                    let t1 = Double(theta[2 * r]), t2 = Double(theta[2 * r + 1])
                    out[2 * r] = Float(radius * Foundation.cos(a) + 0.25 - abs(t1 + t2) / 2.0.squareRoot())
                    out[2 * r + 1] = Float(radius * Foundation.sin(a) + (-t1 + t2) / 2.0.squareRoot())
                }
            }
        }
        return x
    }
}
