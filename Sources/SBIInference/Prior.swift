import Foundation
import SBIBackend

/// A prior over parameters θ: box-uniform or Gaussian (diagonal or full covariance).
public enum Prior: Equatable, Sendable, Codable {
    /// Independent U(low_i, high_i).
    case uniform(low: [Double], high: [Double])
    /// N(mean, covariance), covariance row-major d×d.
    case gaussian(mean: [Double], covariance: [Double])

    public var dimension: Int {
        switch self {
        case let .uniform(low, _): return low.count
        case let .gaussian(mean, _): return mean.count
        }
    }
}
