import Foundation
import SBIBackend

/// Rejection ABC: keep the simulations whose data lie closest to the observation, in Euclidean
/// distance after z-scoring each feature by its spread over the simulations.
public enum RejectionABC {
    /// The θ rows of the `quantile` closest simulations (at least one), and their distances.
    public static func accept(theta: [Float], x: [Float], parameters d: Int, observation: [Float],
                              quantile: Double) throws -> (theta: [Float], distances: [Double]) {
        let features = observation.count
        guard features > 0, d > 0, x.count % features == 0, theta.count % d == 0,
              x.count / features == theta.count / d else {
            throw SBIError.sizeMismatch("ABC needs as many x rows (\(x.count / max(features, 1))) as θ rows (\(theta.count / max(d, 1))) and x rows as wide as the observation (\(features))")
        }
        guard quantile > 0, quantile <= 1 else { throw SBIError.invalidArgument("ABC quantile must be in (0, 1], got \(quantile)") }
        let rows = x.count / features
        var mean = [Double](repeating: 0, count: features), square = mean
        for r in 0..<rows {
            for j in 0..<features {
                let v = Double(x[r * features + j])
                mean[j] += v
                square[j] += v * v
            }
        }
        let scale = (0..<features).map { j -> Double in
            let m = mean[j] / Double(rows)
            let variance = square[j] / Double(rows) - m * m
            return variance > 1e-24 ? 1 / variance.squareRoot() : 1
        }
        let distances = (0..<rows).map { r -> Double in
            var s = 0.0
            for j in 0..<features {
                let diff = (Double(x[r * features + j]) - Double(observation[j])) * scale[j]
                s += diff * diff
            }
            return s.squareRoot()
        }
        let keep = max(1, Int((Double(rows) * quantile).rounded()))
        let order = distances.indices.sorted { distances[$0] < distances[$1] }.prefix(keep)
        return (order.flatMap { theta[($0 * d)..<(($0 + 1) * d)] }, order.map { distances[$0] })
    }
}
