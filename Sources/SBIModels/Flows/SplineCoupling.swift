import SBIBackend
import SBIGraph

/// Neural Spline Flows' rational-quadratic coupling layer (Durkan et al. 2019, as nflows'
/// PiecewiseRationalQuadraticCouplingTransform with linear tails): the masked features (mask 1)
/// pass through and, with the context, feed an MLP whose D·(3K−1) outputs parametrize a monotone
/// rational-quadratic spline of each other feature on [−B, B] (identity outside). As in nflows,
/// the raw widths and heights are divided by √(last hidden width) (see `outputScale`); the raw
/// derivatives are offset so that a new layer is the identity (see `biasOffset`).
public struct SplineCoupling: Bijector {
    public let name: String
    public let mask: [Float]
    public let contextFeatures: Int
    public let hidden: [Int]
    public let activation: UnaryOp
    /// Bins K of each spline.
    public let bins: Int
    /// Tail bound B: the splines act on [−B, B].
    public let tailBound: Float
    /// Dropout after every hidden layer of the net, in training graphs.
    public let dropout: Float

    public init(name: String, mask: [Float], contextFeatures: Int = 0, hidden: [Int] = [64, 64],
                activation: UnaryOp = .relu, bins: Int = 8, tailBound: Float = 3, dropout: Float = 0) {
        self.dropout = dropout
        self.name = name
        self.mask = mask
        self.contextFeatures = contextFeatures
        self.hidden = hidden
        self.activation = activation
        self.bins = bins
        self.tailBound = tailBound
    }

    var features: Int { mask.count }
    var parametersPerFeature: Int { RationalQuadraticSpline.parameterCount(bins: bins) }
    var net: MLP {
        MLP(name: name + ".net", widths: [features + contextFeatures] + hidden + [features * parametersPerFeature],
            activation: activation, zeroInitializedOutput: true, dropout: dropout)
    }

    /// The offset added to the last layer's bias: log(exp(1 − min_d) − 1) in the derivative slots,
    /// 0 in the width and height slots.
    ///
    /// Identity start: the last layer starts at zero weights and zero bias (as AffineCoupling), so
    /// the raw widths and heights are 0 and the bins uniform (slope 1). Raw derivatives of 0 would
    /// give interior derivatives min_d + softplus(0) ≈ 0.694, a wavy non-identity start; so the
    /// effective bias is the parameter plus this constant, which gives every interior derivative
    /// exactly nflows' boundary value min_d + softplus(log(exp(1 − min_d) − 1)) = 1 and makes a new
    /// layer the identity. Adding a constant to the bias is the same as initializing the bias at
    /// that constant (the gradients w.r.t. the parameter are unchanged) but needs no per-slot
    /// initializer, and checkpoints store the parameter, so they stay comparable with zero-init.
    var biasOffset: [Float] {
        let k = bins, raw = RationalQuadraticSpline.unitDerivativeRaw
        var offset = [Float](repeating: 0, count: features * parametersPerFeature)
        for j in 0..<features {
            for i in 0..<(k - 1) { offset[j * parametersPerFeature + 2 * k + i] = raw }
        }
        return offset
    }

    /// The factor of each output of the last layer: 1/√(last hidden width) for the raw widths and
    /// heights, 1 for the raw derivatives. nflows' PiecewiseRationalQuadraticCouplingTransform
    /// divides the raw widths and heights by √hidden_features before the softmax (so that they
    /// start small); folding the factor into the last layer's weight and bias computes the same
    /// function with the same gradients, at a cost independent of the batch.
    var outputScale: [Float] {
        let k = bins, scale = 1 / Float(hidden.last ?? 1).squareRoot()
        var factor = [Float](repeating: 1, count: features * parametersPerFeature)
        for j in 0..<features {
            for i in 0..<(2 * k) { factor[j * parametersPerFeature + i] = scale }
        }
        return factor
    }

    /// The raw spline parameters from the pass-through features and the context (zero for the
    /// pass-through features, which the spline kernel leaves alone).
    func splineParameters(_ x: Tensor, context: Tensor?, in graph: Graph) throws -> Tensor {
        let count = parametersPerFeature
        let columns = CouplingNetColumns(mask: mask, contextFeatures: contextFeatures, outputs: features * count) {
            Array($0 * count ..< ($0 + 1) * count)
        }
        let n = columns.computed.count
        let scale = columns.computed.map { outputScale[Int($0)] }, offset = columns.computed.map { biasOffset[Int($0)] }
        return try columns.apply(net, x, context: context, in: graph) { w, b in
            let factor = graph.constant(scale, rows: 1, cols: n)
            return (try graph.multiply(w, factor),
                    try graph.add(try graph.multiply(b, factor), graph.constant(offset, rows: 1, cols: n)))
        }
    }

    public func forward(_ x: Tensor, context: Tensor?, in graph: Graph) throws -> (output: Tensor, logDeterminant: Tensor) {
        let params = try splineParameters(x, context: context, in: graph)
        let out = try graph.apply(RQSplineOp(inverse: false, bins: bins, tailBound: tailBound),
                                  [x, params, graph.constant(mask, rows: 1, cols: features)])
        return (out[0], out[1])
    }

    public func inverse(_ y: Tensor, context: Tensor?, in graph: Graph) throws -> (output: Tensor, logDeterminant: Tensor) {
        let params = try splineParameters(y, context: context, in: graph)
        let out = try graph.apply(RQSplineOp(inverse: true, bins: bins, tailBound: tailBound),
                                  [y, params, graph.constant(mask, rows: 1, cols: features)])
        return (out[0], out[1])
    }
}
