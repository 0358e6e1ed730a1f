import ArgumentParser
import Foundation
import SBIBackend

/// `sbi-gpu bench gemm`: GFLOP/s of GEMM on each backend, and the ratio to `cblas_sgemm` called
/// directly in the same run.
struct BenchGEMM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "GFLOP/s of GEMM on each backend, against raw cblas_sgemm measured in the same run.",
        discussion: """
            Times C = op(A)·op(B) (α = 1, β = 0, no epilogue) for every size, operation and backend: \
            warm-up runs, then the median of --repeats runs, each followed by a synchronize before \
            the clock stops. Raw cblas_sgemm (OpenBLAS, one thread per active core) is timed on the \
            same operands interleaved with the backend's runs; ratioToCBLAS is the median over the \
            repeats of cblas time / backend time (≈ backend GFLOP/s ÷ cblas GFLOP/s, but steadier \
            on a busy machine). Progress goes to stderr, the table or JSON to stdout.
            """)

    @Option(name: .long, parsing: .singleValue,
            help: "Backend to measure: an OpenCL device index from `sbi-gpu devices`, `cpu`, or `auto`; repeat for several. Default: the CPU backend and every OpenCL device.")
    var device: [DeviceSelection] = []

    @Option(name: .long, help: "Comma-separated sizes: N (N×N×N) or MxNxK (C is M×N, inner dimension K). Default: 256,512,1024,2048 and the flow shapes 256x1024x784, 256x1024x1024, 256x1568x1024.")
    var sizes: String?

    @Option(name: .long, help: "Comma-separated operations among nn, nt, tn, tt (t: that operand is stored transposed).")
    var ops: String = "nn"

    @Option(name: .long, help: "Timed runs per product; the median is reported.")
    var repeats: Int = 7

    @Option(name: .long, help: "Untimed runs before timing (the first also compiles the kernels).")
    var warmups: Int = 1

    @Flag(name: .long, help: "Print a JSON array instead of a table.")
    var json = false

    func validate() throws {
        guard repeats > 0 else { throw ValidationError("--repeats must be positive") }
        guard warmups >= 0 else { throw ValidationError("--warmups must not be negative") }
        _ = try shapes()
    }

    func shapes() throws -> [GEMMShape] {
        var base: [GEMMShape] = GEMMShape.standard
        if let sizes {
            base = try sizes.split(separator: ",").map { text in
                let item = text.trimmingCharacters(in: .whitespaces)
                guard let shape = GEMMShape(parsing: item) else {
                    throw ValidationError("--sizes: \"\(item)\" is neither N nor MxNxK with positive integers")
                }
                return shape
            }
            guard !base.isEmpty else { throw ValidationError("--sizes is empty") }
        }
        let operations = try ops.split(separator: ",").map { text -> (Bool, Bool) in
            switch text.trimmingCharacters(in: .whitespaces).lowercased() {
            case "nn": return (false, false)
            case "nt": return (false, true)
            case "tn": return (true, false)
            case "tt": return (true, true)
            default: throw ValidationError("--ops: \"\(text)\" is not one of nn, nt, tn, tt")
            }
        }
        guard !operations.isEmpty else { throw ValidationError("--ops is empty") }
        return base.flatMap { shape in
            operations.map { GEMMShape(m: shape.m, n: shape.n, k: shape.k, transposeA: $0.0, transposeB: $0.1) }
        }
    }

    func backends() throws -> [Backend] {
        if device.isEmpty {
            var all: [Backend] = [CPUBackend()]
            for cl in OpenCLDevice.all() {
                do {
                    all.append(try OpenCLBackend(device: cl))
                } catch {
                    printError("notice: skipping OpenCL device \(cl.index) (\(cl.name)): \(error)")
                }
            }
            return all
        }
        return try device.map { selection in
            do {
                let (backend, notice) = try selection.makeBackend()
                if let notice { printError("notice: \(notice)") }
                return backend
            } catch {
                throw ValidationError("--device \(selection): \(error)")
            }
        }
    }

    func run() throws {
        let shapes = try shapes()
        let backends = try backends()
        printError("cblas_sgemm baseline: OpenBLAS, \(GEMMBenchmark.cblasThreads) threads")
        var results: [GEMMTiming] = []
        for backend in backends {
            if let cl = backend as? OpenCLBackend {
                printError("\(backend.kind) \(backend.deviceName): tiled kernel \(cl.gemmParameters)")
            }
            for shape in shapes {
                printError("  \(backend.kind) \(shape)…")
                let timing = try GEMMBenchmark.measure(backend, shape, warmups: warmups, repeats: repeats)
                results.append(timing)
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(results), as: UTF8.self))
        } else {
            print(table(results))
        }
    }

    func table(_ results: [GEMMTiming]) -> String {
        let header = ["backend", "device", "m", "n", "k", "op", "GFLOP/s", "cblas GFLOP/s", "ratio"]
        let rows = results.map { r in
            [r.backend, r.device, "\(r.m)", "\(r.n)", "\(r.k)", (r.transA ? "T" : "N") + (r.transB ? "T" : "N"),
             String(format: "%.1f", r.gflops), String(format: "%.1f", r.cblasGflops),
             String(format: "%.3f", r.ratioToCBLAS)]
        }
        let widths = header.indices.map { column in
            ([header] + rows).map { $0[column].count }.max() ?? 0
        }
        let textColumns: Set<Int> = [0, 1, 5]
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                return textColumns.contains(column) ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}
