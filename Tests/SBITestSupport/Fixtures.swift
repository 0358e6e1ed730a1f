import Foundation
import SBIBackend
import XCTest

/// SplitMix64: test inputs, reproducible and independent of the engine's Philox.
public struct SplitMix64 {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func uniform(_ low: Float, _ high: Float) -> Float {
        low + (high - low) * Float(next() >> 40) * 0x1p-24
    }
    public mutating func floats(_ count: Int, _ low: Float, _ high: Float) -> [Float] {
        (0..<count).map { _ in uniform(low, high) }
    }
}

/// Element-wise comparisons with tolerances, failing on the first element out of bounds.
public enum Agreement {
    /// |got − expected| ≤ atol + rtol·max(|expected|, scale), element-wise.
    public static func assertClose(_ got: [Float], _ expected: [Double], rtol: Double, atol: Double, scale: [Double]? = nil,
                                   _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, expected.count, what, file: file, line: line)
        for (i, (g, e)) in zip(got, expected).enumerated()
        where abs(Double(g) - e) > atol + rtol * max(abs(e), scale?[i] ?? 0) || g.isNaN {
            XCTFail("\(what): element \(i) is \(g), expected \(e)", file: file, line: line)
            return
        }
    }

    public static func assertAgree(_ a: [Float], _ b: [Float], rtol: Float, atol: Float, _ what: String,
                                   file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        for (i, (x, y)) in zip(a, b).enumerated() {
            if x.isNaN && y.isNaN || x == y { continue }
            if !(abs(x - y) <= atol + rtol * max(abs(x), abs(y))) {
                XCTFail("\(what): CPU \(x) vs OpenCL \(y) at \(i)", file: file, line: line)
                return
            }
        }
    }
}

/// One buffer holding many operands at odd offsets, with sentinel elements between and around
/// them; `checkGuards` verifies that no operation wrote outside its output view.
public final class GuardedArena {
    public static let sentinel = Float(bitPattern: 0x7fa5_a5a5)  // a NaN no operation produces
    public let backend: Backend
    public let buffer: Buffer
    private var next = 3
    private var owned: [Range<Int>] = []

    public init(_ backend: Backend, capacity: Int) throws {
        self.backend = backend
        buffer = try backend.makeBuffer(count: capacity + 64)
        try backend.upload([Float](repeating: Self.sentinel, count: buffer.count), to: buffer.view)
    }

    private func reserve(_ count: Int) -> BufferView {
        precondition(next + count + 3 <= buffer.count, "arena too small")
        let view = buffer.view(offset: next, count: count)
        owned.append(next ..< next + count)
        next += count + 3
        return view
    }

    public func place(_ values: [Float]) throws -> BufferView {
        let view = reserve(values.count)
        try backend.upload(values, to: view)
        return view
    }

    public func place(int32s values: [Int32]) throws -> BufferView {
        let view = reserve(values.count)
        try backend.upload(values, to: view)
        return view
    }

    /// An output view pre-filled with garbage, so that an element left unwritten shows up.
    public func output(_ count: Int) throws -> BufferView {
        let view = reserve(count)
        try backend.upload([Float](repeating: -7777.25, count: count), to: view)
        return view
    }

    public func checkGuards(_ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let all = try backend.download(buffer.view, as: UInt32.self)
        var inside = [Bool](repeating: false, count: all.count)
        for range in owned { for i in range { inside[i] = true } }
        for i in all.indices where !inside[i] && all[i] != Self.sentinel.bitPattern {
            XCTFail("\(what): element \(i) outside every view was overwritten", file: file, line: line)
            return
        }
    }
}

/// The backends' element-wise functions in double precision, for forward checks.
public enum DoubleReference {
    public static func unary(_ op: UnaryOp, _ x: Double, _ slope: Double) -> Double {
        switch op {
        case .identity: return x
        case .exp: return Foundation.exp(x)
        case .log: return Foundation.log(x)
        case .tanh: return Foundation.tanh(x)
        case .relu: return x > 0 ? x : 0
        case .leakyRelu: return x > 0 ? x : slope * x
        case .sigmoid: return 1 / (1 + Foundation.exp(-x))
        // log(1 + eˣ) in double; past x = 700 eˣ overflows double, and log1p(e⁻ˣ) < 10⁻³⁰⁰ is lost in x.
        case .softplus: return x > 700 ? x : Foundation.log1p(Foundation.exp(x))
        case .square: return x * x
        case .negate: return -x
        case .abs: return Swift.abs(x)
        case .sqrt: return x.squareRoot()
        }
    }

    public static func binary(_ op: BinaryOp, _ a: Double, _ b: Double) -> Double {
        switch op {
        case .add: return a + b
        case .subtract: return a - b
        case .multiply: return a * b
        case .divide: return a / b
        }
    }
}
