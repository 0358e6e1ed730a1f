import Foundation
import SBIBackend

/// out[r] = Σ_c x[r, c]: rows×1.
public struct SumRows: Primitive {
    public var description: String { "sumRows" }
    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] { [(inputs[0].rows, 1)] }
    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try backend.sumRows(inputs[0].view, rows: inputs[0].rows, cols: inputs[0].cols, outputs[0].view)
    }
    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard let g = cotangents[0] else { return [nil] }
        return [try graph.broadcast(g, rows: inputs[0].rows, cols: inputs[0].cols, mode: .column)]
    }
}

/// out[c] = Σ_r x[r, c]: 1×cols.
public struct SumColumns: Primitive {
    public var description: String { "sumColumns" }
    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] { [(1, inputs[0].cols)] }
    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try backend.sumColumns(inputs[0].view, rows: inputs[0].rows, cols: inputs[0].cols, outputs[0].view)
    }
    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard let g = cotangents[0] else { return [nil] }
        return [try graph.broadcast(g, rows: inputs[0].rows, cols: inputs[0].cols, mode: .row)]
    }
}

/// The sum of every element: 1×1.
public struct SumAll: Primitive {
    public var description: String { "sum" }
    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] { [(1, 1)] }
    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try backend.sumRows(inputs[0].view, rows: 1, cols: inputs[0].view.count, outputs[0].view)
    }
    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard let g = cotangents[0] else { return [nil] }
        let x = inputs[0]
        // A 1×1 value repeated: a row broadcast over count×1, reshaped.
        let flat = try graph.broadcast(g, rows: x.count, cols: 1, mode: .row)
        return [x.cols == 1 ? flat : try graph.reshape(flat, rows: x.rows, cols: x.cols)]
    }
}

/// out[r] = log Σ_c exp x[r, c]: rows×1, computed stably.
public struct LogSumExpRows: Primitive {
    public var description: String { "logSumExpRows" }
    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] { [(inputs[0].rows, 1)] }
    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try backend.logSumExpRows(inputs[0].view, rows: inputs[0].rows, cols: inputs[0].cols, outputs[0].view)
    }
    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard let g = cotangents[0] else { return [nil] }
        // ∂/∂x = softmax(x) = exp(x − lse), scaled by the row's cotangent.
        let softmax = try graph.exp(try graph.subtract(inputs[0], outputs[0]))
        return [try graph.multiply(softmax, g)]
    }
}

public extension Graph {
    func sumRows(_ x: Tensor) throws -> Tensor { try apply1(SumRows(), x) }
    func sumColumns(_ x: Tensor) throws -> Tensor { try apply1(SumColumns(), x) }
    func sum(_ x: Tensor) throws -> Tensor { try apply1(SumAll(), x) }
    func mean(_ x: Tensor) throws -> Tensor { try affine(try sum(x), scale: 1 / Float(x.count), shift: 0) }
    func logSumExpRows(_ x: Tensor) throws -> Tensor { try apply1(LogSumExpRows(), x) }

    /// log N(x; 0, I) per row: −½Σx² − (D/2)·log 2π, rows×1.
    func standardNormalLogDensity(_ x: Tensor) throws -> Tensor {
        let halfLog2Pi = 0.5 * Foundation.log(2 * Double.pi)
        return try affine(try sumRows(try square(x)), scale: -0.5, shift: Float(-Double(x.cols) * halfLog2Pi))
    }

    /// log N(x; μ, diag σ²) per row, with μ and log σ of x's shape (or broadcastable rows).
    func gaussianLogDensity(_ x: Tensor, mean mu: Tensor, logStd: Tensor) throws -> Tensor {
        let z = try multiply(try subtract(x, mu), try exp(try affine(logStd, scale: -1, shift: 0)))
        let logNormalizer = logStd.rows == x.rows ? try sumRows(logStd)
            : try broadcast(try sum(logStd), rows: x.rows, cols: 1, mode: .row)
        return try subtract(try standardNormalLogDensity(z), logNormalizer)
    }
}
