import SBIBackend

/// A stack of linear layers with an activation between them (none after the last), the coupling
/// and conditioning network of every estimator. Weights are stored in×out (y = x·W + b) and
/// initialized like PyTorch's `nn.Linear`: U(±1/√fanIn) for weights and biases, or He-uniform
/// for ReLU stacks when `kaiming` is set.
public struct MLP: Sendable {
    public let name: String
    public let widths: [Int]
    public let activation: UnaryOp
    public let kaiming: Bool

    /// Start the output layer at zero weights and bias, so that the net's output starts at 0
    /// (flows then start as the identity, as in Glow).
    public let zeroInitializedOutput: Bool

    /// Dropout rate after every hidden layer, in training graphs only (`Graph.isTraining`).
    public let dropout: Float

    /// - Parameter widths: input width, hidden widths…, output width.
    public init(name: String, widths: [Int], activation: UnaryOp = .relu, kaiming: Bool = false,
                zeroInitializedOutput: Bool = false, dropout: Float = 0) {
        precondition(dropout >= 0 && dropout < 1, "dropout rate \(dropout) is not in [0, 1)")
        precondition(widths.count >= 2, "an MLP needs an input and an output width")
        self.name = name
        self.widths = widths
        self.activation = activation
        self.kaiming = kaiming
        self.zeroInitializedOutput = zeroInitializedOutput
        self.dropout = dropout
    }

    public var layerCount: Int { widths.count - 1 }

    public func weightName(_ layer: Int) -> String { "\(name).\(layer).weight" }
    public func biasName(_ layer: Int) -> String { "\(name).\(layer).bias" }

    /// Declares the parameters in `graph` (once per graph) and applies the network to x.
    /// `inputRows`, when given, says which input features x holds: the first layer multiplies by
    /// those rows of its weight only (−1: a zero row), as if the others were inputs of zero.
    /// `outputLayer`, when given, maps the output layer's (weight, bias) to the ones applied — a
    /// fixed rescaling or offset folded into the layer, or a subset of its outputs, say.
    public func callAsFunction(_ x: Tensor, in graph: Graph, inputRows: [Int32]? = nil,
                               outputLayer: ((Tensor, Tensor) throws -> (Tensor, Tensor))? = nil) throws -> Tensor {
        guard x.cols == inputRows?.count ?? widths[0] else {
            throw SBIError.sizeMismatch("MLP \(name) takes \(inputRows?.count ?? widths[0]) features, got \(x)")
        }
        var h = x
        for layer in 0..<layerCount {
            let fanIn = widths[layer], fanOut = widths[layer + 1]
            let pytorchBound = 1 / Float(fanIn).squareRoot()
            let last = layer == layerCount - 1
            let zero = last && zeroInitializedOutput
            var w = graph.parameter(weightName(layer), rows: fanIn, cols: fanOut,
                                    initializer: zero ? .zeros : kaiming ? .kaimingUniform(fanIn: fanIn) : .uniform(bound: pytorchBound))
            var b = graph.parameter(biasName(layer), rows: 1, cols: fanOut,
                                    initializer: zero ? .zeros : .uniform(bound: pytorchBound))
            if layer == 0, let inputRows { w = try graph.gatherRows(w, inputRows) }
            if last, let outputLayer { (w, b) = try outputLayer(w, b) }
            h = try graph.linear(h, weight: w, bias: b, activation: last ? .identity : activation)
            if !last { h = try graph.dropout(h, rate: dropout) }
        }
        return h
    }
}
