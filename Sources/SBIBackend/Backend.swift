/// Element-wise functions of one operand. `parameter` is the leaky-ReLU slope; others ignore it.
public enum UnaryOp: Int32, CaseIterable, Sendable {
    case identity = 0, exp, log, tanh, relu, leakyRelu, sigmoid, softplus, square, negate, abs, sqrt
}

/// Stored by case name ("relu"), not by the kernels' code, so saved configurations read as text.
extension UnaryOp: Codable {
    public init(from decoder: Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        guard let op = Self.allCases.first(where: { "\($0)" == name }) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "unknown activation '\(name)'"))
        }
        self = op
    }
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode("\(self)")
    }
}

public extension UnaryOp {
    /// The activation a network configuration names, ignoring case ("leaky_relu" too): tanh,
    /// relu, leakyRelu, sigmoid or softplus; nil for any other name.
    static func activation(named name: String) -> UnaryOp? {
        switch name.lowercased() {
        case "tanh": return .tanh
        case "relu": return .relu
        case "leakyrelu", "leaky_relu": return .leakyRelu
        case "sigmoid": return .sigmoid
        case "softplus": return .softplus
        default: return nil
        }
    }
}

/// Element-wise functions of two operands.
public enum BinaryOp: Int32, CaseIterable, Sendable {
    case add = 0, subtract, multiply, divide
}

/// How the second operand of a binary op is laid over a rows×cols first operand.
public enum Broadcast: Int32, CaseIterable, Sendable {
    /// `b` is rows×cols, like `a`.
    case none = 0
    /// `b` has `cols` elements: one row repeated for every row of `a` (a bias).
    case row
    /// `b` has `rows` elements: one value per row, repeated across the columns.
    case column
}

/// Activation applied in the GEMM epilogue: `C = act(α·op(A)·op(B) + β·C + bias)`.
public struct Epilogue {
    public var bias: BufferView?
    public var activation: UnaryOp
    public var slope: Float
    public init(bias: BufferView? = nil, activation: UnaryOp = .identity, slope: Float = 0.01) {
        self.bias = bias
        self.activation = activation
        self.slope = slope
    }
    public static let none = Epilogue()
}

/// The operations every backend implements: memory, transfers, GEMM and the core element-wise,
/// reduction, layout and RNG operations. Ops with kernels of their own live in the
/// modules that own their meaning and launch through `CPUBackend.pointer`
/// and `OpenCLBackend.launch`; `run(_:cpu:openCL:)` picks the twin for a backend.
///
/// Every backend implements these with the same semantics and results within float
/// tolerance. Matrices are row-major and dense. Operations are queued in order; `download` and
/// `synchronize` are the only calls that wait for the device.
public protocol Backend: AnyObject {
    /// "cpu" or "opencl".
    var kind: String { get }
    /// Human-readable device name.
    var deviceName: String { get }
    /// Buffers created so far; a planned training step must not change it.
    var allocationCount: Int { get }
    /// Bytes of memory the backend's buffers draw on: the device's global memory, or the host's
    /// physical memory for the CPU backend (what data budgets are fractions of).
    var memoryBytes: Int { get }

    func makeBuffer(count: Int) throws -> Buffer
    func upload<T: BitwiseCopyable>(_ values: [T], to destination: BufferView) throws
    func download<T: BitwiseCopyable>(_ source: BufferView, as type: T.Type) throws -> [T]
    /// Queues a copy of `destination.count` floats from host memory at `source` without waiting
    /// for it (a blocking copy on the CPU backend). `source` must stay allocated and unchanged
    /// until `wait` on the returned ticket: streamed batches double-buffer their staging with it.
    func enqueueUpload(from source: UnsafePointer<Float>, to destination: BufferView) throws -> UploadTicket
    func copy(_ source: BufferView, to destination: BufferView) throws
    func fill(_ destination: BufferView, value: Float) throws
    /// Waits until every queued operation has finished.
    func synchronize() throws

    /// C[m×n] = epilogue(α·op(A)·op(B) + β·C). op(A) is m×k, op(B) is k×n; A is stored m×k,
    /// or k×m when `transposeA`; B is stored k×n, or n×k when `transposeB`.
    func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
              a: BufferView, b: BufferView, beta: Float, c: BufferView, epilogue: Epilogue) throws

    /// y = op(x), element-wise; x and y may be the same view.
    func unary(_ op: UnaryOp, _ x: BufferView, _ y: BufferView, parameter: Float) throws
    /// y = α·x + β, element-wise.
    func affine(_ x: BufferView, _ y: BufferView, scale alpha: Float, shift beta: Float) throws
    /// out = a ∘ b for a rows×cols `a`, with `b` broadcast as stated.
    func binary(_ op: BinaryOp, _ a: BufferView, _ b: BufferView, _ out: BufferView,
                rows: Int, cols: Int, broadcast: Broadcast) throws
    /// out[r] = Σ_c x[r, c].
    func sumRows(_ x: BufferView, rows: Int, cols: Int, _ out: BufferView) throws
    /// out[c] = Σ_r x[r, c].
    func sumColumns(_ x: BufferView, rows: Int, cols: Int, _ out: BufferView) throws
    /// out[r] = log Σ_c exp(x[r, c]), computed stably.
    func logSumExpRows(_ x: BufferView, rows: Int, cols: Int, _ out: BufferView) throws

    /// Uniform floats in (low, high) from Philox-4x32-10; element i of the stream is
    /// determined by (seed, offset + i) alone, so both backends draw the same numbers.
    func fillUniform(_ destination: BufferView, seed: UInt64, offset: UInt64, low: Float, high: Float) throws
    /// Normal floats N(mean, std²) by Box–Muller from the same Philox stream.
    func fillNormal(_ destination: BufferView, seed: UInt64, offset: UInt64, mean: Float, std: Float) throws
    /// Bernoulli draws from the same stream: `value` where the uniform is below `probability`,
    /// else 0 (dropout's keep mask, scaled by 1/keep, is probability keep and value 1/keep).
    func fillBernoulli(_ destination: BufferView, seed: UInt64, offset: UInt64, probability: Float, value: Float) throws
    /// The raw 32-bit Philox words, bit-cast to the buffer's elements.
    func fillRandomBits(_ destination: BufferView, seed: UInt64, offset: UInt64) throws

    // MARK: operations the graph layer needs for backward passes, layout and training

    /// gx = gy · f'(x) for y = f(x); `y` is passed too because f' is cheaper from it for
    /// exp, tanh and sigmoid. All four views have the same count.
    func unaryGradient(_ op: UnaryOp, x: BufferView, y: BufferView, gradient gy: BufferView,
                       into gx: BufferView, parameter: Float) throws
    /// dst[r, dstStart + c] = src[r, srcStart + c] for r < rows, c < width: slicing and
    /// concatenation along the feature axis. src is rows×srcColumns, dst rows×dstColumns.
    func copyColumns(rows: Int, width: Int, from src: BufferView, columns srcColumns: Int, start srcStart: Int,
                     to dst: BufferView, columns dstColumns: Int, start dstStart: Int) throws
    /// dst[r, c] = src[r, indices[c]]; `indices` holds Int32, dst is rows×indices.count. Index −1
    /// reads 0 (a zero column: scatters and zero padding are gathers too).
    func gatherColumns(_ src: BufferView, rows: Int, columns: Int, indices: BufferView, into dst: BufferView) throws
    /// dst[r, :] = src[indices[r], :]; `indices` holds Int32, dst is indices.count×columns. Index −1
    /// reads a row of zeros.
    func gatherRows(_ src: BufferView, columns: Int, indices: BufferView, into dst: BufferView) throws
    /// out (rows×cols) = b broadcast: `.row`, b has cols elements; `.column`, b has rows; `.none`, a copy.
    func broadcast(_ b: BufferView, into out: BufferView, rows: Int, cols: Int, broadcast: Broadcast) throws
    /// out[0] = Σ x[i]², for global-norm gradient clipping without a host round trip.
    func sumOfSquares(_ x: BufferView, into out: BufferView) throws
}

import Foundation

public extension Backend {
    func unary(_ op: UnaryOp, _ x: BufferView, _ y: BufferView) throws {
        try unary(op, x, y, parameter: 0.01)
    }
    func gemm(transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int,
              alpha: Float = 1, a: BufferView, b: BufferView, beta: Float = 0, c: BufferView) throws {
        try gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                 a: a, b: b, beta: beta, c: c, epilogue: .none)
    }
    /// A buffer holding `values`.
    func makeBuffer<T: BitwiseCopyable>(_ values: [T]) throws -> Buffer {
        let buffer = try makeBuffer(count: values.count)
        try upload(values, to: buffer.view)
        return buffer
    }
    func download(_ source: BufferView) throws -> [Float] { try download(source, as: Float.self) }

    /// Runs an op's CPU twin or its OpenCL launch, whichever kind of backend this is; any other
    /// backend is refused with the op's name.
    func run(_ op: @autoclosure () -> String, cpu: (CPUBackend) throws -> Void,
             openCL: (OpenCLBackend) throws -> Void) throws {
        if let host = self as? CPUBackend { return try cpu(host) }
        if let device = self as? OpenCLBackend { return try openCL(device) }
        throw SBIError.invalidArgument("\(op()) has no kernel for the \(kind) backend")
    }
}

/// The completion of one `enqueueUpload`; `wait` returns once the copy is done, and a
/// ticket may be waited on any number of times.
public final class UploadTicket: @unchecked Sendable {
    private var waiter: (() throws -> Void)?
    private let release: () -> Void
    public init(waiter: (() throws -> Void)? = nil, release: @escaping () -> Void = {}) {
        self.waiter = waiter
        self.release = release
    }
    /// A copy that has already completed.
    public static let done = UploadTicket()
    public func wait() throws {
        try waiter?()
        waiter = nil
    }
    deinit { release() }
}

/// Shape checks shared by both backends, so both refuse the same bad calls with the same words;
/// public so that ops with kernels of their own (in the modules that own them) check their
/// operands the same way.
public enum Check {
    static func elementSize<T>(_ type: T.Type) throws {
        guard MemoryLayout<T>.stride == 4 else {
            throw SBIError.invalidArgument("buffers hold 4-byte elements; \(T.self) has \(MemoryLayout<T>.stride)")
        }
    }
    public static func count(_ view: BufferView, _ expected: Int, _ what: String) throws {
        guard view.count == expected else {
            throw SBIError.sizeMismatch("\(what) has \(view.count) elements, needs \(expected)")
        }
    }
    public static func same(_ a: BufferView, _ b: BufferView, _ what: String) throws {
        guard a.count == b.count else {
            throw SBIError.sizeMismatch("\(what): \(a.count) vs \(b.count) elements")
        }
    }
    static func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                     a: BufferView, b: BufferView, c: BufferView, epilogue: Epilogue) throws {
        guard m >= 0, n >= 0, k >= 0 else { throw SBIError.invalidArgument("gemm: negative size m=\(m) n=\(n) k=\(k)") }
        try count(a, m * k, "gemm A (\(transposeA ? "\(k)×\(m)" : "\(m)×\(k)"))")
        try count(b, k * n, "gemm B (\(transposeB ? "\(n)×\(k)" : "\(k)×\(n)"))")
        try count(c, m * n, "gemm C (\(m)×\(n))")
        if let bias = epilogue.bias { try count(bias, n, "gemm bias") }
    }
    static func binary(_ a: BufferView, _ b: BufferView, _ out: BufferView, rows: Int, cols: Int,
                       broadcast: Broadcast) throws {
        try count(a, rows * cols, "binary operand a (\(rows)×\(cols))")
        try count(out, rows * cols, "binary output (\(rows)×\(cols))")
        switch broadcast {
        case .none: try count(b, rows * cols, "binary operand b (\(rows)×\(cols))")
        case .row: try count(b, cols, "row-broadcast operand b")
        case .column: try count(b, rows, "column-broadcast operand b")
        }
    }
}
