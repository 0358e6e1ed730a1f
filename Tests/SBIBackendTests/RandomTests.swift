import Foundation
import XCTest
import SBITestSupport
@testable import SBIBackend

// The Philox-4x32-10 streams: the generator against Random123's known answers, bit-exact
// agreement of the two backends, position addressability, and the distributions (moments and
// Kolmogorov–Smirnov tests).

final class RandomTests: XCTestCase {
    typealias F = ElemFixture

    // MARK: the generator

    /// Random123's known-answer vectors for philox4x32_10 (kat_vectors: counter, key → output).
    func testPhiloxKnownAnswerVectors() {
        let vectors: [((UInt32, UInt32, UInt32, UInt32), (UInt32, UInt32), (UInt32, UInt32, UInt32, UInt32))] = [
            ((0, 0, 0, 0), (0, 0), (0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8)),
            ((0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff), (0xffff_ffff, 0xffff_ffff),
             (0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd)),
            ((0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344), (0xa409_3822, 0x299f_31d0),
             (0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1)),
        ]
        for (counter, key, expected) in vectors {
            let got = Philox.philox4x32_10(counter: counter, key: key)
            XCTAssertEqual([got.0, got.1, got.2, got.3], [expected.0, expected.1, expected.2, expected.3],
                           "philox4x32_10(\(counter), \(key))")
        }
        // The stream API is the general function with counter words 2, 3 fixed at 0.
        let zero = Philox.block(counter: 0, seed: 0)
        XCTAssertEqual([zero.0, zero.1, zero.2, zero.3], [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
        for (counter, seed) in [(UInt64(0x1234_5678_9abc_def0), UInt64(0xfeed_f00d_dead_beef)), (7, 42)] {
            let b = Philox.block(counter: counter, seed: seed)
            let g = Philox.philox4x32_10(counter: (UInt32(truncatingIfNeeded: counter), UInt32(counter >> 32), 0, 0),
                                         key: (UInt32(truncatingIfNeeded: seed), UInt32(seed >> 32)))
            XCTAssertEqual([b.0, b.1, b.2, b.3], [g.0, g.1, g.2, g.3])
        }
    }

    /// The kernel's generator gives the same first known answer (seed 0, counter 0).
    func testKnownAnswerThroughBothBackends() throws {
        for backend in try backends() {
            let buffer = try backend.makeBuffer(count: 4)
            try backend.fillRandomBits(buffer.view, seed: 0, offset: 0)
            XCTAssertEqual(try backend.download(buffer.view, as: UInt32.self), [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8],
                           backend.kind)
        }
        try skipIfNoOpenCL()
    }

    /// unit(w) lies strictly inside (0, 1) for every word, including the extremes (the old
    /// mapping rounded the top cell to exactly 1.0), and is symmetric about ½.
    func testUnitIntervalIsOpen() {
        XCTAssertEqual(Philox.unit(0), 0x1p-24)
        XCTAssertEqual(Philox.unit(0xffff_ffff), 1 - 0x1p-24)
        XCTAssertLessThan(Philox.unit(0xffff_ffff), 1)
        for w: UInt32 in [0, 1, 511, 512, 0x7fff_ffff, 0x8000_0000, 0xffff_fe00, 0xffff_ffff] {
            XCTAssertEqual(Philox.unit(w) + Philox.unit(~w), 1, "unit(\(w)) + unit(~\(w))")
        }
    }

    // MARK: the two backends agree bit for bit

    static let streams: [(seed: UInt64, offset: UInt64, count: Int)] = [
        (0, 0, 1), (42, 0, 1001), (42, 1, 3), (42, 3, 1030), (7, 5, 4), (0xdead_beef_cafe_babe, 13, 517),
        // A counter above 2³² (the high counter word in use); an offset just below a 2³² counter.
        (1, 4 << 32 | 6, 99), (1, (1 << 34) - 6, 12),
        // Large enough for the CPU backend's threads.
        (2024, 9, 300_001),
    ]

    func testRawBitsAndUniformsIdenticalOnBothBackends() throws {
        let cl = try F.openCL()
        for s in Self.streams {
            // The scalar reference: Philox.word(at:seed:) element by element.
            let words = (0..<s.count).map { Philox.word(at: s.offset + UInt64($0), seed: s.seed) }
            var bits: [[UInt32]] = [], uniforms: [[UInt32]] = []
            for backend in [F.cpu as Backend, cl] {
                let (_, bv) = try F.output(backend, count: s.count, offset: 3)
                try backend.fillRandomBits(bv, seed: s.seed, offset: s.offset)
                bits.append(try F.result(backend, bv).map(\.bitPattern))
                let (_, uv) = try F.output(backend, count: s.count, offset: 1)
                try backend.fillUniform(uv, seed: s.seed, offset: s.offset, low: -1.5, high: 2.25)
                uniforms.append(try F.result(backend, uv).map(\.bitPattern))
            }
            XCTAssertEqual(bits[0], words, "CPU raw words, stream \(s)")
            XCTAssertEqual(bits[1], words, "OpenCL raw words, stream \(s)")
            let expected = words.map { Philox.uniform($0, low: -1.5, width: 3.75).bitPattern }
            XCTAssertEqual(uniforms[0], expected, "CPU uniforms, stream \(s)")
            XCTAssertEqual(uniforms[1], expected, "OpenCL uniforms, stream \(s)")
        }
    }

    /// Dropout masks: value where unit(word) < probability, else 0, element by element against
    /// the scalar reference, on both backends; and the kept fraction of 300 001 draws within 5
    /// standard errors of the probability.
    func testBernoulliMasksIdenticalOnBothBackends() throws {
        let cl = try F.openCL()
        for s in Self.streams {
            let expected = (0..<s.count).map { i -> Float in
                Philox.unit(Philox.word(at: s.offset + UInt64(i), seed: s.seed)) < 0.8 ? 1.25 : 0
            }
            for backend in [F.cpu as Backend, cl] {
                let (_, view) = try F.output(backend, count: s.count, offset: 2)
                try backend.fillBernoulli(view, seed: s.seed, offset: s.offset, probability: 0.8, value: 1.25)
                let got = try F.result(backend, view)
                XCTAssertEqual(got, expected, "\(backend.kind) masks, stream \(s)")
                if s.count > 100_000 {
                    let kept = Double(got.filter { $0 != 0 }.count) / Double(s.count)
                    XCTAssertEqual(kept, 0.8, accuracy: 5 * (0.8 * 0.2 / Double(s.count)).squareRoot())
                }
            }
        }
    }

    /// The normal streams agree to a few ulp, not bit for bit: Box–Muller calls log, sin and cos,
    /// whose single-precision implementations differ by ulps between the C library and the
    /// OpenCL driver (OpenCL allows log ≤ 3 ulp, sin/cos ≤ 4 ulp, sqrt ≤ 3 ulp). The uniforms
    /// feeding them are bit-identical (above), so the difference is the functions' alone.
    func testNormalStreamsAgreeWithinAFewUlp() throws {
        let cl = try F.openCL()
        let n = 200_003
        var results: [[Float]] = []
        for backend in [F.cpu as Backend, cl] {
            let (_, v) = try F.output(backend, count: n, offset: 2)
            try backend.fillNormal(v, seed: 77, offset: 3, mean: 0, std: 1)
            results.append(try F.result(backend, v))
        }
        var worst = 0, worstIndex = 0
        for i in 0..<n {
            let d = Self.ulpDistance(results[0][i], results[1][i])
            if d > worst { (worst, worstIndex) = (d, i) }
        }
        if ProcessInfo.processInfo.environment["SBI_TEST_VERBOSE"] != nil {
            let differing = (0..<n).filter { results[0][$0] != results[1][$0] }.count
            print("normal streams: \(differing) of \(n) differ, at most \(worst) ulp")
        }
        XCTAssertLessThanOrEqual(worst, 8, "normal element \(worstIndex): CPU \(results[0][worstIndex]) vs OpenCL \(results[1][worstIndex])")
        // With mean and std: one more fused multiply-add on each side.
        var scaled: [[Float]] = []
        for backend in [F.cpu as Backend, cl] {
            let v = try backend.makeBuffer(count: 1000)
            try backend.fillNormal(v.view, seed: 77, offset: 3, mean: 2, std: 0.5)
            scaled.append(try backend.download(v.view))
        }
        for i in 0..<1000 {
            XCTAssertEqual(scaled[0][i], 2 + 0.5 * results[0][i], accuracy: 4e-7 * 4)
            XCTAssertEqual(scaled[1][i], scaled[0][i], accuracy: 1e-6)
        }
    }

    /// The number of representable floats between a and b (0 when equal).
    static func ulpDistance(_ a: Float, _ b: Float) -> Int {
        func ordered(_ x: Float) -> Int64 {
            let bits = Int64(Int32(bitPattern: x.bitPattern))
            return bits < 0 ? Int64(Int32.min) - bits : bits
        }
        return Int(Swift.abs(ordered(a) - ordered(b)))
    }

    // MARK: position addressability

    /// Drawing [offset, offset + n) in one call equals drawing it in pieces at their own
    /// offsets, with piece boundaries anywhere inside Philox blocks. 10 000 elements in one call
    /// take the CPU backend's multi-threaded path; the small pieces run on one thread.
    func testStreamIsPositionAddressable() throws {
        let offset: UInt64 = 1_000_003, n = 10_000
        let pieceLengths = [1, 2, 3, 5, 7, 4, 1, 250, 3, 9, 64, 1, 2, 300]  // then the remainder
        for backend in try backends() {
            for kind in 0..<3 {
                let whole = try backend.makeBuffer(count: n), pieces = try backend.makeBuffer(count: n)
                try draw(backend, kind, whole.view, seed: 5, offset: offset)
                var start = 0, k = 0
                while start < n {
                    let len = min(k < pieceLengths.count ? pieceLengths[k] : n, n - start)
                    try draw(backend, kind, pieces.view(offset: start, count: len), seed: 5, offset: offset + UInt64(start))
                    start += len
                    k += 1
                }
                XCTAssertEqual(try backend.download(whole.view, as: UInt32.self), try backend.download(pieces.view, as: UInt32.self),
                               "\(backend.kind) kind \(kind)")
            }
        }
        try skipIfNoOpenCL()
    }

    private func draw(_ backend: Backend, _ kind: Int, _ view: BufferView, seed: UInt64, offset: UInt64) throws {
        switch kind {
        case 0: try backend.fillRandomBits(view, seed: seed, offset: offset)
        case 1: try backend.fillUniform(view, seed: seed, offset: offset, low: 0, high: 1)
        default: try backend.fillNormal(view, seed: seed, offset: offset, mean: 0, std: 1)
        }
    }

    func testDifferentSeedsAndOffsetsGiveDifferentStreams() throws {
        let n = 4096
        for backend in try backends() {
            let a = try backend.makeBuffer(count: n), b = try backend.makeBuffer(count: n)
            for (seedA, seedB, offA, offB) in [(UInt64(1), UInt64(2), UInt64(0), UInt64(0)),
                                                (1, 1 << 32, 0, 0),  // seeds differing only in the high key word
                                                (9, 9, 0, 4), (9, 9, 0, 1)] {
                try backend.fillRandomBits(a.view, seed: seedA, offset: offA)
                try backend.fillRandomBits(b.view, seed: seedB, offset: offB)
                let wa = try backend.download(a.view, as: UInt32.self), wb = try backend.download(b.view, as: UInt32.self)
                // Independent 32-bit words coincide with probability 2⁻³²: none expected.
                let same = zip(wa, wb).filter { $0 == $1 }.count
                XCTAssertLessThanOrEqual(same, 1, "\(backend.kind): seeds \(seedA)/\(seedB) offsets \(offA)/\(offB)")
            }
        }
        try skipIfNoOpenCL()
    }

    // MARK: distributions

    /// Moments of 10⁶ normal draws. For n independent N(0, 1) samples the standard errors are
    /// √(1/n) for the mean, √(2/n) for the variance, √(6/n) for the skewness and √(24/n) for the
    /// kurtosis; each is required within 5 standard errors (a false alarm for a random seed has
    /// probability below 6·10⁻⁷ per check). Then a Kolmogorov–Smirnov test against Φ at α = 0.001.
    func testNormalMomentsAndKolmogorovSmirnov() throws {
        let n = 1_000_000
        for backend in try backends() {
            let v = try backend.makeBuffer(count: n)
            try backend.fillNormal(v.view, seed: 31_337, offset: 11, mean: 3, std: 2)
            let z = try backend.download(v.view).map { (Double($0) - 3) / 2 }
            let mean = z.reduce(0, +) / Double(n)
            var m2 = 0.0, m3 = 0.0, m4 = 0.0
            for x in z {
                let d = x - mean, d2 = d * d
                m2 += d2; m3 += d2 * d; m4 += d2 * d2
            }
            m2 /= Double(n); m3 /= Double(n); m4 /= Double(n)
            let skew = m3 / Foundation.pow(m2, 1.5), kurtosis = m4 / (m2 * m2)
            let se = { (c: Double) in 5 * (c / Double(n)).squareRoot() }
            XCTAssertEqual(mean, 0, accuracy: se(1), "\(backend.kind) mean")
            XCTAssertEqual(m2, 1, accuracy: se(2), "\(backend.kind) variance")
            XCTAssertEqual(skew, 0, accuracy: se(6), "\(backend.kind) skewness")
            XCTAssertEqual(kurtosis, 3, accuracy: se(24), "\(backend.kind) kurtosis")

            let d = Self.kolmogorovSmirnov(z) { 0.5 * erfc(-$0 / 2.0.squareRoot()) }
            XCTAssertLessThan(d, Self.ksCritical(n), "\(backend.kind) KS distance to N(0, 1)")
        }
        try skipIfNoOpenCL()
    }

    /// Uniform draws on (low, high): every value strictly inside, and a KS test at α = 0.001.
    func testUniformKolmogorovSmirnovAndRange() throws {
        let n = 1_000_000, low: Float = -2, high: Float = 3
        for backend in try backends() {
            let v = try backend.makeBuffer(count: n)
            try backend.fillUniform(v.view, seed: 8, offset: 2, low: low, high: high)
            let u = try backend.download(v.view)
            XCTAssertTrue(u.allSatisfy { $0 > low && $0 < high }, "\(backend.kind): a uniform outside (low, high)")
            let d = Self.kolmogorovSmirnov(u.map(Double.init)) { ($0 - Double(low)) / Double(high - low) }
            XCTAssertLessThan(d, Self.ksCritical(n), "\(backend.kind) KS distance to U(\(low), \(high))")
            // On (0, 1) the extremes stay inside too.
            try backend.fillUniform(v.view(offset: 0, count: 100_000), seed: 8, offset: 2, low: 0, high: 1)
            XCTAssertTrue(try backend.download(v.view(offset: 0, count: 100_000)).allSatisfy { $0 > 0 && $0 < 1 })
        }
        try skipIfNoOpenCL()
    }

    /// sup |F_n(x) − F(x)| over the sample.
    static func kolmogorovSmirnov(_ sample: [Double], cdf: (Double) -> Double) -> Double {
        let sorted = sample.sorted(), n = Double(sample.count)
        var d = 0.0
        for (i, x) in sorted.enumerated() {
            let f = cdf(x)
            d = max(d, Double(i + 1) / n - f, f - Double(i) / n)
        }
        return d
    }

    /// The asymptotic critical value of the one-sample KS statistic at α = 0.001:
    /// √(−½·ln(α/2)) / √n = 1.9495 / √n.
    static func ksCritical(_ n: Int) -> Double {
        (-0.5 * Foundation.log(0.001 / 2)).squareRoot() / Double(n).squareRoot()
    }

    // MARK: helpers

    func backends() throws -> [Backend] { try TestBackends.all() }

    func skipIfNoOpenCL() throws { _ = try TestBackends.openCL() }
}
