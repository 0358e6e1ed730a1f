import SBIBackend
import SBIGraph

/// The fused affine coupling kernel as a graph primitive: inputs x (rows×D), st (rows×2D),
/// mask (1×D); outputs y (rows×D) and log-det (rows×1). Its backward is one more fused kernel.
public struct AffineCouplingOp: Primitive {
    public let inverse: Bool
    public let bound: Float
    public var description: String { inverse ? "affineCoupling⁻¹" : "affineCoupling" }

    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] {
        let x = inputs[0], st = inputs[1], mask = inputs[2]
        guard st.rows == x.rows, st.cols == 2 * x.cols, mask.count == x.cols else {
            throw SBIError.sizeMismatch("\(description): x \(x), [s|t] \(st), mask \(mask)")
        }
        return [(x.rows, x.cols), (x.rows, 1)]
    }

    public func supports(_ backend: Backend) -> Bool { backend is FlowKernels }

    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try (backend as! FlowKernels).affineCoupling(
            inverse: inverse, x: inputs[0].view, st: inputs[1].view, mask: inputs[2].view, y: outputs[0].view,
            logDeterminant: outputs[1].view, rows: inputs[0].rows, features: inputs[0].cols, bound: bound)
    }

    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard !inverse else { throw SBIError.invalidArgument("the inverse coupling is not differentiable") }
        let x = inputs[0]
        let gy = try cotangents[0] ?? graph.zeros(rows: x.rows, cols: x.cols)
        let gl = try cotangents[1] ?? graph.zeros(rows: x.rows, cols: 1)
        let grads = try graph.apply(AffineCouplingBackwardOp(bound: bound), [x, inputs[1], inputs[2], gy, gl])
        return [grads[0], grads[1], nil]
    }
}

/// Gradients of `AffineCouplingOp` w.r.t. x and st, from those of y and the log-det.
public struct AffineCouplingBackwardOp: Primitive {
    public let bound: Float
    public var description: String { "∂affineCoupling" }
    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] {
        [(inputs[0].rows, inputs[0].cols), (inputs[1].rows, inputs[1].cols)]
    }
    public func supports(_ backend: Backend) -> Bool { backend is FlowKernels }
    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try (backend as! FlowKernels).affineCouplingBackward(
            x: inputs[0].view, st: inputs[1].view, mask: inputs[2].view, gradientY: inputs[3].view,
            gradientLogDeterminant: inputs[4].view, gradientX: outputs[0].view, gradientST: outputs[1].view,
            rows: inputs[0].rows, features: inputs[0].cols, bound: bound)
    }
    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        throw SBIError.invalidArgument("second derivatives are not supported (\(description))")
    }
}

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
