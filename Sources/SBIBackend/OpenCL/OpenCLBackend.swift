import COpenCL
import Foundation

/// GEMM tile parameters, passed to Kernels/SBIBackend/gemm.cl as -D defines (its header explains each).
/// `defaults(for:)` picks them from a small table keyed by device type.
public struct GEMMParameters: Hashable, Sendable, CustomStringConvertible {
    /// The C tile of one work-group (rows, columns) and the depth of one k step.
    public var mwg, nwg, kwg: Int
    /// Work-group shape: `mdimc` items along the rows, `ndimc` along the columns.
    public var mdimc, ndimc: Int
    /// Vector width along the columns of B and C (1, 2, 4, 8 or 16).
    public var vwn: Int
    /// Stage the tiles of A / B in local memory (SA / SB).
    public var localA, localB: Bool
    /// Stage B in local memory when it is transposed, whatever `localB` says: a transposed B
    /// read straight from global memory is a gather, and the staging copy turns it into
    /// vector reads (measured ~4× faster on PoCL).
    public var localBWhenTransposed: Bool
    /// A barrier after every k step even without local tiles (KSYNC): on PoCL, which runs a
    /// work-group's items one after another between barriers, this blocks the product along k so
    /// that the group's slices of A and B stay in cache.
    public var syncSteps: Bool

    public init(mwg: Int = 64, nwg: Int = 64, kwg: Int = 32, mdimc: Int = 16, ndimc: Int = 16, vwn: Int = 4,
                localA: Bool = true, localB: Bool = true, localBWhenTransposed: Bool = true, syncSteps: Bool = false) {
        (self.mwg, self.nwg, self.kwg, self.mdimc, self.ndimc, self.vwn) = (mwg, nwg, kwg, mdimc, ndimc, vwn)
        (self.localA, self.localB, self.localBWhenTransposed) = (localA, localB, localBWhenTransposed)
        self.syncSteps = syncSteps
    }

    /// GPUs: 64×64 tiles staged in local memory with coalesced loads, 16×16 items of 4×4 outputs
    /// (one float4 per row), 32-deep k steps; small enough tiles that a 256-row product still
    /// fills many cores. On an H200 this measured 17 TFLOP/s at 1024³ and 21 at 2048³ (vs 13 and
    /// 21 with KWG=16, 10 and 29 with 128×128 tiles, which halve the batch × hidden-width products).
    public static let gpu = GEMMParameters(mwg: 64, nwg: 64, kwg: 32, mdimc: 16, ndimc: 16, vwn: 4,
                                           localA: true, localB: true, localBWhenTransposed: true)
    /// CPUs (PoCL): no local memory, each item an 8×16 register block (eight float16
    /// accumulators, one AVX-512 or two AVX2 registers each) reading A and B straight from the
    /// caches; 8×4 items cover a 64×64 tile; the group steps through k 128 at a time in lockstep
    /// (`syncSteps`), which took 2048³ from about 0.3 to 0.53 of cblas_sgemm and left the
    /// smaller products where they were.
    public static let cpu = GEMMParameters(mwg: 64, nwg: 64, kwg: 128, mdimc: 8, ndimc: 4, vwn: 16,
                                           localA: false, localB: false, localBWhenTransposed: true,
                                           syncSteps: true)

    /// The table: device type to default parameters. Accelerators and unknown types get the GPU
    /// parameters, the portable choice, on 8×8 work-groups where 16×16 is too many items.
    public static func defaults(for device: OpenCLDevice) -> GEMMParameters {
        if device.type.contains("CPU") && !device.isGPU { return .cpu }
        var gpu = GEMMParameters.gpu
        if device.maxWorkGroupSize < gpu.mdimc * gpu.ndimc { (gpu.mwg, gpu.nwg, gpu.mdimc, gpu.ndimc) = (32, 32, 8, 8) }
        return gpu
    }

    /// Local memory one work-group uses, in bytes (the kernel pads the tiles it stages).
    public func localMemoryBytes(transposeA: Bool, transposeB: Bool) -> Int {
        let a = localA ? kwg * (mwg + (transposeA ? 0 : 1)) : 0
        let b = stagesB(transposeB: transposeB) ? kwg * (nwg + (transposeB ? vwn : 0)) : 0
        return 4 * (a + b)
    }

    func stagesB(transposeB: Bool) -> Bool { localB || (transposeB && localBWhenTransposed) }

    /// Refuses parameters the kernel cannot compile or the device cannot launch.
    public func validate(for device: OpenCLDevice) throws {
        let positive = [mwg, nwg, kwg, mdimc, ndimc, vwn].allSatisfy { $0 > 0 }
        guard positive, [1, 2, 4, 8, 16].contains(vwn), mwg % mdimc == 0, nwg % (ndimc * vwn) == 0 else {
            throw SBIError.invalidArgument("GEMM parameters \(self): need positive sizes, VWN in 1, 2, 4, 8, 16, "
                + "MWG % MDIMC == 0 and NWG % (NDIMC·VWN) == 0")
        }
        guard mdimc * ndimc <= device.maxWorkGroupSize else {
            throw SBIError.invalidArgument("GEMM parameters \(self): work-group of \(mdimc * ndimc) items exceeds "
                + "\(device.name)'s maximum of \(device.maxWorkGroupSize)")
        }
        let local = localMemoryBytes(transposeA: false, transposeB: true)
        guard local <= device.localMemoryBytes else {
            throw SBIError.invalidArgument("GEMM parameters \(self): \(local) bytes of local memory exceed "
                + "\(device.name)'s \(device.localMemoryBytes)")
        }
    }

    func defines(transposeB: Bool) -> String {
        "-DMWG=\(mwg) -DNWG=\(nwg) -DKWG=\(kwg) -DMDIMC=\(mdimc) -DNDIMC=\(ndimc) -DVWN=\(vwn)"
            + " -DSA=\(localA ? 1 : 0) -DSB=\(stagesB(transposeB: transposeB) ? 1 : 0) -DKSYNC=\(syncSteps ? 1 : 0)"
    }

    public var description: String {
        "MWG=\(mwg) NWG=\(nwg) KWG=\(kwg) MDIMC=\(mdimc) NDIMC=\(ndimc) VWN=\(vwn) SA=\(localA ? 1 : 0) "
            + "SB=\(localB ? 1 : 0)\(localBWhenTransposed && !localB ? " (1 when B is transposed)" : "")"
            + " KSYNC=\(syncSteps ? 1 : 0)"
    }
}

/// The backend that runs Kernels/*.cl on an OpenCL device. Launches go to one in-order queue
/// and are not waited for; `download` and `synchronize` are the host synchronization points.
public final class OpenCLBackend: Backend {
    public let kind = "opencl"
    public let device: OpenCLDevice
    public var deviceName: String { device.name }
    public var memoryBytes: Int { device.globalMemoryBytes }
    public private(set) var allocationCount = 0
    /// Kernel launches enqueued so far (for dispatch-overhead measurements).
    public private(set) var launchCount = 0
    /// Tile parameters of the tiled GEMM kernel; the device type's defaults until set.
    public lazy var gemmParameters = GEMMParameters.defaults(for: device)
    /// Products with m·n·k below this use the direct kernel (no local memory, no padding).
    public var directGEMMThreshold = 64 * 64 * 64
    let cl: OpenCLContext

    public init(device: OpenCLDevice) throws {
        self.device = device
        cl = try OpenCLContext(device: device)
    }

    /// Device `index` of `OpenCLDevice.all()`; an index out of range lists what exists.
    public convenience init(deviceIndex index: Int) throws {
        let devices = OpenCLDevice.all()
        guard devices.indices.contains(index) else {
            throw SBIError.deviceOutOfRange(requested: index, available: devices.map { "\($0.index): \($0.name)" })
        }
        try self.init(device: devices[index])
    }

    /// Builds an arbitrary program on this device; used to check that compile errors surface.
    public func buildProgram(name: String, source: String, options: String = "") throws {
        _ = try cl.program(name: name, source: source, options: options)
    }

    // MARK: memory

    public func makeBuffer(count: Int) throws -> Buffer {
        guard count >= 0 else { throw SBIError.invalidArgument("buffer of \(count) elements") }
        var status: cl_int = 0
        guard let mem = clCreateBuffer(cl.context, cl_mem_flags(CL_MEM_READ_WRITE), max(count, 1) * 4, nil, &status),
              status == CL_SUCCESS else {
            throw SBIError.openCL(call: "clCreateBuffer(\(count * 4) bytes)", code: status)
        }
        allocationCount += 1
        return Buffer(count: count, storage: .device(mem), owner: ObjectIdentifier(self))
    }

    /// Refuses a view of another backend's buffer (for ops outside this module that return
    /// before launching anything, so that they refuse the same calls as on the CPU).
    public func checkOwned(_ view: BufferView, _ what: @autoclosure () -> String = "operand") throws {
        _ = try mem(view, what())
    }

    func mem(_ view: BufferView, _ what: @autoclosure () -> String = "operand") throws -> cl_mem {
        guard view.buffer.owner == ObjectIdentifier(self), case let .device(mem) = view.buffer.storage else {
            throw SBIError.foreignBuffer("\(what()) was not made by this OpenCL backend")
        }
        return mem
    }

    public func upload<T: BitwiseCopyable>(_ values: [T], to destination: BufferView) throws {
        try Check.elementSize(T.self)
        guard values.count == destination.count else {
            throw SBIError.sizeMismatch("upload of \(values.count) elements into a view of \(destination.count)")
        }
        let target = try mem(destination, "upload destination")
        guard !values.isEmpty else { return }
        // Blocking: the array's storage is only guaranteed alive for the duration of the call.
        try values.withUnsafeBytes { raw in
            try clCheck(clEnqueueWriteBuffer(cl.queue, target, cl_bool(CL_TRUE), destination.offset * 4, raw.count,
                                             raw.baseAddress, 0, nil, nil), "clEnqueueWriteBuffer")
        }
    }

    public func enqueueUpload(from source: UnsafePointer<Float>, to destination: BufferView) throws -> UploadTicket {
        let target = try mem(destination, "upload destination")
        guard destination.count > 0 else { return .done }
        var event: cl_event?
        try clCheck(clEnqueueWriteBuffer(cl.queue, target, cl_bool(CL_FALSE), destination.offset * 4, destination.count * 4,
                                         source, 0, nil, &event), "clEnqueueWriteBuffer (non-blocking)")
        guard let event else { return .done }
        return UploadTicket(waiter: {
            var e: cl_event? = event
            try clCheck(clWaitForEvents(1, &e), "clWaitForEvents")
        }, release: { clReleaseEvent(event) })
    }

    public func download<T: BitwiseCopyable>(_ source: BufferView, as type: T.Type) throws -> [T] {
        try Check.elementSize(T.self)
        let origin = try mem(source, "download source")
        guard source.count > 0 else { return [] }
        return try [T](unsafeUninitializedCapacity: source.count) { out, initialized in
            try clCheck(clEnqueueReadBuffer(cl.queue, origin, cl_bool(CL_TRUE), source.offset * 4, source.count * 4,
                                            out.baseAddress, 0, nil, nil), "clEnqueueReadBuffer")
            initialized = source.count
        }
    }

    public func copy(_ source: BufferView, to destination: BufferView) throws {
        try Check.same(source, destination, "copy")
        let src = try mem(source, "copy source"), dst = try mem(destination, "copy destination")
        try Check.copyOverlap(source, destination)
        guard source.count > 0, !(source.buffer === destination.buffer && source.offset == destination.offset) else { return }
        try clCheck(clEnqueueCopyBuffer(cl.queue, src, dst, source.offset * 4,
                                        destination.offset * 4, source.count * 4, 0, nil, nil), "clEnqueueCopyBuffer")
    }

    public func fill(_ destination: BufferView, value: Float) throws {
        try launch("elementwise", "fill", options: elementwiseOptions, global: destination.count,
                   [.view(destination), .int(destination.count), .float(value)])
    }

    public func synchronize() throws {
        try clCheck(clFinish(cl.queue), "clFinish")
    }

    // MARK: launching

    /// A launch of one of this module's programs (`Kernels/SBIBackend/<program>.cl`).
    func launch(_ program: String, _ name: String, options: String = "", global: Int, global1: Int = 1,
                local: Int? = nil, local1: Int = 1, _ arguments: [KernelArgument]) throws {
        try launch(backendPrograms[program] ?? .backend(program), name, options: options, global: global,
                   global1: global1, local: local, local1: local1, arguments)
    }
    private let backendPrograms = Dictionary(uniqueKeysWithValues: ["elementwise", "gemm", "random", "training"]
        .map { ($0, KernelProgram.backend($0)) })

    /// Sets the arguments and enqueues a 1-D (or, with `global1`, 2-D) launch of kernel `name` of
    /// `program`, built with `options` (-D defines). Sizes are padded up to whole work-groups
    /// (`local` defaults to 256 or the device's maximum); kernels guard their loads and stores.
    /// Views must be this backend's buffers, and offsets and ints must fit the kernels' 32-bit indices.
    public func launch(_ program: KernelProgram, _ name: String, options: String = "", global: Int,
                       global1: Int = 1, local: Int? = nil, local1: Int = 1, _ arguments: [KernelArgument]) throws {
        // Operands are checked even when there is nothing to do, so that an empty view of another
        // backend's buffer is refused here as on the CPU backend.
        for argument in arguments {
            switch argument {
            case let .view(view):
                _ = try mem(view)
                guard Int32(exactly: view.offset) != nil else {
                    throw SBIError.invalidArgument("\(name): offset \(view.offset) does not fit the kernels' 32-bit indices")
                }
            case let .int(value):
                guard Int32(exactly: value) != nil else {
                    throw SBIError.invalidArgument("\(name): \(value) does not fit the kernels' 32-bit indices")
                }
            case .float, .ulong: break
            }
        }
        guard global > 0, global1 > 0 else { return }
        let kernel = try cl.kernel(program, name, options: options)
        var index: cl_uint = 0
        for argument in arguments {
            switch argument {
            case let .view(view):
                var handle: cl_mem? = try mem(view)
                try clCheck(clSetKernelArg(kernel, index, MemoryLayout<cl_mem>.size, &handle), "clSetKernelArg(\(name), \(index))")
                var offset = Int32(view.offset)
                try clCheck(clSetKernelArg(kernel, index + 1, 4, &offset), "clSetKernelArg(\(name), \(index + 1))")
                index += 2
            case let .int(value):
                var v = Int32(value)
                try clCheck(clSetKernelArg(kernel, index, 4, &v), "clSetKernelArg(\(name), \(index))")
                index += 1
            case let .float(value):
                var v = value
                try clCheck(clSetKernelArg(kernel, index, 4, &v), "clSetKernelArg(\(name), \(index))")
                index += 1
            case let .ulong(value):
                var v = value
                try clCheck(clSetKernelArg(kernel, index, 8, &v), "clSetKernelArg(\(name), \(index))")
                index += 1
            }
        }
        let l0 = local ?? min(256, device.maxWorkGroupSize)
        var globalSize = (roundUp(global, l0), roundUp(global1, local1))
        var localSize = (l0, local1)
        let status = withUnsafePointer(to: &globalSize) { g in
            withUnsafePointer(to: &localSize) { l in
                clEnqueueNDRangeKernel(cl.queue, kernel, global1 > 1 || local1 > 1 ? 2 : 1, nil,
                                       UnsafeRawPointer(g).assumingMemoryBound(to: Int.self),
                                       UnsafeRawPointer(l).assumingMemoryBound(to: Int.self), 0, nil, nil)
            }
        }
        try clCheck(status, "clEnqueueNDRangeKernel(\(name))")
        launchCount += 1
    }

    // MARK: operations

    public func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                     a: BufferView, b: BufferView, beta: Float, c: BufferView, epilogue: Epilogue) throws {
        try Check.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                       a: a, b: b, c: c, epilogue: epilogue)
        guard m > 0, n > 0 else { return }
        let transposes = "-DTRANS_A=\(transposeA ? 1 : 0) -DTRANS_B=\(transposeB ? 1 : 0)"
        let bias = epilogue.bias ?? c.buffer.view(offset: 0, count: 0)
        let arguments: [KernelArgument] = [
            .int(m), .int(n), .int(k), .float(alpha), .view(a), .view(b), .float(beta), .view(c),
            .int(epilogue.bias == nil ? 0 : 1), .view(bias), .int(Int(epilogue.activation.rawValue)),
            .float(epilogue.slope),
        ]
        // Both kernels come from one program built with the tile parameters, so each pair of
        // transposes costs one compilation.
        let p = gemmParameters
        if p != validatedGEMMParameters {
            try p.validate(for: device)
            validatedGEMMParameters = p
        }
        let options = transposes + " " + p.defines(transposeB: transposeB)
        if m * n * k < directGEMMThreshold {
            try launch("gemm", "gemm_direct", options: options, global: n, global1: m,
                       local: 16, local1: 16, arguments)
        } else {
            // Dimension 0 runs along the columns of C, so neighbouring items touch neighbouring
            // addresses of B and C.
            try launch("gemm", "gemm_tiled", options: options,
                       global: (n + p.nwg - 1) / p.nwg * p.ndimc, global1: (m + p.mwg - 1) / p.mwg * p.mdimc,
                       local: p.ndimc, local1: p.mdimc, arguments)
        }
    }

    /// The last parameters `validate` accepted, so that it runs once per change.
    private var validatedGEMMParameters: GEMMParameters?

    public func unary(_ op: UnaryOp, _ x: BufferView, _ y: BufferView, parameter: Float) throws {
        try Check.same(x, y, "unary \(op)")
        try launch("elementwise", "unary", options: elementwiseOptions, global: x.count,
                   [.int(Int(op.rawValue)), .view(x), .view(y), .int(x.count), .float(parameter)])
    }

    public func affine(_ x: BufferView, _ y: BufferView, scale alpha: Float, shift beta: Float) throws {
        try Check.same(x, y, "affine")
        try launch("elementwise", "affine", options: elementwiseOptions, global: x.count,
                   [.view(x), .view(y), .int(x.count), .float(alpha), .float(beta)])
    }

    public func binary(_ op: BinaryOp, _ a: BufferView, _ b: BufferView, _ out: BufferView,
                       rows: Int, cols: Int, broadcast: Broadcast) throws {
        try Check.binary(a, b, out, rows: rows, cols: cols, broadcast: broadcast)
        try launch("elementwise", "binary", options: elementwiseOptions, global: rows * cols,
                   [.int(Int(op.rawValue)), .int(Int(broadcast.rawValue)), .view(a), .view(b), .view(out),
                    .int(rows), .int(cols)])
    }

    /// Work-group size of the row reductions: a power of two the device accepts (at most 256).
    public var reductionGroup: Int {
        var size = 256
        while size > device.maxWorkGroupSize { size /= 2 }
        return size
    }

    /// The build options of Kernels/SBIBackend/elementwise.cl: every launch uses the same ones, so the file
    /// is compiled once per device.
    var elementwiseOptions: String { "-DWG=\(reductionGroup)" }

    /// Rows this short are reduced by one work-item each (a sequential loop) rather than by a
    /// work-group of `reductionGroup` items, most of which would idle.
    static let narrowRowColumns = 32

    /// A row reduction: one work-group per row, or one item per row for narrow rows.
    private func reduceRows(_ kernel: String, _ x: BufferView, rows: Int, cols: Int, _ out: BufferView) throws {
        let arguments: [KernelArgument] = [.view(x), .int(rows), .int(cols), .view(out)]
        if cols <= Self.narrowRowColumns {
            try launch("elementwise", kernel + "_narrow", options: elementwiseOptions, global: rows, arguments)
        } else {
            let wg = reductionGroup
            try launch("elementwise", kernel, options: elementwiseOptions, global: rows * wg, local: wg, arguments)
        }
    }

    public func sumRows(_ x: BufferView, rows: Int, cols: Int, _ out: BufferView) throws {
        try Check.count(x, rows * cols, "sumRows input")
        try Check.count(out, rows, "sumRows output")
        try reduceRows("sum_rows", x, rows: rows, cols: cols, out)
    }

    public func sumColumns(_ x: BufferView, rows: Int, cols: Int, _ out: BufferView) throws {
        try Check.count(x, rows * cols, "sumColumns input")
        try Check.count(out, cols, "sumColumns output")
        try launch("elementwise", "sum_columns", options: elementwiseOptions, global: cols,
                   [.view(x), .int(rows), .int(cols), .view(out)])
    }

    public func logSumExpRows(_ x: BufferView, rows: Int, cols: Int, _ out: BufferView) throws {
        try Check.count(x, rows * cols, "logSumExpRows input")
        try Check.count(out, rows, "logSumExpRows output")
        try reduceRows("log_sum_exp_rows", x, rows: rows, cols: cols, out)
    }

    private func philox(_ destination: BufferView, seed: UInt64, offset: UInt64, _ a: Float, _ b: Float,
                        kind: Int) throws {
        _ = try mem(destination, "random destination")
        guard destination.count > 0 else { return }
        let blocks = Int((offset + UInt64(destination.count) + 3) / 4 - offset / 4)
        try launch("random", "philox_fill", global: blocks,
                   [.view(destination), .int(destination.count), .ulong(seed), .ulong(offset),
                    .float(a), .float(b), .int(kind)])
    }

    public func fillUniform(_ destination: BufferView, seed: UInt64, offset: UInt64, low: Float, high: Float) throws {
        try philox(destination, seed: seed, offset: offset, low, high, kind: 0)
    }

    public func fillNormal(_ destination: BufferView, seed: UInt64, offset: UInt64, mean: Float, std: Float) throws {
        try philox(destination, seed: seed, offset: offset, mean, std, kind: 1)
    }

    public func fillRandomBits(_ destination: BufferView, seed: UInt64, offset: UInt64) throws {
        try philox(destination, seed: seed, offset: offset, 0, 0, kind: 2)
    }

    public func fillBernoulli(_ destination: BufferView, seed: UInt64, offset: UInt64, probability: Float, value: Float) throws {
        try philox(destination, seed: seed, offset: offset, probability, value, kind: 3)
    }
}

@inline(__always) func roundUp(_ value: Int, _ multiple: Int) -> Int {
    (value + multiple - 1) / multiple * multiple
}
