import SBIBackend

/// Columns start..<start+width of x.
public struct SliceColumns: Primitive {
    public let start: Int
    public let width: Int
    public var description: String { "slice[\(start)..<\(start + width)]" }
    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] {
        guard start >= 0, width >= 0, start + width <= inputs[0].cols else {
            throw SBIError.sizeMismatch("\(description) of \(inputs[0])")
        }
        return [(inputs[0].rows, width)]
    }
    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try backend.copyColumns(rows: inputs[0].rows, width: width, from: inputs[0].view, columns: inputs[0].cols,
                                start: start, to: outputs[0].view, columns: width, start: 0)
    }
    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard let g = cotangents[0] else { return [nil] }
        return [try graph.apply1(PadColumns(start: start, columns: inputs[0].cols), g)]
    }
}

/// x placed at columns start..<start+x.cols of a zero rows×columns tensor (the backward of a slice).
public struct PadColumns: Primitive {
    public let start: Int
    public let columns: Int
    public var description: String { "pad[\(start)..<…/\(columns)]" }
    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] {
        guard start >= 0, start + inputs[0].cols <= columns else { throw SBIError.sizeMismatch("\(description) of \(inputs[0])") }
        return [(inputs[0].rows, columns)]
    }
    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try backend.fill(outputs[0].view, value: 0)
        try backend.copyColumns(rows: inputs[0].rows, width: inputs[0].cols, from: inputs[0].view, columns: inputs[0].cols,
                                start: 0, to: outputs[0].view, columns: columns, start: start)
    }
    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard let g = cotangents[0] else { return [nil] }
        return [try graph.slice(g, start: start, width: inputs[0].cols)]
    }
}

/// [a | b | …] along the feature axis.
public struct ConcatColumns: Primitive {
    public var description: String { "concat" }
    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] {
        guard let rows = inputs.first?.rows, inputs.allSatisfy({ $0.rows == rows }) else {
            throw SBIError.sizeMismatch("concat of \(inputs): row counts differ")
        }
        return [(rows, inputs.reduce(0) { $0 + $1.cols })]
    }
    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        var start = 0
        for x in inputs {
            try backend.copyColumns(rows: x.rows, width: x.cols, from: x.view, columns: x.cols, start: 0,
                                    to: outputs[0].view, columns: outputs[0].cols, start: start)
            start += x.cols
        }
    }
    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard let g = cotangents[0] else { return inputs.map { _ in nil } }
        var start = 0
        return try inputs.map { x in
            defer { start += x.cols }
            return try graph.slice(g, start: start, width: x.cols)
        }
    }
}

/// out[:, j] = x[:, index[j]] for a constant index tensor, 0 where index[j] = −1: a fixed
/// permutation of the features, a subset of them, or (with −1s) their scatter into a wider tensor.
public struct GatherColumns: Primitive {
    /// The index values, known when the graph is built (needed for the backward pass).
    public let index: [Int32]
    public var description: String { "gatherColumns" }
    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] {
        guard inputs[1].count == index.count, index.allSatisfy({ $0 >= -1 && Int($0) < inputs[0].cols }) else {
            throw SBIError.invalidArgument("gatherColumns: indices must lie in -1..<\(inputs[0].cols)")
        }
        return [(inputs[0].rows, index.count)]
    }
    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try backend.gatherColumns(inputs[0].view, rows: inputs[0].rows, columns: inputs[0].cols,
                                  indices: inputs[1].view, into: outputs[0].view)
    }
    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard let g = cotangents[0] else { return [nil, nil] }
        return [try graph.gatherColumns(g, try adjointIndex(index, sourceCount: inputs[0].cols, op: description)), nil]
    }
}

/// out[r, :] = x[index[r], :] for a constant index tensor, a zero row where index[r] = −1 (rows
/// of a weight matrix, say).
public struct GatherRows: Primitive {
    public let index: [Int32]
    public var description: String { "gatherRows" }
    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] {
        guard inputs[1].count == index.count, index.allSatisfy({ $0 >= -1 && Int($0) < inputs[0].rows }) else {
            throw SBIError.invalidArgument("gatherRows: indices must lie in -1..<\(inputs[0].rows)")
        }
        return [(index.count, inputs[0].cols)]
    }
    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try backend.gatherRows(inputs[0].view, columns: inputs[0].cols, indices: inputs[1].view, into: outputs[0].view)
    }
    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard let g = cotangents[0] else { return [nil, nil] }
        return [try graph.gatherRows(g, try adjointIndex(index, sourceCount: inputs[0].rows, op: description)), nil]
    }
}

/// The gather that is the adjoint of gathering by `index`: source position i takes the output
/// position that read it, or −1 (zero) if none did. Needs each source read at most once; a source
/// read twice would need its cotangents summed.
func adjointIndex(_ index: [Int32], sourceCount: Int, op: String) throws -> [Int32] {
    var adjoint = [Int32](repeating: -1, count: sourceCount)
    for (j, i) in index.enumerated() where i >= 0 {
        guard adjoint[Int(i)] < 0 else {
            throw SBIError.invalidArgument("\(op) is differentiable only when no index repeats (\(i) does)")
        }
        adjoint[Int(i)] = Int32(j)
    }
    return adjoint
}

/// A copy into a tensor of its own (binds a value to storage the caller owns, such as a gradient).
public struct Copy: Primitive {
    public var description: String { "copy" }
    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] { [(inputs[0].rows, inputs[0].cols)] }
    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try backend.copy(inputs[0].view, to: outputs[0].view)
    }
    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        [cotangents[0]]
    }
}

public extension Graph {
    func slice(_ x: Tensor, start: Int, width: Int) throws -> Tensor {
        try apply1(SliceColumns(start: start, width: width), x)
    }
    func concat(_ parts: [Tensor]) throws -> Tensor { try apply(ConcatColumns(), parts)[0] }
    /// Columns of x in the order `index` names; −1 gives a zero column.
    func gatherColumns(_ x: Tensor, _ index: [Int32]) throws -> Tensor {
        try apply(GatherColumns(index: index), [x, indices(index)])[0]
    }
    /// Rows of x in the order `index` names; −1 gives a zero row.
    func gatherRows(_ x: Tensor, _ index: [Int32]) throws -> Tensor {
        try apply(GatherRows(index: index), [x, indices(index)])[0]
    }
    func copy(_ x: Tensor) throws -> Tensor { try apply1(Copy(), x) }
}
