import ArgumentParser
import SBIBackend

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the engine's speed.",
        subcommands: [BenchGEMM.self, BenchGraph.self, BenchFlows.self])
}
