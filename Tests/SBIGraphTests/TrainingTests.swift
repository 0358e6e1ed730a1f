import XCTest
import SBIBackend
import SBIData
@testable import SBIGraph

final class TrainingTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sbi-gpu-training-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    /// An MLP learns a smooth 2-D function end to end: the validation MSE ends below 1% of the
    /// target's variance (the error of the best constant predictor).
    func testMLPRegressionDemo() throws {
        var configuration = regressionConfiguration(epochs: 150)
        configuration.schedule = .cosine(minimumFactor: 0.05)
        configuration.learningRate = 1e-2
        let data = try regressionData(rows: 2000)
        let y = data.columns[1].values.array.map(Double.init)
        let mean = y.reduce(0, +) / Double(y.count)
        let variance = y.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(y.count)
        let trainer = try Trainer(backend: CPUBackend(), configuration: configuration, data: data,
                                  lossGraph: regressionLoss)
        let history = try trainer.train()
        XCTAssertEqual(history.count, 150)
        XCTAssertLessThan(trainer.bestValidationLoss, 0.01 * variance)
        XCTAssertLessThan(history.last!.trainingLoss, history.first!.trainingLoss)
    }

    /// Two half-batch replicas on two threads, gradients averaged, take the same steps as one
    /// full-batch plan: equal up to float summation order.
    func testSplitBatchTrainsLikeTheFullBatch() throws {
        let data = try regressionData(rows: 200)
        var configuration = regressionConfiguration(epochs: 3)
        configuration.learningRate = 1e-2
        let split = try Trainer(backend: CPUBackend(), configuration: configuration, data: data, splitBatch: true,
                                lossGraph: regressionLoss)
        let whole = try Trainer(backend: CPUBackend(), configuration: configuration, data: data, splitBatch: false,
                                lossGraph: regressionLoss)
        XCTAssertEqual(split.replicas.count, 2)
        XCTAssertEqual(whole.replicas.count, 1)
        let splitHistory = try split.train(), wholeHistory = try whole.train()
        for (a, b) in zip(splitHistory, wholeHistory) {
            XCTAssertEqual(a.trainingLoss, b.trainingLoss, accuracy: 1e-5 * abs(b.trainingLoss))
            XCTAssertEqual(a.validationLoss, b.validationLoss, accuracy: 1e-5 * abs(b.validationLoss))
        }
        let p = try split.backend.download(split.store.values.view), q = try whole.backend.download(whole.store.values.view)
        for (a, b) in zip(p, q) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b))) }
        // The automatic choice: split on the CPU for a small model, never on OpenCL.
        XCTAssertTrue(Trainer.splitsBatch(backend: CPUBackend(), batch: 64, largestParameter: 1_000))
        XCTAssertFalse(Trainer.splitsBatch(backend: CPUBackend(), batch: 64, largestParameter: 10_000_000))
        XCTAssertFalse(Trainer.splitsBatch(backend: CPUBackend(), batch: 63, largestParameter: 1_000))
        // An image model's products have a row per pixel: 64 images of 28×28 do not split.
        XCTAssertFalse(Trainer.splitsBatch(backend: CPUBackend(), batch: 64, largestParameter: 1_000, rowsPerExample: 784))
        let images = Graph()
        _ = try images.conv2d(images.input("x", shape: [64, 28, 28, 2]),
                              weight: images.parameter("w", shape: [3, 3, 2, 8], initializer: .zeros), bias: nil)
        XCTAssertEqual(Trainer.rowsPerExample(images, batch: 64), 784)
    }

    func testEarlyStoppingAndPlateauSchedule() throws {
        var configuration = regressionConfiguration(epochs: 500)
        configuration.learningRate = 5e-2   // large enough to stall
        configuration.patience = 4
        configuration.schedule = .stepOnPlateau(factor: 0.5, patience: 2)
        let trainer = try Trainer(backend: CPUBackend(), configuration: configuration,
                                  data: try regressionData(rows: 400), lossGraph: regressionLoss)
        let history = try trainer.train()
        XCTAssertTrue(trainer.stoppedEarly)
        XCTAssertLessThan(history.count, 500)
        XCTAssertLessThan(history.last!.learningRate, configuration.learningRate)
        // The best epoch's validation loss is what the restored parameters achieve.
        XCTAssertEqual(trainer.bestValidationLoss, history.map(\.validationLoss).min()!)
    }

    func testCheckpointRoundTripIsBitExact() throws {
        let backend = CPUBackend()
        let trainer = try Trainer(backend: backend, configuration: regressionConfiguration(epochs: 2),
                                  data: try regressionData(rows: 300), lossGraph: regressionLoss)
        let url = directory.appendingPathComponent("model.safetensors")
        try trainer.train(checkpoint: url)
        try trainer.store.save(to: directory.appendingPathComponent("params.safetensors"), metadata: ["model": "mlp"])
        let file = try SafetensorsFile.read(from: directory.appendingPathComponent("params.safetensors"))
        XCTAssertEqual(file.metadata["model"], "mlp")
        let other = try Trainer(backend: backend, configuration: regressionConfiguration(epochs: 2),
                                data: try regressionData(rows: 300), lossGraph: regressionLoss)
        try other.store.load(file, path: "params.safetensors")
        for e in trainer.store.entries {
            let a = try trainer.store.read(e.name).map(\.bitPattern)
            let b = try other.store.read(e.name).map(\.bitPattern)
            XCTAssertEqual(a, b, e.name)
        }
    }

    func testTruncatedOrCorruptedCheckpointIsRefused() throws {
        let trainer = try Trainer(backend: CPUBackend(), configuration: regressionConfiguration(epochs: 1),
                                  data: try regressionData(rows: 300), lossGraph: regressionLoss)
        let url = directory.appendingPathComponent("run.safetensors")
        try trainer.train(checkpoint: url)
        let bytes = try Data(contentsOf: url)

        let truncated = directory.appendingPathComponent("truncated.safetensors")
        try bytes.prefix(bytes.count - 100).write(to: truncated)
        let resumedTruncated = try Trainer(backend: CPUBackend(), configuration: regressionConfiguration(epochs: 2),
                                           data: try regressionData(rows: 300), lossGraph: regressionLoss)
        XCTAssertThrowsError(try resumedTruncated.train(checkpoint: truncated, resume: true)) { error in
            XCTAssertTrue("\(error)".contains("truncated.safetensors"), "\(error)")
        }

        var corrupted = bytes
        corrupted[12] = UInt8(ascii: "#")  // inside the JSON header
        let bad = directory.appendingPathComponent("corrupted.safetensors")
        try corrupted.write(to: bad)
        XCTAssertThrowsError(try resumedTruncated.train(checkpoint: bad, resume: true)) { error in
            XCTAssertTrue("\(error)".contains("corrupted.safetensors"), "\(error)")
        }

        var other = regressionConfiguration(epochs: 2)
        other.learningRate = 0.5
        let mismatched = try Trainer(backend: CPUBackend(), configuration: other,
                                     data: try regressionData(rows: 300), lossGraph: regressionLoss)
        XCTAssertThrowsError(try mismatched.train(checkpoint: url, resume: true)) { error in
            XCTAssertTrue("\(error)".contains("different configuration"), "\(error)")
        }
    }

    /// A run killed after epoch 3 and resumed from its checkpoint ends bit-identical to a run that
    /// was never interrupted (CPU backend), with and without parameter averaging.
    /// Dropout lives in the step graphs only: each replica's graph declares a mask per hidden
    /// layer and the evaluation graphs none. A step's masks hold 0 or 1/(1 − rate), keep about
    /// 1 − rate of the units, and change from step to step; on both backends the same ones.
    func testDropoutMasks() throws {
        let data = try regressionData(rows: 500), rate: Float = 0.3
        var masksByBackend: [[Float]] = []
        for backend in [CPUBackend()] + (try openCLBackend().map { [$0] } ?? []) as [Backend] {
            let trainer = try Trainer(backend: backend, configuration: regressionConfiguration(epochs: 1), data: data,
                                      splitBatch: false) { try regressionLoss($0, $1, dropout: rate) }
            let replica = try XCTUnwrap(trainer.replicas.first)
            XCTAssertEqual(replica.masks.count, 2, "one mask per hidden layer")
            XCTAssertTrue(replica.masks.allSatisfy { $0.rate == rate && $0.tensor.cols == 32 && $0.tensor.rows == 64 })
            for (plan, _, _, _) in trainer.evalPlans {
                XCTAssertFalse(plan.graph.inputs.contains { $0.name.hasPrefix("dropout") }, "evaluation graphs have no dropout")
            }
            var steps: [[Float]] = []
            for step in 0..<2 {
                trainer.state.step = step
                try trainer.fillDropoutMasks(replica, replicaIndex: 0)
                steps.append(try replica.masks.flatMap { try backend.download(try replica.plan.view(of: $0.tensor)) })
            }
            for mask in steps {
                XCTAssertTrue(mask.allSatisfy { $0 == 0 || $0 == 1 / (1 - rate) })
                let kept = Double(mask.filter { $0 != 0 }.count) / Double(mask.count)  // 4096 draws: σ ≈ 0.007
                XCTAssertEqual(kept, Double(1 - rate), accuracy: 0.04)
            }
            XCTAssertNotEqual(steps[0], steps[1], "a new mask each step")
            masksByBackend.append(steps[0] + steps[1])
        }
        if masksByBackend.count == 2 { XCTAssertEqual(masksByBackend[0], masksByBackend[1], "CPU and OpenCL masks") }
    }

    func testResumeEqualsUninterrupted() throws {
        let data = try regressionData(rows: 500)
        // Dropout masks come from (seed, step), so a resumed run draws the same ones.
        for (averaging, dropout) in [(nil, 0), (1.5, 0), (nil, 0.3)] as [(Double?, Float)] {
            func configuration(epochs: Int) -> TrainingConfiguration {
                var c = regressionConfiguration(epochs: epochs)
                c.averagingEpochs = averaging
                return c
            }
            let loss = { try regressionLoss($0, $1, dropout: dropout) }
            let uninterrupted = try Trainer(backend: CPUBackend(), configuration: configuration(epochs: 6),
                                            data: data, lossGraph: loss)
            let fullHistory = try uninterrupted.train()

            let url = directory.appendingPathComponent("resume-\(averaging ?? 0)-\(dropout).safetensors")
            let first = try Trainer(backend: CPUBackend(), configuration: configuration(epochs: 3),
                                    data: data, lossGraph: loss)
            try first.train(checkpoint: url)
            let second = try Trainer(backend: CPUBackend(), configuration: configuration(epochs: 6),
                                     data: data, lossGraph: loss)
            let resumedHistory = try second.train(checkpoint: url, resume: true)

            XCTAssertEqual(resumedHistory.map(\.trainingLoss), fullHistory.map(\.trainingLoss))
            XCTAssertEqual(resumedHistory.map(\.validationLoss), fullHistory.map(\.validationLoss))
            for e in uninterrupted.store.entries {
                XCTAssertEqual(try uninterrupted.store.read(e.name).map(\.bitPattern),
                               try second.store.read(e.name).map(\.bitPattern), "\(e.name), averaging \(averaging ?? 0), dropout \(dropout)")
            }
        }
    }

    /// With averaging, the Adam step keeps an exponential moving average of the iterates: checked
    /// against one computed in double precision from every iterate (one step per epoch, so the
    /// progress callback sees each). Validation and the kept parameters are the average's; the
    /// iterates themselves, and so early stopping, are those of a run without averaging.
    func testParameterAveraging() throws {
        let data = try regressionData(rows: 220)  // 22 held out, 198 rows: one batch of 198
        var configuration = regressionConfiguration(epochs: 12)
        configuration.batchSize = 198
        configuration.learningRate = 2e-2
        configuration.averagingEpochs = 3
        let averaged = try Trainer(backend: CPUBackend(), configuration: configuration, data: data, lossGraph: regressionLoss)
        XCTAssertEqual(averaged.stepsPerEpoch, 1)
        var reference = try averaged.backend.download(averaged.store.values.view).map(Double.init)
        var averages: [[Double]] = []
        let history = try averaged.train { record in
            let iterate = try! averaged.backend.download(averaged.store.values.view)
            // min(1 − 1/(epochs·steps per epoch), (1 + t)/(10 + t)) at step t = record.epoch
            let decay = min(1 - 1.0 / 3, Double(1 + record.epoch) / Double(10 + record.epoch))
            XCTAssertEqual(Double(averaged.averageDecay(step: record.epoch)), decay, accuracy: 1e-7)
            for i in reference.indices { reference[i] = decay * reference[i] + (1 - decay) * Double(iterate[i]) }
            averages.append(reference)
        }
        func assertClose(_ actual: [Float], _ expected: [Double], _ what: String) {
            XCTAssertEqual(actual.count, expected.count, what)
            for (a, e) in zip(actual, expected) { XCTAssertEqual(Double(a), e, accuracy: 1e-6 + 1e-5 * abs(e), what) }
        }
        assertClose(try averaged.backend.download(averaged.averageValues!.view), averages.last!, "moving average after 12 steps")
        // The kept parameters are the average of the epoch with the best validation loss.
        let best = history.indices.min { history[$0].validationLoss < history[$1].validationLoss }!
        assertClose(try averaged.backend.download(averaged.store.values.view), averages[best],
                    "kept parameters = best epoch's average")

        var plain = configuration
        plain.averagingEpochs = nil
        let plainTrainer = try Trainer(backend: CPUBackend(), configuration: plain, data: data, lossGraph: regressionLoss)
        let plainHistory = try plainTrainer.train()
        XCTAssertEqual(history.map(\.trainingLoss), plainHistory.map(\.trainingLoss), "averaging changed the iterates")
        XCTAssertNotEqual(history.map(\.validationLoss), plainHistory.map(\.validationLoss))
    }

    /// Early stopping watches the last iterate, so a run with averaging stops when the same run
    /// without it does, however slowly the average keeps improving.
    func testAveragingStopsWithTheIterate() throws {
        var configuration = regressionConfiguration(epochs: 500)
        configuration.learningRate = 5e-2   // large enough to stall
        configuration.patience = 4
        let data = try regressionData(rows: 400)
        let plain = try Trainer(backend: CPUBackend(), configuration: configuration, data: data, lossGraph: regressionLoss)
        configuration.averagingEpochs = 2
        let averaged = try Trainer(backend: CPUBackend(), configuration: configuration, data: data, lossGraph: regressionLoss)
        let plainHistory = try plain.train(), averagedHistory = try averaged.train()
        XCTAssertTrue(plain.stoppedEarly)
        XCTAssertTrue(averaged.stoppedEarly)
        XCTAssertEqual(averagedHistory.count, plainHistory.count)
        XCTAssertEqual(averaged.bestValidationLoss, averagedHistory.map(\.validationLoss).min()!)
    }
}
