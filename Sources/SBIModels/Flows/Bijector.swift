import SBIBackend
import SBIGraph

/// An invertible map of the features, optionally conditioned on a context, built into graphs.
/// `forward` is the normalizing direction (data → latent) used by log-prob and training;
/// `inverse` the generative direction used by sampling. Each returns its output and the per-row
/// log |det Jacobian| (rows×1) of the map it applies, so log q(x) = log N(f(x)) + logdet_f(x)
/// and, along a sample x = f⁻¹(z), log q(x) = log N(z) − logdet_{f⁻¹}… with the sign handled by
/// `Flow`. Parameters are declared by name, so the two directions in one graph share weights.
public protocol Bijector {
    func forward(_ x: Tensor, context: Tensor?, in graph: Graph) throws -> (output: Tensor, logDeterminant: Tensor)
    func inverse(_ y: Tensor, context: Tensor?, in graph: Graph) throws -> (output: Tensor, logDeterminant: Tensor)
}

public extension Graph {
    /// What a coupling net sees: the pass-through features (mask 1; the others zeroed) and the context.
    func couplingInput(_ x: Tensor, mask values: [Float], context: Tensor?) throws -> Tensor {
        let masked = try mask(x, values)
        return try context.map { try concat([masked, $0]) } ?? masked
    }
}

/// How coupling layers split the features into the half that passes through (mask 1) and the
/// half that is transformed (mask 0).
public enum CouplingMask: String, Codable, Sendable, CaseIterable {
    /// First ⌈D/2⌉ features pass through on even layers, the rest on odd layers.
    case halves
    /// Alternating features (pixels of a checkerboard for images laid out row-major with even width
    /// alternate by row too).
    case checkerboard
    /// A fixed random half, drawn from the flow's seed.
    case random

    /// The mask of coupling layer `layer` for `features` features; `side` > 0 is the image width
    /// for a 2-D checkerboard.
    public func values(layer: Int, features: Int, side: Int = 0, seed: UInt64 = 0) -> [Float] {
        var mask = [Float](repeating: 0, count: features)
        switch self {
        case .halves:
            let half = (features + 1) / 2
            for j in 0..<features { mask[j] = (j < half) == (layer % 2 == 0) ? 1 : 0 }
        case .checkerboard:
            for j in 0..<features {
                let parity = side > 0 ? (j / side + j % side) % 2 : j % 2
                mask[j] = (parity == layer % 2) ? 1 : 0
            }
        case .random:
            var order = Array(0..<features)
            for i in stride(from: features - 1, to: 0, by: -1) {
                let r = Int(Philox.word(at: UInt64(i), seed: seed &+ UInt64(layer) &* 0x9E37_79B9) % UInt32(i + 1))
                order.swapAt(i, r)
            }
            for j in order.prefix((features + 1) / 2) { mask[j] = 1 }
        }
        if features == 1 { mask[0] = 0 }  // a single feature is always transformed (by its bias only)
        return mask
    }
}
