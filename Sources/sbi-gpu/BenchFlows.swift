import ArgumentParser
import Foundation
import SBIData
import SBIBackend
import SBIGraph
import SBIModels

/// `sbi-gpu bench flows`: pixel-space flow throughput — training steps, log-prob and sampling in
/// images per second — with GFLOP/s against the backend's measured GEMM ceiling, and PyTorch
/// running the same spec side by side when it is installed.
struct BenchFlows: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flows",
        abstract: "Images/s of a pixel-space flow (an MLP-coupling RealNVP, or Glow) for training, log-prob and sampling, against PyTorch.",
        discussion: """
            Spec "mlp": D = side² pixels; 8 affine coupling layers with alternating checkerboard \
            masks; each coupling net an MLP D → 1024 → 1024 → 2D with ReLU; s = tanh(raw s); \
            standard-normal base; Adam; float32. After --warmups untimed runs, the median of \
            --repeats timed runs, each ending in a device synchronization. GFLOP/s counts the \
            GEMMs executed (the coupling nets read only the pass-through half and compute s, t \
            only for the other half; a training step is 3× the forward's); the ceiling is cblas_sgemm on the CPU and \
            the best measured GEMM on an OpenCL device, both at the 256×1024×1024 product. With \
            --torch (default when python3 can import torch) Benchmarks/reference/realnvp_mlp.py \
            runs the same spec with the same thread count.
            Spec "glow": the `--estimator glow` flow on side×side×--channels images of 256 levels: \
            --scales scales of --layers steps (ActNorm, LU 1×1 convolution, affine coupling with a \
            conv3×3 → conv1×1 → conv3×3 net of --hidden channels), split priors; batch 64, 8 steps \
            and 64 channels by default. GFLOP/s counts the convolutions' multiply-adds; the ceiling \
            is the GEMM at the 1×1 convolution's product. Its twin is Benchmarks/reference/glow.py.
            """)

    @Option(name: .long, help: "The benchmark spec: mlp or glow.") var spec = "mlp"
    @Option(name: .long, parsing: .singleValue, help: "Image side; repeat for several. Default 16, 28, 32, 64.")
    var side: [Int] = []
    @Option(name: .long, parsing: .singleValue, help: "Backend: an OpenCL device index, `cpu` or `auto`; repeat for several. Default: CPU and every OpenCL device.")
    var device: [DeviceSelection] = []
    @Option(name: .long, help: "Images per batch (default 256 for mlp, 64 for glow).") var batch: Int?
    @Option(name: .long, help: "Coupling layers (glow: steps per scale).") var layers = 8
    @Option(name: .long, help: "Hidden width of the coupling nets (default 1024 for mlp, 64 channels for glow).") var hidden: Int?
    @Option(name: .long, help: "glow: image channels.") var channels = 1
    @Option(name: .long, help: "glow: scales.") var scales = 2
    var isGlow: Bool { spec == "glow" }
    var batchSize: Int { batch ?? (isGlow ? 64 : 256) }
    var hiddenWidth: Int { hidden ?? (isGlow ? 64 : 1024) }
    @Option(name: .long, help: "Timed repeats; the median is reported.") var repeats = 5
    @Option(name: .long, help: "Untimed runs first (kernel compilation, caches).") var warmups = 2
    @Option(name: .long, help: "Run the PyTorch reference: yes, no or auto (when torch imports).") var torch = "auto"
    @Option(name: .long, help: "Write the JSON results with a machine description to this file as well.") var results: String?
    @Flag(name: .long, help: "Print JSON instead of a Markdown table.") var json = false

    func validate() throws {
        guard ["mlp", "glow"].contains(spec) else { throw ValidationError("--spec \(spec): expected mlp or glow") }
        for (flag, value) in [("--batch", batchSize), ("--layers", layers), ("--hidden", hiddenWidth), ("--repeats", repeats),
                              ("--channels", channels), ("--scales", scales)] where value <= 0 {
            throw ValidationError("\(flag) \(value): expected a positive count")
        }
        guard warmups >= 0 else { throw ValidationError("--warmups \(warmups): expected zero or more") }
        guard ["yes", "no", "auto"].contains(torch) else { throw ValidationError("--torch takes yes, no or auto") }
    }

    func run() throws {
        let sides = side.isEmpty ? (isGlow ? [28, 32] : [16, 28, 32, 64]) : side
        var selections = device
        if selections.isEmpty { selections = [.cpu] + OpenCLDevice.all().map { .openCL($0.index) } }
        var rows: [FlowBenchmarkRow] = []
        for selection in selections {
            let (backend, notice) = try selection.makeBackend()
            if let notice { printError("notice: \(notice)") }
            let ceiling = try gemmCeiling(backend)
            for s in sides {
                printError("bench flows: \(backend.kind) (\(backend.deviceName)) side \(s)…")
                rows.append(try isGlow ? measureGlow(backend: backend, side: s, ceiling: ceiling)
                                       : measure(backend: backend, side: s, ceiling: ceiling))
            }
        }
        if torch != "no" {
            if let reference = try? runTorch(sides: sides) {
                rows += reference
            } else if torch == "yes" {
                throw ValidationError("--torch yes: the PyTorch reference did not run (is torch installed?)")
            } else {
                printError("notice: PyTorch not importable; reference rows skipped")
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        if let results {
            let document = FlowBenchmarkResults(machine: MachineDescription.current(), rows: rows)
            try atomicWrite(try encoder.encode(document), to: URL(fileURLWithPath: results))
        }
        if json {
            print(String(decoding: try encoder.encode(rows), as: UTF8.self))
        } else {
            print(FlowBenchmarkRow.markdown(rows))
        }
    }

    /// The backend's GEMM ceiling at the coupling nets' dominant product.
    func gemmCeiling(_ backend: Backend) throws -> Double {
        let rows = isGlow ? batchSize * 196 : batchSize
        let timing = try GEMMBenchmark.measure(backend, GEMMShape(m: rows, n: hiddenWidth, k: hiddenWidth), warmups: 1, repeats: 3)
        return backend is CPUBackend ? timing.cblasGflops : timing.gflops
    }

    func measure(backend: Backend, side: Int, ceiling: Double) throws -> FlowBenchmarkRow {
        let hidden = hiddenWidth
        let d = side * side
        let flow = try FlowConfiguration.benchmarkRealNVP(side: side, layers: layers, hidden: hidden).makeFlow()
        let timing = try timeDensity(flow, backend: backend) { plan, x, seed in
            try backend.fillUniform(try plan.view(of: x), seed: seed, offset: 0, low: -1, high: 1)
        }
        // The products sbi-gpu executes: each coupling net reads the D/2 pass-through pixels and
        // computes s and t for the other D/2 only (CouplingNetColumns); PyTorch's twin multiplies
        // the full D-wide products, a third more multiply-adds at hidden = D.
        let passing = d / 2, transformed = d - d / 2
        let perImage: Int = passing * hidden + hidden * hidden + hidden * 2 * transformed
        return row(timing, backend: backend, side: side, forwardFlops: Double(layers) * 2 * Double(batchSize) * Double(perImage), ceiling: ceiling)
    }

    /// The Glow spec on `batch` images of side×side×channels, pixel values of 256 levels.
    func measureGlow(backend: Backend, side: Int, ceiling: Double) throws -> FlowBenchmarkRow {
        let hidden = hiddenWidth
        var configuration = GlowConfiguration(height: side, width: side, channels: channels)
        (configuration.steps, configuration.hidden, configuration.scales) = (layers, hidden, scales)
        let flow = try GlowDensity(configuration)
        let pixels = (0..<(batchSize * configuration.features)).map { Float(Philox.word(at: UInt64($0), seed: 2) % 256) }
        let timing = try timeDensity(flow, backend: backend) { plan, x, _ in try plan.feed(x, pixels) }
        // Convolution multiply-adds per image: each step's coupling net and each split prior.
        var perImage = 0
        for (level, shape) in flow.scaleShapes.enumerated() {
            let pixels = shape.h * shape.w, ca = shape.c / 2, cb = shape.c - shape.c / 2
            perImage += layers * pixels * (9 * ca * hidden + hidden * hidden + 9 * hidden * 2 * cb)
            if level < flow.scaleShapes.count - 1 { perImage += pixels * 9 * (shape.c / 2) * shape.c }
        }
        return row(timing, backend: backend, side: side, forwardFlops: 2 * Double(batchSize) * Double(perImage), ceiling: ceiling)
    }

    /// Median seconds of a training step (−mean log q, gradients, fresh draws for the model's
    /// noise inputs, one Adam launch over all parameters), of log-prob and of sampling (fresh
    /// noise, then the inverse pass) for `batch` rows; `fill` sets a plan's input x (its third
    /// argument is a seed). Also the plans' peak arena plus the store's four buffers.
    func timeDensity(_ model: NeuralDensity, backend: Backend, fill: (Plan, Tensor, UInt64) throws -> Void) throws
        -> (train: Double, logProb: Double, sample: Double, peakBytes: Int) {
        let (batch, d) = (batchSize, model.features)
        let graph = Graph()
        let x = graph.input("x", rows: batch, cols: d)
        let loss = try graph.affine(try graph.mean(try model.logProb(x, context: nil, in: graph)), scale: -1, shift: 0)
        let parameters = graph.parameters
        let gradients = try graph.gradients(of: loss, with: parameters.map(\.tensor))
        let store = try ParameterStore(graph: graph, backend: backend, seed: 1)
        let train = try Plan(graph: graph, backend: backend, outputs: [loss], parameters: store,
                             gradients: zip(gradients, parameters).map { ($0, $1.name) })
        try fill(train, x, 2)
        var step = 0
        let trainSeconds = try time(backend) {
            try train.fillNoise(seed: 5, offset: UInt64(step) << 32)
            try train.run()
            step += 1
            try AdamStep.run(on: backend, parameters: store.values.view, gradients: store.gradients.view,
                             firstMoment: store.firstMoment.view, secondMoment: store.secondMoment.view,
                             hyper: AdamHyperparameters(learningRate: 1e-4, step: step),
                             gradientSquaredNorm: nil, maxGradientNorm: 0)
        }
        let lg = Graph()
        let lx = lg.input("x", rows: batch, cols: d)
        let logq = try model.logProb(lx, context: nil, in: lg)
        let logProbPlan = try Plan(graph: lg, backend: backend, outputs: [logq], parameters: store)
        try fill(logProbPlan, lx, 3)
        let logProbSeconds = try time(backend) {
            try logProbPlan.fillNoise(seed: 6, offset: 0)
            try logProbPlan.run()
        }
        let sg = Graph()
        let noise = sg.input("noise", rows: batch, cols: model.noiseFeatures)
        let (samples, _) = try model.sample(noise: noise, context: nil, in: sg)
        let samplePlan = try Plan(graph: sg, backend: backend, outputs: [samples], parameters: store)
        var draw: UInt64 = 0
        let sampleSeconds = try time(backend) {
            try backend.fillNormal(try samplePlan.view(of: noise), seed: 4, offset: draw, mean: 0, std: 1)
            draw += UInt64(batch * model.noiseFeatures)
            try samplePlan.run()
        }
        return (trainSeconds, logProbSeconds, sampleSeconds,
                max(train.peakBytes, logProbPlan.peakBytes, samplePlan.peakBytes) + 4 * store.count * 4)
    }

    func row(_ timing: (train: Double, logProb: Double, sample: Double, peakBytes: Int), backend: Backend, side: Int,
             forwardFlops: Double, ceiling: Double) -> FlowBenchmarkRow {
        let batch = Double(batchSize), trainGflops = 3 * forwardFlops / timing.train / 1e9
        return FlowBenchmarkRow(
            spec: spec, side: side, backend: backend.kind, device: backend.deviceName, batch: batchSize,
            trainImagesPerSecond: batch / timing.train, logProbImagesPerSecond: batch / timing.logProb,
            sampleImagesPerSecond: batch / timing.sample, peakBytes: timing.peakBytes,
            processPeakBytes: MachineDescription.maxResidentBytes(),
            trainGflops: trainGflops, logProbGflops: forwardFlops / timing.logProb / 1e9,
            gemmCeilingGflops: ceiling, trainFractionOfCeiling: trainGflops / ceiling)
    }

    /// Median seconds of `body` over the repeats, each ending in a synchronization.
    func time(_ backend: Backend, _ body: () throws -> Void) throws -> Double {
        for _ in 0..<warmups { try body() }
        try backend.synchronize()
        var samples: [Double] = []
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            try backend.synchronize()
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return samples.sorted()[samples.count / 2]
    }

    func runTorch(sides: [Int]) throws -> [FlowBenchmarkRow] {
        let script = try referenceScript()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        var arguments: [String] = ["python3", script.path, "bench", "--sides"]
        arguments += sides.map { String($0) }
        arguments += ["--batch", String(batchSize), isGlow ? "--steps" : "--layers", String(layers), "--hidden", String(hiddenWidth)]
        if isGlow { arguments += ["--channels", String(channels), "--scales", String(scales)] }
        arguments += ["--repeats", String(repeats), "--warmups", String(warmups)]
        arguments += ["--threads", String(ProcessInfo.processInfo.activeProcessorCount)]
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ValidationError("reference exited \(process.terminationStatus)") }
        return try JSONDecoder().decode([FlowBenchmarkRow].self, from: data)
    }

    func referenceScript() throws -> URL {
        let candidates = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath)]
            + [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()]
        for base in candidates {
            var dir = base
            for _ in 0..<5 {
                let url = dir.appendingPathComponent("Benchmarks/reference/\(isGlow ? "glow" : "realnvp_mlp").py")
                if FileManager.default.fileExists(atPath: url.path) { return url }
                dir = dir.deletingLastPathComponent()
            }
        }
        throw ValidationError("Benchmarks/reference/realnvp_mlp.py not found from the working directory")
    }
}

/// One row of `bench flows`.
struct FlowBenchmarkRow: Codable {
    var spec: String
    var side: Int
    var backend: String
    var device: String
    var batch: Int
    var trainImagesPerSecond: Double
    var logProbImagesPerSecond: Double
    var sampleImagesPerSecond: Double
    var peakBytes: Int
    var processPeakBytes: Int?
    var trainGflops: Double?
    var logProbGflops: Double?
    var gemmCeilingGflops: Double?
    var trainFractionOfCeiling: Double?

    static func markdown(_ rows: [FlowBenchmarkRow]) -> String {
        var lines = ["| spec | side | backend | device | train img/s | log-prob img/s | sample img/s | train GFLOP/s (of ceiling) | peak MiB | vs PyTorch (train / log-prob / sample) |",
                     "|---|---|---|---|---|---|---|---|---|---|"]
        for row in rows {
            let torch = rows.first { $0.backend == "pytorch" && $0.side == row.side }
            let ratio = torch.map { t in
                String(format: "%.2f× / %.2f× / %.2f×", row.trainImagesPerSecond / t.trainImagesPerSecond,
                       row.logProbImagesPerSecond / t.logProbImagesPerSecond, row.sampleImagesPerSecond / t.sampleImagesPerSecond)
            } ?? "–"
            let flops = row.trainGflops.map { g in
                String(format: "%.0f", g) + (row.trainFractionOfCeiling.map { String(format: " (%.0f%%)", 100 * $0) } ?? "")
            } ?? "–"
            lines.append("| \(row.spec) | \(row.side) | \(row.backend) | \(row.device) | "
                         + String(format: "%.0f | %.0f | %.0f | ", row.trainImagesPerSecond, row.logProbImagesPerSecond, row.sampleImagesPerSecond)
                         + flops + String(format: " | %.0f | ", Double(row.peakBytes) / 1_048_576)
                         + (row.backend == "pytorch" ? "1" : ratio) + " |")
        }
        return lines.joined(separator: "\n")
    }
}

struct FlowBenchmarkResults: Codable {
    var machine: MachineDescription
    var rows: [FlowBenchmarkRow]
}

/// What machine a result came from.
struct MachineDescription: Codable {
    var cpu: String
    var cores: Int
    var memoryBytes: UInt64
    var openCLDevices: [String]
    var os: String
    var date: String

    static func current() -> MachineDescription {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) } ?? "unknown"
        return MachineDescription(
            cpu: model, cores: ProcessInfo.processInfo.activeProcessorCount,
            memoryBytes: ProcessInfo.processInfo.physicalMemory,
            openCLDevices: OpenCLDevice.all().map { "\($0.platformName) | \($0.name) | driver \($0.driverVersion)" },
            os: ProcessInfo.processInfo.operatingSystemVersionString,
            date: ISO8601DateFormatter().string(from: Date()))
    }

    /// The process's peak resident set size.
    static func maxResidentBytes() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }
}

/// Writes atomically (see `AtomicFile`), as a command-line error on failure.
func atomicWrite(_ data: Data, to url: URL) throws {
    do { try AtomicFile.write(data, to: url) } catch { throw ValidationError("cannot write \(url.path): \(error)") }
}
