import ArgumentParser
import SBIBackend

@main
struct SBIGPU: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sbi-gpu",
        abstract: "Simulation-based inference on OpenCL devices, with an OpenBLAS CPU fallback.",
        subcommands: [Simulate.self, Train.self, Sample.self, LogProb.self, Diagnose.self, ABC.self, Plot.self, Devices.self, Bench.self])
}

extension DeviceSelection: ExpressibleByArgument {
    public init?(argument: String) { self.init(parsing: argument) }
}

/// `--device`, shared by every subcommand that computes.
struct DeviceOptions: ParsableArguments {
    @Option(name: .long, help: "OpenCL device index from `sbi-gpu devices`, `cpu` for OpenBLAS, or `auto` (first GPU, else CPU).")
    var device: DeviceSelection = .automatic

    func backend() throws -> Backend {
        do {
            let (backend, notice) = try device.makeBackend()
            if let notice { printError("notice: \(notice)") }
            return backend
        } catch {
            throw ValidationError("--device \(device): \(error)")
        }
    }
}

func printError(_ message: String) {
    var stderr = StandardError()
    print(message, to: &stderr)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        FileHandle.standardError.write(Data(string.utf8))
    }
}

import Foundation
