import ArgumentParser
import Foundation
import SBIData
import SBIBackend

@main
enum Entry {
    /// OpenBLAS starts its thread pool when the library loads, sized by OPENBLAS_NUM_THREADS, and
    /// the idle pool threads spin in sched_yield: on a 2-core machine that cost 28% of the
    /// training time of a small flow (96.6 s against 69.4 s for 10⁵ two_moons simulations).
    /// So the process restarts itself once with a single-thread start; the CPU backend still
    /// raises the thread count for products large enough to gain from it. A user's own
    /// OPENBLAS_NUM_THREADS is respected.
    static func main() {
        if getenv("OPENBLAS_NUM_THREADS") == nil {
            setenv("OPENBLAS_NUM_THREADS", "1", 1)
            let arguments = CommandLine.unsafeArgv
            execv("/proc/self/exe", arguments)  // returns only on failure: then carry on as we are
        }
        do {
            var command = try SBIGPU.parseAsRoot()
            try command.run()
        } catch {
            guard let status = ExitStatus.code(for: error) else { SBIGPU.exit(withError: error) }
            printError("Error: \(error)")
            exit(status)
        }
    }
}

/// Exit statuses by class of failure (sysexits.h), so that the same class always exits the same
/// way: usage 64 (a flag; ArgumentParser's own errors, printed with the usage), data 65 (a file's
/// contents, or data the library refused), no input 66 (a file that does not exist), software 70
/// (a failure inside sbi-gpu or the OpenCL driver).
enum ExitStatus {
    static let usage: Int32 = 64, data: Int32 = 65, noInput: Int32 = 66, software: Int32 = 70

    /// The status for `error`, or nil for ArgumentParser's own handling (usage errors, help).
    static func code(for error: Error) -> Int32? {
        switch error {
        case is DataError, is NumPyError, is ImageRows.Invalid: return data
        case is MissingInput: return noInput
        case let error as SBIError:
            switch error {
            case .sizeMismatch, .invalidArgument: return data
            case .deviceOutOfRange: return usage
            case .openCL, .programBuild, .foreignBuffer: return software
            }
        default:
            // ArgumentParser's errors keep their statuses (64 for usage, 0 for help); anything
            // else reached here unclassified is a software error.
            return SBIGPU.exitCode(for: error) == .failure ? software : nil
        }
    }
}

/// A file whose contents are wrong (exit 65); the message names the flag, the file and what was expected.
struct DataError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A file that does not exist (exit 66).
struct MissingInput: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

struct SBIGPU: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sbi-gpu",
        abstract: "Simulation-based inference on OpenCL devices, with an OpenBLAS CPU fallback.",
        subcommands: [Simulate.self, Train.self, Sample.self, LogProb.self, Diagnose.self, ABC.self, Plot.self, Devices.self, Bench.self])
}

/// `--device` words: "cpu" (or "blas"), "auto" (or "default") or a device index, ignoring case
/// and surrounding white space; anything else is refused.
extension DeviceSelection: ExpressibleByArgument {
    public init?(argument: String) {
        let argument = argument.trimmingCharacters(in: .whitespaces)
        switch argument.lowercased() {
        case "cpu", "blas": self = .cpu
        case "auto", "default": self = .automatic
        default:
            guard let index = Int(argument), index >= 0 else { return nil }
            self = .openCL(index)
        }
    }
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
        } catch let error as SBIError {
            if case .deviceOutOfRange = error {
                throw ValidationError("--device \(device): \(error); use --device cpu for the OpenBLAS backend")
            }
            throw ValidationError("--device \(device): \(error)")
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
