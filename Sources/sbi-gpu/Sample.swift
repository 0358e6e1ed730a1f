import ArgumentParser
import Foundation
import SBIData
import SBIBackend
import SBIInference
import SBIModels

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw posterior samples for one or more observations from a trained run.",
        discussion: """
            NPE draws from q(θ|x_o) and rejects samples outside the prior's support (the acceptance \
            rate is reported); NLE runs batched slice-sampling chains on q(x_o|θ)·p(θ) and reports R̂. \
            With one observation the output is num×d; with R observations R×num×d.
            """)

    @OptionGroup var device: DeviceOptions
    @Option(help: "A run directory written by `sbi-gpu train`.") var model: String
    @Option(help: "Observation(s): a .npy with one row (or image) per observation.") var observation: String
    @Option(parsing: .unconditional, help: "Samples per observation.") var num = 10_000
    @Option(help: "Output .npy file.") var out: String
    @Option(parsing: .unconditional, help: "Seed.") var seed: UInt64 = 0
    @Option(parsing: .unconditional, help: "NLE: parallel chains.") var chains = 100
    @Option(parsing: .unconditional, help: "NLE: warm-up iterations per chain.") var warmup = 200
    @Option(parsing: .unconditional, help: "NLE: keep every n-th iteration.") var thin = 1

    func validate() throws {
        guard num > 0, chains > 1, warmup >= 0, thin > 0 else {
            throw ValidationError("--num and --thin must be positive, --chains at least 2, --warmup non-negative")
        }
    }

    func run() throws {
        let (run, directory) = try RunConfiguration.load(run: model)
        let backend = try device.backend()
        let estimator = try Estimators.load(from: directory.appendingPathComponent("model.safetensors"), backend: backend)
        let observations = try Matrix.load(observation, option: "--observation")
        let expected = run.observationShape.reduce(1, *)
        guard observations.cols == expected else {
            throw ValidationError("--observation \(observation): rows have \(observations.cols) values; the model was trained on x of shape \(run.observationShape)")
        }
        let d = run.thetaDimension
        try requireMemory(for: [num, observations.rows, d], flag: "--num \(num)", what: "posterior samples")
        var samples: [Float] = []
        let started = Date()
        if run.method == "npe" {
            let (drawn, acceptance) = try NPE(estimator: estimator, prior: run.prior)
                .sample(num, observations: observations.values, seed: seed)
            samples = drawn
            for (i, rate) in acceptance.enumerated() where rate < 0.999 {
                printError(String(format: "observation %d: %.1f%% of q's samples fell inside the prior's support", i, 100 * rate))
            }
        } else {
            let nle = NLE(estimator: estimator, prior: run.prior)
            for r in 0..<observations.rows {
                let row = Array(observations.values[(r * observations.cols)..<((r + 1) * observations.cols)])
                let result = try nle.sample(num, observation: row, sampler: SliceSampler(
                    chains: chains, warmup: warmup, thinning: thin, seed: seed &+ UInt64(r)))
                samples += result.samples
                let worst = result.rHat.max() ?? .nan
                printError(String(format: "observation %d: max R̂ %.3f over %d chains (%d batched evaluations)",
                                  r, worst, chains, result.evaluations) + (worst > 1.05 ? " — above 1.05: raise --warmup, or the posterior has modes that chains do not cross" : ""))
            }
        }
        let shape = observations.rows == 1 ? [num, d] : [observations.rows, num, d]
        try NumPy.write(try NumPyArray(floats: samples, shape: shape), to: URL(fileURLWithPath: out))
        printError(String(format: "wrote %d samples per observation to ", num) + out
                   + String(format: " in %.2f s", Date().timeIntervalSince(started)))
    }
}
