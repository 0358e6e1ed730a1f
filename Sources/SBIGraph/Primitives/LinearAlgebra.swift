import SBIBackend

/// C = op(A)·op(B), op being an optional transpose of the stored matrix.
public struct MatMul: Primitive {
    public var transposeA = false, transposeB = false
    public init(transposeA: Bool = false, transposeB: Bool = false) {
        self.transposeA = transposeA
        self.transposeB = transposeB
    }
    public var description: String { "matmul(\(transposeA ? "Aᵀ" : "A")·\(transposeB ? "Bᵀ" : "B"))" }

    func dims(_ a: (rows: Int, cols: Int), _ b: (rows: Int, cols: Int)) throws -> (m: Int, n: Int, k: Int) {
        let (m, ka) = transposeA ? (a.cols, a.rows) : (a.rows, a.cols)
        let (kb, n) = transposeB ? (b.cols, b.rows) : (b.rows, b.cols)
        guard ka == kb else {
            throw SBIError.sizeMismatch("\(description): \(a.rows)×\(a.cols) and \(b.rows)×\(b.cols) have inner sizes \(ka) and \(kb)")
        }
        return (m, n, ka)
    }

    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] {
        let (m, n, _) = try dims((inputs[0].rows, inputs[0].cols), (inputs[1].rows, inputs[1].cols))
        return [(m, n)]
    }

    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        let a = inputs[0], b = inputs[1]
        let (m, n, k) = try dims((a.rows, a.cols), (b.rows, b.cols))
        try backend.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1,
                         a: a.view, b: b.view, beta: 0, c: outputs[0].view, epilogue: .none)
    }

    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard let g = cotangents[0] else { return [nil, nil] }
        let a = inputs[0], b = inputs[1]
        // C = op(A)·op(B): dop(A) = dC·op(B)ᵀ and dop(B) = op(A)ᵀ·dC, transposed back to storage.
        let ga = transposeA ? try graph.matmul(b, g, transposeA: transposeB, transposeB: true)
                            : try graph.matmul(g, b, transposeA: false, transposeB: !transposeB)
        let gb = transposeB ? try graph.matmul(g, a, transposeA: true, transposeB: transposeA)
                            : try graph.matmul(a, g, transposeA: !transposeA, transposeB: false)
        return [ga, gb]
    }
}

/// y = act(x·W + b) in one GEMM launch with a fused epilogue. x is batch×in, W in×out, b 1×out
/// (optional). Only activations whose derivative is a function of the output are fused, so the
/// backward pass needs y alone: identity, relu, leaky relu, tanh, sigmoid.
public struct Linear: Primitive {
    public let activation: UnaryOp
    public let slope: Float
    public init(activation: UnaryOp = .identity, slope: Float = 0.01) {
        precondition(Linear.fusable(activation), "\(activation) cannot be fused into a linear layer")
        self.activation = activation
        self.slope = slope
    }
    public static func fusable(_ op: UnaryOp) -> Bool {
        [.identity, .relu, .leakyRelu, .tanh, .sigmoid].contains(op)
    }
    public var description: String { "linear+\(activation)" }

    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] {
        let x = inputs[0], w = inputs[1]
        guard x.cols == w.rows else { throw SBIError.sizeMismatch("linear: input \(x) does not match weight \(w)") }
        if inputs.count > 2 {
            guard inputs[2].count == w.cols else { throw SBIError.sizeMismatch("linear: bias \(inputs[2]) for \(w.cols) outputs") }
        }
        return [(x.rows, w.cols)]
    }

    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        let x = inputs[0], w = inputs[1]
        try backend.gemm(transposeA: false, transposeB: false, m: x.rows, n: w.cols, k: x.cols, alpha: 1,
                         a: x.view, b: w.view, beta: 0, c: outputs[0].view,
                         epilogue: Epilogue(bias: inputs.count > 2 ? inputs[2].view : nil,
                                            activation: activation, slope: slope))
    }

    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard let g = cotangents[0] else { return Array(repeating: nil, count: inputs.count) }
        let y = outputs[0]
        let gz = activation == .identity ? g
            : try graph.apply1(UnaryGradient(op: activation, parameter: slope), y, y, g)
        var result: [Tensor?] = [
            try graph.matmul(gz, inputs[1], transposeB: true),
            try graph.matmul(inputs[0], gz, transposeA: true),
        ]
        if inputs.count > 2 { result.append(try graph.sumColumns(gz)) }
        return result
    }
}

public extension Graph {
    func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) throws -> Tensor {
        try apply1(MatMul(transposeA: transposeA, transposeB: transposeB), a, b)
    }

    /// act(x·W + b), fused into the GEMM when the activation allows, else followed by a unary node.
    func linear(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: UnaryOp = .identity,
                slope: Float = 0.01) throws -> Tensor {
        let fused = Linear.fusable(activation) ? activation : .identity
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        let z = try apply(Linear(activation: fused, slope: slope), inputs)[0]
        return fused == activation ? z : try unary(activation, z, parameter: slope)
    }
}
