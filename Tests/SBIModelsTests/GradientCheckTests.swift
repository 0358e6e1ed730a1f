import XCTest
import SBIBackend
@testable import SBIGraph
@testable import SBIModels

/// Every primitive's backward pass against central finite differences of its forward pass, on
/// every backend, in the spirit of ggml's test-backend-ops. New primitives add a case here.
///
/// Tolerance: the backends compute in float32. A central difference with step h has truncation
/// error O(h²·f''') and rounding error O(ε·|loss|/h) with ε ≈ 6e-8; for h = 1e-2 and the O(1..10)
/// losses used here both are ≲ 1e-4, so |analytic − numeric| ≤ 2e-3 + 1e-2·|numeric| leaves an
/// order of magnitude of margin while catching any wrong derivative (errors of O(1)).
final class GradientCheckTests: XCTestCase {
    static let h: Float = 1e-2

    func backends() throws -> [Backend] {
        var list: [Backend] = [CPUBackend()]
        if let device = OpenCLDevice.all().first { list.append(try OpenCLBackend(device: device)) }
        return list
    }

    /// Values in ±[0.2, 1.2]: away from the kinks of relu/abs at 0, positive when `positive`.
    static func values(_ count: Int, seed: UInt64, positive: Bool = false) -> [Float] {
        (0..<count).map { i in
            let u = Philox.unit(Philox.word(at: UInt64(i), seed: seed))
            let magnitude = 0.2 + u
            let sign: Float = positive || Philox.word(at: UInt64(i), seed: seed &+ 1) % 2 == 0 ? 1 : -1
            return sign * magnitude
        }
    }

    /// Builds `f` on parameters of the given shapes, checks d sum(f ⊙ R)/d params by finite differences.
    func check(_ name: String, shapes: [(Int, Int)], positive: Bool = false,
               file: StaticString = #filePath, line: UInt = #line,
               _ f: (Graph, [Tensor]) throws -> Tensor) throws {
        for backend in try backends() {
            let graph = Graph()
            let params = shapes.enumerated().map { i, s in
                graph.parameter("p\(i)", rows: s.0, cols: s.1, initializer: .zeros)
            }
            let out = try f(graph, params)
            let weights = graph.constant(Self.values(out.count, seed: 99), rows: out.rows, cols: out.cols)
            let loss = try graph.sum(try graph.multiply(out, weights))
            let grads = try graph.gradients(of: loss, with: params)
            let store = try ParameterStore(graph: graph, backend: backend, seed: 1)
            for (i, p) in params.enumerated() {
                try store.write("p\(i)", Self.values(p.count, seed: UInt64(10 + i), positive: positive))
            }
            let train = try Plan(graph: graph, backend: backend, outputs: [loss], parameters: store,
                                 gradients: grads.enumerated().map { ($1, "p\($0)") })
            let forward = try Plan(graph: graph, backend: backend, outputs: [loss], parameters: store)
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
                    XCTAssertEqual(analytic[j], numeric, accuracy: 2e-3 + 1e-2 * abs(numeric),
                                   "\(name) on \(backend.kind): d/dp\(i)[\(j)]", file: file, line: line)
                }
            }
        }
    }

    func testMatMulAllTransposes() throws {
        for ta in [false, true] {
            for tb in [false, true] {
                try check("matmul ta=\(ta) tb=\(tb)", shapes: [ta ? (4, 3) : (3, 4), tb ? (5, 4) : (4, 5)]) { g, p in
                    try g.matmul(p[0], p[1], transposeA: ta, transposeB: tb)
                }
            }
        }
    }

    func testLinearWithFusedActivations() throws {
        for act in [UnaryOp.identity, .relu, .leakyRelu, .tanh, .sigmoid, .softplus] {
            try check("linear+\(act)", shapes: [(3, 4), (4, 5), (1, 5)]) { g, p in
                try g.linear(p[0], weight: p[1], bias: p[2], activation: act, slope: 0.1)
            }
        }
    }

    func testUnaryOps() throws {
        for op in UnaryOp.allCases {
            let positive = op == .log || op == .sqrt
            try check("unary \(op)", shapes: [(3, 5)], positive: positive) { g, p in
                try g.unary(op, p[0], parameter: 0.1)
            }
        }
    }

    func testAffine() throws {
        try check("affine", shapes: [(2, 3)]) { g, p in try g.affine(p[0], scale: -1.5, shift: 0.25) }
    }

    func testBinaryOpsWithBroadcasts() throws {
        for op in BinaryOp.allCases {
            for shape in [(3, 4), (1, 4), (3, 1)] {
                try check("binary \(op) b=\(shape)", shapes: [(3, 4), shape], positive: op == .divide) { g, p in
                    try g.binary(op, p[0], p[1])
                }
            }
        }
    }

    func testReductions() throws {
        try check("sumRows", shapes: [(3, 4)]) { g, p in try g.sumRows(p[0]) }
        try check("sumColumns", shapes: [(3, 4)]) { g, p in try g.sumColumns(p[0]) }
        try check("sum", shapes: [(3, 4)]) { g, p in try g.sum(p[0]) }
        try check("mean", shapes: [(3, 4)]) { g, p in try g.mean(p[0]) }
        try check("logSumExpRows", shapes: [(3, 4)]) { g, p in try g.logSumExpRows(p[0]) }
        try check("broadcast row", shapes: [(1, 4)]) { g, p in try g.broadcast(p[0], rows: 3, cols: 4, mode: .row) }
        try check("broadcast column", shapes: [(3, 1)]) { g, p in try g.broadcast(p[0], rows: 3, cols: 4, mode: .column) }
    }

    func testLayout() throws {
        try check("slice", shapes: [(3, 6)]) { g, p in try g.slice(p[0], start: 2, width: 3) }
        try check("concat", shapes: [(3, 2), (3, 3)]) { g, p in try g.concat([p[0], p[1]]) }
        try check("gather permutation", shapes: [(3, 5)]) { g, p in try g.gatherColumns(p[0], [3, 0, 4, 1, 2]) }
        try check("gather subset with zero columns", shapes: [(3, 5)]) { g, p in try g.gatherColumns(p[0], [3, -1, 0, 4, -1]) }
        try check("gather rows with zero rows", shapes: [(4, 3)]) { g, p in try g.gatherRows(p[0], [2, -1, 0]) }
        try check("reshape", shapes: [(3, 4)]) { g, p in try g.reshape(p[0], rows: 2, cols: 6) }
        try check("mask", shapes: [(3, 4)]) { g, p in try g.mask(p[0], [1, 0, 1, 0]) }
        try check("copy", shapes: [(3, 4)]) { g, p in try g.copy(p[0]) }
    }

    func testDensities() throws {
        try check("standard normal log density", shapes: [(3, 4)]) { g, p in try g.standardNormalLogDensity(p[0]) }
        try check("gaussian log density", shapes: [(3, 4), (3, 4), (1, 4)]) { g, p in
            try g.gaussianLogDensity(p[0], mean: p[1], logStd: p[2])
        }
    }

    func testAffineCoupling() throws {
        for bound: Float in [0, 2] {
            for inverse in [false] {
                try check("affine coupling bound=\(bound)", shapes: [(3, 5), (3, 10)]) { g, p in
                    let out = try g.apply(AffineCouplingOp(inverse: inverse, bound: bound),
                                          [p[0], p[1], g.constant([1, 0, 1, 0, 0], rows: 1, cols: 5)])
                    // Both outputs feed the loss: y and the log-det.
                    return try g.concat([out[0], out[1]])
                }
            }
        }
    }

    /// Raw parameters in ±[0.2, 1.2]; x = scale·p + shift puts inputs inside and outside the tail
    /// bound. K = 4 keeps the number of perturbations small. The log-det is only C⁰ at the knots
    /// and at ±B (its slope f''/f' jumps there, by up to ~60 with these parameters), so a central
    /// difference straddling one is meaningless: each configuration first asserts that every
    /// transformed x lies at least 2·h·scale from its knots and from ±B.
    func testRationalQuadraticSpline() throws {
        let bins = 4, count = RationalQuadraticSpline.parameterCount(bins: bins)
        let mask: [Float] = [0, 1, 0, 0]
        for (bound, scale, shift): (Float, Float, Float) in [(3, 3, 0.5), (1.5, 1.5, -0.1)] {
            let raw = Self.values(3 * 4 * count, seed: 11), x = Self.values(12, seed: 10).map { scale * $0 + shift }
            for (i, v) in x.enumerated() where mask[i % 4] == 0 {
                let w = raw[(i * count)..<(i * count + bins)].map { Foundation.exp(Double($0)) }
                var knots = [-Double(bound)], acc = 0.0
                for u in w { acc += 1e-3 + (1 - 4e-3) * u / w.reduce(0, +); knots.append(2 * Double(bound) * acc - Double(bound)) }
                let distance = knots.map { abs($0 - Double(v)) }.min()!
                XCTAssertGreaterThan(distance, 2 * Double(Self.h * scale), "x[\(i)] = \(v) too near a knot for B = \(bound)")
            }
            let transformed = x.enumerated().filter { mask[$0.offset % 4] == 0 }.map { abs($0.element) }
            XCTAssertTrue(transformed.contains { $0 > bound } && transformed.contains { $0 < bound }, "inside and outside B = \(bound)")
            try check("rq spline B=\(bound)", shapes: [(3, 4), (3, 4 * count)]) { g, p in
                let out = try g.apply(RQSplineOp(inverse: false, bins: bins, tailBound: bound),
                                      [g.affine(p[0], scale: scale, shift: shift), p[1],
                                       g.constant(mask, rows: 1, cols: 4)])
                return try g.concat([out[0], out[1]])
            }
        }
    }

    /// A tensor feeding several nodes accumulates their cotangents.
    func testFanOutAccumulates() throws {
        try check("fan-out", shapes: [(3, 4), (4, 4)]) { g, p in
            let h = try g.tanh(try g.matmul(p[0], p[1]))
            return try g.add(try g.multiply(h, h), try g.matmul(h, p[1]))
        }
    }
}
