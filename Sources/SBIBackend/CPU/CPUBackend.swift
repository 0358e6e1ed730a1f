import CBLAS
import Foundation

/// The fallback backend: OpenBLAS `cblas_sgemm` for products and plain Swift loops (which the
/// compiler vectorizes) for everything else. Runs synchronously, so `synchronize` is free.
public final class CPUBackend: Backend {
    public let kind = "cpu"
    public var memoryBytes: Int { Int(clamping: ProcessInfo.processInfo.physicalMemory) }
    public let deviceName: String
    public private(set) var allocationCount = 0

    /// `threads` pins OpenBLAS to that many threads; the default is the number of active cores,
    /// since oversubscribing a small machine costs more than it gains.
    public init(threads: Int = ProcessInfo.processInfo.activeProcessorCount) {
        self.threads = max(1, threads)
        openblas_set_num_threads(Int32(self.threads))
        blasThreads = self.threads
        deviceName = "OpenBLAS (\(self.threads) threads)"
    }

    /// OpenBLAS threads for large products.
    public let threads: Int
    private var blasThreads: Int
    /// Products below this many multiply-adds (about a millisecond on one core) run on one
    /// thread. Every threaded product keeps OpenBLAS's pool spinning in `sched_yield` for a
    /// while after it: on density-estimator nets (batch 512 × 64 × 64 is 2²¹) it took a whole
    /// core and 7 s of system time per 10 epochs (two_moons, 10⁵ rows) for no gain in speed.
    public var singleThreadedGEMMWork = 1 << 24

    /// Sets OpenBLAS's thread count for a product of m·n·k multiply-adds. Locked: a data-parallel
    /// training step calls it from two threads (both wanting one OpenBLAS thread).
    private func useThreads(forWork work: Int) {
        let wanted = work < singleThreadedGEMMWork ? 1 : threads
        blasThreadsLock.lock()
        defer { blasThreadsLock.unlock() }
        if wanted != blasThreads {
            openblas_set_num_threads(Int32(wanted))
            blasThreads = wanted
        }
    }
    private let blasThreadsLock = NSLock()

    public func makeBuffer(count: Int) throws -> Buffer {
        guard count >= 0 else { throw SBIError.invalidArgument("buffer of \(count) elements") }
        allocationCount += 1
        let pointer = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        return Buffer(count: count, storage: .host(pointer), owner: ObjectIdentifier(self))
    }

    /// The host memory of a view of this backend's buffers, for CPU twins of kernels that live
    /// outside this module; refuses another backend's buffer.
    public func pointer(_ view: BufferView, _ what: @autoclosure () -> String = "operand") throws
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
        values.withUnsafeBytes { raw in
            // An empty array may have no storage at all (nil base address).
            if let base = raw.baseAddress { UnsafeMutableRawPointer(dst).copyMemory(from: base, byteCount: raw.count) }
        }
    }

    public func enqueueUpload(from source: UnsafePointer<Float>, to destination: BufferView) throws -> UploadTicket {
        try pointer(destination, "upload destination").update(from: source, count: destination.count)
        return .done
    }

    public func download<T: BitwiseCopyable>(_ source: BufferView, as type: T.Type) throws -> [T] {
        try Check.elementSize(T.self)
        let src = try pointer(source, "download source")
        guard source.count > 0 else { return [] }
        return [T](unsafeUninitializedCapacity: source.count) { out, initialized in
            UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: src, byteCount: source.count * 4)
            initialized = source.count
        }
    }

    public func copy(_ source: BufferView, to destination: BufferView) throws {
        try Check.same(source, destination, "copy")
        let src = try pointer(source, "copy source"), dst = try pointer(destination, "copy destination")
        try Check.copyOverlap(source, destination)
        guard src != dst else { return }
        CPUParallel.forEachChunk(source.count) { range in
            (dst + range.lowerBound).update(from: src + range.lowerBound, count: range.count)
        }
    }

    public func fill(_ destination: BufferView, value: Float) throws {
        CPULoops.fill(try pointer(destination), count: destination.count, value: value)
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
            useThreads(forWork: m * n * k)
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
        // Two specialized passes (bias, then activation) vectorize; one loop that switches on the
        // activation per element does not. The results are the same: v + b, then act(v + b).
        if let bias { CPULoops.zip(.add, c, bias, c, rows: m, cols: n, broadcast: .row) }
        if epilogue.activation != .identity {
            CPULoops.map(epilogue.activation, c, c, count: m * n, parameter: epilogue.slope)
        }
    }

    public func unary(_ op: UnaryOp, _ x: BufferView, _ y: BufferView, parameter: Float) throws {
        try Check.same(x, y, "unary \(op)")
        CPULoops.map(op, try pointer(x), try pointer(y), count: x.count, parameter: parameter)
    }

    public func affine(_ x: BufferView, _ y: BufferView, scale alpha: Float, shift beta: Float) throws {
        try Check.same(x, y, "affine")
        CPULoops.affine(try pointer(x), try pointer(y), count: x.count, alpha: alpha, beta: beta)
    }

    public func binary(_ op: BinaryOp, _ a: BufferView, _ b: BufferView, _ out: BufferView,
                       rows: Int, cols: Int, broadcast: Broadcast) throws {
        try Check.binary(a, b, out, rows: rows, cols: cols, broadcast: broadcast)
        CPULoops.zip(op, try pointer(a), try pointer(b), try pointer(out), rows: rows, cols: cols, broadcast: broadcast)
    }

    public func sumRows(_ x: BufferView, rows: Int, cols: Int, _ out: BufferView) throws {
        try Check.count(x, rows * cols, "sumRows input")
        try Check.count(out, rows, "sumRows output")
        let px = try pointer(x), po = try pointer(out)
        CPUParallel.forEachChunk(rows, work: rows * cols) { range in
            for r in range { po[r] = CPULoops.sum(px + r * cols, cols) }
        }
    }

    public func sumColumns(_ x: BufferView, rows: Int, cols: Int, _ out: BufferView) throws {
        try Check.count(x, rows * cols, "sumColumns input")
        try Check.count(out, cols, "sumColumns output")
        let px = try pointer(x), po = try pointer(out)
        // Each column is summed in row order, as by the OpenCL kernel; chunks are column ranges.
        CPUParallel.forEachChunk(cols, work: rows * cols) { range in
            let c0 = range.lowerBound, width = range.count
            let o = po + c0
            o.update(repeating: 0, count: width)
            for r in 0..<rows {
                let row = px + r * cols + c0
                for c in 0..<width { o[c] += row[c] }
            }
        }
    }

    public func logSumExpRows(_ x: BufferView, rows: Int, cols: Int, _ out: BufferView) throws {
        try Check.count(x, rows * cols, "logSumExpRows input")
        try Check.count(out, rows, "logSumExpRows output")
        let px = try pointer(x), po = try pointer(out)
        // exp per element costs about 20 simple operations.
        CPUParallel.forEachChunk(rows, work: rows * cols * 20) { range in
            for r in range { po[r] = CPULoops.logSumExp(px + r * cols, cols) }
        }
    }

    // The Philox fills: element i is stream position offset + i; chunks are index ranges, and
    // a block straddling two chunks is computed by both (with the same result).

    public func fillUniform(_ destination: BufferView, seed: UInt64, offset: UInt64,
                            low: Float, high: Float) throws {
        let p = try pointer(destination), width = high - low
        CPUParallel.forEachChunk(destination.count, work: destination.count * 8) { range in
            Philox.forEachElement(in: range, offset: offset, seed: seed) { i, block, lane in
                p[i] = Philox.uniform(Philox.lane(block, lane), low: low, width: width)
            }
        }
    }

    public func fillNormal(_ destination: BufferView, seed: UInt64, offset: UInt64,
                           mean: Float, std: Float) throws {
        let p = try pointer(destination)
        CPUParallel.forEachChunk(destination.count, work: destination.count * 32) { range in
            var i = range.lowerBound
            while i < range.upperBound {
                let g = offset &+ UInt64(i)
                let b = Philox.block(counter: g / 4, seed: seed)
                let first = Int(g % 4), last = Swift.min(4, first + (range.upperBound - i))
                // Lanes 0, 1 come from words (0, 1); lanes 2, 3 from words (2, 3).
                let z01 = first < 2 ? Philox.normalPair(b.0, b.1) : (0, 0)
                let z23 = last > 2 ? Philox.normalPair(b.2, b.3) : (0, 0)
                let z: (Float, Float, Float, Float) = (z01.0, z01.1, z23.0, z23.1)
                for lane in first..<last {
                    let zl = lane == 0 ? z.0 : (lane == 1 ? z.1 : (lane == 2 ? z.2 : z.3))
                    // mean + std·z with one rounding, like the kernel's fma.
                    p[i + lane - first] = mean.addingProduct(std, zl)
                }
                i += last - first
            }
        }
    }

    public func fillBernoulli(_ destination: BufferView, seed: UInt64, offset: UInt64,
                              probability: Float, value: Float) throws {
        let p = try pointer(destination)
        CPUParallel.forEachChunk(destination.count, work: destination.count * 8) { range in
            Philox.forEachElement(in: range, offset: offset, seed: seed) { i, block, lane in
                p[i] = Philox.unit(Philox.lane(block, lane)) < probability ? value : 0
            }
        }
    }

    public func fillRandomBits(_ destination: BufferView, seed: UInt64, offset: UInt64) throws {
        let p = UnsafeMutableRawPointer(try pointer(destination)).assumingMemoryBound(to: UInt32.self)
        CPUParallel.forEachChunk(destination.count, work: destination.count * 8) { range in
            Philox.forEachElement(in: range, offset: offset, seed: seed) { i, block, lane in
                p[i] = Philox.lane(block, lane)
            }
        }
    }
}
