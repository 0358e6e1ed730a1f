import SBIBackend
import SBIGraph

/// MADE (Germain et al. 2015): an MLP whose weight masks make output d depend only on inputs
/// ordered before d. Degrees: inputs 1…D in order, hidden units cycle through 1…D−1, the
/// outputs of feature d have degree d; context feeds every hidden unit unmasked.
struct MADE {
    let name: String
    let features: Int
    let contextFeatures: Int
    let hidden: [Int]
    let outputsPerFeature: Int
    let activation: UnaryOp
    /// Dropout after every hidden layer in training graphs.
    var dropout: Float = 0

    /// Hidden degrees cycle through 1…D−1; with one feature there is nothing before it, so
    /// hidden units get degree 0 and see only the context.
    func degrees(width: Int) -> [Int] {
        features == 1 ? Array(repeating: 0, count: width) : (0..<width).map { $0 % (features - 1) + 1 }
    }

    /// Output columns are grouped by kind: [kind 0 for features 0…D−1 | kind 1 … ].
    func callAsFunction(_ x: Tensor, context: Tensor?, in graph: Graph) throws -> Tensor {
        var input = x
        var inDegrees = Array(1...features)
        if let context {
            input = try graph.concat([x, context])
            inDegrees += Array(repeating: 0, count: contextFeatures)  // degree 0: visible to all
        }
        var h = input
        let widths = hidden + [outputsPerFeature * features]
        for (layer, width) in widths.enumerated() {
            let last = layer == widths.count - 1
            let outDegrees = last ? (0..<width).map { $0 % features + 1 } : degrees(width: width)
            var mask = [Float](repeating: 0, count: inDegrees.count * width)
            for i in 0..<inDegrees.count {
                for k in 0..<width {
                    let visible = last ? outDegrees[k] > inDegrees[i] : outDegrees[k] >= inDegrees[i]
                    mask[i * width + k] = visible ? 1 : 0
                }
            }
            let fanIn = Float(inDegrees.count)
            let bound = last ? 1e-3 : 1 / fanIn.squareRoot()
            let w = graph.parameter("\(name).\(layer).weight", rows: inDegrees.count, cols: width,
                                    initializer: .uniform(bound: bound))
            let b = graph.parameter("\(name).\(layer).bias", rows: 1, cols: width,
                                    initializer: last ? .zeros : .uniform(bound: bound))
            let masked = try graph.multiply(w, graph.constant(mask, rows: inDegrees.count, cols: width))
            h = try graph.linear(h, weight: masked, bias: b, activation: last ? .identity : activation)
            if !last { h = try graph.dropout(h, rate: dropout) }
            inDegrees = outDegrees
        }
        return h
    }
}

/// Masked autoregressive flow layer (Papamakarios et al. 2017) in nflows' parametrization:
/// z = y⊙σ(a + 2) + μ with (a, μ) = MADE(y), so log|det| = Σ log σ(a + 2) (+1e-3 floor).
/// Density evaluation is one MADE pass; sampling inverts feature by feature in D passes.
public struct MaskedAutoregressive: Bijector {
    public let name: String
    public let features: Int
    public let contextFeatures: Int
    public let hidden: [Int]
    public let activation: UnaryOp
    public let dropout: Float

    public init(name: String, features: Int, contextFeatures: Int = 0, hidden: [Int] = [64, 64],
                activation: UnaryOp = .relu, dropout: Float = 0) {
        self.name = name
        self.features = features
        self.contextFeatures = contextFeatures
        self.hidden = hidden
        self.activation = activation
        self.dropout = dropout
    }

    var made: MADE {
        MADE(name: name + ".made", features: features, contextFeatures: contextFeatures, hidden: hidden,
             outputsPerFeature: 2, activation: activation, dropout: dropout)
    }

    func scaleAndShift(_ y: Tensor, context: Tensor?, in graph: Graph) throws -> (scale: Tensor, shift: Tensor) {
        let raw = try made(y, context: context, in: graph)
        let scale = try graph.affine(try graph.unary(.sigmoid, try graph.affine(
            try graph.slice(raw, start: 0, width: features), scale: 1, shift: 2)), scale: 1, shift: 1e-3)
        return (scale, try graph.slice(raw, start: features, width: features))
    }

    public func forward(_ x: Tensor, context: Tensor?, in graph: Graph) throws -> (output: Tensor, logDeterminant: Tensor) {
        let (scale, shift) = try scaleAndShift(x, context: context, in: graph)
        let z = try graph.add(try graph.multiply(x, scale), shift)
        return (z, try graph.sumRows(try graph.log(scale)))
    }

    public func inverse(_ z: Tensor, context: Tensor?, in graph: Graph) throws -> (output: Tensor, logDeterminant: Tensor) {
        // After pass d, features ≤ d are exact: each depends only on earlier ones.
        var x = try graph.zeros(rows: z.rows, cols: features)
        var scale = x
        for _ in 0..<features {
            let (s, shift) = try scaleAndShift(x, context: context, in: graph)
            x = try graph.divide(try graph.subtract(z, shift), s)
            scale = s
        }
        return (x, try graph.affine(try graph.sumRows(try graph.log(scale)), scale: -1, shift: 0))
    }
}
