import COpenCL
import Foundation
import SBIData

/// A context and in-order queue on one device, and the programs built for it.
/// Programs are keyed by (name, options); compiled binaries are cached on disk keyed by
/// (source hash, options, device name, driver version), except on PoCL, which caches itself.
final class OpenCLContext {
    let device: OpenCLDevice
    let context: cl_context
    let queue: cl_command_queue
    private var programs: [String: cl_program] = [:]
    private var kernels: [String: cl_kernel] = [:]

    init(device: OpenCLDevice) throws {
        self.device = device
        var status: cl_int = 0
        var deviceID: cl_device_id? = device.id
        guard let context = clCreateContext(nil, 1, &deviceID, nil, nil, &status), status == CL_SUCCESS else {
            throw SBIError.openCL(call: "clCreateContext(\(device.name))", code: status)
        }
        self.context = context
        guard let queue = clCreateCommandQueue(context, device.id, 0, &status), status == CL_SUCCESS else {
            clReleaseContext(context)
            throw SBIError.openCL(call: "clCreateCommandQueue(\(device.name))", code: status)
        }
        self.queue = queue
    }

    deinit {
        clFinish(queue)
        for kernel in kernels.values { clReleaseKernel(kernel) }
        for program in programs.values { clReleaseProgram(program) }
        clReleaseCommandQueue(queue)
        clReleaseContext(context)
    }

    /// The kernel `name` of `program` built with `options`.
    func kernel(_ program: KernelProgram, _ name: String, options: String = "") throws -> cl_kernel {
        let key = program.name + "\u{1}" + options + "\u{1}" + name
        if let kernel = kernels[key] { return kernel }
        guard let source = program.source else {
            throw SBIError.invalidArgument("no embedded kernel file Kernels/\(program.name).cl")
        }
        let built = try self.program(name: program.name, source: KernelProgram.common + "\n" + source, options: options)
        var status: cl_int = 0
        guard let kernel = clCreateKernel(built, name, &status), status == CL_SUCCESS else {
            throw SBIError.openCL(call: "clCreateKernel(\(name) in \(program.name).cl)", code: status)
        }
        kernels[key] = kernel
        return kernel
    }

    /// Builds (or fetches from the caches) a program. On failure the error carries the build log.
    func program(name: String, source: String, options: String) throws -> cl_program {
        let key = name + "\u{1}" + options
        if let program = programs[key] { return program }
        let options = options + " -cl-mad-enable"
        let cacheFile = device.isPoCL ? nil : binaryCacheURL(source: source, options: options)
        if let cacheFile, let program = loadCachedBinary(cacheFile, options: options) {
            programs[key] = program
            return program
        }
        var status: cl_int = 0
        let program: cl_program? = source.withCString { text in
            var pointer: UnsafePointer<CChar>? = text
            var length = strlen(text)
            return clCreateProgramWithSource(context, 1, &pointer, &length, &status)
        }
        guard let program, status == CL_SUCCESS else {
            throw SBIError.openCL(call: "clCreateProgramWithSource(\(name))", code: status)
        }
        var deviceID: cl_device_id? = device.id
        let built = clBuildProgram(program, 1, &deviceID, options, nil, nil)
        if built != CL_SUCCESS {
            let log = buildLog(program)
            clReleaseProgram(program)
            if built == CL_BUILD_PROGRAM_FAILURE || !log.isEmpty {
                throw SBIError.programBuild(program: name, options: options, log: log)
            }
            throw SBIError.openCL(call: "clBuildProgram(\(name))", code: built)
        }
        if let cacheFile { storeBinary(program, cacheFile) }
        programs[key] = program
        return program
    }

    private func buildLog(_ program: cl_program) -> String {
        var size = 0
        clGetProgramBuildInfo(program, device.id, cl_program_build_info(CL_PROGRAM_BUILD_LOG), 0, nil, &size)
        guard size > 1 else { return "" }
        var bytes = [CChar](repeating: 0, count: size)
        clGetProgramBuildInfo(program, device.id, cl_program_build_info(CL_PROGRAM_BUILD_LOG), size, &bytes, nil)
        return String(decoding: bytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: binary cache

    private func binaryCacheURL(source: String, options: String) -> URL? {
        let base: URL
        if let dir = ProcessInfo.processInfo.environment["SBI_GPU_CACHE_DIR"] {
            base = URL(fileURLWithPath: dir)
        } else if let xdg = ProcessInfo.processInfo.environment["XDG_CACHE_HOME"] {
            base = URL(fileURLWithPath: xdg).appendingPathComponent("sbi-gpu")
        } else {
            base = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/sbi-gpu")
        }
        let key = fnv1a64([source, options, device.name, device.driverVersion].joined(separator: "\u{0}"))
        return base.appendingPathComponent(String(format: "%016llx.bin", key))
    }

    private func loadCachedBinary(_ url: URL, options: String) -> cl_program? {
        guard let data = try? Data(contentsOf: url), !data.isEmpty else { return nil }
        var status: cl_int = 0, binaryStatus: cl_int = 0
        var deviceID: cl_device_id? = device.id
        var length = data.count
        let program: cl_program? = data.withUnsafeBytes { raw in
            var pointer: UnsafePointer<UInt8>? = raw.bindMemory(to: UInt8.self).baseAddress
            return clCreateProgramWithBinary(context, 1, &deviceID, &length, &pointer, &binaryStatus, &status)
        }
        guard let program, status == CL_SUCCESS, binaryStatus == CL_SUCCESS else { return nil }
        guard clBuildProgram(program, 1, &deviceID, options, nil, nil) == CL_SUCCESS else {
            clReleaseProgram(program)
            return nil
        }
        return program
    }

    private func storeBinary(_ program: cl_program, _ url: URL) {
        var size = 0
        guard clGetProgramInfo(program, cl_program_info(CL_PROGRAM_BINARY_SIZES), MemoryLayout<Int>.size, &size, nil)
            == CL_SUCCESS, size > 0 else { return }
        var bytes = [UInt8](repeating: 0, count: size)
        let status = bytes.withUnsafeMutableBufferPointer { buffer -> cl_int in
            var pointer: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            return clGetProgramInfo(program, cl_program_info(CL_PROGRAM_BINARIES),
                                    MemoryLayout<UnsafeMutablePointer<UInt8>?>.size, &pointer, nil)
        }
        guard status == CL_SUCCESS else { return }
        // Atomic, so a concurrent reader never sees half a binary; a cache that cannot be written is skipped.
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? AtomicFile.write(Data(bytes), to: url)
    }
}

/// FNV-1a, 64 bits: a cache key, not a security boundary.
func fnv1a64(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    return hash
}
