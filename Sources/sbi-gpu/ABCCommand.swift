import ArgumentParser
import Foundation
import SBIData
import SBIInference

struct ABC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "abc",
        abstract: "Rejection ABC: keep the θ of the simulations closest to the observation.",
        discussion: "Distances are Euclidean after z-scoring each feature of x by its spread over the simulations. Give --theta/--x, or --task to simulate --num-simulations pairs.")

    @OptionGroup var device: DeviceOptions
    @Option(help: "Parameters θ (.npy).") var theta: String?
    @Option(help: "Simulations x (.npy).") var x: String?
    @Option(help: "Built-in task to simulate when no files are given.") var task = "two_moons"
    @Option(parsing: .unconditional, help: "Simulations to draw for --task.") var numSimulations = 100_000
    @Option(help: "The observation (.npy, one row).") var observation: String
    @Option(parsing: .unconditional, help: "Share of simulations to keep.") var quantile = 0.01
    @Option(parsing: .unconditional, help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Output .npy of accepted θ.") var out: String
    @Flag(help: "Replace --out if it exists.") var force = false

    func validate() throws {
        guard numSimulations > 0 else { throw ValidationError("--num-simulations \(numSimulations): expected a positive count") }
        guard quantile > 0, quantile <= 1 else { throw ValidationError("--quantile \(quantile): expected a share in (0, 1]") }
        guard (theta == nil) == (x == nil) else { throw ValidationError("--theta and --x go together") }
    }

    func run() throws {
        try checkOutputFile(out, force: force)
        let t: Matrix, xs: Matrix
        if let theta, let x {
            t = try Matrix.loadVectors(theta, option: "--theta")
            xs = try Matrix.load(x, option: "--x")
        } else {
            let simulator = try Simulators.named(task)
            let (tv, xv) = try simulator.sampleAndSimulate(count: numSimulations, seed: seed, backend: try device.backend())
            t = Matrix(values: tv, rows: numSimulations, cols: simulator.parameterDimension, shape: [])
            xs = Matrix(values: xv, rows: numSimulations, cols: simulator.observationDimension, shape: [])
        }
        let o = try Matrix.load(observation, option: "--observation")
        guard o.rows == 1 else { throw DataError("--observation \(observation): expected one row, got \(o.rows)") }
        let (accepted, distances) = try RejectionABC.accept(theta: t.values, x: xs.values, parameters: t.cols,
                                                            observation: o.values, quantile: quantile)
        try NumPy.write(try NumPyArray(floats: accepted, shape: [distances.count, t.cols]), to: URL(fileURLWithPath: out))
        printError(String(format: "kept %d of %d simulations (distance ≤ %.4g); wrote ", distances.count, t.rows, distances.last ?? 0) + out)
    }
}
