import ArgumentParser
import Foundation
import SBIPlots
import SBIData
import SBIGraph
import SBIInference

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Plot samples, loss curves and SBC ranks as SVG or PNG (by the --out extension).",
        subcommands: [Corner.self, Loss.self, SBCRanks.self, Predictive.self])

    struct Corner: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Corner plot of samples (N×d .npy), optionally over reference samples.")
        @Argument(help: "Samples (.npy, N×d).") var samples: String
        @Option(help: "Reference samples drawn in a second colour (.npy, M×d).") var reference: String?
        @Option(help: "Parameter labels, comma-separated.") var labels: String?
        @Option(help: "Output .svg or .png.") var out: String

        func run() throws {
            let s = try Matrix.loadVectors(samples, option: "samples")
            let r = try reference.map { try Matrix.loadVectors($0, option: "--reference") }
            if let r, r.cols != s.cols {
                throw DataError("--reference \(reference!): \(r.cols) columns, samples have \(s.cols)")
            }
            var options = CornerPlotOptions()
            if let labels { options.labels = labels.split(separator: ",").map(String.init) }
            try Plots.corner(samples: s.values, dimension: s.cols, reference: r?.values, options: options).write(to: out)
            printError("wrote \(out)")
        }
    }

    struct Predictive: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Posterior predictive check of an image task: the observation beside images simulated at posterior draws, and the samples' corner plot (PNG).")
        @OptionGroup var device: DeviceOptions
        @Option(help: "The built-in task that simulated the observation (galaxy, grf).") var task: String
        @Option(help: "The observation (.npy, one H×W or H×W×C image).") var observation: String
        @Option(help: "Posterior samples for it (.npy, N×d; from `sbi-gpu sample`).") var samples: String
        @Option(parsing: .unconditional, help: "Images to simulate, at draws spread evenly over the samples.") var num = 15
        @Option(parsing: .unconditional, help: "Seed of the simulations' noise.") var seed: UInt64 = 0
        @Option(help: "Output .png.") var out: String

        func validate() throws {
            guard num > 0 else { throw ValidationError("--num \(num): expected a positive count") }
            guard out.lowercased().hasSuffix(".png") else { throw ValidationError("--out \(out): expected a .png file") }
        }

        func run() throws {
            let simulator = try Simulators.named(task)
            let shape = simulator.observationShape
            guard shape.count >= 2 else { throw ValidationError("--task \(task): its observations are vectors, not images; use `plot corner`") }
            let o = try Matrix.loadObservations(observation, option: "--observation", shape: shape)
            guard o.rows == 1 else { throw DataError("--observation \(observation): \(o.rows) observations; expected one image") }
            let s = try Matrix.loadVectors(samples, option: "--samples")
            guard s.cols == simulator.parameterDimension else {
                throw DataError("--samples \(samples): \(s.cols) columns; \(task) has \(simulator.parameterDimension) parameters (\(simulator.parameterNames.joined(separator: ", ")))")
            }
            let count = min(num, s.rows), values = s.values, d = s.cols
            // Draws spread evenly over the samples (chains interleave, so neighbours are other chains').
            let rows = (0..<count).map { $0 * s.rows / count }
            var draws: [Float] = []
            for row in rows { draws += values[(row * d)..<((row + 1) * d)] }
            if let bad = (0..<count).first(where: { simulator.prior.logDensity(draws[($0 * d)..<(($0 + 1) * d)]) == -.infinity }) {
                throw DataError("--samples \(samples): row \(rows[bad]) lies outside \(task)'s prior, where it cannot be simulated")
            }
            let predictions = try simulator.simulate(theta: draws, rows: count, seed: seed, backend: try device.backend())
            var options = CornerPlotOptions()
            options.labels = simulator.parameterNames
            let png = try Plots.posteriorPredictive(
                observation: o.values, predictions: predictions, count: count, height: shape[0], width: shape[1],
                channels: shape.count > 2 ? shape[2] : 1, samples: values, dimension: d, options: options)
            try atomicWrite(png, to: URL(fileURLWithPath: out))
            printError("wrote \(out): the observation (framed) and \(count) posterior predictive images beside the corner plot")
        }
    }

    struct Loss: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Training and validation loss of a run (RUN/history.csv).")
        @Argument(help: "A run directory written by `sbi-gpu train`.") var directory: String
        @Option(help: "Output .svg or .png.") var out: String

        func run() throws {
            let path = URL(fileURLWithPath: directory).appendingPathComponent("history.csv").path
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw MissingInput("\(path) is missing; point at a directory written by `sbi-gpu train`")
            }
            let rows = text.split(separator: "\n").dropFirst().map { $0.split(separator: ",").compactMap { Double($0) } }
            guard rows.allSatisfy({ $0.count >= 3 }) else { throw DataError("\(path): expected epoch,training_loss,validation_loss,… rows") }
            try Plots.lossCurves(training: rows.map { $0[1] }, validation: rows.map { $0[2] }).write(to: out)
            printError("wrote \(out)")
        }
    }

    struct SBCRanks: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "sbc", abstract: "SBC rank histograms (sbc_ranks.npy from `sbi-gpu diagnose`).")
        @Argument(help: "Ranks (.npy, N×d integers).") var ranks: String
        @Option(parsing: .unconditional, help: "Posterior samples each rank was taken among.") var posteriorSamples: Int
        @Option(help: "Output .svg or .png.") var out: String

        func run() throws {
            let m = try Matrix.loadVectors(ranks, option: "ranks")
            try Plots.sbcRanks(ranks: m.values.map { Int($0) }, dimension: m.cols, posteriorSamples: posteriorSamples).write(to: out)
            printError("wrote \(out)")
        }
    }
}
