import Foundation
import SBIData

/// Every failure the engine reports. Messages are one line and name what went wrong and where.
public enum SBIError: Error, CustomStringConvertible, Equatable {
    /// An OpenCL call returned a non-success code.
    case openCL(call: String, code: Int32)
    /// A kernel program failed to compile; `log` is the driver's full build log.
    case programBuild(program: String, options: String, log: String)
    /// An OpenCL device index that does not exist; `available` lists what does.
    case deviceOutOfRange(requested: Int, available: [String])
    /// Two operands or a buffer and a view disagree in size.
    case sizeMismatch(String)
    /// An operand belongs to another backend.
    case foreignBuffer(String)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .openCL(call, code):
            return "\(call) failed with \(openCLErrorName(code)) (\(code))"
        case let .programBuild(program, options, log):
            return "OpenCL program '\(program)' failed to build with options '\(options)':\n\(log)"
        case let .deviceOutOfRange(requested, available):
            let list = available.isEmpty ? "no OpenCL devices are present" :
                "available: " + available.joined(separator: "; ")
            return "OpenCL device \(requested) does not exist (\(list)); the OpenBLAS CPU backend needs none"
        case let .sizeMismatch(what): return "size mismatch: \(what)".escapingControlCharacters
        case let .foreignBuffer(what): return "buffer belongs to another backend: \(what)".escapingControlCharacters
        case let .invalidArgument(what): return what.escapingControlCharacters
        }
    }
}

/// `error.localizedDescription` (what Foundation-based callers print) is the same one line.
extension SBIError: LocalizedError {
    public var errorDescription: String? { description }
}

extension Check {
    /// A copy between two views of one buffer: the same view is a no-op, a partial overlap is
    /// refused on every backend (OpenCL's clEnqueueCopyBuffer refuses it, and an order-dependent
    /// result is a bug in the caller anyway).
    static func copyOverlap(_ source: BufferView, _ destination: BufferView) throws {
        guard source.buffer === destination.buffer, source.offset != destination.offset, source.count > 0 else { return }
        let a = source.offset..<(source.offset + source.count)
        let b = destination.offset..<(destination.offset + destination.count)
        if a.overlaps(b) {
            throw SBIError.invalidArgument("copy: source \(a) and destination \(b) overlap in one buffer")
        }
    }
}

/// The symbolic name of an OpenCL error code, as in CL/cl.h.
public func openCLErrorName(_ code: Int32) -> String {
    let names: [Int32: String] = [
        0: "CL_SUCCESS", -1: "CL_DEVICE_NOT_FOUND", -2: "CL_DEVICE_NOT_AVAILABLE",
        -3: "CL_COMPILER_NOT_AVAILABLE", -4: "CL_MEM_OBJECT_ALLOCATION_FAILURE",
        -5: "CL_OUT_OF_RESOURCES", -6: "CL_OUT_OF_HOST_MEMORY",
        -7: "CL_PROFILING_INFO_NOT_AVAILABLE", -8: "CL_MEM_COPY_OVERLAP", -9: "CL_IMAGE_FORMAT_MISMATCH",
        -10: "CL_IMAGE_FORMAT_NOT_SUPPORTED", -11: "CL_BUILD_PROGRAM_FAILURE", -12: "CL_MAP_FAILURE",
        -13: "CL_MISALIGNED_SUB_BUFFER_OFFSET", -14: "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST",
        -15: "CL_COMPILE_PROGRAM_FAILURE", -16: "CL_LINKER_NOT_AVAILABLE", -17: "CL_LINK_PROGRAM_FAILURE",
        -18: "CL_DEVICE_PARTITION_FAILED", -19: "CL_KERNEL_ARG_INFO_NOT_AVAILABLE",
        -30: "CL_INVALID_VALUE", -31: "CL_INVALID_DEVICE_TYPE", -32: "CL_INVALID_PLATFORM",
        -33: "CL_INVALID_DEVICE", -34: "CL_INVALID_CONTEXT", -35: "CL_INVALID_QUEUE_PROPERTIES",
        -36: "CL_INVALID_COMMAND_QUEUE", -37: "CL_INVALID_HOST_PTR", -38: "CL_INVALID_MEM_OBJECT",
        -39: "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR", -40: "CL_INVALID_IMAGE_SIZE", -41: "CL_INVALID_SAMPLER",
        -42: "CL_INVALID_BINARY", -43: "CL_INVALID_BUILD_OPTIONS", -44: "CL_INVALID_PROGRAM",
        -45: "CL_INVALID_PROGRAM_EXECUTABLE", -46: "CL_INVALID_KERNEL_NAME",
        -47: "CL_INVALID_KERNEL_DEFINITION", -48: "CL_INVALID_KERNEL", -49: "CL_INVALID_ARG_INDEX",
        -50: "CL_INVALID_ARG_VALUE", -51: "CL_INVALID_ARG_SIZE", -52: "CL_INVALID_KERNEL_ARGS",
        -53: "CL_INVALID_WORK_DIMENSION", -54: "CL_INVALID_WORK_GROUP_SIZE",
        -55: "CL_INVALID_WORK_ITEM_SIZE", -56: "CL_INVALID_GLOBAL_OFFSET",
        -57: "CL_INVALID_EVENT_WAIT_LIST", -58: "CL_INVALID_EVENT", -59: "CL_INVALID_OPERATION",
        -60: "CL_INVALID_GL_OBJECT", -61: "CL_INVALID_BUFFER_SIZE", -62: "CL_INVALID_MIP_LEVEL",
        -63: "CL_INVALID_GLOBAL_WORK_SIZE", -64: "CL_INVALID_PROPERTY",
        -65: "CL_INVALID_IMAGE_DESCRIPTOR", -66: "CL_INVALID_COMPILER_OPTIONS",
        -67: "CL_INVALID_LINKER_OPTIONS", -68: "CL_INVALID_DEVICE_PARTITION_COUNT",
        -1001: "CL_PLATFORM_NOT_FOUND_KHR",
    ]
    return names[code] ?? "unknown OpenCL error"
}

@inline(__always)
func clCheck(_ code: Int32, _ call: @autoclosure () -> String) throws {
    if code != 0 { throw SBIError.openCL(call: call(), code: code) }
}
