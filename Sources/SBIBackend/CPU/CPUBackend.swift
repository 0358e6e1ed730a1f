import CBLAS
import Foundation

/// The fallback backend: OpenBLAS `cblas_sgemm` for products and plain Swift loops (which the
/// compiler vectorizes) for everything else. Runs synchronously, so `synchronize` is free.
public final class CPUBackend: Backend {
    public let kind = "cpu"
    public let deviceName: String
    public private(set) var allocationCount = 0

    /// `threads` pins OpenBLAS to that many threads; the default is the number of active cores,
    /// since oversubscribing a small machine costs more than it gains.
    public init(threads: Int = ProcessInfo.processInfo.activeProcessorCount) {
        openblas_set_num_threads(Int32(max(1, threads)))
        deviceName = "OpenBLAS (\(max(1, threads)) threads)"
    }

    public func makeBuffer(count: Int) throws -> Buffer {
        guard count >= 0 else { throw SBIError.invalidArgument("buffer of \(count) elements") }
        allocationCount += 1
        let pointer = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        return Buffer(count: count, storage: .host(pointer), owner: ObjectIdentifier(self))
    }

    func pointer(_ view: BufferView, _ what: @autoclosure () -> String = "operand") throws
        -> UnsafeMutablePointer<Float> {
        guard view.buffer.owner == ObjectIdentifier(self), case let .host(base) = view.buffer.storage else {
            throw SBIError.foreignBuffer("\(what()) was not made by this CPU backend")
        }
        return base + view.offset
    }

    public func upload<T: BitwiseCopyable>(_ values: [T], to destination: BufferView) throws {
        try Check.elementSize(T.self)
        guard values.count == destination.count else {
            throw SBIError.sizeMismatch("upload of \(values.count) elements into a view of \(destination.count)")
        }
        let dst = try pointer(destination, "upload destination")
        values.withUnsafeBytes { UnsafeMutableRawPointer(dst).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    public func download<T: BitwiseCopyable>(_ source: BufferView, as type: T.Type) throws -> [T] {
        try Check.elementSize(T.self)
        let src = try pointer(source, "download source")
        return [T](unsafeUninitializedCapacity: source.count) { out, initialized in
            UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: src, byteCount: source.count * 4)
            initialized = source.count
        }
    }

    public func copy(_ source: BufferView, to destination: BufferView) throws {
        try Check.same(source, destination, "copy")
        try pointer(destination).update(from: pointer(source), count: source.count)
    }

    public func fill(_ destination: BufferView, value: Float) throws {
        try pointer(destination).update(repeating: value, count: destination.count)
    }

    public func synchronize() throws {}

    public func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                     a: BufferView, b: BufferView, beta: Float, c: BufferView, epilogue: Epilogue) throws {
        try Check.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                       a: a, b: b, c: c, epilogue: epilogue)
        guard m > 0, n > 0 else { return }
        let pc = try pointer(c, "gemm C")
        if k == 0 {
            for i in 0..<(m * n) { pc[i] = beta == 0 ? 0 : beta * pc[i] }
        } else {
            cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans,
                        transposeB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), alpha,
                        try pointer(a, "gemm A"), Int32(transposeA ? m : k),
                        try pointer(b, "gemm B"), Int32(transposeB ? k : n),
                        beta, pc, Int32(n))
        }
        try applyEpilogue(epilogue, pc, m: m, n: n)
    }

    private func applyEpilogue(_ epilogue: Epilogue, _ c: UnsafeMutablePointer<Float>, m: Int, n: Int) throws {
        let bias = try epilogue.bias.map { try pointer($0, "gemm bias") }
        if bias == nil && epilogue.activation == .identity { return }
        let op = epilogue.activation, slope = epilogue.slope
        for i in 0..<m {
            let row = c + i * n
            if let bias {
                for j in 0..<n { row[j] = op.apply(row[j] + bias[j], slope) }
            } else {
                for j in 0..<n { row[j] = op.apply(row[j], slope) }
            }
        }
    }

    public func unary(_ op: UnaryOp, _ x: BufferView, _ y: BufferView, parameter: Float) throws {
        try Check.same(x, y, "unary \(op)")
        let px = try pointer(x), py = try pointer(y)
        for i in 0..<x.count { py[i] = op.apply(px[i], parameter) }
    }

    public func affine(_ x: BufferView, _ y: BufferView, scale alpha: Float, shift beta: Float) throws {
        try Check.same(x, y, "affine")
        let px = try pointer(x), py = try pointer(y)
        for i in 0..<x.count { py[i] = alpha * px[i] + beta }
    }

    public func binary(_ op: BinaryOp, _ a: BufferView, _ b: BufferView, _ out: BufferView,
                       rows: Int, cols: Int, broadcast: Broadcast) throws {
        try Check.binary(a, b, out, rows: rows, cols: cols, broadcast: broadcast)
        let pa = try pointer(a), pb = try pointer(b), po = try pointer(out)
        switch broadcast {
        case .none:
            for i in 0..<(rows * cols) { po[i] = op.apply(pa[i], pb[i]) }
        case .row:
            for r in 0..<rows {
                let base = r * cols
                for c in 0..<cols { po[base + c] = op.apply(pa[base + c], pb[c]) }
            }
        case .column:
            for r in 0..<rows {
                let base = r * cols, v = pb[r]
                for c in 0..<cols { po[base + c] = op.apply(pa[base + c], v) }
            }
        }
    }

    public func sumRows(_ x: BufferView, rows: Int, cols: Int, _ out: BufferView) throws {
        try Check.count(x, rows * cols, "sumRows input")
        try Check.count(out, rows, "sumRows output")
        let px = try pointer(x), po = try pointer(out)
        for r in 0..<rows {
            var s: Float = 0
            for c in 0..<cols { s += px[r * cols + c] }
            po[r] = s
        }
    }

    public func sumColumns(_ x: BufferView, rows: Int, cols: Int, _ out: BufferView) throws {
        try Check.count(x, rows * cols, "sumColumns input")
        try Check.count(out, cols, "sumColumns output")
        let px = try pointer(x), po = try pointer(out)
        po.update(repeating: 0, count: cols)
        for r in 0..<rows {
            for c in 0..<cols { po[c] += px[r * cols + c] }
        }
    }

    public func logSumExpRows(_ x: BufferView, rows: Int, cols: Int, _ out: BufferView) throws {
        try Check.count(x, rows * cols, "logSumExpRows input")
        try Check.count(out, rows, "logSumExpRows output")
        let px = try pointer(x), po = try pointer(out)
        for r in 0..<rows {
            let row = px + r * cols
            var m = -Float.infinity
            for c in 0..<cols { m = Swift.max(m, row[c]) }
            if m == -Float.infinity { po[r] = m; continue }
            var s: Float = 0
            for c in 0..<cols { s += Foundation.exp(row[c] - m) }
            po[r] = m + Foundation.log(s)
        }
    }

    public func fillUniform(_ destination: BufferView, seed: UInt64, offset: UInt64,
                            low: Float, high: Float) throws {
        let p = try pointer(destination), width = high - low
        for i in 0..<destination.count {
            p[i] = low + width * Philox.unit(Philox.word(at: offset + UInt64(i), seed: seed))
        }
    }

    public func fillNormal(_ destination: BufferView, seed: UInt64, offset: UInt64,
                           mean: Float, std: Float) throws {
        let p = try pointer(destination)
        for i in 0..<destination.count {
            let g = offset + UInt64(i)
            let b = Philox.block(counter: g / 4, seed: seed)
            let lane = g % 4
            let (n0, n1) = lane < 2 ? Philox.normalPair(b.0, b.1) : Philox.normalPair(b.2, b.3)
            p[i] = mean + std * (lane % 2 == 0 ? n0 : n1)
        }
    }

    public func fillRandomBits(_ destination: BufferView, seed: UInt64, offset: UInt64) throws {
        let p = try pointer(destination)
        for i in 0..<destination.count {
            p[i] = Float(bitPattern: Philox.word(at: offset + UInt64(i), seed: seed))
        }
    }
}
