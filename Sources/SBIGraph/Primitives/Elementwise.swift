import SBIBackend

/// y = f(x) element-wise.
public struct Unary: Primitive {
    public let op: UnaryOp
    public let parameter: Float
    public var description: String { "\(op)" }
    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] { [(inputs[0].rows, inputs[0].cols)] }
    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try backend.unary(op, inputs[0].view, outputs[0].view, parameter: parameter)
    }
    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard let g = cotangents[0] else { return [nil] }
        return [try graph.apply1(UnaryGradient(op: op, parameter: parameter), inputs[0], outputs[0], g)]
    }
}

/// g·f'(x) from (x, y = f(x), g): the backward of `Unary`. Not differentiable itself.
public struct UnaryGradient: Primitive {
    public let op: UnaryOp
    public let parameter: Float
    public var description: String { "∂\(op)" }
    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] { [(inputs[0].rows, inputs[0].cols)] }
    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try backend.unaryGradient(op, x: inputs[0].view, y: inputs[1].view, gradient: inputs[2].view,
                                  into: outputs[0].view, parameter: parameter)
    }
    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        throw SBIError.invalidArgument("second derivatives are not supported (\(description))")
    }
}

/// y = α·x + β.
public struct Affine: Primitive {
    public let scale: Float
    public let shift: Float
    public var description: String { "affine(\(scale)·x+\(shift))" }
    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] { [(inputs[0].rows, inputs[0].cols)] }
    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try backend.affine(inputs[0].view, outputs[0].view, scale: scale, shift: shift)
    }
    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard let g = cotangents[0] else { return [nil] }
        return [try graph.affine(g, scale: scale, shift: 0)]
    }
}

/// out = a ∘ b with b broadcast over a's rows (`.row`, b is 1×cols) or columns (`.column`, b is rows×1).
public struct Binary: Primitive {
    public let op: BinaryOp
    public let broadcast: Broadcast
    public var description: String { broadcast == .none ? "\(op)" : "\(op)[\(broadcast)-broadcast]" }

    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] {
        let a = inputs[0], b = inputs[1]
        let expected: (Int, Int) = switch broadcast {
        case .none: (a.rows, a.cols)
        case .row: (1, a.cols)
        case .column: (a.rows, 1)
        }
        guard (b.rows, b.cols) == expected else {
            throw SBIError.sizeMismatch("\(description): \(a) with \(b), expected b of \(expected.0)×\(expected.1)")
        }
        return [(a.rows, a.cols)]
    }

    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try backend.binary(op, inputs[0].view, inputs[1].view, outputs[0].view,
                           rows: inputs[0].rows, cols: inputs[0].cols, broadcast: broadcast)
    }

    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard let g = cotangents[0] else { return [nil, nil] }
        let a = inputs[0], b = inputs[1]
        /// Sums a full-shape cotangent back to b's broadcast shape.
        func reduce(_ t: Tensor) throws -> Tensor {
            switch broadcast {
            case .none: return t
            case .row: return try graph.sumColumns(t)
            case .column: return try graph.sumRows(t)
            }
        }
        switch op {
        case .add:
            return [g, try reduce(g)]
        case .subtract:
            return [g, try reduce(try graph.affine(g, scale: -1, shift: 0))]
        case .multiply:
            return [try graph.apply1(Binary(op: .multiply, broadcast: broadcast), g, b),
                    try reduce(try graph.apply1(Binary(op: .multiply, broadcast: .none), g, a))]
        case .divide:
            // ∂(a/b)/∂b = −(a/b)/b = −out/b.
            let ga = try graph.apply1(Binary(op: .divide, broadcast: broadcast), g, b)
            let gOut = try graph.apply1(Binary(op: .multiply, broadcast: .none), g, outputs[0])
            let gb = try graph.apply1(Binary(op: .divide, broadcast: broadcast), gOut, b)
            return [ga, try reduce(try graph.affine(gb, scale: -1, shift: 0))]
        }
    }
}

/// A copy of b laid over rows×cols (`.row`: b is 1×cols; `.column`: b is rows×1; `.none`: a copy).
public struct BroadcastTo: Primitive {
    public let rows: Int
    public let cols: Int
    public let mode: Broadcast
    public var description: String { "broadcast[\(mode)]→\(rows)×\(cols)" }
    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] {
        let b = inputs[0]
        let ok = switch mode {
        case .none: b.rows == rows && b.cols == cols
        case .row: b.count == cols
        case .column: b.count == rows
        }
        guard ok else { throw SBIError.sizeMismatch("\(description) of \(b)") }
        return [(rows, cols)]
    }
    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try backend.broadcast(inputs[0].view, into: outputs[0].view, rows: rows, cols: cols, broadcast: mode)
    }
    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard let g = cotangents[0] else { return [nil] }
        let b = inputs[0]
        switch mode {
        case .none: return [g]
        case .row:
            let s = try graph.sumColumns(g)
            return [b.rows == 1 ? s : try graph.reshape(s, rows: b.rows, cols: b.cols)]
        case .column:
            let s = try graph.sumRows(g)
            return [b.cols == 1 ? s : try graph.reshape(s, rows: b.rows, cols: b.cols)]
        }
    }
}

/// A tensor filled with one value (zeros for missing cotangents, the 1 that seeds backward).
public struct Fill: Primitive {
    public let rows: Int
    public let cols: Int
    public let value: Float
    public var description: String { "fill(\(value))" }
    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] { [(rows, cols)] }
    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try backend.fill(outputs[0].view, value: value)
    }
    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] { [] }
}

/// The same elements under another shape: a view, which plans alias to its input's storage
/// (nothing is launched or copied).
public struct Reshape: ViewPrimitive {
    public let shape: [Int]
    public init(shape: [Int]) { self.shape = shape }
    public var description: String { "reshape→\(shape.map(String.init).joined(separator: "×"))" }
    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] {
        guard !shape.isEmpty, shape.allSatisfy({ $0 >= 0 }), inputs[0].count == shape.reduce(1, *) else {
            throw SBIError.sizeMismatch("\(description) of \(inputs[0])")
        }
        return [(shape.dropLast().reduce(1, *), shape[shape.count - 1])]
    }
    public func outputTensorShapes(_ inputs: [Tensor]) throws -> [[Int]] {
        _ = try outputShapes(inputs)
        return [shape]
    }
    /// A copy, for callers that evaluate without a plan (plans alias instead).
    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try backend.copy(inputs[0].view, to: outputs[0].view)
    }
    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard let g = cotangents[0] else { return [nil] }
        return [try graph.reshape(g, inputs[0].shape)]
    }
}

public extension Graph {
    func unary(_ op: UnaryOp, _ x: Tensor, parameter: Float = 0.01) throws -> Tensor {
        try apply1(Unary(op: op, parameter: parameter), x)
    }
    func exp(_ x: Tensor) throws -> Tensor { try unary(.exp, x) }
    func log(_ x: Tensor) throws -> Tensor { try unary(.log, x) }
    func tanh(_ x: Tensor) throws -> Tensor { try unary(.tanh, x) }
    func relu(_ x: Tensor) throws -> Tensor { try unary(.relu, x) }
    func square(_ x: Tensor) throws -> Tensor { try unary(.square, x) }

    func affine(_ x: Tensor, scale: Float, shift: Float) throws -> Tensor {
        try apply1(Affine(scale: scale, shift: shift), x)
    }

    /// a ∘ b; b's shape picks the broadcast: a's shape, 1×cols (row) or rows×1 (column).
    func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        let mode: Broadcast
        if b.rows == a.rows && b.cols == a.cols { mode = .none }
        else if b.rows == 1 && b.cols == a.cols { mode = .row }
        else if b.cols == 1 && b.rows == a.rows { mode = .column }
        else { throw SBIError.sizeMismatch("\(op): cannot broadcast \(b) over \(a)") }
        return try apply1(Binary(op: op, broadcast: mode), a, b)
    }
    func add(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(.add, a, b) }
    func subtract(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(.subtract, a, b) }
    func multiply(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(.multiply, a, b) }
    func divide(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(.divide, a, b) }

    /// x ⊙ mask, the mask (one value per feature) broadcast over the batch.
    func mask(_ x: Tensor, _ values: [Float]) throws -> Tensor {
        try multiply(x, constant(values, rows: 1, cols: values.count))
    }

    func fill(rows: Int, cols: Int, value: Float) throws -> Tensor {
        try apply(Fill(rows: rows, cols: cols, value: value), [])[0]
    }
    func zeros(rows: Int, cols: Int) throws -> Tensor { try fill(rows: rows, cols: cols, value: 0) }

    func broadcast(_ b: Tensor, rows: Int, cols: Int, mode: Broadcast) throws -> Tensor {
        try apply1(BroadcastTo(rows: rows, cols: cols, mode: mode), b)
    }
    func reshape(_ x: Tensor, rows: Int, cols: Int) throws -> Tensor {
        try reshape(x, [rows, cols])
    }
    /// x's elements under `shape` (a view: no copy in a plan).
    func reshape(_ x: Tensor, _ shape: [Int]) throws -> Tensor {
        try apply1(Reshape(shape: shape), x)
    }
}
