import ArgumentParser
import SBIBackend

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the OpenCL devices and the CPU (OpenBLAS) fallback, with the index `--device` takes.")

    func run() throws {
        let devices = OpenCLDevice.all()
        if devices.isEmpty {
            print("no OpenCL platform or device found (is an ICD such as pocl-opencl-icd or the NVIDIA driver installed?)")
        }
        print("index  platform | name | type | compute units | global memory | max work-group")
        for device in devices { print(device) }
        print("cpu  OpenBLAS fallback | \(CPUBackend().deviceName)")
        let automatic = devices.first(where: \.isGPU).map { "\($0.index) (\($0.name))" } ?? "cpu"
        print("default (--device auto): \(automatic)")
    }
}
