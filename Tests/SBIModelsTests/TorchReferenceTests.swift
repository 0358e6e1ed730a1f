import XCTest
import Foundation
import SBIBackend
import SBIGraph
import SBIData
@testable import SBIModels

/// The whole stack against PyTorch: the benchmark RealNVP with random weights, evaluated by
/// sbi-gpu on every backend and by Benchmarks/reference/realnvp_mlp.py from the same
/// safetensors checkpoint, agrees to 1e-4 relative. Skips when torch or safetensors is missing.
final class TorchReferenceTests: XCTestCase {
    func python(_ arguments: [String]) throws -> (status: Int32, output: Data) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, data)
    }

    func testBenchmarkFlowLogProbMatchesPyTorch() throws {
        guard (try? python(["-c", "import torch, safetensors"]).status) == 0 else {
            throw XCTSkip("python3 with torch and safetensors is not available")
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let script = root.appendingPathComponent("Benchmarks/reference/realnvp_mlp.py")
        let side = 6, layers = 4, hidden = 32, rows = 16
        let configuration = FlowConfiguration.benchmarkRealNVP(side: side, layers: layers, hidden: hidden)
        let flow = try configuration.makeFlow()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("torch-ref-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let inputs = uniformValues(rows * side * side, seed: 3, bound: 1.5)
        try SafetensorsFile(tensors: ["x": try SafetensorsTensor(floats: inputs, shape: [rows, side * side])])
            .write(to: directory.appendingPathComponent("inputs.safetensors"))
        var reference: [Double]?
        for backend in try modelBackends() {
            let graph = Graph()
            let x = graph.input("x", rows: rows, cols: side * side)
            let logq = try flow.logProb(x, context: nil, in: graph)
            let store = try ParameterStore(graph: graph, backend: backend, seed: 1)
            // Random weights everywhere (the zero-initialized last layers would hide the nets).
            for e in store.entries { try store.write(e.name, uniformValues(e.count, seed: UInt64(e.offset) &+ 5, bound: 0.2)) }
            let plan = try Plan(graph: graph, backend: backend, outputs: [logq], parameters: store)
            try plan.feed(x, inputs)
            try plan.run()
            let ours = try plan.read(logq)
            if reference == nil {
                let checkpoint = directory.appendingPathComponent("flow.safetensors")
                try store.save(to: checkpoint)
                let (status, output) = try python([script.path, "logprob", "--checkpoint", checkpoint.path,
                                                   "--inputs", directory.appendingPathComponent("inputs.safetensors").path,
                                                   "--side", String(side), "--layers", String(layers), "--hidden", String(hidden)])
                XCTAssertEqual(status, 0)
                reference = try JSONDecoder().decode([Double].self, from: output)
            }
            XCTAssertEqual(ours.count, rows)
            for (a, b) in zip(ours, reference!) {
                XCTAssertEqual(Double(a), b, accuracy: 1e-4 * max(1, abs(b)), "\(backend.kind)")
            }
        }
    }
}
