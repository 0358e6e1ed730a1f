import Foundation
import XCTest
import SBITestSupport
@testable import SBIBackend

/// The backend operations the graph layer needs for training (Backend.swift, "operations the graph
/// layer needs"), on both backends, against naive double-precision references written here.
/// Every operand lives at a nonzero offset inside a shared buffer whose other elements hold a
/// sentinel, so offsets are honoured and nothing outside an output view is written.
final class TrainingOpsTests: XCTestCase {
    typealias T = TrainingFixture

    // MARK: unaryGradient

    /// Inputs inside each op's domain, with the points where conventions matter (0 for the kinks)
    /// and saturating values; `count` of them.
    static func gradientInputs(_ op: UnaryOp, count: Int, random: inout TrainingRandom) -> [Float] {
        var edges: [Float]
        switch op {
        case .log, .sqrt: edges = [1e-3, 0.05, 1, 4, 100, 1e4]
        case .exp: edges = [0, -30, 20, -1e-3, 1e-3]
        default: edges = [0, -0.0, 1e-3, -1e-3, 30, -30, 12, -12]
        }
        let positive = op == .log || op == .sqrt
        while edges.count < count {
            edges.append(positive ? random.uniform(0.05, 5) : random.uniform(-4, 4))
        }
        return edges
    }

    static func derivativeReference(_ op: UnaryOp, _ x: Double, _ slope: Double) -> Double {
        switch op {
        case .identity: return 1
        case .exp: return Foundation.exp(x)
        case .log: return 1 / x
        case .tanh: let t = Foundation.tanh(x); return 1 - t * t
        case .relu: return x > 0 ? 1 : 0
        case .leakyRelu: return x > 0 ? 1 : slope
        case .sigmoid: let s = 1 / (1 + Foundation.exp(-x)); return s * (1 - s)
        case .softplus: return 1 / (1 + Foundation.exp(-x))
        case .square: return 2 * x
        case .negate: return -1
        case .abs: return x > 0 ? 1 : (x < 0 ? -1 : 0)
        case .sqrt: return 0.5 / x.squareRoot()
        }
    }

    static let slope: Float = 0.2

    /// gx for `op` on `backend`, checked against gy·f'(x) in double; returns gx.
    func checkUnaryGradient(_ op: UnaryOp, on backend: Backend, count: Int = 777,
                            file: StaticString = #filePath, line: UInt = #line) throws -> [Float] {
        var random = TrainingRandom(seed: 100 + UInt64(op.rawValue))
        let x = Self.gradientInputs(op, count: count, random: &random)
        let gy = (0..<count).map { _ in random.uniform(-2, 2) }
        let arena = try TrainingArena(backend, capacity: 4 * count + 64)
        let xv = try arena.place(x), yv = try arena.output(count), gv = try arena.place(gy), outv = try arena.output(count)
        try backend.unary(op, xv, yv, parameter: Self.slope)
        try backend.unaryGradient(op, x: xv, y: yv, gradient: gv, into: outv, parameter: Self.slope)
        let gx = try backend.download(outv)
        try arena.checkGuards("\(op) on \(backend.kind)", file: file, line: line)
        for i in 0..<count {
            let d = Self.derivativeReference(op, Double(x[i]), Double(Self.slope))
            let expected = Double(gy[i]) * d
            // Relative to f', plus an absolute floor for 1 − y² and y(1 − y) from a rounded y.
            let tolerance = abs(Double(gy[i])) * (4e-6 + 2e-5 * abs(d))
            if expected.isInfinite || expected.isNaN {
                XCTAssertTrue(gx[i].isInfinite || gx[i].isNaN, "\(op)'(\(x[i])) on \(backend.kind)", file: file, line: line)
            } else if abs(Double(gx[i]) - expected) > tolerance {
                XCTFail("\(op)'(\(x[i])) · \(gy[i]) on \(backend.kind): got \(gx[i]), expected \(expected)",
                        file: file, line: line)
                return gx
            }
        }
        // PyTorch's conventions at the kinks, exactly.
        switch op {
        case .relu, .abs:
            XCTAssertEqual(gx[0], 0, "\(op)'(0) on \(backend.kind)", file: file, line: line)
            XCTAssertEqual(gx[1], 0, "\(op)'(-0) on \(backend.kind)", file: file, line: line)
        case .leakyRelu:
            XCTAssertEqual(gx[0], gy[0] * Self.slope, "leakyRelu'(0) on \(backend.kind)", file: file, line: line)
        default: break
        }
        return gx
    }

    /// unaryGradient against central differences of the backend's own `unary`, taken in double:
    /// (f(x⁺) − f(x⁻)) / (x⁺ − x⁻) with x± the floats nearest x ± h.
    func checkAgainstFiniteDifferences(_ op: UnaryOp, on backend: Backend, file: StaticString = #filePath,
                                       line: UInt = #line) throws {
        let count = 300
        var random = TrainingRandom(seed: 900 + UInt64(op.rawValue))
        let x: [Float] = (0..<count).map { _ in
            switch op {
            case .log, .sqrt: return random.uniform(0.1, 6)
            // Away from the kink at 0, so that x ± h stays on one side.
            case .relu, .leakyRelu, .abs: let v = random.uniform(0.05, 4); return random.next() % 2 == 0 ? v : -v
            default: return random.uniform(-4, 4)
            }
        }
        let h = x.map { 1e-3 * max(1, abs($0)) }
        let xPlus = zip(x, h).map { $0 + $1 }, xMinus = zip(x, h).map { $0 - $1 }
        let arena = try TrainingArena(backend, capacity: 8 * count + 64)
        let xv = try arena.place(x), yv = try arena.output(count), gv = try arena.place([Float](repeating: 1, count: count))
        let gxv = try arena.output(count)
        let pv = try arena.place(xPlus), mv = try arena.place(xMinus), fp = try arena.output(count), fm = try arena.output(count)
        try backend.unary(op, xv, yv, parameter: Self.slope)
        try backend.unary(op, pv, fp, parameter: Self.slope)
        try backend.unary(op, mv, fm, parameter: Self.slope)
        try backend.unaryGradient(op, x: xv, y: yv, gradient: gv, into: gxv, parameter: Self.slope)
        let gx = try backend.download(gxv), plus = try backend.download(fp), minus = try backend.download(fm)
        try arena.checkGuards("finite differences of \(op) on \(backend.kind)", file: file, line: line)
        for i in 0..<count {
            let difference = (Double(plus[i]) - Double(minus[i])) / (Double(xPlus[i]) - Double(xMinus[i]))
            // Truncation h²·f'''/6 and rounding ulp(f)/h: well below these bounds for h = 1e-3.
            let tolerance = 3e-4 + 1e-3 * abs(difference)
            if abs(Double(gx[i]) - difference) > tolerance {
                XCTFail("\(op)'(\(x[i])) on \(backend.kind): unaryGradient \(gx[i]), central difference \(difference)",
                        file: file, line: line)
                return
            }
        }
    }

    func testUnaryGradientOnCPU() throws {
        for op in UnaryOp.allCases {
            _ = try checkUnaryGradient(op, on: T.cpu)
            try checkAgainstFiniteDifferences(op, on: T.cpu)
        }
    }

    func testUnaryGradientOnOpenCLMatchesCPU() throws {
        let cl = try T.openCL()
        for op in UnaryOp.allCases {
            let onCL = try checkUnaryGradient(op, on: cl)
            let onCPU = try checkUnaryGradient(op, on: T.cpu)
            T.assertAgree(onCPU, onCL, rtol: 4e-6, atol: 5e-7, "unaryGradient \(op)")  // atol: 1 − y² where y = tanh(30) is 1 ulp below 1 on PoCL
            try checkAgainstFiniteDifferences(op, on: cl)
        }
    }

    // MARK: layout: copyColumns, gatherColumns, gatherRows, broadcast

    /// (rows, width, srcColumns, srcStart, dstColumns, dstStart); several exceed one 16×16 group.
    static let columnCopies = [(5, 3, 7, 2, 6, 1), (37, 19, 40, 21, 23, 0), (1, 1, 1, 0, 1, 0), (20, 0, 4, 4, 3, 3),
                               (0, 4, 4, 0, 9, 5), (18, 33, 33, 0, 50, 17)]

    func checkCopyColumns(on backend: Backend) throws -> [[Float]] {
        var random = TrainingRandom(seed: 11)
        var results: [[Float]] = []
        for (rows, width, srcColumns, srcStart, dstColumns, dstStart) in Self.columnCopies {
            let src = (0..<rows * srcColumns).map { _ in random.uniform(-9, 9) }
            let before = (0..<rows * dstColumns).map { _ in random.uniform(-9, 9) }
            let arena = try TrainingArena(backend, capacity: src.count + before.count + 32)
            let sv = try arena.place(src), dv = try arena.place(before)
            try backend.copyColumns(rows: rows, width: width, from: sv, columns: srcColumns, start: srcStart,
                                    to: dv, columns: dstColumns, start: dstStart)
            var expected = before
            for r in 0..<rows {
                for c in 0..<width { expected[r * dstColumns + dstStart + c] = src[r * srcColumns + srcStart + c] }
            }
            let got = try backend.download(dv)
            XCTAssertEqual(got.map(\.bitPattern), expected.map(\.bitPattern),
                           "copyColumns \(rows)×\(width) \(srcStart)/\(srcColumns) → \(dstStart)/\(dstColumns) on \(backend.kind)")
            try arena.checkGuards("copyColumns on \(backend.kind)")
            results.append(got)
        }

        // Concatenation [a | b] and slicing back, within one buffer.
        let a: [Float] = (0..<12).map { Float($0) }, b: [Float] = (0..<8).map { Float(100 + $0) }
        let arena = try TrainingArena(backend, capacity: 64)
        let av = try arena.place(a), bv = try arena.place(b), catv = try arena.output(20), sliced = try arena.output(8)
        try backend.copyColumns(rows: 4, width: 3, from: av, columns: 3, start: 0, to: catv, columns: 5, start: 0)
        try backend.copyColumns(rows: 4, width: 2, from: bv, columns: 2, start: 0, to: catv, columns: 5, start: 3)
        try backend.copyColumns(rows: 4, width: 2, from: catv, columns: 5, start: 3, to: sliced, columns: 2, start: 0)
        XCTAssertEqual(try backend.download(catv), [0, 1, 2, 100, 101, 3, 4, 5, 102, 103, 6, 7, 8, 104, 105, 9, 10, 11, 106, 107])
        XCTAssertEqual(try backend.download(sliced), b)
        try arena.checkGuards("concatenation on \(backend.kind)")
        return results
    }

    func checkGathers(on backend: Backend) throws -> [[Float]] {
        var random = TrainingRandom(seed: 12)
        var results: [[Float]] = []
        // gatherColumns: repeats, reversal, a permutation, −1 (zeros); widths across 16-wide groups.
        for (rows, columns, indices) in [(33, 10, [9, 0, 0, 3, 7, 7, 7, 1, 2, 9, 5, 4, 6, 8, 3, 2, 1, 0, 9, 9, 4] as [Int32]),
                                         (5, 4, [-1, 2, -1, -1, 0, 3]),
                                         (3, 5, [4, 3, 2, 1, 0]), (1, 1, [0]), (17, 40, (0..<40).map { Int32((7 * $0) % 40) }),
                                         (4, 6, [])] {
            let src = (0..<rows * columns).map { _ in random.uniform(-5, 5) }
            let arena = try TrainingArena(backend, capacity: src.count + indices.count + rows * indices.count + 32)
            let sv = try arena.place(src), iv = try arena.place(int32s: indices), dv = try arena.output(rows * indices.count)
            try backend.gatherColumns(sv, rows: rows, columns: columns, indices: iv, into: dv)
            var expected: [Float] = []
            for r in 0..<rows { for c in indices { expected.append(c < 0 ? 0 : src[r * columns + Int(c)]) } }
            let got = try backend.download(dv)
            XCTAssertEqual(got, expected, "gatherColumns \(rows)×\(columns) by \(indices.count) on \(backend.kind)")
            try arena.checkGuards("gatherColumns on \(backend.kind)")
            results.append(got)
        }
        // gatherRows: a mini-batch of rows, with repeats, −1 (zeros), more than one group of rows and columns.
        for (rows, columns, indices) in [(12, 5, [11, 0, 3, 3, 7, 1, 11, 2] as [Int32]), (50, 20, (0..<40).map { Int32((13 * $0 + 5) % 50) }),
                                         (4, 3, [-1, 2, -1, 0]),
                                         (1, 1, [0, 0, 0]), (6, 3, [])] {
            let src = (0..<rows * columns).map { _ in random.uniform(-5, 5) }
            let arena = try TrainingArena(backend, capacity: src.count + indices.count + columns * indices.count + 32)
            let sv = try arena.place(src), iv = try arena.place(int32s: indices), dv = try arena.output(columns * indices.count)
            try backend.gatherRows(sv, columns: columns, indices: iv, into: dv)
            let expected = indices.flatMap { $0 < 0 ? Array(repeating: 0, count: columns) : Array(src[Int($0) * columns ..< (Int($0) + 1) * columns]) }
            let got = try backend.download(dv)
            XCTAssertEqual(got, expected, "gatherRows \(rows)×\(columns) by \(indices.count) on \(backend.kind)")
            try arena.checkGuards("gatherRows on \(backend.kind)")
            results.append(got)
        }
        return results
    }

    func checkBroadcasts(on backend: Backend) throws -> [[Float]] {
        var results: [[Float]] = []
        for (rows, cols) in [(37, 19), (1, 1), (1, 300), (300, 1), (0, 4), (4, 0)] {
            for mode in Broadcast.allCases {
                let bCount = mode == .none ? rows * cols : (mode == .row ? cols : rows)
                let b = (0..<bCount).map { Float($0) * 0.5 - 3 }
                let arena = try TrainingArena(backend, capacity: bCount + rows * cols + 32)
                let bv = try arena.place(b), ov = try arena.output(rows * cols)
                try backend.broadcast(bv, into: ov, rows: rows, cols: cols, broadcast: mode)
                var expected: [Float] = []
                for r in 0..<rows {
                    for c in 0..<cols { expected.append(mode == .none ? b[r * cols + c] : (mode == .row ? b[c] : b[r])) }
                }
                let got = try backend.download(ov)
                XCTAssertEqual(got, expected, "broadcast \(mode) \(rows)×\(cols) on \(backend.kind)")
                try arena.checkGuards("broadcast \(mode) on \(backend.kind)")
                results.append(got)
            }
        }
        return results
    }

    func testLayoutOperationsOnCPU() throws {
        _ = try checkCopyColumns(on: T.cpu)
        _ = try checkGathers(on: T.cpu)
        _ = try checkBroadcasts(on: T.cpu)
    }

    func testLayoutOperationsOnOpenCLMatchCPU() throws {
        let cl = try T.openCL()
        // Pure data movement: the backends agree bit for bit.
        XCTAssertEqual(try checkCopyColumns(on: cl), try checkCopyColumns(on: T.cpu))
        XCTAssertEqual(try checkGathers(on: cl), try checkGathers(on: T.cpu))
        XCTAssertEqual(try checkBroadcasts(on: cl), try checkBroadcasts(on: T.cpu))
    }

    // MARK: sumOfSquares

    static let squareSumCounts = [0, 1, 2, 255, 256, 257, 1000, 4099, 100_003]

    func checkSumOfSquares(on backend: Backend) throws -> [Float] {
        var random = TrainingRandom(seed: 13)
        var results: [Float] = []
        for n in Self.squareSumCounts {
            let x = (0..<n).map { _ in random.uniform(-3, 3) }
            let arena = try TrainingArena(backend, capacity: n + 16)
            let xv = try arena.place(x), out = try arena.output(1)
            try backend.sumOfSquares(xv, into: out)
            let got = try backend.download(out)[0]
            let expected = x.reduce(0.0) { $0 + Double($1) * Double($1) }
            XCTAssertEqual(Double(got), expected, accuracy: 2e-6 * expected + 1e-30, "sumOfSquares n=\(n) on \(backend.kind)")
            try arena.checkGuards("sumOfSquares n=\(n) on \(backend.kind)")
            results.append(got)
        }
        // Squares of large values overflow to +∞ like the float sum they stand for; n = 1 is exact.
        let arena = try TrainingArena(backend, capacity: 16)
        let big = try arena.place([3e19, 3e19, 1]), one = try arena.place([-1.5]), out = try arena.output(1)
        try backend.sumOfSquares(big, into: out)
        XCTAssertEqual(try backend.download(out), [.infinity], backend.kind)
        try backend.sumOfSquares(one, into: out)
        XCTAssertEqual(try backend.download(out), [2.25], backend.kind)
        return results
    }

    func testSumOfSquaresOnCPU() throws {
        _ = try checkSumOfSquares(on: T.cpu)
    }

    func testSumOfSquaresOnOpenCLMatchesCPU() throws {
        let cl = try T.openCL()
        T.assertAgree(try checkSumOfSquares(on: T.cpu), try checkSumOfSquares(on: cl), rtol: 4e-6, atol: 0, "sumOfSquares")
    }

    // MARK: refusals

    /// Calls that must be refused identically by both backends, with the error they must raise.
    static func badCalls(_ b: Backend) throws -> [(String, () throws -> Void)] {
        let four = try b.makeBuffer(count: 4).view, six = try b.makeBuffer(count: 6).view
        let twelve = try b.makeBuffer(count: 12).view, one = try b.makeBuffer(count: 1).view
        let indices = try b.makeBuffer([0, 1] as [Int32]).view
        return [
            ("unaryGradient y", { try b.unaryGradient(.tanh, x: four, y: six, gradient: four, into: four, parameter: 0) }),
            ("unaryGradient gradient", { try b.unaryGradient(.exp, x: four, y: four, gradient: six, into: four, parameter: 0) }),
            ("unaryGradient result", { try b.unaryGradient(.relu, x: four, y: four, gradient: four, into: one, parameter: 0) }),
            ("copyColumns source", { try b.copyColumns(rows: 2, width: 1, from: four, columns: 3, start: 0, to: six, columns: 3, start: 0) }),
            ("copyColumns destination", { try b.copyColumns(rows: 2, width: 1, from: six, columns: 3, start: 0, to: four, columns: 3, start: 0) }),
            ("copyColumns range", { try b.copyColumns(rows: 2, width: 2, from: six, columns: 3, start: 2, to: six, columns: 3, start: 0) }),
            ("copyColumns negative width", { try b.copyColumns(rows: 2, width: -1, from: six, columns: 3, start: 1, to: six, columns: 3, start: 0) }),
            ("copyColumns negative start", { try b.copyColumns(rows: 2, width: 1, from: six, columns: 3, start: -1, to: six, columns: 3, start: 0) }),
            ("copyColumns negative rows", { try b.copyColumns(rows: -2, width: 1, from: six, columns: -3, start: 0, to: six, columns: -3, start: 0) }),
            ("gatherColumns source", { try b.gatherColumns(six, rows: 2, columns: 2, indices: indices, into: four) }),
            ("gatherColumns result", { try b.gatherColumns(six, rows: 2, columns: 3, indices: indices, into: six) }),
            ("gatherColumns negative rows", { try b.gatherColumns(six, rows: -2, columns: -3, indices: indices.buffer.view(offset: 0, count: 0),
                                                                  into: indices.buffer.view(offset: 0, count: 0)) }),
            ("gatherRows result", { try b.gatherRows(six, columns: 3, indices: indices, into: four) }),
            ("gatherRows ragged source", { try b.gatherRows(six, columns: 4, indices: indices, into: try b.makeBuffer(count: 8).view) }),
            ("broadcast result", { try b.broadcast(four, into: six, rows: 2, cols: 2, broadcast: .row) }),
            ("broadcast none", { try b.broadcast(four, into: six, rows: 2, cols: 3, broadcast: .none) }),
            ("broadcast row", { try b.broadcast(four, into: six, rows: 2, cols: 3, broadcast: .row) }),
            ("broadcast column", { try b.broadcast(four, into: six, rows: 2, cols: 3, broadcast: .column) }),
            ("broadcast negative", { try b.broadcast(six, into: six, rows: -2, cols: -3, broadcast: .none) }),
            ("sumOfSquares result", { try b.sumOfSquares(six, into: four) }),
        ]
    }

    /// Index errors are found on the host by the CPU backend.
    static func badIndexCalls(_ b: Backend) throws -> [(String, () throws -> Void)] {
        let six = try b.makeBuffer(count: 6).view, four = try b.makeBuffer(count: 4).view
        let high = try b.makeBuffer([0, 3] as [Int32]).view, negative = try b.makeBuffer([-2, 0] as [Int32]).view
        return [
            ("gatherColumns index 3", { try b.gatherColumns(six, rows: 2, columns: 3, indices: high, into: four) }),
            ("gatherColumns index -2", { try b.gatherColumns(six, rows: 2, columns: 3, indices: negative, into: four) }),
            ("gatherRows index 3", { try b.gatherRows(six, columns: 2, indices: high, into: four) }),
            ("gatherRows index -2", { try b.gatherRows(six, columns: 2, indices: negative, into: four) }),
        ]
    }

    func refusals(_ backend: Backend, _ calls: [(String, () throws -> Void)]) -> [String] {
        calls.map { name, call in
            do {
                try call()
                XCTFail("\(name) accepted on \(backend.kind)")
                return ""
            } catch let error as SBIError {
                let text = error.description
                XCTAssertFalse(text.contains("\n"), text)
                switch error {
                case .sizeMismatch, .invalidArgument: break
                default: XCTFail("\(name) on \(backend.kind): unexpected \(error)")
                }
                return text
            } catch {
                XCTFail("\(name) on \(backend.kind): unexpected \(error)")
                return ""
            }
        }
    }

    func testBadCallsAreRefusedOnCPU() throws {
        let messages = refusals(T.cpu, try Self.badCalls(T.cpu))
        XCTAssertEqual(messages[0], "size mismatch: unaryGradient x/y: 4 vs 6 elements")
        XCTAssertTrue(messages[3].contains("copyColumns source has 4 elements, needs 6"), messages[3])
        _ = refusals(T.cpu, try Self.badIndexCalls(T.cpu))
    }

    func testBadCallsAreRefusedAlikeOnOpenCL() throws {
        let cl = try T.openCL()
        XCTAssertEqual(refusals(cl, try Self.badCalls(cl)), refusals(T.cpu, try Self.badCalls(T.cpu)))
    }

    func testOutOfRangeGatherIndicesOnOpenCLReadNothingOutside() throws {
        // The device cannot throw: out-of-range indices (other than −1, which reads zeros) yield NaN
        // instead of reading foreign memory.
        let cl = try T.openCL()
        let arena = try TrainingArena(cl, capacity: 64)
        let src = try arena.place([1, 2, 3, 4, 5, 6]), out = try arena.output(4)
        try cl.gatherColumns(src, rows: 2, columns: 3, indices: try arena.place(int32s: [2, 3]), into: out)
        let columns = try cl.download(out)
        XCTAssertEqual(columns[0], 3)
        XCTAssertEqual(columns[2], 6)
        XCTAssertTrue(columns[1].isNaN && columns[3].isNaN, "\(columns)")
        try cl.gatherRows(src, columns: 2, indices: try arena.place(int32s: [-2, 2]), into: out)
        let rows = try cl.download(out)
        XCTAssertTrue(rows[0].isNaN && rows[1].isNaN, "\(rows)")
        XCTAssertEqual(Array(rows[2...]), [5, 6])
        try arena.checkGuards("out-of-range gathers")
    }
}

// MARK: - fixture

enum TrainingFixture {
    static func openCL() throws -> OpenCLBackend { try TestBackends.openCL() }
    static var cpu: CPUBackend { TestBackends.cpu }

    static func assertClose(_ got: [Float], _ expected: [Double], rtol: Double, atol: Double, scale: [Double]? = nil,
                            _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        Agreement.assertClose(got, expected, rtol: rtol, atol: atol, scale: scale, what, file: file, line: line)
    }
    static func assertAgree(_ a: [Float], _ b: [Float], rtol: Float, atol: Float, _ what: String,
                            file: StaticString = #filePath, line: UInt = #line) {
        Agreement.assertAgree(a, b, rtol: rtol, atol: atol, what, file: file, line: line)
    }
}

/// SplitMix64, for reproducible inputs (the generator ElementwiseTests uses).
typealias TrainingRandom = SplitMix64

typealias TrainingArena = GuardedArena
