import Foundation
import XCTest
import SBITestSupport
@testable import SBIBackend

// Element-wise maps, broadcasts and row/column reductions on both backends, each checked against
// a naive double-precision reference written here, and the two backends against each other.
//
// Tolerances. OpenCL 1.2 (full profile, §7.4, Table 7.1) bounds the single-precision built-ins:
// exp, log ≤ 3 ulp, tanh ≤ 5 ulp, log1p ≤ 2 ulp, sqrt ≤ 3 ulp, x / y ≤ 2.5 ulp; +, −, × are
// correctly rounded (≤ 0.5 ulp). One ulp is at most 2⁻²³ ≈ 1.19e-7 of the value. So:
//   exact ops (relu, leaky ReLU, square, negate, abs, +, −, ×):    1 ulp    → rtol 1.2e-7
//   sqrt, divide (≤ 3 ulp):                                          4 ulp    → rtol 4.8e-7
//   exp, log, tanh and the compositions sigmoid = 1/(1+e^−x)
//   (≤ 3 + 0.5 + 2.5 ulp) and softplus = max(x,0) + log1p(e^−|x|)
//   (≤ 3 + 2 + 0.5 ulp): twice the worst composed bound, 16 ulp     → rtol 2e-6
// plus an absolute floor of a few FLT_MIN, because subnormal results may be flushed to zero
// (denormal support is optional in OpenCL). Reductions are bounded by the standard summation
// bound |ŝ − s| ≤ (n − 1)·u·Σ|xᵢ| (u = 2⁻²⁴), which holds for any order of additions.
// CPU and OpenCL results are compared with twice the reference tolerance (each is within it).

/// Shared helpers of ElementwiseTests, RandomTests and ErrorTests.
enum ElemFixture {
    /// The shared OpenCL backend (see `TestBackends`), or XCTSkip without one.
    static func openCL() throws -> OpenCLBackend { try TestBackends.openCL() }
    static var cpu: CPUBackend { TestBackends.cpu }

    /// SplitMix64: the test inputs, reproducible and independent of the engine's Philox.
    typealias Inputs = SplitMix64

    /// `values` placed at element `offset` of a new buffer with `slack` sentinel elements after
    /// them: returns the buffer and the view of the values.
    static func embedded(_ backend: Backend, _ values: [Float], offset: Int, slack: Int = 7) throws
        -> (buffer: Buffer, view: BufferView) {
        let all = [Float](repeating: sentinel, count: offset) + values + [Float](repeating: sentinel, count: slack)
        let buffer = try backend.makeBuffer(all)
        return (buffer, buffer.view(offset: offset, count: values.count))
    }

    /// An output view of `count` elements at `offset`, the rest of the buffer sentinels.
    static func output(_ backend: Backend, count: Int, offset: Int, slack: Int = 5) throws -> (buffer: Buffer, view: BufferView) {
        try embedded(backend, [Float](repeating: -sentinel, count: count), offset: offset, slack: slack)
    }

    static let sentinel: Float = 12345.5

    /// Downloads `view` and checks that the rest of its buffer still holds sentinels.
    static func result(_ backend: Backend, _ view: BufferView, file: StaticString = #filePath, line: UInt = #line) throws -> [Float] {
        let all = try backend.download(view.buffer.view)
        for (i, v) in all.enumerated() where !(view.offset..<(view.offset + view.count)).contains(i) {
            if v != sentinel {
                XCTFail("\(backend.kind): element \(i) outside the output view was overwritten (\(v))", file: file, line: line)
                break
            }
        }
        return Array(all[view.offset..<(view.offset + view.count)])
    }

    /// Checks |got − ref| ≤ rtol·scale + atol element by element (scale defaults to |ref|);
    /// non-finite references must be matched exactly (after rounding to Float).
    static func assertClose(_ got: [Float], _ ref: [Double], rtol: Double, atol: Double = 5e-38,
                            scale: [Double]? = nil, _ what: @autoclosure () -> String,
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, ref.count, "\(what()): count", file: file, line: line)
        var worst = -1, worstExcess = 0.0
        for i in 0..<min(got.count, ref.count) {
            let g = Double(got[i]), r = ref[i]
            if !Float(r).isFinite || r.isNaN {
                if !(g == Double(Float(r)) || (g.isNaN && r.isNaN)) { worst = i; worstExcess = .infinity; break }
                continue
            }
            let tol = rtol * (scale?[i] ?? abs(r)) + atol
            let err = abs(g - r)
            if !(err <= tol) && (worst < 0 || err / tol > worstExcess) { worst = i; worstExcess = err / tol }
        }
        if worst >= 0 {
            XCTFail("\(what()): element \(worst) is \(got[worst]), reference \(ref[worst]) "
                    + "(error \(worstExcess.isFinite ? String(format: "%.2f", worstExcess) : "∞") × tolerance)",
                    file: file, line: line)
        }
    }

    /// Compares the two backends' results: each is within `rtol` of the reference, so they are
    /// within twice that of each other.
    static func assertBackendsAgree(_ cpu: [Float], _ cl: [Float], _ ref: [Double], rtol: Double, atol: Double = 5e-38,
                                    scale: [Double]? = nil, _ what: @autoclosure () -> String,
                                    file: StaticString = #filePath, line: UInt = #line) {
        let asDouble = cpu.map(Double.init)
        assertClose(cl, asDouble, rtol: 2 * rtol, atol: 2 * atol, scale: scale ?? ref.map(abs),
                    "\(what()) (OpenCL vs CPU)", file: file, line: line)
    }
}

final class ElementwiseTests: XCTestCase {
    typealias F = ElemFixture

    // MARK: unary

    /// The reference in double (`DoubleReference`); the relative tolerance (see the header) of each op.
    static func reference(_ op: UnaryOp, _ x: Double, _ slope: Double) -> Double { DoubleReference.unary(op, x, slope) }

    static func tolerance(_ op: UnaryOp) -> Double {
        switch op {
        case .identity, .relu, .leakyRelu, .square, .negate, .abs: return 1.2e-7
        case .sqrt: return 4.8e-7
        case .exp, .log, .tanh, .sigmoid, .softplus: return 2e-6
        }
    }

    /// Inputs covering each op's domain: random values in [-8, 8] plus edge values (large |x|
    /// for softplus, sigmoid, tanh and exp; tiny and zero values; positive only for log, sqrt).
    static func inputs(_ op: UnaryOp, count: Int) -> [Float] {
        var g = F.Inputs(seed: UInt64(op.rawValue) + 17)
        var edges: [Float] = [0, -0.0, 1, -1, 1e-30, -1e-30, 0.5, -0.5, 3.25, -3.25, 15, -15, 20, -20, 40, -40,
                              80, -80, 88, -87]
        switch op {
        case .log, .sqrt:
            edges = [0, 1e-30, 1e-20, 1, 0.999999, 1.000001, 2, 1e10, 3e38]
            return edges + (0..<(count - edges.count)).map { _ in Foundation.exp(g.uniform(-20, 20)) }
        case .exp:
            edges += [100, -100, -103.9, -110]  // overflow to +inf; subnormal and zero results
        case .softplus, .sigmoid, .tanh:
            edges += [100, -100, 300, -300, 1e5, -1e5, 3e38, -3e38]
        case .square:
            edges += [1e19, -1e19, 1e-19, 1e20]  // square overflows to +inf, underflows to subnormal
        default:
            edges += [3e38, -3e38, Float.leastNormalMagnitude / 8, -Float.leastNormalMagnitude / 8]
        }
        return edges + g.floats(count - edges.count, -8, 8)
    }

    func testUnaryEveryOpBothBackendsAgainstDoubleReference() throws {
        let n = 1037, slope: Float = 0.173
        var cpuResults: [UnaryOp: [Float]] = [:]
        var clResults: [UnaryOp: [Float]] = [:]
        let cl = try? F.openCL()
        for op in UnaryOp.allCases {
            let x = Self.inputs(op, count: n)
            let ref = x.map { Self.reference(op, Double($0), Double(slope)) }
            for backend in [F.cpu as Backend] + (cl.map { [$0 as Backend] } ?? []) {
                // x at offset 3 of one buffer, y at offset 11 of another.
                let (_, xv) = try F.embedded(backend, x, offset: 3)
                let (_, yv) = try F.output(backend, count: n, offset: 11)
                try backend.unary(op, xv, yv, parameter: slope)
                let got = try F.result(backend, yv)
                F.assertClose(got, ref, rtol: Self.tolerance(op), "\(backend.kind) unary \(op)")
                // In place: x and y the same view.
                let (_, inPlace) = try F.embedded(backend, x, offset: 5)
                try backend.unary(op, inPlace, inPlace, parameter: slope)
                XCTAssertEqual(try F.result(backend, inPlace).map(\.bitPattern), got.map(\.bitPattern),
                               "\(backend.kind) unary \(op) in place")
                if backend.kind == "cpu" { cpuResults[op] = got } else { clResults[op] = got }
            }
            if let clGot = clResults[op] {
                F.assertBackendsAgree(cpuResults[op]!, clGot, ref, rtol: Self.tolerance(op), "unary \(op)")
            }
        }
        try skipIfNoOpenCL()
    }

    func testLeakyReluSlopeAndDefaultParameter() throws {
        let x: [Float] = [-2, -0.5, 0, 0.5, 2]
        for backend in try backends() {
            let (_, xv) = try F.embedded(backend, x, offset: 2)
            let (_, yv) = try F.output(backend, count: x.count, offset: 1)
            try backend.unary(.leakyRelu, xv, yv, parameter: 0.25)
            XCTAssertEqual(try F.result(backend, yv), [-0.5, -0.125, 0, 0.5, 2], backend.kind)
            try backend.unary(.leakyRelu, xv, yv)  // the protocol's default slope, 0.01
            XCTAssertEqual(try F.result(backend, yv), [-0.02, -0.005, 0, 0.5, 2], backend.kind)
        }
        try skipIfNoOpenCL()
    }

    // MARK: affine

    func testAffineBothBackends() throws {
        var g = F.Inputs(seed: 5)
        let n = 777
        let x = g.floats(n, -100, 100)
        var outputs: [[Float]] = []
        for (alpha, beta) in [(Float(2.5), Float(-1.25)), (-0.001, 1e4), (0, 3), (1, 0)] {
            let ref = x.map { Double(alpha) * Double($0) + Double(beta) }
            // Two roundings (or one, if fused): within u·|αx| + u·|αx + β| of the exact value.
            let scale = x.map { Swift.abs(Double(alpha) * Double($0)) + Swift.abs(Double(alpha) * Double($0) + Double(beta)) }
            outputs = []
            for backend in try backends() {
                let (_, xv) = try F.embedded(backend, x, offset: 9)
                let (_, yv) = try F.output(backend, count: n, offset: 4)
                try backend.affine(xv, yv, scale: alpha, shift: beta)
                let got = try F.result(backend, yv)
                F.assertClose(got, ref, rtol: 6e-8, scale: scale, "\(backend.kind) affine α=\(alpha) β=\(beta)")
                outputs.append(got)
            }
            if outputs.count == 2 {
                F.assertBackendsAgree(outputs[0], outputs[1], ref, rtol: 6e-8, scale: scale, "affine")
            }
        }
        try skipIfNoOpenCL()
    }

    // MARK: binary

    func testBinaryEveryOpEveryBroadcastOddShapes() throws {
        let shapes = [(1, 1), (7, 13), (33, 257), (1, 300), (300, 1)]
        var checked = 0
        for (rows, cols) in shapes {
            var g = F.Inputs(seed: UInt64(rows * 1000 + cols))
            let a = g.floats(rows * cols, -10, 10)
            for broadcast in Broadcast.allCases {
                let bCount = broadcast == .none ? rows * cols : (broadcast == .row ? cols : rows)
                // Divisors bounded away from zero: |b| in [0.5, 4].
                let b = (0..<bCount).map { _ in (g.next() & 1 == 0 ? 1 : -1) * g.uniform(0.5, 4) }
                for op in BinaryOp.allCases {
                    let ref = (0..<(rows * cols)).map { i -> Double in
                        let r = i / cols, c = i % cols
                        let bv = Double(broadcast == .none ? b[i] : (broadcast == .row ? b[c] : b[r]))
                        let av = Double(a[i])
                        switch op {
                        case .add: return av + bv
                        case .subtract: return av - bv
                        case .multiply: return av * bv
                        case .divide: return av / bv
                        }
                    }
                    let rtol = op == .divide ? 4.8e-7 : 1.2e-7
                    var outputs: [[Float]] = []
                    for backend in try backends() {
                        let (_, av) = try F.embedded(backend, a, offset: 1)
                        let (_, bv) = try F.embedded(backend, b, offset: 6)
                        let (_, ov) = try F.output(backend, count: rows * cols, offset: 13)
                        try backend.binary(op, av, bv, ov, rows: rows, cols: cols, broadcast: broadcast)
                        let got = try F.result(backend, ov)
                        F.assertClose(got, ref, rtol: rtol, "\(backend.kind) \(op) \(broadcast) \(rows)×\(cols)")
                        outputs.append(got)
                        checked += 1
                    }
                    if outputs.count == 2 {
                        F.assertBackendsAgree(outputs[0], outputs[1], ref, rtol: rtol, "\(op) \(broadcast) \(rows)×\(cols)")
                    }
                }
            }
        }
        XCTAssertGreaterThanOrEqual(checked, shapes.count * 3 * 4)
        try skipIfNoOpenCL()
    }

    func testBinaryInPlaceAndViewsOfOneBuffer() throws {
        // a, b and out are views of one buffer; out aliases a (an accumulate-in-place update).
        let rows = 5, cols = 19
        var g = F.Inputs(seed: 99)
        let a = g.floats(rows * cols, -3, 3), bias = g.floats(cols, -1, 1)
        let expected = (0..<(rows * cols)).map { a[$0] + bias[$0 % cols] }
        for backend in try backends() {
            let all = try backend.makeBuffer([Float](repeating: 0, count: 3) + a + bias + [0, 0])
            let av = all.view(offset: 3, count: rows * cols), bv = all.view(offset: 3 + rows * cols, count: cols)
            try backend.binary(.add, av, bv, av, rows: rows, cols: cols, broadcast: .row)
            XCTAssertEqual(try backend.download(av), expected, backend.kind)
            XCTAssertEqual(try backend.download(bv), bias, backend.kind)
        }
        try skipIfNoOpenCL()
    }

    // MARK: reductions

    static let reductionShapes = [(1, 1), (7, 13), (9, 32), (9, 33), (33, 257), (3, 1000), (1000, 1), (2, 0), (0, 5)]

    func testSumRowsAndSumColumns() throws {
        for (rows, cols) in Self.reductionShapes {
            var g = F.Inputs(seed: UInt64(31 * rows + cols))
            let x = g.floats(rows * cols, -5, 5)
            let rowRef = (0..<rows).map { r in (0..<cols).reduce(0.0) { $0 + Double(x[r * cols + $1]) } }
            let rowAbs = (0..<rows).map { r in (0..<cols).reduce(0.0) { $0 + Swift.abs(Double(x[r * cols + $1])) } }
            let colRef = (0..<cols).map { c in (0..<rows).reduce(0.0) { $0 + Double(x[$1 * cols + c]) } }
            let colAbs = (0..<cols).map { c in (0..<rows).reduce(0.0) { $0 + Swift.abs(Double(x[$1 * cols + c])) } }
            // |ŝ − s| ≤ (n − 1)·u·Σ|x| for any order of the n − 1 additions.
            let rowTol = Double(max(cols, 1)) * 0x1p-24, colTol = Double(max(rows, 1)) * 0x1p-24
            var sums: [([Float], [Float])] = []
            for backend in try backends() {
                let (_, xv) = try F.embedded(backend, x, offset: 17)
                let (_, rv) = try F.output(backend, count: rows, offset: 2)
                let (_, cv) = try F.output(backend, count: cols, offset: 3)
                try backend.sumRows(xv, rows: rows, cols: cols, rv)
                try backend.sumColumns(xv, rows: rows, cols: cols, cv)
                let r = try F.result(backend, rv), c = try F.result(backend, cv)
                F.assertClose(r, rowRef, rtol: rowTol, atol: 0, scale: rowAbs, "\(backend.kind) sumRows \(rows)×\(cols)")
                F.assertClose(c, colRef, rtol: colTol, atol: 0, scale: colAbs, "\(backend.kind) sumColumns \(rows)×\(cols)")
                sums.append((r, c))
            }
            if sums.count == 2 {
                F.assertBackendsAgree(sums[0].0, sums[1].0, rowRef, rtol: rowTol, atol: 0, scale: rowAbs, "sumRows \(rows)×\(cols)")
                F.assertBackendsAgree(sums[0].1, sums[1].1, colRef, rtol: colTol, atol: 0, scale: colAbs, "sumColumns \(rows)×\(cols)")
            }
        }
        try skipIfNoOpenCL()
    }

    static func logSumExpReference(_ row: ArraySlice<Float>) -> Double {
        let m = row.map(Double.init).max() ?? -.infinity
        if m.isInfinite { return m }
        return m + Foundation.log(row.reduce(0.0) { $0 + Foundation.exp(Double($1) - m) })
    }

    func testLogSumExpRowsStableWithHugeAndInfiniteValues() throws {
        for (rows, cols) in Self.reductionShapes + [(6, 1000), (6, 1), (6, 7), (6, 300)] {
            var g = F.Inputs(seed: UInt64(7 * rows + cols))
            var x = g.floats(rows * cols, -20, 20)
            if rows == 6 && cols > 0 {
                for c in 0..<cols {
                    x[0 * cols + c] = 1000 + Float(c % 7) * 0.5  // exp would overflow without the max shift
                    x[1 * cols + c] = -.infinity                 // log 0 = −∞
                    x[2 * cols + c] = c % 3 == 0 ? -.infinity : x[2 * cols + c]  // some terms vanish
                    x[3 * cols + c] = -1000 - Float(c % 5)       // exp would underflow without the shift
                    x[5 * cols + c] = 88 + Float(c % 4)          // e^88·cols overflows single precision
                }
                x[4 * cols + cols / 2] = .infinity               // +∞ in a row gives +∞
            }
            let ref = (0..<rows).map { Self.logSumExpReference(x[($0 * cols)..<($0 * cols + cols)]) }
            // log Σ: the sum's relative error (≤ cols·u from the additions, 3 ulp from exp) becomes
            // an absolute error of log, plus ≤ 3 ulp of log and 0.5 ulp of the final add, relative
            // to the result.
            let absTol = (Double(cols) + 8) * 0x1p-24
            var outs: [[Float]] = []
            for backend in try backends() {
                let (_, xv) = try F.embedded(backend, x, offset: 5)
                let (_, ov) = try F.output(backend, count: rows, offset: 7)
                try backend.logSumExpRows(xv, rows: rows, cols: cols, ov)
                let got = try F.result(backend, ov)
                F.assertClose(got, ref, rtol: 6e-7, atol: absTol, "\(backend.kind) logSumExpRows \(rows)×\(cols)")
                outs.append(got)
            }
            if outs.count == 2 {
                F.assertBackendsAgree(outs[0], outs[1], ref, rtol: 6e-7, atol: absTol, "logSumExpRows \(rows)×\(cols)")
            }
        }
        try skipIfNoOpenCL()
    }

    // MARK: fill and copy

    func testFillAndCopyWithOffsets() throws {
        for n in [0, 1, 255, 257, 100_003] {
            var g = F.Inputs(seed: UInt64(n))
            let x = g.floats(n, -1, 1)
            for backend in try backends() {
                let (_, fv) = try F.output(backend, count: n, offset: 3)
                try backend.fill(fv, value: -7.5)
                XCTAssertEqual(try F.result(backend, fv), [Float](repeating: -7.5, count: n), "\(backend.kind) fill \(n)")

                let (_, src) = try F.embedded(backend, x, offset: 9)
                let (_, dst) = try F.output(backend, count: n, offset: 4)
                try backend.copy(src, to: dst)
                XCTAssertEqual(try F.result(backend, dst), x, "\(backend.kind) copy \(n)")

                // Within one buffer: disjoint views copy; the same view is a no-op.
                let one = try backend.makeBuffer(x + [Float](repeating: 0, count: n + 2))
                try backend.copy(one.view(offset: 0, count: n), to: one.view(offset: n + 2, count: n))
                try backend.copy(one.view(offset: 0, count: n), to: one.view(offset: 0, count: n))
                XCTAssertEqual(try backend.download(one.view), x + [0, 0] + x, "\(backend.kind) copy within a buffer \(n)")
            }
        }
        try skipIfNoOpenCL()
    }

    // MARK: the CPU backend's threads

    /// Large operations are split across cores; every element must come out bit-identical to
    /// the single-threaded loop (the same operation on pieces below the threshold).
    func testCPUParallelSplitIsBitIdentical() throws {
        let cpu = F.cpu
        let rows = 1500, cols = 101, n = rows * cols  // 151 500 elements: above the 64k threshold
        var g = F.Inputs(seed: 2024)
        let x = g.floats(n, -4, 4), b = g.floats(cols, 0.5, 2)
        let xb = try cpu.makeBuffer(x), bb = try cpu.makeBuffer(b)
        let out = try cpu.makeBuffer(count: n), piece = try cpu.makeBuffer(count: n)
        let chunk = 10_000
        func pieces(_ body: (Int, Int) throws -> Void) rethrows {
            var start = 0
            while start < n { let len = min(chunk, n - start); try body(start, len); start += len }
        }
        func assertBitIdentical(_ what: String) throws {
            XCTAssertEqual(try cpu.download(out.view, as: UInt32.self), try cpu.download(piece.view, as: UInt32.self), what)
        }
        for op in [UnaryOp.sigmoid, .relu, .sqrt, .softplus] {
            try cpu.unary(op, xb.view, out.view, parameter: 0.1)
            try pieces { try cpu.unary(op, xb.view(offset: $0, count: $1), piece.view(offset: $0, count: $1), parameter: 0.1) }
            try assertBitIdentical("unary \(op)")
        }
        try cpu.affine(xb.view, out.view, scale: 1.5, shift: -0.25)
        try pieces { try cpu.affine(xb.view(offset: $0, count: $1), piece.view(offset: $0, count: $1), scale: 1.5, shift: -0.25) }
        try assertBitIdentical("affine")
        for op in BinaryOp.allCases {
            try cpu.binary(op, xb.view, bb.view, out.view, rows: rows, cols: cols, broadcast: .row)
            for r in 0..<rows {
                try cpu.binary(op, xb.view(offset: r * cols, count: cols), bb.view,
                               piece.view(offset: r * cols, count: cols), rows: 1, cols: cols, broadcast: .row)
            }
            try assertBitIdentical("binary \(op) row broadcast")
        }
        // Reductions: whole matrix vs one row (or one column block) at a time.
        let rowSums = try cpu.makeBuffer(count: rows), rowPiece = try cpu.makeBuffer(count: rows)
        try cpu.sumRows(xb.view, rows: rows, cols: cols, rowSums.view)
        for r in 0..<rows { try cpu.sumRows(xb.view(offset: r * cols, count: cols), rows: 1, cols: cols, rowPiece.view(offset: r, count: 1)) }
        XCTAssertEqual(try cpu.download(rowSums.view), try cpu.download(rowPiece.view), "sumRows")
        try cpu.logSumExpRows(xb.view, rows: rows, cols: cols, rowSums.view)
        for r in 0..<rows { try cpu.logSumExpRows(xb.view(offset: r * cols, count: cols), rows: 1, cols: cols, rowPiece.view(offset: r, count: 1)) }
        XCTAssertEqual(try cpu.download(rowSums.view), try cpu.download(rowPiece.view), "logSumExpRows")
        // sumColumns of the transpose-free layout: the reference is the exact row-order sum in
        // Float, which is what each column's loop computes.
        let colSums = try cpu.makeBuffer(count: cols)
        try cpu.sumColumns(xb.view, rows: rows, cols: cols, colSums.view)
        let expected = (0..<cols).map { c in (0..<rows).reduce(Float(0)) { $0 + x[$1 * cols + c] } }
        XCTAssertEqual(try cpu.download(colSums.view), expected, "sumColumns")
    }

    // MARK: helpers

    /// The CPU backend, then the OpenCL backend where a device exists. Tests that loop over this
    /// check the CPU half everywhere, then end with `skipIfNoOpenCL()`.
    func backends() throws -> [Backend] { try TestBackends.all() }

    /// Marks the test skipped (after its CPU half ran) when there is no OpenCL device.
    func skipIfNoOpenCL() throws { _ = try TestBackends.openCL() }
}

/// `enqueueUpload`: a queued copy from host memory lands in its view alone once waited on.
final class UploadTests: XCTestCase {
    func testEnqueuedUploadsLandInTheirViews() throws {
        for backend in try TestBackends.all() {
            let arena = try GuardedArena(backend, capacity: 3000)
            var random = SplitMix64(seed: 5)
            let first = random.floats(1000, -1, 1), second = random.floats(1000, -1, 1)
            let a = try arena.output(1000), b = try arena.output(1000)
            let staging = UnsafeMutablePointer<Float>.allocate(capacity: 2000)
            defer { staging.deallocate() }
            staging.initialize(from: first + second, count: 2000)
            let tickets = [try backend.enqueueUpload(from: staging, to: a), try backend.enqueueUpload(from: staging + 1000, to: b)]
            for ticket in tickets { try ticket.wait(); try ticket.wait() }
            XCTAssertEqual(try backend.download(a), first, backend.kind)
            XCTAssertEqual(try backend.download(b), second, backend.kind)
            try arena.checkGuards("enqueueUpload on \(backend.kind)")
            XCTAssertThrowsError(try backend.enqueueUpload(from: staging, to: CPUBackend().makeBuffer(count: 4).view)
                                 as UploadTicket?) { error in
                XCTAssertTrue("\(error)".contains("another backend"), "\(error)")
            }
        }
    }
}
