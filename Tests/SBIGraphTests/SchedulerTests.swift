import XCTest
import SBITestSupport
import SBIBackend
@testable import SBIGraph

func openCLBackend() throws -> OpenCLBackend? { try TestBackends.openCLIfPresent() }

/// A primitive that only the CPU backend runs: exercises the scheduler's per-op fallback.
struct CPUOnlyDouble: Primitive {
    var description: String { "cpuOnlyDouble" }
    func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] { [(inputs[0].rows, inputs[0].cols)] }
    func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        guard backend is CPUBackend else { throw SBIError.invalidArgument("cpuOnlyDouble ran on \(backend.kind)") }
        try backend.affine(inputs[0].view, outputs[0].view, scale: 2, shift: 0)
    }
    func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        [try cotangents[0].map { try graph.affine($0, scale: 2, shift: 0) }]
    }
    func supports(_ backend: Backend) -> Bool { backend is CPUBackend }
}

final class SchedulerTests: XCTestCase {
    /// A 10-layer MLP's forward+backward plan reuses memory and never overlaps live tensors.
    func testMemoryPlanOfDeepMLP() throws {
        let backend = CPUBackend()
        let graph = Graph()
        let x = graph.input("x", rows: 64, cols: 32)
        let y = try MLP(name: "net", widths: [32] + Array(repeating: 128, count: 9) + [4])(x, in: graph)
        let loss = try graph.mean(try graph.square(y))
        let params = graph.parameters
        let grads = try graph.gradients(of: loss, with: params.map(\.tensor))
        let store = try ParameterStore(graph: graph, backend: backend, seed: 3)
        let plan = try Plan(graph: graph, backend: backend, outputs: [loss], parameters: store,
                            gradients: zip(grads, params).map { ($0, $1.name) })
        XCTAssertLessThan(plan.peakBytes, plan.naiveBytes)
        XCTAssertTrue(plan.overlappingLiveTensors().isEmpty, "live tensors share memory: \(plan.overlappingLiveTensors())")
        XCTAssertTrue(plan.description.contains("linear+relu"), plan.description)
        XCTAssertTrue(plan.description.contains("arena peak"))
        try plan.feed(x, (0..<(64 * 32)).map { Float($0 % 17) / 17 - 0.5 })
        try plan.run()
        XCTAssertTrue(try plan.read(loss)[0].isFinite)
    }

    /// The planner's placement against a brute-force overlap check on random interval sets.
    func testMemoryPlannerNeverOverlapsLiveIntervals() {
        for seed in 0..<50 {
            var intervals: [MemoryPlanner.Interval] = []
            for t in 0..<40 {
                let w = Philox.word(at: UInt64(t), seed: UInt64(seed))
                let first = Int(w % 30) - 1, length = Int((w >> 8) % 8), size = 1 + Int((w >> 16) % 300)
                intervals.append(.init(tensor: t, size: size, firstStep: first, lastStep: first + length))
            }
            let (offsets, size) = MemoryPlanner.place(intervals)
            for a in intervals {
                XCTAssertLessThanOrEqual(offsets[a.tensor]! + a.size, size)
                for b in intervals where b.tensor > a.tensor {
                    let live = a.firstStep <= b.lastStep && b.firstStep <= a.lastStep
                    let overlap = offsets[a.tensor]! < offsets[b.tensor]! + b.size && offsets[b.tensor]! < offsets[a.tensor]! + a.size
                    XCTAssertFalse(live && overlap, "seed \(seed): tensors \(a.tensor) and \(b.tensor)")
                }
            }
            XCTAssertLessThanOrEqual(size, intervals.reduce(0) { $0 + alignUp($1.size) })
        }
    }

    func testCPUFallbackCopiesOperandsAcross() throws {
        guard let backend = try openCLBackend() else { throw XCTSkip("no OpenCL device") }
        let graph = Graph()
        let x = graph.input("x", rows: 2, cols: 3)
        let doubled = try graph.apply1(CPUOnlyDouble(), try graph.exp(x))
        let y = try graph.affine(doubled, scale: 1, shift: 1)
        let plan = try Plan(graph: graph, backend: backend, outputs: [y])
        XCTAssertTrue(plan.description.contains("[CPU fallback]"))
        let input: [Float] = [0, 1, -1, 0.5, 2, -2]
        try plan.feed(x, input)
        try plan.run()
        let result = try plan.read(y)
        for (r, v) in zip(result, input) { XCTAssertEqual(r, 2 * Foundation.exp(v) + 1, accuracy: 1e-5) }
        XCTAssertEqual(plan.crossDeviceCopies, 2)
    }

    /// The same model and data on PoCL and on the CPU give the same loss curve for 20 steps.
    func testLossCurvesAgreeAcrossBackends() throws {
        guard let cl = try openCLBackend() else { throw XCTSkip("no OpenCL device") }
        var curves: [[Double]] = []
        for backend in [CPUBackend() as Backend, cl] {
            let trainer = try Trainer(backend: backend, configuration: regressionConfiguration(epochs: 20),
                                      data: try regressionData(rows: 128 + 16), lossGraph: regressionLoss)
            curves.append(try trainer.train().map(\.trainingLoss))
        }
        XCTAssertEqual(curves[0].count, 20)
        for (a, b) in zip(curves[0], curves[1]) {
            // Float32 sums in different orders (OpenBLAS vs the tiled kernel) drift by ~1e-6
            // relative per step; 20 Adam steps keep them within 1e-3.
            XCTAssertEqual(a, b, accuracy: 1e-3 * max(1, abs(a)))
        }
        XCTAssertLessThan(curves[0].last!, curves[0].first!)
    }

    /// After the trainer is built, training allocates no buffer on either backend.
    func testTrainingStepsAllocateNothing() throws {
        var backends: [Backend] = [CPUBackend()]
        if let cl = try openCLBackend() { backends.append(cl) }
        for backend in backends {
            let trainer = try Trainer(backend: backend, configuration: regressionConfiguration(epochs: 3),
                                      data: try regressionData(rows: 300), lossGraph: regressionLoss)
            let before = backend.allocationCount
            try trainer.train()
            XCTAssertEqual(backend.allocationCount, before, backend.kind)
        }
    }
}

// MARK: a small regression problem shared by the graph tests

func regressionData(rows: Int, seed: UInt64 = 11) throws -> TrainingData {
    var x: [Float] = [], y: [Float] = []
    for i in 0..<rows {
        let a = 4 * Philox.unit(Philox.word(at: UInt64(2 * i), seed: seed)) - 2
        let b = 4 * Philox.unit(Philox.word(at: UInt64(2 * i + 1), seed: seed)) - 2
        x += [a, b]
        y.append(Foundation.sin(a) * Foundation.cos(b) + 0.5 * a)
    }
    return try TrainingData([.init(name: "x", values: x, cols: 2), .init(name: "y", values: y, cols: 1)])
}

func regressionLoss(_ graph: Graph, _ batch: Int) throws -> Tensor {
    try regressionLoss(graph, batch, dropout: 0)
}

func regressionLoss(_ graph: Graph, _ batch: Int, dropout: Float) throws -> Tensor {
    let x = graph.input("x", rows: batch, cols: 2)
    let y = graph.input("y", rows: batch, cols: 1)
    let prediction = try MLP(name: "net", widths: [2, 32, 32, 1], activation: .tanh, dropout: dropout)(x, in: graph)
    return try graph.mean(try graph.square(try graph.subtract(prediction, y)))
}

func regressionConfiguration(epochs: Int) -> TrainingConfiguration {
    TrainingConfiguration(epochs: epochs, batchSize: 64, learningRate: 3e-3, maxGradientNorm: 5,
                          validationFraction: 0.1, patience: 1000, seed: 7)
}
