import ArgumentParser
import Foundation
import SBIData
import SBIPlots
import SBIBackend
import SBIInference
import SBIModels

struct Diagnose: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Calibration checks of a trained run on held-out simulations: SBC, expected coverage, TARP.",
        discussion: """
            Held-out pairs come from --theta/--x, or are simulated from the run's task. For each, \
            --num-samples posterior samples are drawn (NPE: from q; NLE: by slice sampling, slower). \
            Writes OUT/diagnostics.json, OUT/sbc_ranks.npy, OUT/sbc.svg and OUT/coverage.svg.
            """)

    @OptionGroup var device: DeviceOptions
    @Option(help: "A run directory written by `sbi-gpu train`.") var model: String
    @Option(help: "Held-out θ (.npy).") var theta: String?
    @Option(help: "Held-out x (.npy).") var x: String?
    @Option(parsing: .unconditional, help: "Held-out simulations to draw from the run's task when no files are given.") var numSimulations = 200
    @Option(parsing: .unconditional, help: "Posterior samples per held-out observation.") var numSamples = 1000
    @Option(parsing: .unconditional, help: "Seed.") var seed: UInt64 = 1
    @Option(help: "Output directory.") var out: String

    func validate() throws {
        guard numSimulations > 0 else { throw ValidationError("--num-simulations \(numSimulations): expected a positive count") }
        guard numSamples > 0 else { throw ValidationError("--num-samples \(numSamples): expected a positive count") }
        guard (theta == nil) == (x == nil) else { throw ValidationError("--theta and --x go together") }
    }

    func run() throws {
        let (run, directory) = try RunConfiguration.load(run: model)
        let backend = try device.backend()
        let estimator = try run.loadEstimator(from: directory, backend: backend)
        let heldOutTheta: [Float], heldOutX: [Float]
        if let theta, let x {
            let t = try Matrix.loadVectors(theta, option: "--theta")
            let xs = try Matrix.loadObservations(x, option: "--x", shape: run.observationShape)
            guard t.rows == xs.rows else { throw DataError("--theta has \(t.rows) rows, --x has \(xs.rows)") }
            (heldOutTheta, heldOutX) = (t.values, xs.values)
        } else {
            guard let task = run.task else {
                throw ValidationError("the run was trained on files; give held-out --theta and --x")
            }
            // A seed stream the training simulations did not use.
            (heldOutTheta, heldOutX) = try Simulators.named(task)
                .sampleAndSimulate(count: numSimulations, seed: seed &+ 0xD1A6_0000, backend: backend)
        }
        let d = run.thetaDimension, n = heldOutTheta.count / d
        printError("diagnosing \(run.method) on \(n) held-out simulations with \(numSamples) samples each…")
        let samples: [Float]
        if run.method == "npe" {
            samples = try estimator.sample(numSamples, context: heldOutX, seed: seed)
        } else {
            let nle = NLE(estimator: estimator, prior: try run.requirePrior("diagnose"))
            let width = heldOutX.count / n
            var all: [Float] = []
            for i in 0..<n {
                all += try nle.sample(numSamples, observation: Array(heldOutX[(i * width)..<((i + 1) * width)]),
                                      sampler: SliceSampler(chains: 20, warmup: 100, seed: seed &+ UInt64(i))).samples
            }
            samples = all
        }
        let sbc = try SBC.run(theta: heldOutTheta, posteriorSamples: samples, dimension: d, samplesPerPosterior: numSamples, seed: seed)
        let tarp = try TARP.run(theta: heldOutTheta, posteriorSamples: samples, dimension: d, samplesPerPosterior: numSamples, seed: seed)
        let coverage: CoverageResult? = run.method == "npe"
            ? try ExpectedCoverage.run(estimator: estimator, theta: heldOutTheta, observations: heldOutX,
                                       samplesPerPosterior: numSamples, seed: seed)
            : nil
        let outDirectory = try makeDirectory(out)
        try NumPy.write(try NumPyArray(int32s: sbc.ranks.map(Int32.init), shape: [n, d]),
                        to: outDirectory.appendingPathComponent("sbc_ranks.npy"))
        try Plots.sbcRanks(ranks: sbc.ranks, dimension: d, posteriorSamples: numSamples)
            .write(to: outDirectory.appendingPathComponent("sbc.svg"))
        if let coverage {
            try Plots.coverage(levels: coverage.levels, empirical: [coverage.coverage])
                .write(to: outDirectory.appendingPathComponent("coverage.svg"))
        }
        struct Report: Encodable {
            let simulations: Int, posteriorSamples: Int, parameters: [String]
            let sbcChiSquarePValues: [Double], sbcKSPValues: [Double]
            let tarpATC: Double, tarpKSPValue: Double
            let coverageLevels: [Double]?, coverage: [Double]?
        }
        try writeJSON(Report(simulations: n, posteriorSamples: numSamples, parameters: run.parameterNames,
                             sbcChiSquarePValues: sbc.chiSquarePValues, sbcKSPValues: sbc.ksPValues,
                             tarpATC: tarp.atc, tarpKSPValue: tarp.ksPValue,
                             coverageLevels: coverage?.levels, coverage: coverage?.coverage),
                      to: outDirectory.appendingPathComponent("diagnostics.json"))
        for j in 0..<d {
            print(String(format: "SBC %@: χ² p = %.3f, KS p = %.3f", run.parameterNames[j], sbc.chiSquarePValues[j], sbc.ksPValues[j]))
        }
        print(String(format: "TARP: ATC = %.3f, KS p = %.3f", tarp.atc, tarp.ksPValue))
        if let coverage { print(String(format: "expected coverage: largest deviation from the diagonal %.3f", coverage.maximumDeviation)) }
        print("wrote \(outDirectory.path)")
    }
}
