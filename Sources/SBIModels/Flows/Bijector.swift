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

/// The columns a coupling net works on. It reads the pass-through features (mask 1) and the
/// context, and computes only the parameters of the transformed features (mask 0): the full net
/// on x⊙m restricted to the rows and columns that are nonzero or used. The parameters keep their
/// full shapes (checkpoints and the PyTorch twin are unchanged) and the results are the same; with
/// half the features passing through, the first and last layers do half the multiply-adds.
struct CouplingNetColumns {
    /// Features the net reads: the pass-through ones, or one zero column (−1) when none pass.
    let read: [Int32]
    /// Rows of the first layer's weight used: those of `read`, then the context's.
    let inputRows: [Int32]
    /// Columns of the last layer computed: the transformed features' parameters.
    let computed: [Int32]
    /// For each column of the full output, its column among the computed ones (−1: zero).
    let expand: [Int32]

    /// - Parameter parameterColumns: the output columns holding feature j's parameters.
    init(mask: [Float], contextFeatures: Int, outputs: Int, parameterColumns: (Int) -> [Int]) {
        let features = mask.count
        let passing = (0..<features).filter { mask[$0] != 0 }.map(Int32.init)
        read = passing.isEmpty ? [-1] : passing
        inputRows = read + (features..<(features + contextFeatures)).map(Int32.init)
        computed = (0..<features).filter { mask[$0] == 0 }.flatMap(parameterColumns).map(Int32.init)
        var expand = [Int32](repeating: -1, count: outputs)
        for (position, column) in computed.enumerated() { expand[Int(column)] = Int32(position) }
        self.expand = expand
    }

    /// The net's full output (zero in the pass-through features' parameters) for x and the
    /// context; `outputLayer` maps the computed columns of the last layer's (weight, bias).
    func apply(_ net: MLP, _ x: Tensor, context: Tensor?, in graph: Graph,
               outputLayer: ((Tensor, Tensor) throws -> (Tensor, Tensor))? = nil) throws -> Tensor {
        let features = try graph.gatherColumns(x, read)
        let input = try context.map { try graph.concat([features, $0]) } ?? features
        let output = try net(input, in: graph, inputRows: inputRows) { w, b in
            let used = (try graph.gatherColumns(w, computed), try graph.gatherColumns(b, computed))
            return try outputLayer?(used.0, used.1) ?? used
        }
        return try graph.gatherColumns(output, expand)
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
