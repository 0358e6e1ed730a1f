import ArgumentParser
import Foundation
import SBIPlots
import SBIBackend
import SBIGraph
import SBIInference
import SBIModels

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a neural posterior (NPE) or likelihood (NLE) estimator.",
        discussion: """
            Data: --theta T.npy and --x X.npy (rows are simulations; images may be N×H×W), or \
            --data FILE.npz with members `theta` and `x`, or neither: then --task simulates \
            --num-simulations pairs from a built-in simulator (\(Simulators.names.joined(separator: ", "))).
            Writes RUN/model.safetensors (the estimator), RUN/checkpoint.safetensors (the last \
            epoch, for --resume), RUN/config.json, RUN/history.csv and RUN/loss.svg; with \
            --dropout auto, a run that overfits is trained again with dropout \
            (RUN/checkpoint-dropout.safetensors) and the better of the two is kept.
            """)

    @OptionGroup var device: DeviceOptions
    @Option(help: "npe (learn q(θ|x)), nle (learn q(x|θ), sampled by MCMC), or density (learn q(x) of the images in --data, or q(x|c) with --context).") var method = "npe"
    @Option(help: "Density estimator: \(Estimators.names.joined(separator: ", ")) (default nsf; glow for --method density, which also takes realnvp-ms).") var estimator: String?
    /// --estimator, or the method's default.
    var resolvedEstimator: String { estimator ?? (method == "density" ? "glow" : "nsf") }
    @Option(help: "Parameters θ, one row per simulation (.npy, or FILE.npz:NAME).") var theta: String?
    @Option(help: "Simulated data x, one row (or image) per simulation.") var x: String?
    @Option(help: "An .npz holding `theta` and `x`; for --method density, the images (.npy of N×H×W, N×H×W×C or, with --channels-first, N×C×H×W).") var data: String?
    @Option(help: "--method density: a context vector per image (.npy, N×D or N), making the model q(x|context).") var context: String?
    @Option(parsing: .unconditional, help: "--method density: pixel levels, the data's pixels being integers 0…levels−1 (default 256 for uint8 images; required for other dtypes).") var levels: Int?
    @Flag(help: "--method density: the images are N×C×H×W (PyTorch's layout).") var channelsFirst = false
    @Option(parsing: .unconditional, help: "glow, realnvp-ms: scales (factor-out levels); default: halve to no less than 2×2, at most 3 squeezes.") var scales: Int?
    @Option(help: "glow, realnvp-ms: how dequantized pixels in [0, 1) enter the flow: centered (x − ½, Glow's) or logit (logit(α + (1 − 2α)x), α = 0.05, RealNVP's); the log-det is counted either way.") var preprocessing = "centered"
    @Option(help: "Built-in task to simulate when no data is given.") var task = "two_moons"
    @Option(parsing: .unconditional, help: "Simulations to draw for --task.") var numSimulations = 10_000
    @Option(parsing: .singleValue, help: "Prior: \(Prior.specForms); repeat per dimension or give once to broadcast. Default: the task's prior, else a box around the training θ.")
    var prior: [String] = []
    @Option(help: "Output directory.") var out: String = "runs/latest"
    @Flag(help: "Replace a trained model already in --out (without it, train refuses to, unless --resume continues it).") var force = false
    @Option(help: "Hidden widths of the estimator's networks, comma-separated.") var hidden = "64,64"
    @Option(parsing: .unconditional, help: "Flow transforms (default 5), or the steps per scale of glow (default 8) and realnvp-ms (couplings per group, default 3).") var transforms: Int?
    @Option(parsing: .unconditional, help: "Spline bins (nsf, and glow with --coupling spline).") var bins = 8
    @Option(help: "glow: the couplings' transform: affine ((x + t)·σ(raw + 2), Glow's) or spline (a rational-quadratic spline of --bins bins per element on [−3, 3]).") var coupling = "affine"
    @Option(parsing: .unconditional, help: "Mixture components (mdn, gmm).") var components = 10
    @Option(help: "Flows (and mdn, for cnn): a net embedding the conditioning data before the transforms: `cnn` (conv 3×3 + ReLU + 2×2 max-pool blocks of 8, 16, 32 channels, then a dense head of 128 → 64; for images), `resnet` (the same blocks, each with a residual unit of two more convolutions), `mlp` (widths 256,64), MLP widths like 256,64 (the last is the embedded size), `none`, or `auto` (cnn when each x is an H×W or H×W×C image with sides of at least 8, mlp for other x of 100 or more values, else none).")
    var embedding = "auto"
    @Flag(inversion: .prefixedNo, help: "Flows: start with an affine layer whose location and scale are linear in the conditioning data (the near-Gaussian part of most posteriors); the transforms model the rest.")
    var conditionalAffine = true
    @Option(help: "Flows: dropout rate in the transforms' networks while training, in [0, 1), or `auto`: train without; if that run overfits (early stopping found its best epoch within the first --patience epochs, so it spent as long getting worse as better), train again with dropout \(EstimatorTraining.automaticDropout) and keep the model with the better validation loss.")
    var dropout = "auto"
    @Option(help: ArgumentHelp("Device memory the training data may take, like 256MB or 2GB; a larger data set streams from the host in batches (float32 .npy files stay memory-mapped) with the same result. Default: half the device's memory (the host's for --device cpu).", valueName: "SIZE"))
    var maxDeviceMemory: String?

    /// --max-device-memory in bytes: a number with an optional B, KB, MB, GB or TB suffix
    /// (powers of 1024; KiB, MiB, GiB and TiB too).
    func deviceMemoryBudget() throws -> Int? {
        guard let text = maxDeviceMemory?.trimmingCharacters(in: .whitespaces).uppercased() else { return nil }
        let units: [(String, Double)] = [("TIB", 0x1p40), ("GIB", 0x1p30), ("MIB", 0x1p20), ("KIB", 0x1p10),
                                         ("TB", 0x1p40), ("GB", 0x1p30), ("MB", 0x1p20), ("KB", 0x1p10), ("B", 1)]
        let (suffix, scale) = units.first { text.hasSuffix($0.0) } ?? ("", 1)
        guard let number = Double(text.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), number >= 0,
              (number * scale).isFinite, number * scale < 0x1p62 else {
            throw ValidationError("--max-device-memory \(maxDeviceMemory!): expected a size like 256MB or 2GB")
        }
        return Int(number * scale)
    }

    /// The fixed rate, or nil for `auto`.
    func dropoutRate() throws -> Float? {
        if dropout == "auto" { return nil }
        guard let rate = Float(dropout), rate >= 0, rate < 1 else {
            throw ValidationError("--dropout \(dropout): expected `auto` or a rate in [0, 1)")
        }
        return rate
    }

    @OptionGroup var training: TrainingOptions

    func validate() throws {
        guard ["npe", "nle", "density"].contains(method) else { throw ValidationError("--method \(method): expected npe, nle or density") }
        guard Estimators.names.contains(resolvedEstimator) else {
            throw ValidationError("--estimator \(resolvedEstimator): expected one of \(Estimators.names.joined(separator: ", "))")
        }
        if method == "density" {
            guard Estimators.imageNames.contains(resolvedEstimator) else {
                throw ValidationError("--estimator \(resolvedEstimator): --method density models images with \(Estimators.imageNames.joined(separator: ", "))")
            }
            guard data != nil, theta == nil, x == nil else {
                throw ValidationError("--method density trains on the images of --data IMAGES.npy (no --theta or --x)")
            }
        } else if context != nil || levels != nil || channelsFirst || scales != nil {
            throw ValidationError("--context, --levels, --channels-first and --scales are for --method density")
        } else if Estimators.imageNames.contains(resolvedEstimator) {
            throw ValidationError("--estimator \(resolvedEstimator) models images: use it with --method density")
        }
        if let levels, levels < 2 { throw ValidationError("--levels \(levels): expected at least 2") }
        if let scales, scales < 1 { throw ValidationError("--scales \(scales): expected a positive count") }
        guard let transform = GlowCouplingTransform(rawValue: coupling) else {
            throw ValidationError("--coupling \(coupling): expected \(GlowCouplingTransform.allCases.map(\.rawValue).joined(separator: " or "))")
        }
        if transform != .affine && resolvedEstimator != "glow" {
            throw ValidationError("--coupling \(coupling) is for --estimator glow (realnvp-ms and the vector flows choose their own)")
        }
        guard ImagePreprocessing(rawValue: preprocessing) != nil else {
            throw ValidationError("--preprocessing \(preprocessing): expected \(ImagePreprocessing.allCases.map(\.rawValue).joined(separator: " or "))")
        }
        guard (theta == nil) == (x == nil) else { throw ValidationError("--theta and --x go together") }
        guard data == nil || theta == nil else { throw ValidationError("give --data or --theta/--x, not both") }
        guard numSimulations > 1 else { throw ValidationError("--num-simulations must be at least 2") }
        if let transforms, transforms <= 0 { throw ValidationError("--transforms \(transforms): expected a positive count") }
        guard components > 0 else { throw ValidationError("--components \(components): expected a positive count") }
        guard RationalQuadraticSpline.binRange.contains(bins) else {
            throw ValidationError("--bins \(bins): expected \(RationalQuadraticSpline.binRange.lowerBound)…\(RationalQuadraticSpline.binRange.upperBound)")
        }
        _ = try hiddenWidths()
        _ = try dropoutRate()
        _ = try deviceMemoryBudget()
        _ = try embeddingChoice()
    }

    func embeddingChoice() throws -> EstimatorTraining.Embedding {
        switch embedding {
        case "none": return .none
        case "auto": return .automatic
        case "cnn": return .cnn
        case "resnet": return .resnet
        case "mlp": return .mlp
        default:
            let widths = embedding.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !widths.isEmpty, widths.count == embedding.split(separator: ",").count, widths.allSatisfy({ $0 > 0 }) else {
                throw ValidationError("--embedding \(embedding): expected auto, cnn, resnet, mlp, none or positive MLP widths like 256,64")
            }
            return .widths(widths)
        }
    }

    func hiddenWidths() throws -> [Int] {
        let items = hidden.split(separator: ",", omittingEmptySubsequences: false)
        let widths = items.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !widths.isEmpty, widths.count == items.count, widths.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--hidden \(hidden): expected positive widths separated by commas, e.g. 64,64")
        }
        return widths
    }

    func run() throws {
        try checkRunDirectory(out, force: force, resume: training.resume)
        if training.resume && !FileManager.default.fileExists(atPath: URL(fileURLWithPath: out).appendingPathComponent("checkpoint.safetensors").path) {
            printError("notice: --resume: \(out) has no checkpoint.safetensors yet; training from the start")
        }
        let backend = try device.backend()
        let started = Date()
        if method == "density" { return try runDensity(backend: backend, started: started) }
        // Data.
        var thetaMatrix: Matrix, xMatrix: Matrix
        var simulator: (any Simulator)?
        if let theta, let x {
            thetaMatrix = try Matrix.loadVectors(theta, option: "--theta")
            xMatrix = try Matrix.load(x, option: "--x")
        } else if let data {
            thetaMatrix = try Matrix.loadVectors(data + ":theta", option: "--data")
            xMatrix = try Matrix.load(data + ":x", option: "--data")
        } else {
            let sim = try Simulators.named(task)
            simulator = sim
            if !training.quiet { printError("simulating \(numSimulations) pairs of \(sim.name)…") }
            let (t, xs) = try sim.sampleAndSimulate(count: numSimulations, seed: training.seed, backend: backend)
            thetaMatrix = Matrix(values: t, rows: numSimulations, cols: sim.parameterDimension, shape: [numSimulations, sim.parameterDimension])
            xMatrix = Matrix(values: xs, rows: numSimulations, cols: sim.observationDimension, shape: [numSimulations] + sim.observationShape)
        }
        guard thetaMatrix.rows == xMatrix.rows else {
            throw DataError("θ has \(thetaMatrix.rows) rows but x has \(xMatrix.rows); each row of θ must pair with a row of x")
        }
        // Prior.
        let resolvedPrior: Prior, priorSource: String
        if !prior.isEmpty {
            resolvedPrior = try Prior.parse(prior, dimension: thetaMatrix.cols, option: "--prior")
            priorSource = "--prior"
            let (inside, firstOutside) = resolvedPrior.coverage(of: thetaMatrix.data)
            if inside == 0 {
                throw DataError("--prior \(prior.joined(separator: " ")): excludes every one of the \(thetaMatrix.rows) training θ (row 0 is \(thetaMatrix.data.rows(0..<1))); give the prior the simulations were drawn from")
            } else if let firstOutside, !training.quiet {
                printError(String(format: "notice: --prior excludes %d of the %d training θ (the first is row %d); samples there will be rejected",
                                  thetaMatrix.rows - inside, thetaMatrix.rows, firstOutside))
            }
        } else if let simulator {
            resolvedPrior = simulator.prior
            priorSource = "task \(simulator.name)"
        } else {
            resolvedPrior = try Prior.inferred(fromTheta: thetaMatrix.values, dimension: thetaMatrix.cols)
            priorSource = "inferred from θ"
            if !training.quiet { printError("notice: no --prior given; using \(resolvedPrior) inferred from the training θ") }
        }
        // Estimator: the library's policy (`EstimatorTraining`), set from the flags.
        let widths = try hiddenWidths()
        var policy = EstimatorTraining()
        policy.method = InferenceMethod(rawValue: method)!
        policy.estimator = resolvedEstimator
        policy.options = EstimatorOptions(hidden: widths, transforms: transforms ?? 5, bins: bins, components: components,
                                          seed: training.seed)
        policy.options.conditionalAffine = conditionalAffine
        policy.embedding = try embeddingChoice()
        policy.dropout = try dropoutRate()
        policy.dataBudget = try deviceMemoryBudget()
        try training.apply(to: &policy)
        let directory = try makeDirectory(out)
        let configuration = policy.configuration(rows: thetaMatrix.rows)
        var progress = ProgressBar(total: configuration.epochs, quiet: training.quiet)
        if !training.quiet {
            let dataBytes = (thetaMatrix.data.count + xMatrix.data.count) * 4
            let streams = Trainer.streams(byteCount: dataBytes, budget: policy.dataBudget, backend: backend)
            printError("training \(method) with \(resolvedEstimator) on \(backend.kind) (\(backend.deviceName)): \(thetaMatrix.rows) pairs, θ \(thetaMatrix.cols)-d, x \(xMatrix.cols)-d, batch \(configuration.batchSize)"
                       + (streams ? String(format: "; streaming the %.1f MB of data from the host", Double(dataBytes) / 1e6) : ""))
        }
        let trainingStarted = Date()
        var events = EstimatorTraining.Events()
        var attempt = 0
        events.epoch = { index, record in
            if index != attempt {
                attempt = index
                progress = ProgressBar(total: configuration.epochs, quiet: training.quiet)
            }
            progress.update(record)
        }
        events.notice = { progress.finish($0) }
        let xRowShape = Array(xMatrix.shape.dropFirst()).isEmpty ? [1] : Array(xMatrix.shape.dropFirst())
        let result = try policy.train(theta: thetaMatrix.data, x: xMatrix.data, xShape: xRowShape, backend: backend,
                                      checkpointDirectory: directory, resume: training.resume, events: events)
        let (model, history) = (result.estimator, result.history)
        let isFlow = FlowConfiguration.Kind(rawValue: resolvedEstimator) != nil
        let trainingSeconds = Date().timeIntervalSince(trainingStarted)
        try model.save(to: directory.appendingPathComponent("model.safetensors"))

        let best = history.map(\.validationLoss).min()
        var run = RunConfiguration(
            method: method, estimator: resolvedEstimator, task: simulator?.name, thetaFile: theta ?? data, xFile: x ?? data,
            simulations: thetaMatrix.rows,
            parameterNames: simulator?.parameterNames ?? (0..<thetaMatrix.cols).map { "θ\($0 + 1)" },
            thetaDimension: thetaMatrix.cols, observationShape: xRowShape,
            prior: resolvedPrior, priorSource: priorSource, device: "\(backend.kind): \(backend.deviceName)",
            epochs: configuration.epochs, batchSize: configuration.batchSize, learningRate: configuration.learningRate,
            validationFraction: configuration.validationFraction, patience: configuration.patience, seed: configuration.seed,
            hidden: widths, transforms: transforms ?? 5)
        run.weightDecay = configuration.weightDecay
        run.schedule = training.schedule
        run.averaging = configuration.averagingEpochs ?? 0
        if isFlow {
            run.dropout = result.dropout
            run.dropoutChoice = result.dropoutChoice
            run.conditionalAffine = conditionalAffine
        }
        run.embedding = result.embedding
        run.trainingSeconds = trainingSeconds
        run.epochsRun = history.count
        run.bestValidationLoss = best
        try writeJSON(run, to: directory.appendingPathComponent("config.json"))
        try writeHistory(history, to: directory)
        progress.finish(String(format: "trained %d epochs in %.1f s (%.1f s total); best validation loss %.4f; wrote ",
                               history.count, trainingSeconds, Date().timeIntervalSince(started), best ?? .nan)
                        + directory.path)
    }

    /// RUN/history.csv and RUN/loss.svg, the losses in `unit` (nats, or bits/dim for images).
    func writeHistory(_ history: [EpochRecord], to directory: URL, scale: Double = 1, unit: String = "loss") throws {
        var csv = "epoch,training_loss,validation_loss,learning_rate,seconds\n"
        for r in history { csv += "\(r.epoch),\(r.trainingLoss * scale),\(r.validationLoss * scale),\(r.learningRate),\(r.seconds)\n" }
        try atomicWrite(Data(csv.utf8), to: directory.appendingPathComponent("history.csv"))
        if !history.isEmpty {
            let epochs = history.map { Double($0.epoch) }
            try Plots.lossCurves(epochs: epochs, training: history.map { $0.trainingLoss * scale }, validationEpochs: epochs,
                                 validation: history.map { $0.validationLoss * scale }, options: LossPlotOptions(yLabel: unit))
                .write(to: directory.appendingPathComponent("loss.svg"))
        }
    }
}
