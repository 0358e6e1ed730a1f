import Foundation
import COpenCL

/// One OpenCL device of one platform, with the facts `sbi-gpu devices` prints.
public struct OpenCLDevice: Sendable, CustomStringConvertible {
    public let index: Int
    public let platformName: String
    public let name: String
    public let vendor: String
    public let driverVersion: String
    public let type: String
    public let computeUnits: Int
    public let globalMemoryBytes: Int
    public let localMemoryBytes: Int
    public let maxWorkGroupSize: Int
    let platformID: UInt
    let deviceID: UInt

    var platform: cl_platform_id { cl_platform_id(bitPattern: platformID)! }
    var id: cl_device_id { cl_device_id(bitPattern: deviceID)! }
    public var isGPU: Bool { type.contains("GPU") }
    /// PoCL caches compiled kernels itself (POCL_CACHE_DIR); others get our binary cache.
    public var isPoCL: Bool { platformName.contains("Portable Computing Language") }

    public var description: String {
        let gib = Double(globalMemoryBytes) / Double(1 << 30)
        return "\(index)  \(platformName) | \(name) | \(type) | \(computeUnits) CUs | "
            + String(format: "%.1f", gib) + " GiB | max work-group \(maxWorkGroupSize)"
    }

    /// Every device of every platform, numbered in order. No platform installed gives [].
    public static func all() -> [OpenCLDevice] {
        var platformCount: cl_uint = 0
        guard clGetPlatformIDs(0, nil, &platformCount) == CL_SUCCESS, platformCount > 0 else { return [] }
        var platforms = [cl_platform_id?](repeating: nil, count: Int(platformCount))
        guard clGetPlatformIDs(platformCount, &platforms, nil) == CL_SUCCESS else { return [] }
        var devices: [OpenCLDevice] = []
        for case let platform? in platforms {
            var count: cl_uint = 0
            guard clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &count) == CL_SUCCESS,
                  count > 0 else { continue }
            var ids = [cl_device_id?](repeating: nil, count: Int(count))
            guard clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), count, &ids, nil) == CL_SUCCESS
            else { continue }
            let platformName = platformString(platform, cl_platform_info(CL_PLATFORM_NAME))
            for case let device? in ids {
                let type: cl_device_type = deviceValue(device, CL_DEVICE_TYPE)
                var typeName: [String] = []
                if type & cl_device_type(CL_DEVICE_TYPE_GPU) != 0 { typeName.append("GPU") }
                if type & cl_device_type(CL_DEVICE_TYPE_CPU) != 0 { typeName.append("CPU") }
                if type & cl_device_type(CL_DEVICE_TYPE_ACCELERATOR) != 0 { typeName.append("accelerator") }
                let cus: cl_uint = deviceValue(device, CL_DEVICE_MAX_COMPUTE_UNITS)
                let mem: cl_ulong = deviceValue(device, CL_DEVICE_GLOBAL_MEM_SIZE)
                let local: cl_ulong = deviceValue(device, CL_DEVICE_LOCAL_MEM_SIZE)
                let wg: Int = deviceValue(device, CL_DEVICE_MAX_WORK_GROUP_SIZE)
                devices.append(OpenCLDevice(
                    index: devices.count, platformName: platformName,
                    name: deviceString(device, CL_DEVICE_NAME),
                    vendor: deviceString(device, CL_DEVICE_VENDOR),
                    driverVersion: deviceString(device, CL_DRIVER_VERSION),
                    type: typeName.isEmpty ? "other" : typeName.joined(separator: "+"),
                    computeUnits: Int(cus), globalMemoryBytes: Int(mem), localMemoryBytes: Int(local),
                    maxWorkGroupSize: wg,
                    platformID: UInt(bitPattern: platform), deviceID: UInt(bitPattern: device)))
            }
        }
        return devices
    }
}

private func platformString(_ platform: cl_platform_id, _ param: cl_platform_info) -> String {
    var size = 0
    guard clGetPlatformInfo(platform, param, 0, nil, &size) == CL_SUCCESS, size > 0 else { return "?" }
    var bytes = [CChar](repeating: 0, count: size)
    guard clGetPlatformInfo(platform, param, size, &bytes, nil) == CL_SUCCESS else { return "?" }
    return String(decoding: bytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

private func deviceString(_ device: cl_device_id, _ param: Int32) -> String {
    var size = 0
    guard clGetDeviceInfo(device, cl_device_info(param), 0, nil, &size) == CL_SUCCESS, size > 0 else { return "?" }
    var bytes = [CChar](repeating: 0, count: size)
    guard clGetDeviceInfo(device, cl_device_info(param), size, &bytes, nil) == CL_SUCCESS else { return "?" }
    return String(decoding: bytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        .trimmingCharacters(in: .whitespaces)
}

private func deviceValue<T: FixedWidthInteger>(_ device: cl_device_id, _ param: Int32) -> T {
    var value: T = 0
    _ = clGetDeviceInfo(device, cl_device_info(param), MemoryLayout<T>.size, &value, nil)
    return value
}
