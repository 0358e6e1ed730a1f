import Foundation
import SBIData
import SBIBackend
import SBIGraph

/// A fixed permutation of the features (reverse, or random from a seed); log-det 0.
public struct Permutation: Bijector {
    public let order: [Int32]

    public init(order: [Int32]) { self.order = order }
    public static func reverse(_ features: Int) -> Permutation {
        Permutation(order: (0..<features).reversed().map(Int32.init))
    }
    public static func random(_ features: Int, seed: UInt64) -> Permutation {
        var order = (0..<features).map(Int32.init)
        for i in stride(from: features - 1, to: 0, by: -1) {
            order.swapAt(i, Int(Philox.word(at: UInt64(i), seed: seed) % UInt32(i + 1)))
        }
        return Permutation(order: order)
    }
    var inverseOrder: [Int32] {
        var inverse = [Int32](repeating: 0, count: order.count)
        for (j, i) in order.enumerated() { inverse[Int(i)] = Int32(j) }
        return inverse
    }

    public func forward(_ x: Tensor, context: Tensor?, in graph: Graph) throws -> (output: Tensor, logDeterminant: Tensor) {
        (try graph.gatherColumns(x, order), try graph.zeros(rows: x.rows, cols: 1))
    }
    public func inverse(_ y: Tensor, context: Tensor?, in graph: Graph) throws -> (output: Tensor, logDeterminant: Tensor) {
        (try graph.gatherColumns(y, inverseOrder), try graph.zeros(rows: y.rows, cols: 1))
    }
}

/// Glow's ActNorm: y = (x + b)⊙exp(log s) per feature, log-det Σ log s. `Flow.initialize` sets
/// b and log s from the first batch so that the layer's output starts standardized.
public struct ActNorm: Bijector {
    public let name: String
    public let features: Int
    public init(name: String, features: Int) {
        self.name = name
        self.features = features
    }
    var biasName: String { name + ".bias" }
    var logScaleName: String { name + ".logScale" }

    func parameters(_ graph: Graph) -> (Tensor, Tensor) {
        (graph.parameter(biasName, rows: 1, cols: features, initializer: .zeros),
         graph.parameter(logScaleName, rows: 1, cols: features, initializer: .zeros))
    }
    func logDeterminant(_ logScale: Tensor, rows: Int, sign: Float, in graph: Graph) throws -> Tensor {
        try graph.broadcast(try graph.affine(try graph.sum(logScale), scale: sign, shift: 0), rows: rows, cols: 1, mode: .row)
    }
    public func forward(_ x: Tensor, context: Tensor?, in graph: Graph) throws -> (output: Tensor, logDeterminant: Tensor) {
        let (bias, logScale) = parameters(graph)
        let y = try graph.multiply(try graph.add(x, bias), try graph.exp(logScale))
        return (y, try logDeterminant(logScale, rows: x.rows, sign: 1, in: graph))
    }
    public func inverse(_ y: Tensor, context: Tensor?, in graph: Graph) throws -> (output: Tensor, logDeterminant: Tensor) {
        let (bias, logScale) = parameters(graph)
        let x = try graph.subtract(try graph.multiply(y, try graph.exp(try graph.affine(logScale, scale: -1, shift: 0))), bias)
        return (x, try logDeterminant(logScale, rows: y.rows, sign: -1, in: graph))
    }
}

/// Fixed z-scoring (x − μ)/σ with statistics of the training data stored in the model.
public struct Standardize: Bijector {
    public let mean: [Float]
    public let std: [Float]
    public init(mean: [Float], std: [Float]) {
        self.mean = mean
        self.std = std
    }
    /// (x − μ)/σ of row-major values on the host, column by column (what `apply` computes in a graph).
    func standardize(_ values: [Float]) -> [Float] {
        let cols = mean.count
        return values.enumerated().map { i, v in (v - mean[i % cols]) / std[i % cols] }
    }
    /// Mean and standard deviation of each column of a rows×cols array; constant columns get σ = 1.
    public static func fit(_ values: [Float], cols: Int) -> Standardize {
        values.withUnsafeBufferPointer { fit($0, cols: cols) }
    }

    public static func fit(_ rows: FloatRows) -> Standardize {
        rows.withUnsafeBufferPointer { fit($0, cols: rows.cols) }
    }

    static func fit(_ values: UnsafeBufferPointer<Float>, cols: Int) -> Standardize {
        let rows = max(1, values.count / max(cols, 1))
        var mean = [Double](repeating: 0, count: cols), square = [Double](repeating: 0, count: cols)
        for r in 0..<rows {
            for c in 0..<cols {
                let v = Double(values[r * cols + c])
                mean[c] += v
                square[c] += v * v
            }
        }
        var std = [Float](repeating: 1, count: cols)
        for c in 0..<cols {
            mean[c] /= Double(rows)
            let variance = max(0, square[c] / Double(rows) - mean[c] * mean[c])
            std[c] = variance > 1e-12 ? Float(variance.squareRoot()) : 1
        }
        return Standardize(mean: mean.map(Float.init), std: std)
    }
    var logDeterminant: Float { -std.reduce(0) { $0 + Foundation.log($1) } }

    public func apply(_ x: Tensor, in graph: Graph) throws -> Tensor {
        try graph.multiply(try graph.subtract(x, graph.constant(mean, rows: 1, cols: mean.count)),
                           graph.constant(std.map { 1 / $0 }, rows: 1, cols: std.count))
    }
    public func forward(_ x: Tensor, context: Tensor?, in graph: Graph) throws -> (output: Tensor, logDeterminant: Tensor) {
        (try apply(x, in: graph), try graph.fill(rows: x.rows, cols: 1, value: logDeterminant))
    }
    public func inverse(_ y: Tensor, context: Tensor?, in graph: Graph) throws -> (output: Tensor, logDeterminant: Tensor) {
        let x = try graph.add(try graph.multiply(y, graph.constant(std, rows: 1, cols: std.count)),
                              graph.constant(mean, rows: 1, cols: mean.count))
        return (x, try graph.fill(rows: y.rows, cols: 1, value: -logDeterminant))
    }
}
