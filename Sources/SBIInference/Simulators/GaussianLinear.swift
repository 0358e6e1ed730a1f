import Foundation
import SBIBackend

/// sbibm's gaussian_linear: θ ~ N(0, 0.1·I₁₀), x ~ N(θ, 0.1·I₁₀).
///
/// Row r's noise is the normals at stream positions 10r … 10r + 9. Host, double precision.
public struct GaussianLinear: Simulator {
    public let name = "gaussian_linear"
    public let summary = "sbibm Gaussian linear: θ ~ N(0, 0.1·I₁₀), x ~ N(θ, 0.1·I₁₀)"
    public let parameterNames = (1...10).map { "theta\($0)" }
    public let observationShape = [10]
    public let prior: Prior = .gaussian(mean: [Double](repeating: 0, count: 10),
                                        covariance: (0..<100).map { $0 % 11 == 0 ? 0.1 : 0 })
    /// The observation noise's variance (0.1 in sbibm).
    public let noiseVariance = 0.1

    public init() {}

    public func simulate(theta: [Float], rows: Int, seed: UInt64, backend: Backend?) throws -> [Float] {
        try checkTheta(theta, rows: rows)
        let d = 10, std = noiseVariance.squareRoot()
        var x = [Float](repeating: 0, count: rows * d)
        x.withUnsafeMutableBufferPointer { out in
            parallelRows(rows, workPerRow: 200) { range in
                var z = [Double](repeating: 0, count: range.count * d)
                z.withUnsafeMutableBufferPointer {
                    PhiloxDraws.normals(into: $0, offset: UInt64(range.lowerBound * d), seed: seed)
                }
                for i in range.lowerBound * d..<range.upperBound * d {
                    out[i] = Float(Double(theta[i]) + std * z[i - range.lowerBound * d])
                }
            }
        }
        return x
    }
}

extension GaussianLinear: ExplicitLikelihood {
    public func logLikelihood(observation: [Float], theta: [Float], rows: Int, backend: Backend?) throws -> [Double] {
        try checkTheta(theta, rows: rows)
        return gaussianLogLikelihood(observation: observation, means: theta, rows: rows, variance: noiseVariance)
    }
}
