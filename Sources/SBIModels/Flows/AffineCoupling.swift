import SBIBackend
import SBIGraph

/// RealNVP's affine coupling layer: the masked features (mask 1) pass through and, with the
/// context, feed an MLP whose output [raw s | t] scales and shifts the others:
/// y = m⊙x + (1−m)⊙(x⊙exp(s) + t), s = B·tanh(raw/B), log|det| = Σ(1−m)⊙s.
public struct AffineCoupling: Bijector {
    public let name: String
    public let mask: [Float]
    public let contextFeatures: Int
    public let hidden: [Int]
    public let activation: UnaryOp
    /// Soft-clamp bound B of s; 0 leaves s unclamped.
    public let bound: Float
    /// Dropout after every hidden layer of the net, in training graphs.
    public let dropout: Float

    public init(name: String, mask: [Float], contextFeatures: Int = 0, hidden: [Int] = [64, 64],
                activation: UnaryOp = .relu, bound: Float = 3, dropout: Float = 0) {
        self.dropout = dropout
        self.name = name
        self.mask = mask
        self.contextFeatures = contextFeatures
        self.hidden = hidden
        self.activation = activation
        self.bound = bound
    }

    var features: Int { mask.count }
    /// The coupling net; its zero-initialized output layer makes a new coupling the identity.
    var net: MLP {
        MLP(name: name + ".net", widths: [features + contextFeatures] + hidden + [2 * features],
            activation: activation, zeroInitializedOutput: true, dropout: dropout)
    }

    /// [raw s | t] from the pass-through features and the context (zero for the pass-through
    /// features, which the coupling kernel leaves alone).
    func shiftAndScale(_ x: Tensor, context: Tensor?, in graph: Graph) throws -> Tensor {
        let d = features
        return try CouplingNetColumns(mask: mask, contextFeatures: contextFeatures, outputs: 2 * d) { [$0, d + $0] }
            .apply(net, x, context: context, in: graph)
    }

    public func forward(_ x: Tensor, context: Tensor?, in graph: Graph) throws -> (output: Tensor, logDeterminant: Tensor) {
        let st = try shiftAndScale(x, context: context, in: graph)
        let out = try graph.apply(AffineCouplingOp(inverse: false, bound: bound),
                                  [x, st, graph.constant(mask, rows: 1, cols: features)])
        return (out[0], out[1])
    }

    public func inverse(_ y: Tensor, context: Tensor?, in graph: Graph) throws -> (output: Tensor, logDeterminant: Tensor) {
        let st = try shiftAndScale(y, context: context, in: graph)
        let out = try graph.apply(AffineCouplingOp(inverse: true, bound: bound),
                                  [y, st, graph.constant(mask, rows: 1, cols: features)])
        return (out[0], out[1])
    }
}

/// An elementwise affine map of every feature whose log-scale and shift are linear in the
/// context: y = x⊙exp(s(c)) + t(c), [raw s | t] = c·W + b, s = B·tanh(raw/B).
///
/// Why: many posteriors are near-Gaussian with a location and width that move with the data
/// (every linear-Gaussian model exactly; most high signal-to-noise ones nearly). The couplings
/// can only approximate a context-dependent shift through their nets and spline bins, and with
/// the data they need for it they start fitting noise. Placed first on the data side, this layer
/// takes the location-scale part with 2·D·(C+1) weights and leaves the couplings the shape, the
/// way a conditional Gaussian base does in nflows. It starts as the identity (zero weights).
public struct ConditionalAffine: Bijector {
    public let name: String
    public let features: Int
    public let contextFeatures: Int
    /// Soft-clamp bound B of s; 0 leaves s unclamped.
    public let bound: Float

    public init(name: String, features: Int, contextFeatures: Int, bound: Float = 3) {
        precondition(contextFeatures > 0, "a conditional affine layer needs a context")
        self.name = name
        self.features = features
        self.contextFeatures = contextFeatures
        self.bound = bound
    }

    var layer: MLP {
        MLP(name: name + ".linear", widths: [contextFeatures, 2 * features], zeroInitializedOutput: true)
    }

    func apply(_ x: Tensor, context: Tensor?, inverse: Bool, in graph: Graph) throws -> (output: Tensor, logDeterminant: Tensor) {
        guard let context else { throw SBIError.invalidArgument("\(name) needs the context") }
        let st = try layer(context, in: graph)
        let out = try graph.apply(AffineCouplingOp(inverse: inverse, bound: bound),
                                  [x, st, graph.constant([Float](repeating: 0, count: features), rows: 1, cols: features)])
        return (out[0], out[1])
    }

    public func forward(_ x: Tensor, context: Tensor?, in graph: Graph) throws -> (output: Tensor, logDeterminant: Tensor) {
        try apply(x, context: context, inverse: false, in: graph)
    }

    public func inverse(_ y: Tensor, context: Tensor?, in graph: Graph) throws -> (output: Tensor, logDeterminant: Tensor) {
        try apply(y, context: context, inverse: true, in: graph)
    }
}
