import ArgumentParser
import Foundation
import SBIData
import SBIPlots
import SBIBackend
import SBIInference
import SBIModels

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw posterior samples for one or more observations from a trained run, or images from a density model.",
        discussion: """
            NPE draws from q(θ|x_o) and rejects samples outside the prior's support (the acceptance \
            rate is reported); NLE runs batched slice-sampling chains on q(x_o|θ)·p(θ) and reports R̂. \
            With one observation the output is num×d; with R observations R×num×d. \
            --method likelihood --task T samples the exact posterior of a built-in task whose \
            likelihood is known (galaxy: Gaussian sky noise around the render; gaussian_linear) by the \
            same chains, with no trained model: the reference for judging NPE and NLE on images. \
            A density model (train --method density) draws --num images (per --context row) at \
            --temperature, writes them as N×H×W(×C) uint8 to --out and a PNG grid beside it.
            """)

    @OptionGroup var device: DeviceOptions
    @Option(help: "A run directory written by `sbi-gpu train`.") var model: String?
    @Option(help: "`likelihood`: no --model; sample the exact posterior of --task's known likelihood.") var method: String?
    @Option(help: "--method likelihood: a task with a known likelihood (galaxy, gaussian_linear).") var task: String?
    @Option(help: "Observation(s): a .npy with one row (or image) per observation.") var observation: String?
    @Option(help: "Density models: the context of the images (one row, or one row per group of --num).") var context: String?
    @Option(parsing: .unconditional, help: "Density models: scale of the base noise (Glow's temperature; below 1 gives smoother, likelier images).") var temperature: Float = 1
    @Option(parsing: .unconditional, help: "Samples per observation.") var num = 10_000
    @Option(help: "Output .npy file.") var out: String
    @Flag(help: "Replace --out if it exists.") var force = false
    @Option(parsing: .unconditional, help: "Seed.") var seed: UInt64 = 0
    @Option(parsing: .unconditional, help: "NLE: parallel chains.") var chains = 100
    @Option(parsing: .unconditional, help: "NLE: warm-up iterations per chain.") var warmup = 200
    @Option(parsing: .unconditional, help: "NLE: keep every n-th iteration.") var thin = 1

    func validate() throws {
        guard num > 0 else { throw ValidationError("--num \(num): expected a positive count") }
        guard thin > 0 else { throw ValidationError("--thin \(thin): expected a positive count") }
        guard chains > 1 else { throw ValidationError("--chains \(chains): expected at least 2") }
        guard warmup >= 0 else { throw ValidationError("--warmup \(warmup): expected zero or more") }
        guard temperature > 0, temperature.isFinite else { throw ValidationError("--temperature must be positive") }
        if let method {
            guard method == "likelihood" else { throw ValidationError("--method \(method): expected likelihood (a trained model's method comes from its run)") }
            guard model == nil else { throw ValidationError("--method likelihood samples a task's known likelihood; drop --model") }
            guard task != nil, observation != nil else { throw ValidationError("--method likelihood needs --task and --observation") }
        } else {
            guard model != nil else { throw ValidationError("give --model RUN, or --method likelihood --task T") }
            guard task == nil else { throw ValidationError("--task goes with --method likelihood") }
        }
    }

    func run() throws {
        try checkOutputFile(out, force: force)
        let backend = try device.backend()
        guard let model else { return try runLikelihood(backend: backend) }
        let (run, directory) = try RunConfiguration.load(run: model)
        if run.method == "density" { return try runDensity(run, directory: directory, backend: backend) }
        guard let observation else { throw ValidationError("sample from a \(run.method) model needs --observation") }
        let estimator = try run.loadEstimator(from: directory, backend: backend)
        let observations = try Matrix.loadObservations(observation, option: "--observation", shape: run.observationShape)
        let d = run.thetaDimension
        try requireMemory(for: [num, observations.rows, d], flag: "--num \(num)", what: "posterior samples")
        var samples: [Float] = []
        let started = Date()
        if run.method == "npe" {
            let (drawn, acceptance) = try NPE(estimator: estimator, prior: try run.requirePrior("sample"))
                .sample(num, observations: observations.values, seed: seed)
            samples = drawn
            for (i, rate) in acceptance.enumerated() where rate < 0.999 {
                printError(String(format: "observation %d: %.1f%% of q's samples fell inside the prior's support", i, 100 * rate))
            }
        } else {
            let nle = NLE(estimator: estimator, prior: try run.requirePrior("sample"))
            samples = try sampleByChains(observations, nle.sample)
        }
        try write(samples, observations: observations.rows, dimension: d, started: started)
    }

    /// The exact posterior of a task with a known likelihood, by the same chains as NLE.
    func runLikelihood(backend: Backend) throws {
        guard let task, let observation else { return }
        guard let simulator = try Simulators.named(task) as? any ExplicitLikelihood else {
            let known = Simulators.all.filter { $0 is any ExplicitLikelihood }.map(\.name)
            throw ValidationError("--task \(task): its likelihood is not known in closed form; --method likelihood takes \(known.joined(separator: ", "))")
        }
        let observations = try Matrix.loadObservations(observation, option: "--observation", shape: simulator.observationShape)
        let d = simulator.parameterDimension
        try requireMemory(for: [num, observations.rows, d], flag: "--num \(num)", what: "posterior samples")
        let posterior = LikelihoodPosterior(simulator: simulator, backend: backend)
        let started = Date()
        let samples = try sampleByChains(observations, posterior.sample)
        try write(samples, observations: observations.rows, dimension: d, started: started)
    }

    /// Each observation's --num samples by slice chains (`sample(count, observation, sampler)`:
    /// NLE's or the exact likelihood's), one report line each.
    func sampleByChains(_ observations: Matrix,
                        _ sample: (Int, [Float], SliceSampler) throws -> SliceSampler.Result) throws -> [Float] {
        var samples: [Float] = []
        let values = observations.values  // a copy when the file is mapped: once, not per observation
        for r in 0..<observations.rows {
            let row = Array(values[(r * observations.cols)..<((r + 1) * observations.cols)])
            let result = try sample(num, row, SliceSampler(chains: chains, warmup: warmup, thinning: thin, seed: seed &+ UInt64(r)))
            samples += result.samples
            report(result, observation: r)
        }
        return samples
    }

    /// One line per observation: the chains' worst R̂ and effective sample size.
    func report(_ result: SliceSampler.Result, observation r: Int) {
        let worst = result.rHat.max() ?? .nan, fewest = result.effectiveSampleSize.min() ?? .nan
        printError(String(format: "observation %d: max R̂ %.3f, min effective sample size %.0f of %d draws, over %d chains (%d batched evaluations)",
                          r, worst, fewest, chains * ((num + chains - 1) / chains), chains, result.evaluations)
                   + (worst > 1.05 ? " — R̂ above 1.05: raise --warmup, or the posterior has modes that chains do not cross" : ""))
    }

    func write(_ samples: [Float], observations: Int, dimension d: Int, started: Date) throws {
        let shape = observations == 1 ? [num, d] : [observations, num, d]
        try NumPy.write(try NumPyArray(floats: samples, shape: shape), to: URL(fileURLWithPath: out))
        printError(String(format: "wrote %d samples per observation to ", num) + out
                   + String(format: " in %.2f s", Date().timeIntervalSince(started)))
    }

    /// Images from a density model: --out gets them as uint8 (levels ≤ 256) of N×H×W(×C), and a
    /// PNG grid of them is written beside it.
    func runDensity(_ run: RunConfiguration, directory: URL, backend: Backend) throws {
        let shape = run.observationShape, levels = run.levels ?? 256
        var contextValues: [Float]?, groups = 1
        if run.thetaDimension > 0 {
            guard let context else { throw ValidationError("this model is conditional: give --context with \(run.thetaDimension) values per row") }
            let c = try Matrix.loadVectors(context, option: "--context")
            guard c.cols == run.thetaDimension else {
                throw DataError("--context \(context): rows of \(c.cols) values; the model's context has \(run.thetaDimension)")
            }
            (contextValues, groups) = (c.values, c.rows)
        } else if context != nil {
            throw ValidationError("--context: this model is unconditional")
        }
        try requireMemory(for: [num, groups, shape.reduce(1, *)], flag: "--num \(num)", what: "images")
        let outURL = URL(fileURLWithPath: out)
        let gridURL = outURL.deletingPathExtension().appendingPathExtension("png")
        try checkOutputFile(gridURL.path, flag: "--out's PNG grid", force: force)
        let started = Date()
        guard let estimator = try run.loadEstimator(from: directory, backend: backend)
            as? NeuralEstimator else { throw ValidationError("--model \(model ?? ""): not a neural density model") }
        let (continuous, _) = try estimator.sampleWithLogProb(num, context: contextValues, seed: seed, temperature: temperature)
        // Back to the discrete levels: the bin each dequantized value falls in.
        let pixels = continuous.map { max(0, min(Float(levels - 1), $0.rounded(.down))) }
        let count = num * groups
        let outShape = [count] + (shape.last == 1 ? Array(shape.dropLast()) : shape)
        let array = levels <= 256 ? try NumPyArray(uint8s: pixels.map { UInt8($0) }, shape: outShape)
                                  : try NumPyArray(floats: pixels, shape: outShape)
        try NumPy.write(array, to: outURL)
        let (h, w, c) = (shape[0], shape[1], shape[2])
        let scale = max(1, 64 / max(h, w))
        try atomicWrite(Plots.imageGrid(pixels, count: min(count, 256), height: h, width: w, channels: c,
                                        maxValue: Float(levels - 1), scale: scale), to: gridURL)
        printError(String(format: "wrote %d images (temperature %.2f) to %@ and a grid to %@ in %.2f s",
                          count, temperature, out, gridURL.path, Date().timeIntervalSince(started)))
    }
}
