import Foundation
import XCTest
import SBIBackend
import SBITestSupport
@testable import SBIGraph
@testable import SBIModels

/// The op table (`OpCase.table`), in the spirit of ggml's test-backend-ops: every row on every
/// backend present, checked
///  1. forward against its double-precision reference;
///  2. CPU against OpenCL;
///  3. its vector-Jacobian products against central finite differences of the forward pass;
///  4. node by node, each primitive evaluated on its own into guarded buffers: it writes its
///     outputs and nothing else (its inputs and the elements around every operand are unchanged),
///     and leaves no output element unwritten (the result equals the plan's).
/// `testEveryPrimitiveHasARow` fails when a primitive declared anywhere in Sources/ appears in
/// no row's graph (forward or backward), so a new op cannot land untested.
///
/// Tolerances. Forward: inputs are O(1) and each output is at most ~10 float32 operations or
/// libm calls deep, each within a few ulps (ε ≈ 6e-8), so |got − reference| ≤ 1e-5·(1 + |ref|)
/// leaves an order of magnitude of margin; the same bound holds between the backends. Gradients:
/// a central difference with step h has truncation error O(h²·f''') and rounding error
/// O(ε·|loss|/h); for h = 1e-2 and the O(1..10) losses here both are ≲ 1e-4, so
/// |analytic − numeric| ≤ 2e-3 + 1e-2·|numeric| still catches any wrong derivative (errors of O(1)).
final class OpTableTests: XCTestCase {
    static let h: Float = 1e-2

    /// Values in ±[0.2, 1.2]: away from the kinks of relu/abs at 0, positive when `positive`.
    static func values(_ count: Int, seed: UInt64, positive: Bool = false) -> [Float] {
        (0..<count).map { i in
            let u = Philox.unit(Philox.word(at: UInt64(i), seed: seed))
            let magnitude = 0.2 + u
            let sign: Float = positive || Philox.word(at: UInt64(i), seed: seed &+ 1) % 2 == 0 ? 1 : -1
            return sign * magnitude
        }
    }

    static func inputs(_ row: OpCase) -> [[Float]] {
        row.shapes.enumerated().map { i, shape in
            values(shape.reduce(1, *), seed: UInt64(10 + i), positive: row.positive)
        }
    }

    func testEveryRowOnEveryBackend() throws {
        for row in OpCase.table {
            var outputs: [String: [Float]] = [:]
            let reference = row.reference(Self.inputs(row).map { $0.map(Double.init) })
            for backend in try TestBackends.all() {
                let got = try check(row, on: backend, reference: reference)
                outputs[backend.kind] = got
            }
            if let cpu = outputs["cpu"], let cl = outputs["opencl"] {
                for (i, (a, b)) in zip(cpu, cl).enumerated() {
                    XCTAssertEqual(Double(a), Double(b), accuracy: row.tolerance * (1 + abs(reference[i])),
                                   "\(row.name): CPU and OpenCL differ at \(i)")
                }
            }
        }
    }

    /// Runs one row on one backend; returns its forward output.
    func check(_ row: OpCase, on backend: Backend, reference: [Double]) throws -> [Float] {
        let graph = Graph()
        let params = row.shapes.enumerated().map { i, shape in graph.parameter("p\(i)", shape: shape, initializer: .zeros) }
        let out = try row.build(graph, params)
        let weights = graph.constant(Self.values(out.count, seed: 99), rows: out.rows, cols: out.cols)
        let loss = try graph.sum(try graph.multiply(out, weights))
        let grads = try graph.gradients(of: loss, with: params)
        let store = try ParameterStore(graph: graph, backend: backend, seed: 1)
        for (i, values) in Self.inputs(row).enumerated() { try store.write("p\(i)", values) }
        let what = "\(row.name) on \(backend.kind)"

        // 1. Forward against the reference.
        let forward = try Plan(graph: graph, backend: backend, outputs: [out, loss], parameters: store)
        try forward.run()
        let got = try forward.read(out)
        XCTAssertEqual(got.count, reference.count, what)
        for (i, (g, r)) in zip(got, reference).enumerated() {
            XCTAssertEqual(Double(g), r, accuracy: row.tolerance * (1 + abs(r)), "\(what): output \(i)")
        }

        // 3. Gradients against central differences.
        let train = try Plan(graph: graph, backend: backend, outputs: [loss], parameters: store,
                             gradients: grads.enumerated().map { ($1, "p\($0)") })
        try train.run()
        for (i, p) in params.enumerated() {
            let analytic = try store.read("p\(i)", from: store.gradients)
            var values = try store.read("p\(i)")
            for j in 0..<p.count {
                let original = values[j]
                values[j] = original + Self.h
                try store.write("p\(i)", values)
                try forward.run()
                let plus = try forward.read(loss)[0]
                values[j] = original - Self.h
                try store.write("p\(i)", values)
                try forward.run()
                let minus = try forward.read(loss)[0]
                values[j] = original
                try store.write("p\(i)", values)
                let numeric = (plus - minus) / (2 * Self.h)
                XCTAssertEqual(analytic[j], numeric, accuracy: 2e-3 + 1e-2 * abs(numeric), "\(what): d/dp\(i)[\(j)]")
            }
        }

        // 4. Every node alone, into guarded buffers.
        let eager = try evaluateGuarded(graph, store: store, backend: backend, what: what)
        for (i, (a, b)) in zip(eager[out.id] ?? [], got).enumerated() {
            XCTAssertEqual(Double(a), Double(b), accuracy: row.tolerance * (1 + abs(reference[i])),
                           "\(what): node-by-node evaluation differs from the plan at \(i)")
        }
        primitivesSeen.formUnion(graph.nodes.map { String(describing: type(of: $0.primitive)) })
        return got
    }

    /// Evaluates every node of `graph` in order, each operand in a buffer of its own with
    /// `guardCount` sentinel elements on each side; checks that inputs and guards are untouched.
    /// Returns every computed tensor's values.
    func evaluateGuarded(_ graph: Graph, store: ParameterStore, backend: Backend, what: String) throws -> [Int: [Float]] {
        let guardCount = 64
        let sentinel = Float(bitPattern: 0x7FC0_BEEF)
        var values: [Int: [Float]] = [:]
        for (id, role) in graph.roles.enumerated() {
            switch role {
            case let .parameter(name, _): values[id] = try store.read(name)
            case let .constant(.floats(v)): values[id] = v
            case let .constant(.indices(v)): values[id] = v.map { Float(bitPattern: UInt32(bitPattern: $0)) }
            case .input, .computed: break
            }
        }
        func guarded(_ t: Tensor, _ contents: [Float]?) throws -> (buffer: Buffer, operand: Operand, image: [UInt32]) {
            let buffer = try backend.makeBuffer(count: t.count + 2 * guardCount)
            var image = [Float](repeating: sentinel, count: buffer.count)
            if let contents { image.replaceSubrange(guardCount..<(guardCount + t.count), with: contents) }
            try backend.upload(image, to: buffer.view)
            return (buffer, Operand(view: buffer.view(offset: guardCount, count: t.count), shape: t.shape),
                    image.map(\.bitPattern))
        }
        for node in graph.nodes {
            let ins = try node.inputs.map { t -> (buffer: Buffer, operand: Operand, image: [UInt32]) in
                guard let v = values[t.id] else { throw SBIError.invalidArgument("\(what): \(t) has no value") }
                return try guarded(t, v)
            }
            let outs = try node.outputs.map { try guarded($0, nil) }
            try node.primitive.evaluate(on: backend, inputs: ins.map(\.operand), outputs: outs.map(\.operand))
            for (t, operand) in zip(node.inputs, ins) {
                let after = try backend.download(operand.buffer.view).map(\.bitPattern)
                XCTAssertTrue(after == operand.image, "\(what): \(node.primitive) wrote into its input \(t)")
            }
            for (t, operand) in zip(node.outputs, outs) {
                let after = try backend.download(operand.buffer.view)
                let around = after[..<guardCount] + after[(guardCount + t.count)...]
                XCTAssertTrue(around.allSatisfy { $0.bitPattern == sentinel.bitPattern },
                              "\(what): \(node.primitive) wrote outside its output \(t)")
                values[t.id] = Array(after[guardCount..<(guardCount + t.count)])
            }
        }
        return values
    }

    /// The primitive types that the rows' graphs used, on the first backend.
    private var primitivesSeen = Set<String>()

    func testEveryPrimitiveHasARow() throws {
        primitivesSeen = []
        for row in OpCase.table {
            let graph = Graph()
            let params = row.shapes.enumerated().map { i, shape in graph.parameter("p\(i)", shape: shape, initializer: .zeros) }
            let out = try row.build(graph, params)
            _ = try graph.gradients(of: try graph.sum(out), with: params)
            primitivesSeen.formUnion(graph.nodes.map { String(describing: type(of: $0.primitive)) })
        }
        let declared = try Self.declaredPrimitives()
        XCTAssertGreaterThan(declared.count, 20, "the scan of Sources/ found too few primitives: \(declared)")
        let missing = declared.subtracting(primitivesSeen)
        XCTAssertTrue(missing.isEmpty, "primitives with no row in OpCase.table: \(missing.sorted())")
    }

    /// Every `struct X: …Primitive` in Sources/ (read from the source tree beside the tests).
    static func declaredPrimitives() throws -> Set<String> {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources")
        let pattern = try NSRegularExpression(pattern: #"(?:struct|class)\s+(\w+)\s*:\s*(?:[\w.]+\s*,\s*)*(?:View)?Primitive\b"#)
        var names = Set<String>()
        let files = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)!
        for case let url as URL in files where url.pathExtension == "swift" {
            let text = try String(contentsOf: url, encoding: .utf8)
            for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                names.insert(String(text[Range(match.range(at: 1), in: text)!]))
            }
        }
        return names
    }

    /// Tied maxima: the gradient goes to the window's first maximal element (row-major) alone,
    /// on every backend, and an odd last column gets none.
    func testMaxPoolTiesGoToTheFirst() throws {
        // One image 2×3×1: window [[1, 5], [5, 5]] ties three ways; column 2 is dropped.
        let x: [Float] = [1, 5, 9, 5, 5, 9]
        for backend in try TestBackends.all() {
            let graph = Graph()
            let p = graph.parameter("x", shape: [1, 2, 3, 1], initializer: .zeros)
            let y = try graph.maxPool2(p)
            let loss = try graph.sum(try graph.affine(y, scale: 7, shift: 0))
            let grads = try graph.gradients(of: loss, with: [p])
            let store = try ParameterStore(graph: graph, backend: backend, seed: 1)
            try store.write("x", x)
            let plan = try Plan(graph: graph, backend: backend, outputs: [y, loss], parameters: store,
                                gradients: [(grads[0], "x")])
            try plan.run()
            XCTAssertEqual(try plan.read(y), [5], backend.kind)
            XCTAssertEqual(try store.read("x", from: store.gradients), [0, 7, 0, 0, 0, 0], backend.kind)
        }
    }

    /// The log-det is only C⁰ at the knots and at ±B (its slope f''/f' jumps there, by up to ~60
    /// with these parameters), so a central difference straddling one is meaningless: every
    /// transformed x of the spline rows lies at least 2·h·scale from its knots and from ±B, and
    /// the rows have inputs both inside and outside the tail bound.
    func testSplineRowsAvoidKnots() throws {
        let bins = 4, count = RationalQuadraticSpline.parameterCount(bins: bins)
        for (bound, scale, shift) in OpCase.splineConfigurations {
            let p = Self.values(12, seed: 10), raw = Self.values(3 * 4 * count, seed: 11)
            let x = p.map { scale * $0 + shift }
            for (i, v) in x.enumerated() where OpCase.splineMask[i % 4] == 0 {
                let w = raw[(i * count)..<(i * count + bins)].map { Foundation.exp(Double($0)) }
                var knots = [-Double(bound)], acc = 0.0
                for u in w { acc += 1e-3 + (1 - 4e-3) * u / w.reduce(0, +); knots.append(2 * Double(bound) * acc - Double(bound)) }
                let distance = knots.map { abs($0 - Double(v)) }.min()!
                XCTAssertGreaterThan(distance, 2 * Double(Self.h * scale), "x[\(i)] = \(v) too near a knot for B = \(bound)")
            }
            let transformed = x.enumerated().filter { OpCase.splineMask[$0.offset % 4] == 0 }.map { abs($0.element) }
            XCTAssertTrue(transformed.contains { $0 > bound } && transformed.contains { $0 < bound }, "inside and outside B = \(bound)")
        }
    }
}
