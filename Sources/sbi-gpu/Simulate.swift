import ArgumentParser
import Foundation
import SBIData
import SBIInference

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw θ from a built-in task's prior and simulate x.",
        discussion: "Tasks:\n" + Simulators.catalog.map { "  \($0.name): \($0.summary)" }.joined(separator: "\n")
            + "\nWrites OUT/theta.npy (N×d) and OUT/x.npy (N×features, or N×H×W for images).")

    @OptionGroup var device: DeviceOptions
    @Option(help: "Task name.") var task = "two_moons"
    @Option(name: [.customLong("num"), .customLong("num-simulations")], parsing: .unconditional, help: "Number of simulations.") var num = 10_000
    @Option(parsing: .unconditional, help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Output directory.") var out: String

    func validate() throws {
        guard num > 0 else { throw ValidationError("--num must be positive") }
    }

    func run() throws {
        let simulator = try Simulators.named(task)
        try requireMemory(for: [num, simulator.parameterDimension + simulator.observationDimension],
                          flag: "--num \(num)", what: "simulations")
        let backend = try device.backend()
        let (theta, x) = try simulator.sampleAndSimulate(count: num, seed: seed, backend: backend)
        let directory = try makeDirectory(out)
        try NumPy.write(try NumPyArray(floats: theta, shape: [num, simulator.parameterDimension]),
                        to: directory.appendingPathComponent("theta.npy"))
        try NumPy.write(try NumPyArray(floats: x, shape: [num] + simulator.observationShape),
                        to: directory.appendingPathComponent("x.npy"))
        print("wrote \(num) simulations of \(simulator.name) to \(directory.path)/theta.npy and x.npy")
    }
}
