import ArgumentParser
import Foundation
import SBIPlots
import SBIGraph
import SBIInference

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Plot samples, loss curves and SBC ranks as SVG or PNG (by the --out extension).",
        subcommands: [Corner.self, Loss.self, SBCRanks.self])

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
