import ArgumentParser
import Foundation
import SBIData
import SBIBackend
import SBIInference
import SBIModels

struct LogProb: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log-prob",
        abstract: "Evaluate a trained estimator: log q(θ|x) for NPE, log q(x|θ) for NLE, row by row; bits/dim of images for a density model.",
        discussion: """
            θ and the observations have the same number of rows, or one observation row is used for every θ. \
            A density model (train --method density) takes --data IMAGES.npy (and --context if it was trained \
            with one), prints the mean bits/dim and writes each image's bits/dim to --out.
            """)

    @OptionGroup var device: DeviceOptions
    @Option(help: "A run directory written by `sbi-gpu train`.") var model: String
    @Option(help: "Parameters θ (.npy, rows).") var theta: String?
    @Option(help: "Observations x (.npy, rows or one row).") var observation: String?
    @Option(help: "Density models: the images to evaluate (.npy, as for train --data).") var data: String?
    @Option(help: "Density models: the context of each image (or one row for all).") var context: String?
    @Flag(help: "Density models: the images are N×C×H×W.") var channelsFirst = false
    @Option(help: "Output .npy of log densities (one per row), or of bits/dim for a density model.") var out: String
    @Flag(help: "Replace --out if it exists.") var force = false

    func run() throws {
        try checkOutputFile(out, force: force)
        let (run, directory) = try RunConfiguration.load(run: model)
        let backend = try device.backend()
        if run.method == "density" { return try runDensity(run, directory: directory, backend: backend) }
        guard let theta, let observation else {
            throw ValidationError("log-prob of a \(run.method) model needs --theta and --observation")
        }
        let estimator = try run.loadEstimator(from: directory, backend: backend)
        let t = try Matrix.loadVectors(theta, option: "--theta"), x = try Matrix.load(observation, option: "--observation")
        guard t.cols == run.thetaDimension else {
            throw DataError("--theta \(theta): rows have \(t.cols) values; the model's θ has \(run.thetaDimension)")
        }
        guard x.rows == t.rows || x.rows == 1 else {
            throw DataError("--observation \(observation) has \(x.rows) rows; expected \(t.rows) (one per θ) or 1")
        }
        let values = run.method == "npe" ? try estimator.logProb(t.values, context: x.values)
            : try estimator.logProb(x.rows == 1 ? Array([[Float]](repeating: x.values, count: t.rows).joined()) : x.values,
                                    context: t.values)
        try NumPy.write(try NumPyArray(floats: values, shape: [t.rows]), to: URL(fileURLWithPath: out))
        printError("wrote \(values.count) log densities to \(out)")
    }

    /// Bits/dim of each image of --data under a density model.
    func runDensity(_ run: RunConfiguration, directory: URL, backend: Backend) throws {
        guard let data else { throw ValidationError("log-prob of a density model needs --data IMAGES.npy") }
        let (images, _) = try loadImages(data, option: "--data", channelsFirst: channelsFirst, levels: run.levels)
        guard images.shape == run.observationShape else {
            throw DataError("--data \(data): images of \(images.shape.map(String.init).joined(separator: "×")); the model was trained on \(run.observationShape.map(String.init).joined(separator: "×")) (height×width×channels)")
        }
        var contextValues: [Float]?
        if run.thetaDimension > 0 {
            guard let context else { throw ValidationError("this model is conditional: give --context with \(run.thetaDimension) values per image") }
            let c = try Matrix.loadVectors(context, option: "--context")
            guard c.cols == run.thetaDimension, c.rows == images.count || c.rows == 1 else {
                throw DataError("--context \(context): \(c.rows) rows of \(c.cols); expected \(images.count) (or 1) rows of \(run.thetaDimension)")
            }
            contextValues = c.values
        } else if context != nil {
            throw ValidationError("--context: this model is unconditional")
        }
        let estimator = try run.loadEstimator(from: directory, backend: backend)
        let logq = try estimator.logProb(images.pixels.array, context: contextValues)
        let bits = logq.map { Float(BitsPerDimension.from(logProb: Double($0), dimensions: images.pixels.cols)) }
        try NumPy.write(try NumPyArray(floats: bits, shape: [bits.count]), to: URL(fileURLWithPath: out))
        let mean = bits.reduce(0) { $0 + Double($1) } / Double(bits.count)
        print(String(format: "%.4f", mean))
        printError(String(format: "mean %.4f bits/dim over %d images; wrote each image's bits/dim to ", mean, bits.count) + out)
    }
}
