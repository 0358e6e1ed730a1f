import Foundation
import SBIBackend
import XCTest

/// The backends every test runs on: the CPU backend, and the OpenCL backend on device
/// `SBI_TEST_OPENCL_DEVICE` (else 0) where one exists. One OpenCL backend is shared by all the
/// tests of a process, so each program is built once per run.
public enum TestBackends {
    public static let cpu = CPUBackend()

    nonisolated(unsafe) private static var cached: OpenCLBackend??

    /// The shared OpenCL backend, or nil when this machine has no OpenCL device.
    public static func openCLIfPresent() throws -> OpenCLBackend? {
        if cached == nil {
            let devices = OpenCLDevice.all()
            let index = ProcessInfo.processInfo.environment["SBI_TEST_OPENCL_DEVICE"].flatMap { Int($0) } ?? 0
            cached = .some(devices.indices.contains(index) ? try OpenCLBackend(device: devices[index]) : nil)
        }
        return cached!
    }

    /// The shared OpenCL backend, or XCTSkip when this machine has none.
    public static func openCL() throws -> OpenCLBackend {
        guard let backend = try openCLIfPresent() else { throw XCTSkip("no OpenCL device: OpenCL half of the test skipped") }
        return backend
    }

    /// A new OpenCL backend on the same device, for tests that change a backend's settings (GEMM
    /// tile parameters), which must not leak into other tests; XCTSkip without a device.
    public static func freshOpenCL() throws -> OpenCLBackend {
        try OpenCLBackend(device: openCL().device)
    }

    /// The CPU backend, then the OpenCL backend where a device exists.
    public static func all() throws -> [Backend] {
        [cpu] + ((try openCLIfPresent()).map { [$0] } ?? [])
    }
}
