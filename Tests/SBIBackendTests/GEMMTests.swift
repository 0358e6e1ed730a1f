import Foundation
import XCTest
import SBITestSupport
@testable import SBIBackend

/// GEMM, C = act(α·op(A)·op(B) + β·C + bias), on both backends and every OpenCL kernel path,
/// against a double-precision reference.
final class GEMMTests: XCTestCase {
    // MARK: cases

    struct Case: CustomStringConvertible {
        var m, n, k: Int
        var transposeA = false, transposeB = false
        var alpha: Float = 1, beta: Float = 0
        var activation: UnaryOp = .identity
        var bias = false
        var slope: Float = 0.1
        /// Put every operand at this offset inside a larger buffer, with guard elements after it.
        var offset = 0

        var description: String {
            "\(m)×\(n)×\(k) \(transposeA ? "T" : "N")\(transposeB ? "T" : "N") α=\(alpha) β=\(beta) "
                + "\(activation)\(bias ? "+bias" : "") offset=\(offset)"
        }
    }

    /// SplitMix64: a small seeded generator, so every run tests the same cases.
    struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let activations: [UnaryOp] = [.identity, .relu, .tanh, .sigmoid, .leakyRelu]

    /// 64 cases: fixed shapes (1×1×1, primes, both sides of the 64 and 128 tile edges, k = 0,
    /// a few larger products) and random ones. Transposes cycle through all four combinations and
    /// α, β, the activation, the bias and the operand offsets vary from case to case.
    static let cases: [Case] = {
        var rng = SplitMix64(state: 0x5EED_6E33)
        let fixed: [(Int, Int, Int)] = [
            (1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1),
            (7, 13, 31), (97, 127, 13), (31, 7, 97), (127, 97, 127), (13, 31, 7),
            (63, 64, 65), (64, 64, 64), (65, 63, 64), (64, 65, 63),
            (127, 128, 129), (128, 128, 128), (129, 127, 128), (128, 129, 127), (129, 129, 129),
            (1, 200, 65), (200, 1, 63), (65, 129, 1), (3, 257, 31),
            (5, 7, 0), (64, 65, 0), (130, 70, 0),
            (256, 300, 200), (300, 257, 96), (77, 1030, 33),
        ]
        var cases: [Case] = []
        for (index, (m, n, k)) in fixed.enumerated() {
            cases.append(Case(m: m, n: n, k: k, transposeA: index % 2 == 1, transposeB: (index / 2) % 2 == 1))
        }
        while cases.count < 64 {
            cases.append(Case(m: Int.random(in: 1...150, using: &rng), n: Int.random(in: 1...150, using: &rng),
                              k: Int.random(in: 0...200, using: &rng),
                              transposeA: Bool.random(using: &rng), transposeB: Bool.random(using: &rng)))
        }
        let alphas: [Float] = [1, -0.75, 2.5, 0.5]
        let betas: [Float] = [0, 1, -0.5, 0.3, 0]
        for i in cases.indices {
            cases[i].alpha = alphas[i % alphas.count]
            cases[i].beta = betas[(i / 2) % betas.count]
            cases[i].activation = activations[(i / 3) % activations.count]
            cases[i].bias = i % 5 != 2
            cases[i].offset = i % 3 == 1 ? Int.random(in: 1...17, using: &rng) : 0
        }
        // Make sure of the plain product (no epilogue, β = 0 over NaN) at a tile edge, and of
        // k = 0 with β = 0 over NaN (the result is act(bias) alone).
        cases[10].activation = .identity; cases[10].bias = false; cases[10].beta = 0
        cases[22].beta = 0
        return cases
    }()

    // MARK: operands and reference

    struct Operands {
        var a, b, c, bias: [Float]
    }

    /// Operands uniform in [-1, 1]; with β = 0 the old C is NaN, which must not reach the result.
    static func operands(_ t: Case, seed: UInt64) -> Operands {
        var rng = SplitMix64(state: seed)
        func values(_ count: Int) -> [Float] { (0..<count).map { _ in Float.random(in: -1...1, using: &rng) } }
        return Operands(a: values(t.m * t.k), b: values(t.k * t.n),
                        c: t.beta == 0 ? [Float](repeating: .nan, count: t.m * t.n) : values(t.m * t.n),
                        bias: values(t.n))
    }

    /// The exact result (to double precision) and, per element, the error a correct float
    /// implementation may make.
    ///
    /// Tolerance: a sum of K float products, in any order and with or without fused
    /// multiply-adds, is within γ_K·Σ|a_p||b_p| of the exact sum, γ_K = K·u/(1 − K·u), u = 2⁻²⁴
    /// (Higham, Accuracy and Stability of Numerical Algorithms, §3.1). Scaling by α, adding β·C
    /// and the bias add at most four more roundings of quantities bounded by
    ///   S = |α|·Σ_p|a_ip||b_pj| + |β|·|c_ij| + |bias_j|,
    /// so before the activation |error| ≤ (K + 4)·u·S (to first order); we allow twice that. The
    /// activations tested are 1-Lipschitz (leaky ReLU with slope ≤ 1), so this error passes
    /// through unamplified, and the activation's own evaluation adds a few ulp of its result
    /// (OpenCL allows exp 3 ulp, tanh 5 ulp): we allow 16·u·|result| more. The bound scales with K
    /// and with the actual magnitudes, so it is tight enough to catch a single lost or doubled
    /// product term (≈ |a||b|, far above u·S for these K).
    static func reference(_ t: Case, _ x: Operands) -> (values: [Double], tolerance: [Double]) {
        let u = Double(Float.ulpOfOne) / 2
        var values = [Double](repeating: 0, count: t.m * t.n), tolerance = values
        for i in 0..<t.m {
            for j in 0..<t.n {
                var sum = 0.0, magnitude = 0.0
                for p in 0..<t.k {
                    let a = Double(t.transposeA ? x.a[p * t.m + i] : x.a[i * t.k + p])
                    let b = Double(t.transposeB ? x.b[j * t.k + p] : x.b[p * t.n + j])
                    sum += a * b
                    magnitude += abs(a * b)
                }
                var z = Double(t.alpha) * sum
                var s = abs(Double(t.alpha)) * magnitude
                if t.beta != 0 {
                    z += Double(t.beta) * Double(x.c[i * t.n + j])
                    s += abs(Double(t.beta) * Double(x.c[i * t.n + j]))
                }
                if t.bias {
                    z += Double(x.bias[j])
                    s += abs(Double(x.bias[j]))
                }
                let y: Double
                switch t.activation {
                case .identity: y = z
                case .relu: y = max(z, 0)
                case .leakyRelu: y = z > 0 ? z : Double(t.slope) * z
                case .tanh: y = Foundation.tanh(z)
                case .sigmoid: y = 1 / (1 + Foundation.exp(-z))
                default: fatalError("activation \(t.activation) is not in the test set")
                }
                values[i * t.n + j] = y
                tolerance[i * t.n + j] = 2 * Double(t.k + 4) * u * s + 16 * u * abs(y) + 1e-30
            }
        }
        return (values, tolerance)
    }

    // MARK: running

    /// Guard elements after each operand: a kernel writing past C changes them.
    static let guardCount = 5
    static let guardValue: Float = -12345.5

    /// Runs one case on `backend` and returns C; fails the test if the guard elements moved.
    func run(_ t: Case, _ x: Operands, on backend: Backend, label: String,
             file: StaticString = #filePath, line: UInt = #line) throws -> [Float] {
        func place(_ values: [Float]) throws -> (Buffer, BufferView) {
            let padding = [Float](repeating: Self.guardValue, count: t.offset)
            let guards = [Float](repeating: Self.guardValue, count: Self.guardCount)
            let buffer = try backend.makeBuffer(padding + values + guards)
            return (buffer, buffer.view(offset: t.offset, count: values.count))
        }
        let (_, a) = try place(x.a), (_, b) = try place(x.b), (cBuffer, c) = try place(x.c)
        let (_, bias) = try place(x.bias)
        try backend.gemm(transposeA: t.transposeA, transposeB: t.transposeB, m: t.m, n: t.n, k: t.k,
                         alpha: t.alpha, a: a, b: b, beta: t.beta, c: c,
                         epilogue: Epilogue(bias: t.bias ? bias : nil, activation: t.activation, slope: t.slope))
        let whole: [Float] = try backend.download(cBuffer.view)
        let outside = Array(whole[..<t.offset]) + Array(whole[(t.offset + t.m * t.n)...])
        XCTAssert(outside.allSatisfy { $0 == Self.guardValue }, "\(label) \(t): wrote outside C", file: file, line: line)
        return Array(whole[t.offset..<(t.offset + t.m * t.n)])
    }

    /// Runs every case on `backend`, checks each against the reference, and returns the results.
    @discardableResult
    func checkAll(on backend: Backend, label: String, cases: [Case] = GEMMTests.cases,
                  file: StaticString = #filePath, line: UInt = #line) throws -> [[Float]] {
        var results: [[Float]] = []
        for (index, t) in cases.enumerated() {
            let x = Self.operands(t, seed: UInt64(index) + 1)
            let (expected, tolerance) = Self.reference(t, x)
            let got = try run(t, x, on: backend, label: label, file: file, line: line)
            var failures = 0, worst = (index: 0, ratio: 0.0)
            for e in got.indices {
                let error = abs(Double(got[e]) - expected[e])
                // Written so that NaN fails.
                if !(error <= tolerance[e]) {
                    failures += 1
                    let ratio = error.isNaN ? .infinity : error / tolerance[e]
                    if ratio >= worst.ratio { worst = (e, ratio) }
                }
            }
            if failures > 0 {
                let e = worst.index
                XCTFail("\(label) \(t): \(failures) of \(got.count) elements off; C[\(e / t.n), \(e % t.n)] = "
                        + "\(got[e]), expected \(expected[e]) ± \(tolerance[e])", file: file, line: line)
            }
            results.append(got)
        }
        return results
    }

    /// A backend of its own: these tests change its tile parameters.
    func openCL() throws -> OpenCLBackend { try TestBackends.freshOpenCL() }

    // MARK: tests

    func testCaseCoverage() {
        let cases = Self.cases
        XCTAssertGreaterThanOrEqual(cases.count, 50)
        for ta in [false, true] {
            for tb in [false, true] {
                XCTAssert(cases.contains { $0.transposeA == ta && $0.transposeB == tb && $0.m > 64 && $0.n > 64 && $0.k > 64 })
            }
        }
        XCTAssert(cases.contains { $0.k == 0 && $0.beta == 0 }, "k = 0, β = 0")
        XCTAssert(cases.contains { $0.k == 0 && $0.beta != 0 }, "k = 0, β ≠ 0")
        XCTAssert(cases.contains { $0.m == 1 && $0.n == 1 && $0.k == 1 }, "1×1×1")
        XCTAssert(cases.contains { $0.beta == 0 && $0.alpha != 1 && $0.k > 64 }, "β = 0 over NaN")
        for op in Self.activations { XCTAssert(cases.contains { $0.activation == op && $0.bias }, "\(op)") }
    }

    func testCPUBackend() throws {
        try checkAll(on: CPUBackend(), label: "cpu")
    }

    func testOpenCLTiledKernel() throws {
        let cl = try openCL()
        cl.directGEMMThreshold = 0
        try checkAll(on: cl, label: "opencl tiled \(cl.gemmParameters)")
    }

    func testOpenCLDirectKernel() throws {
        let cl = try openCL()
        cl.directGEMMThreshold = .max
        try checkAll(on: cl, label: "opencl direct")
    }

    /// The GPU parameters (local-memory tiles, barriers, float4) run on any device, so the path a
    /// GPU takes is tested here too.
    func testOpenCLTiledKernelWithGPUParameters() throws {
        let cl = try openCL()
        cl.directGEMMThreshold = 0
        cl.gemmParameters = .gpu
        try checkAll(on: cl, label: "opencl tiled \(cl.gemmParameters)")
    }

    /// Odd tile sizes and the remaining code paths: A staged but B read straight from global
    /// memory even when transposed (a gather), and the reverse; scalar and float2 vectors; k steps
    /// that do not divide K. NN and TT cases cover every path of each configuration.
    func testOpenCLTiledKernelWithOddParameters() throws {
        let cl = try openCL()
        cl.directGEMMThreshold = 0
        let subset = Self.cases.filter { $0.m * $0.n * $0.k <= 300_000 && $0.transposeA == $0.transposeB }
        cl.gemmParameters = GEMMParameters(mwg: 24, nwg: 40, kwg: 5, mdimc: 3, ndimc: 5, vwn: 2,
                                           localA: true, localB: false, localBWhenTransposed: false)
        try checkAll(on: cl, label: "opencl tiled \(cl.gemmParameters)", cases: subset)
        cl.gemmParameters = GEMMParameters(mwg: 16, nwg: 16, kwg: 8, mdimc: 4, ndimc: 8, vwn: 1,
                                           localA: false, localB: true, localBWhenTransposed: true)
        try checkAll(on: cl, label: "opencl tiled \(cl.gemmParameters)", cases: subset)
    }

    /// The two backends against each other: each is within the reference's tolerance, so they are
    /// within twice it of each other.
    func testBackendsAgree() throws {
        let cl = try openCL()
        let cpu = CPUBackend()
        for (index, t) in Self.cases.enumerated() where index % 2 == 0 {
            let x = Self.operands(t, seed: UInt64(index) + 1)
            let (_, tolerance) = Self.reference(t, x)
            let fromCPU = try run(t, x, on: cpu, label: "cpu")
            let fromCL = try run(t, x, on: cl, label: "opencl")
            let off = fromCPU.indices.filter { !(abs(Double(fromCPU[$0]) - Double(fromCL[$0])) <= 2 * tolerance[$0]) }
            if let e = off.first {
                XCTFail("\(t): cpu and opencl differ at \(off.count) elements, e.g. C[\(e / t.n), \(e % t.n)] "
                        + "\(fromCPU[e]) vs \(fromCL[e])")
            }
        }
    }

    func testDefaultParametersFollowTheDeviceType() throws {
        let cl = try openCL()
        XCTAssertEqual(cl.gemmParameters, GEMMParameters.defaults(for: cl.device))
        if cl.device.type.contains("CPU") && !cl.device.isGPU { XCTAssertEqual(cl.gemmParameters, .cpu) }
        XCTAssertNoThrow(try cl.gemmParameters.validate(for: cl.device))
        XCTAssertNoThrow(try GEMMParameters.cpu.validate(for: cl.device))
        if cl.device.maxWorkGroupSize >= 256 { XCTAssertNoThrow(try GEMMParameters.gpu.validate(for: cl.device)) }
    }

    func testInvalidParametersAreRefused() throws {
        let cl = try openCL()
        cl.directGEMMThreshold = 0
        let a = try cl.makeBuffer(count: 64 * 64), c = try cl.makeBuffer(count: 64 * 64)
        for bad in [GEMMParameters(mwg: 64, nwg: 64, kwg: 16, mdimc: 16, ndimc: 16, vwn: 3),
                    GEMMParameters(mwg: 64, nwg: 64, kwg: 16, mdimc: 12, ndimc: 16, vwn: 4),
                    GEMMParameters(mwg: 64, nwg: 48, kwg: 16, mdimc: 16, ndimc: 16, vwn: 4)] {
            cl.gemmParameters = bad
            XCTAssertThrowsError(try cl.gemm(m: 64, n: 64, k: 64, a: a.view, b: a.view, c: c.view), "\(bad)")
        }
    }
}
