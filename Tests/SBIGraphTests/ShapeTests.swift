import XCTest
import SBIBackend
import SBIData
@testable import SBIGraph

/// N-D tensors: shapes through the builders, reshapes as aliased views in plans, and N-D
/// parameters in checkpoints.
final class ShapeTests: XCTestCase {
    func backends() throws -> [Backend] {
        var list: [Backend] = [CPUBackend()]
        if let cl = try openCLBackend() { list.append(cl) }
        return list
    }

    func testShapesFlowThroughTheBuilders() throws {
        let graph = Graph()
        let images = graph.input("x", shape: [2, 4, 4, 3])
        XCTAssertEqual(images.rows, 32)
        XCTAssertEqual(images.cols, 3)
        XCTAssertEqual(images.description, "%0[2×4×4×3]")
        // Element-wise ops keep the image's axes; a product along the channels changes only them.
        XCTAssertEqual(try graph.exp(images).shape, [2, 4, 4, 3])
        let w = graph.parameter("w", rows: 3, cols: 5, initializer: .zeros)
        XCTAssertEqual(try graph.matmul(images, w).shape, [2, 4, 4, 5])
        XCTAssertEqual(try graph.sumRows(images).shape, [2, 4, 4, 1])
        // Ops on matrices are unchanged.
        let x = graph.input("v", rows: 7, cols: 3)
        XCTAssertEqual(try graph.matmul(x, w).shape, [7, 5])
        XCTAssertEqual(try graph.reshape(images, [2, 48]).shape, [2, 48])
        XCTAssertThrowsError(try graph.reshape(images, [5, 19]))
        let conv = graph.parameter("conv", shape: [3, 3, 3, 8], initializer: .zeros)
        XCTAssertEqual(conv.rows, 27)
        XCTAssertEqual(conv.cols, 8)
        XCTAssertEqual(graph.parameter("conv", shape: [3, 3, 3, 8], initializer: .zeros), conv)
    }

    /// A reshape launches nothing and shares its input's storage; the input's lifetime extends
    /// to the view's last reader, so later intermediates do not overwrite it.
    func testReshapeIsAnAliasedViewThatKeepsItsInputAlive() throws {
        for backend in try backends() {
            let graph = Graph()
            let x = graph.input("x", shape: [2, 3, 4])
            let a = try graph.exp(x)                          // [2, 3, 4]
            let view = try graph.reshape(a, [6, 4])           // alias of a
            // Several intermediates between the view's creation and its use: with a's storage
            // freed at the reshape, they would land on it.
            var h = try graph.tanh(x)
            for _ in 0..<4 { h = try graph.add(try graph.square(h), h) }
            let flat = try graph.reshape(view, [2, 12])       // a view of a view
            let back = try graph.reshape(flat, [2, 3, 4])
            let out = try graph.add(back, h)
            // Only `out` is an output: were `flat` one too, a's storage would live to the end anyway.
            let plan = try Plan(graph: graph, backend: backend, outputs: [out])
            XCTAssertEqual(plan.launchCount, graph.nodes.count - 3, "reshapes launch nothing")
            XCTAssertTrue(plan.overlappingLiveTensors().isEmpty)
            let va = try plan.view(of: a), vf = try plan.view(of: flat)
            XCTAssertTrue(va.buffer === vf.buffer && va.offset == vf.offset, "the view aliases its root")
            let values = (0..<24).map { Float($0) / 24 - 0.5 }
            try plan.feed(x, values)
            try plan.run()
            let expected = values.map { v -> Double in
                var t = Foundation.tanh(Double(v))
                for _ in 0..<4 { t = t * t + t }
                return Foundation.exp(Double(v)) + t
            }
            for (got, want) in zip(try plan.read(out), expected) {
                XCTAssertEqual(Double(got), want, accuracy: 1e-5 * max(1, abs(want)), backend.kind)
            }
        }
    }

    /// Gradients through views bound to parameters: a reshaped parameter's gradient gets a copy
    /// of its own (a view cannot be bound), and matches finite differences.
    func testGradientThroughReshapesMatchesFiniteDifferences() throws {
        for backend in try backends() {
            let graph = Graph()
            let p = graph.parameter("p", shape: [2, 2, 3], initializer: .uniform(bound: 1))
            let m = try graph.reshape(p, [4, 3])
            let w = graph.constant((0..<6).map { Float($0) / 3 - 1 }, rows: 3, cols: 2)
            let loss = try graph.mean(try graph.square(try graph.tanh(try graph.matmul(m, w))))
            let gradient = try graph.gradients(of: loss, with: [p])[0]
            let store = try ParameterStore(graph: graph, backend: backend, seed: 5)
            let plan = try Plan(graph: graph, backend: backend, outputs: [loss], parameters: store,
                                gradients: [(gradient, "p")])
            try plan.run()
            let analytic = try store.read("p", from: store.gradients)
            let base = try store.read("p"), h: Float = 1e-2
            for i in base.indices {
                var plus = base, minus = base
                plus[i] += h
                minus[i] -= h
                try store.write("p", plus)
                try plan.run()
                let fp = try plan.read(loss)[0]
                try store.write("p", minus)
                try plan.run()
                let fm = try plan.read(loss)[0]
                let numeric = (fp - fm) / (2 * h)
                XCTAssertEqual(analytic[i], numeric, accuracy: 2e-3 + 1e-2 * abs(numeric), "\(backend.kind) p[\(i)]")
            }
            try store.write("p", base)
        }
    }

    /// Checkpoints store N-D parameters with their declared shapes, which Python sees as such.
    func testCheckpointsStoreDeclaredShapes() throws {
        let backend = CPUBackend()
        let graph = Graph()
        _ = graph.parameter("conv.weight", shape: [3, 3, 2, 4], initializer: .uniform(bound: 1))
        _ = graph.parameter("conv.bias", rows: 1, cols: 4, initializer: .constant(0.5))
        let store = try ParameterStore(graph: graph, backend: backend, seed: 9)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("shape-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try store.save(to: url)
        let file = try SafetensorsFile.read(from: url)
        XCTAssertEqual(file["conv.weight"]?.shape, [3, 3, 2, 4])
        XCTAssertEqual(file["conv.bias"]?.shape, [1, 4])
        let copy = try ParameterStore(graph: graph, backend: backend, seed: 1)
        try copy.load(file, path: url.path)
        XCTAssertEqual(try copy.read("conv.weight"), try store.read("conv.weight"))
        // A tensor of the right count under another shape is refused, naming both shapes.
        let other = Graph()
        _ = other.parameter("conv.weight", shape: [9, 8], initializer: .zeros)
        _ = other.parameter("conv.bias", rows: 1, cols: 4, initializer: .zeros)
        let wrong = try ParameterStore(graph: other, backend: backend, seed: 1)
        XCTAssertThrowsError(try wrong.load(file, path: url.path)) { error in
            XCTAssertTrue("\(error)".contains("[3, 3, 2, 4]") && "\(error)".contains("[9, 8]"), "\(error)")
        }
    }
}
