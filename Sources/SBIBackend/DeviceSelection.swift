import Foundation

/// Which backend to compute on: an OpenCL device by index, the OpenBLAS CPU backend, or the
/// default (the first GPU, else the CPU backend).
public enum DeviceSelection: Equatable, Sendable, CustomStringConvertible {
    case automatic
    case cpu
    case openCL(Int)

    public var description: String {
        switch self {
        case .automatic: return "auto"
        case .cpu: return "cpu"
        case let .openCL(index): return String(index)
        }
    }

    /// The backend this selection names. An explicit index that does not exist, or an OpenCL
    /// device that fails to open, throws; the default falls back to the CPU backend and says why
    /// in `notice`.
    public func makeBackend() throws -> (backend: Backend, notice: String?) {
        switch self {
        case .cpu:
            return (CPUBackend(), nil)
        case let .openCL(index):
            return (try OpenCLBackend(deviceIndex: index), nil)
        case .automatic:
            let devices = OpenCLDevice.all()
            guard let gpu = devices.first(where: \.isGPU) else {
                let why = devices.isEmpty ? "no OpenCL platform is installed" : "no OpenCL GPU is present"
                return (CPUBackend(), "\(why); using the OpenBLAS CPU backend")
            }
            do {
                return (try OpenCLBackend(device: gpu), nil)
            } catch {
                return (CPUBackend(), "OpenCL device \(gpu.index) (\(gpu.name)) failed to open: \(error); using the OpenBLAS CPU backend")
            }
        }
    }
}
