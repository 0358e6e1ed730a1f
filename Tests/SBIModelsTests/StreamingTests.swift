import Foundation
import XCTest
import SBIData
import SBIBackend
import SBITestSupport
@testable import SBIGraph
@testable import SBIModels

/// Training data larger than the device budget streams from the host, in the same order as an
/// in-memory run: the parameters are bit-for-bit those of the in-memory run, on every backend,
/// from arrays and from memory-mapped float32 files, with dropout and a split batch.
final class StreamingTests: XCTestCase {
    func train(_ y: FloatRows, _ context: FloatRows, kind: FlowConfiguration.Kind, budget: Int?,
               backend: Backend) throws -> (parameters: [Float], history: [EpochRecord]) {
        var configuration = FlowConfiguration(kind: kind, features: y.cols, contextFeatures: context.cols)
        configuration.hidden = [16, 16]
        configuration.transforms = 2
        configuration.dropout = 0.1
        let estimator = try Estimators.makeFlow(configuration, backend: backend)
        estimator.dataBudget = budget
        let history = try estimator.fit(rows: y, context: context, configuration: TrainingConfiguration(
            epochs: 3, batchSize: 64, validationFraction: 0.2, seed: 4, averagingEpochs: 1))
        let store = try XCTUnwrap(estimator.store)
        return (try backend.download(store.values.view), history)
    }

    func testStreamedTrainingEqualsInMemoryTraining() throws {
        let rows = 330, d = 3, c = 1000  // 330×1000 float32 = 1.3 MB: the .npy reader maps it
        let y = FloatRows(uniformValues(rows * d, seed: 1), cols: d)
        let contextValues = uniformValues(rows * c, seed: 2)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("stream-\(UUID().uuidString).npy")
        defer { try? FileManager.default.removeItem(at: url) }
        try NumPy.write(try NumPyArray(floats: contextValues, shape: [rows, c]), to: url)
        let array = try NumPy.read(url)
        XCTAssertTrue(array.isMemoryMapped)
        let mapped = try XCTUnwrap(FloatRows(array))
        XCTAssertTrue(mapped.isMapped)
        XCTAssertEqual(mapped.array, contextValues)
        for backend in try TestBackends.all() {
            for kind in [FlowConfiguration.Kind.nsf, .realnvp] {
                let inMemory = try train(y, FloatRows(contextValues, cols: c), kind: kind, budget: nil, backend: backend)
                let streamed = try train(y, mapped, kind: kind, budget: 0, backend: backend)
                XCTAssertEqual(streamed.parameters.map(\.bitPattern), inMemory.parameters.map(\.bitPattern),
                               "\(kind) on \(backend.kind)")
                XCTAssertEqual(streamed.history.map(\.validationLoss), inMemory.history.map(\.validationLoss))
            }
        }
    }

    /// A budget below the data makes the trainer stream; the default (half the backend's
    /// memory) keeps a small set on the device.
    func testBudgetDecidesStreaming() throws {
        let backend = CPUBackend()
        let data = try TrainingData([.init(name: "y", values: uniformValues(200, seed: 3), cols: 2)])
        func trainer(_ budget: Int?) throws -> Trainer {
            try Trainer(backend: backend, configuration: TrainingConfiguration(epochs: 1, batchSize: 10), data: data,
                        dataBudget: budget) { graph, batch in
                try graph.mean(try graph.square(graph.input("y", rows: batch, cols: 2)))
            }
        }
        XCTAssertFalse(try trainer(nil).streamsData)
        XCTAssertFalse(try trainer(800).streamsData)
        XCTAssertTrue(try trainer(799).streamsData)
    }
}
