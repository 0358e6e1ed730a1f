import Dispatch
import Foundation

// The scalar definitions of the element-wise functions; the CPU backend applies them and the
// OpenCL kernels (Kernels/SBIBackend/common.cl) implement the same formulas.
//
// Each function is a type conforming to `UnaryFunction` / `BinaryFunction`, so that the CPU
// loops are generic over it: every instantiation is specialized at compile time into its own
// loop with the formula inlined, which the compiler vectorizes where the formula allows (relu,
// leaky ReLU, square, negate, abs, sqrt, affine and the four binary ops; exp, log, tanh, sigmoid
// and softplus call the C library per element).

protocol UnaryFunction { static func apply(_ x: Float, _ p: Float) -> Float }
protocol BinaryFunction { static func apply(_ a: Float, _ b: Float) -> Float }

enum Unary {
    enum Identity: UnaryFunction { @inline(__always) static func apply(_ x: Float, _ p: Float) -> Float { x } }
    enum Exp: UnaryFunction { @inline(__always) static func apply(_ x: Float, _ p: Float) -> Float { Foundation.exp(x) } }
    enum Log: UnaryFunction { @inline(__always) static func apply(_ x: Float, _ p: Float) -> Float { Foundation.log(x) } }
    enum Tanh: UnaryFunction { @inline(__always) static func apply(_ x: Float, _ p: Float) -> Float { Foundation.tanh(x) } }
    enum Relu: UnaryFunction { @inline(__always) static func apply(_ x: Float, _ p: Float) -> Float { x > 0 ? x : 0 } }
    enum LeakyRelu: UnaryFunction {
        @inline(__always) static func apply(_ x: Float, _ p: Float) -> Float { x > 0 ? x : p * x }
    }
    enum Sigmoid: UnaryFunction {
        @inline(__always) static func apply(_ x: Float, _ p: Float) -> Float { 1 / (1 + Foundation.exp(-x)) }
    }
    /// max(x, 0) + log1p(exp(−|x|)) never overflows and keeps full relative accuracy for x ≪ 0.
    enum Softplus: UnaryFunction {
        @inline(__always) static func apply(_ x: Float, _ p: Float) -> Float {
            Swift.max(x, 0) + Foundation.log1p(Foundation.exp(-Swift.abs(x)))
        }
    }
    enum Square: UnaryFunction { @inline(__always) static func apply(_ x: Float, _ p: Float) -> Float { x * x } }
    enum Negate: UnaryFunction { @inline(__always) static func apply(_ x: Float, _ p: Float) -> Float { -x } }
    enum Abs: UnaryFunction { @inline(__always) static func apply(_ x: Float, _ p: Float) -> Float { Swift.abs(x) } }
    enum Sqrt: UnaryFunction { @inline(__always) static func apply(_ x: Float, _ p: Float) -> Float { x.squareRoot() } }
}

enum Binary {
    enum Add: BinaryFunction { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a + b } }
    enum Subtract: BinaryFunction { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a - b } }
    enum Multiply: BinaryFunction { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a * b } }
    enum Divide: BinaryFunction { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a / b } }
}

extension UnaryOp {
    @inline(__always)
    func apply(_ x: Float, _ slope: Float) -> Float {
        switch self {
        case .identity: return Unary.Identity.apply(x, slope)
        case .exp: return Unary.Exp.apply(x, slope)
        case .log: return Unary.Log.apply(x, slope)
        case .tanh: return Unary.Tanh.apply(x, slope)
        case .relu: return Unary.Relu.apply(x, slope)
        case .leakyRelu: return Unary.LeakyRelu.apply(x, slope)
        case .sigmoid: return Unary.Sigmoid.apply(x, slope)
        case .softplus: return Unary.Softplus.apply(x, slope)
        case .square: return Unary.Square.apply(x, slope)
        case .negate: return Unary.Negate.apply(x, slope)
        case .abs: return Unary.Abs.apply(x, slope)
        case .sqrt: return Unary.Sqrt.apply(x, slope)
        }
    }
}

extension BinaryOp {
    @inline(__always)
    func apply(_ a: Float, _ b: Float) -> Float {
        switch self {
        case .add: return Binary.Add.apply(a, b)
        case .subtract: return Binary.Subtract.apply(a, b)
        case .multiply: return Binary.Multiply.apply(a, b)
        case .divide: return Binary.Divide.apply(a, b)
        }
    }
}

/// Splitting CPU loops across cores. Every element (or row, or column) is computed by the same
/// code whichever chunk it falls in, so results are identical to a single-threaded run. Public
/// for the CPU twins of kernels that live outside this module.
public enum CPUParallel {
    public static let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
    /// Below this many elements of work a loop runs on the calling thread: dispatching costs a
    /// few microseconds, about what one core needs for 64k simple element operations.
    static let threshold = 1 << 16

    /// Calls `body` on contiguous ranges covering 0..<count, in parallel when `work` (the
    /// element operations the whole loop does; `count` by default) reaches the threshold.
    @inline(__always)
    public static func forEachChunk(_ count: Int, work: Int? = nil, _ body: (Range<Int>) -> Void) {
        let work = work ?? count
        let chunks = work < threshold ? 1 : Swift.min(cores, count, work / (threshold / 2))
        if chunks <= 1 {
            if count > 0 { body(0..<count) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: chunks) { k in
            body((count * k / chunks)..<(count * (k + 1) / chunks))
        }
    }
}

/// The loops of the CPU backend's element-wise operations, generic over the function so that
/// each is specialized with its formula inlined.
enum CPULoops {
    @inline(__always)
    static func map<F: UnaryFunction>(_: F.Type, _ x: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                      count: Int, parameter p: Float) {
        CPUParallel.forEachChunk(count) { range in
            for i in range { y[i] = F.apply(x[i], p) }
        }
    }

    @inline(__always)
    static func map(_ op: UnaryOp, _ x: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                    count: Int, parameter p: Float) {
        switch op {
        case .identity: if x != y { map(Unary.Identity.self, x, y, count: count, parameter: p) }
        case .exp: map(Unary.Exp.self, x, y, count: count, parameter: p)
        case .log: map(Unary.Log.self, x, y, count: count, parameter: p)
        case .tanh: map(Unary.Tanh.self, x, y, count: count, parameter: p)
        case .relu: map(Unary.Relu.self, x, y, count: count, parameter: p)
        case .leakyRelu: map(Unary.LeakyRelu.self, x, y, count: count, parameter: p)
        case .sigmoid: map(Unary.Sigmoid.self, x, y, count: count, parameter: p)
        case .softplus: map(Unary.Softplus.self, x, y, count: count, parameter: p)
        case .square: map(Unary.Square.self, x, y, count: count, parameter: p)
        case .negate: map(Unary.Negate.self, x, y, count: count, parameter: p)
        case .abs: map(Unary.Abs.self, x, y, count: count, parameter: p)
        case .sqrt: map(Unary.Sqrt.self, x, y, count: count, parameter: p)
        }
    }

    /// out = a ∘ b over rows×cols, b broadcast as stated. Chunks are ranges of the flat index,
    /// walked row segment by row segment so that the inner loops stay unit-stride.
    @inline(__always)
    static func zip<F: BinaryFunction>(_: F.Type, _ a: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>,
                                       _ out: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
                                       broadcast: Broadcast) {
        let count = rows * cols
        switch broadcast {
        case .none:
            CPUParallel.forEachChunk(count) { range in
                for i in range { out[i] = F.apply(a[i], b[i]) }
            }
        case .row:
            CPUParallel.forEachChunk(count) { range in
                forEachRowSegment(range, cols: cols) { r, c0, c1 in
                    let base = r * cols
                    let pa = a + base, po = out + base
                    for c in c0..<c1 { po[c] = F.apply(pa[c], b[c]) }
                }
            }
        case .column:
            CPUParallel.forEachChunk(count) { range in
                forEachRowSegment(range, cols: cols) { r, c0, c1 in
                    let base = r * cols, v = b[r]
                    let pa = a + base, po = out + base
                    for c in c0..<c1 { po[c] = F.apply(pa[c], v) }
                }
            }
        }
    }

    @inline(__always)
    static func zip(_ op: BinaryOp, _ a: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>,
                    _ out: UnsafeMutablePointer<Float>, rows: Int, cols: Int, broadcast: Broadcast) {
        switch op {
        case .add: zip(Binary.Add.self, a, b, out, rows: rows, cols: cols, broadcast: broadcast)
        case .subtract: zip(Binary.Subtract.self, a, b, out, rows: rows, cols: cols, broadcast: broadcast)
        case .multiply: zip(Binary.Multiply.self, a, b, out, rows: rows, cols: cols, broadcast: broadcast)
        case .divide: zip(Binary.Divide.self, a, b, out, rows: rows, cols: cols, broadcast: broadcast)
        }
    }

    /// Splits a range of flat indices of a matrix with `cols` columns into (row, c0, c1) pieces.
    @inline(__always)
    static func forEachRowSegment(_ range: Range<Int>, cols: Int, _ body: (Int, Int, Int) -> Void) {
        guard cols > 0 else { return }
        var i = range.lowerBound
        while i < range.upperBound {
            let r = i / cols, c0 = i - r * cols
            let c1 = Swift.min(cols, c0 + (range.upperBound - i))
            body(r, c0, c1)
            i += c1 - c0
        }
    }

    /// y = α·x + β: one multiply and one add, each rounded (never fused).
    @inline(__always)
    static func affine(_ x: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int,
                       alpha: Float, beta: Float) {
        CPUParallel.forEachChunk(count) { range in
            for i in range { y[i] = alpha * x[i] + beta }
        }
    }

    @inline(__always)
    static func fill(_ y: UnsafeMutablePointer<Float>, count: Int, value: Float) {
        CPUParallel.forEachChunk(count) { range in
            (y + range.lowerBound).update(repeating: value, count: range.count)
        }
    }

    /// Σ p[0..<n] in sixteen interleaved partial sums (vector adds; the error bound grows with
    /// n/16 rather than n), then the sixteen added together.
    @inline(__always)
    static func sum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD16<Float>()
        var i = 0
        while i + 16 <= n {
            acc += UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self)
            i += 16
        }
        var s = acc.sum()
        while i < n { s += p[i]; i += 1 }
        return s
    }

    /// The largest element of p[0..<n], or −∞ for n = 0; NaNs are skipped, as by OpenCL's fmax.
    @inline(__always)
    static func maximum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var m = -Float.infinity
        for c in 0..<n where p[c] > m { m = p[c] }
        return m
    }

    /// log Σ exp(p[c]) over one row: the maximum m is subtracted first so no term overflows.
    /// A row of −∞ gives −∞ (log 0); a row holding +∞ gives +∞.
    @inline(__always)
    static func logSumExp(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        let m = maximum(p, n)
        if m.isInfinite { return m }
        var acc = SIMD8<Float>()
        var c = 0
        while c + 8 <= n {
            var v = SIMD8<Float>()
            for l in 0..<8 { v[l] = Foundation.exp(p[c + l] - m) }
            acc += v
            c += 8
        }
        var s = acc.sum()
        while c < n { s += Foundation.exp(p[c] - m); c += 1 }
        return m + Foundation.log(s)
    }
}
