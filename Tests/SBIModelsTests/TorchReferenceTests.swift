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

    /// Glow (2 scales, 2 steps, 16 channels) with random weights, on 8×8×3 images, by sbi-gpu on
    /// every backend and by Benchmarks/reference/glow.py from the same checkpoint, with the
    /// dequantization u = ½ on both sides.
    func testGlowLogProbMatchesPyTorch() throws {
        var configuration = GlowConfiguration(height: 8, width: 8, channels: 3, levels: 256)
        (configuration.scales, configuration.steps, configuration.hidden) = (2, 2, 16)
        try checkAgainstPyTorch(configuration, arguments: ["--scales", "2", "--steps", "2", "--hidden", "16"])
    }

    /// The multi-scale RealNVP (3 scales: checkerboard, squeeze and channel couplings, splits),
    /// with the logit preprocessing, against `MultiScaleRealNVP` of the same script.
    func testMultiScaleRealNVPLogProbMatchesPyTorch() throws {
        var configuration = GlowConfiguration(height: 8, width: 8, channels: 2, levels: 256)
        (configuration.architecture, configuration.preprocessing) = (.realnvp, .logit)
        (configuration.scales, configuration.steps, configuration.hidden) = (3, 2, 8)
        try checkAgainstPyTorch(configuration, arguments: ["--architecture", "realnvp", "--preprocessing", "logit",
                                                           "--scales", "3", "--steps", "2", "--hidden", "8"])
    }

    /// log q of random images under `configuration` with random weights, on every backend,
    /// against glow.py's `logprob` with `arguments` from the same checkpoint.
    func checkAgainstPyTorch(_ configuration: GlowConfiguration, arguments: [String]) throws {
        guard (try? python(["-c", "import torch, safetensors"]).status) == 0 else {
            throw XCTSkip("python3 with torch and safetensors is not available")
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let script = root.appendingPathComponent("Benchmarks/reference/glow.py")
        let flow = try GlowDensity(configuration)
        let shape = [configuration.height, configuration.width, configuration.channels]
        let rows = 5, d = configuration.features
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("torch-glow-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let pixels = (0..<(rows * d)).map { Float(Philox.word(at: UInt64($0), seed: 8) % 256) }
        let images = directory.appendingPathComponent("images.npy")
        try NumPy.write(try NumPyArray(uint8s: pixels.map { UInt8($0) }, shape: [rows] + shape), to: images)
        var reference: [Double]?
        for backend in try modelBackends() {
            let graph = Graph()
            let x = graph.input("x", rows: rows, cols: d)
            let logq = try flow.logProb(x, context: nil, in: graph)
            let store = try ParameterStore(graph: graph, backend: backend, seed: 1)
            for e in store.entries {
                let triangular = e.name.hasSuffix(".lower") || e.name.hasSuffix(".upper")
                try store.write(e.name, uniformValues(e.count, seed: UInt64(e.offset) &+ 5, bound: triangular ? 0.02 : 0.2))
            }
            let plan = try Plan(graph: graph, backend: backend, outputs: [logq], parameters: store)
            try plan.feed(x, pixels)
            for (tensor, _, _) in graph.noiseInputs { try plan.feed(tensor, [Float](repeating: 0.5, count: tensor.count)) }
            try plan.run()
            let ours = try plan.read(logq)
            if reference == nil {
                let checkpoint = directory.appendingPathComponent("glow.safetensors")
                try store.save(to: checkpoint)
                let (status, output) = try python([script.path, "logprob", "--checkpoint", checkpoint.path, "--data", images.path]
                                                  + arguments)
                XCTAssertEqual(status, 0)
                reference = try JSONDecoder().decode([Double].self, from: output)
            }
            XCTAssertEqual(ours.count, rows)
            for (a, b) in zip(ours, reference!) {
                XCTAssertEqual(Double(a), b, accuracy: 1e-4 * max(1, abs(b)), "\(configuration.resolvedArchitecture.estimatorName) on \(backend.kind)")
            }
        }
    }
}
