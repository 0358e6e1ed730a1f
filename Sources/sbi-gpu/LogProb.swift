import ArgumentParser
import Foundation
import SBIData
import SBIBackend
import SBIInference
import SBIModels

struct LogProb: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log-prob",
        abstract: "Evaluate a trained estimator: log q(θ|x) for NPE, log q(x|θ) for NLE, row by row.",
        discussion: "θ and the observations have the same number of rows, or one observation row is used for every θ.")

    @OptionGroup var device: DeviceOptions
    @Option(help: "A run directory written by `sbi-gpu train`.") var model: String
    @Option(help: "Parameters θ (.npy, rows).") var theta: String
    @Option(help: "Observations x (.npy, rows or one row).") var observation: String
    @Option(help: "Output .npy of log densities (one per row).") var out: String

    func run() throws {
        let (run, directory) = try RunConfiguration.load(run: model)
        let backend = try device.backend()
        let estimator = try Estimators.load(from: directory.appendingPathComponent("model.safetensors"), backend: backend)
        let t = try Matrix.load(theta, option: "--theta"), x = try Matrix.load(observation, option: "--observation")
        guard t.cols == run.thetaDimension else {
            throw ValidationError("--theta \(theta): rows have \(t.cols) values; the model's θ has \(run.thetaDimension)")
        }
        guard x.rows == t.rows || x.rows == 1 else {
            throw ValidationError("--observation \(observation) has \(x.rows) rows; expected \(t.rows) (one per θ) or 1")
        }
        let values = run.method == "npe" ? try estimator.logProb(t.values, context: x.values)
            : try estimator.logProb(x.rows == 1 ? Array([[Float]](repeating: x.values, count: t.rows).joined()) : x.values,
                                    context: t.values)
        try NumPy.write(try NumPyArray(floats: values, shape: [t.rows]), to: URL(fileURLWithPath: out))
        printError("wrote \(values.count) log densities to \(out)")
    }
}
