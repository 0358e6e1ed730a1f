import Foundation
import XCTest
import SBIData
import SBIBackend
import SBITestSupport
@testable import SBIGraph
@testable import SBIModels

/// The pixel-space Glow flow: its inverse, its log-det against a brute-force Jacobian, its
/// conditioning, the bits/dim arithmetic, refusal of bad pixels, and training on the 8×8 digits.
final class GlowTests: XCTestCase {
    /// Small flows with every layer kind: Glow (affine and spline couplings) and the multi-scale
    /// RealNVP, with splits, with and without a context, both preprocessings.
    static func configurations() -> [GlowConfiguration] {
        var twoChannel = GlowConfiguration(height: 4, width: 4, channels: 2, levels: 4)
        twoChannel.scales = 2
        var digits = GlowConfiguration(height: 8, width: 8, channels: 1, contextFeatures: 3, levels: 17)
        digits.preprocessing = .logit
        for i in [0, 1] {
            var c = i == 0 ? twoChannel : digits
            c.steps = 2
            c.hidden = 8
            c.seed = 7
            if i == 0 { twoChannel = c } else { digits = c }
        }
        // The multi-scale RealNVP: checkerboard and channel couplings, splits, with a context.
        var realNVP = GlowConfiguration(height: 4, width: 4, channels: 2, levels: 4)
        (realNVP.architecture, realNVP.scales, realNVP.steps, realNVP.hidden, realNVP.seed) = (.realnvp, 2, 2, 8, 3)
        var realNVPDigits = GlowConfiguration(height: 8, width: 8, channels: 1, contextFeatures: 3, levels: 17)
        (realNVPDigits.architecture, realNVPDigits.steps, realNVPDigits.hidden) = (.realnvp, 2, 8)
        // (Centered: RealNVP's exp(s) with random weights takes samples where the logit's sigmoid
        // rounds to 1 in float, which no encoding can invert; Glow's digits cover the logit.)
        // Glow with spline couplings (4 bins), with a context.
        var spline = GlowConfiguration(height: 4, width: 4, channels: 2, contextFeatures: 2, levels: 4)
        (spline.coupling, spline.bins, spline.scales, spline.steps, spline.hidden, spline.seed) = (.spline, 4, 2, 2, 8, 5)
        return [twoChannel, digits, realNVP, realNVPDigits, spline]
    }

    /// Every parameter drawn from ±0.3, so that no coupling, prior or 1×1 convolution is the
    /// identity it starts as; the 1×1 convolutions' triangular factors from ±0.3/C, since the
    /// inverse of a C×C unit triangular matrix with O(1) entries grows like 2^C (a badly
    /// conditioned flow, not a wrong one, would fail the round trip).
    static func randomize(_ store: ParameterStore, seed: UInt64) throws {
        for (e, entry) in store.entries.enumerated() {
            let triangular = entry.name.hasSuffix(".lower") || entry.name.hasSuffix(".upper")
            let range: Float = triangular ? 0.6 / Float(entry.cols) : 0.6
            try store.write(entry.name, (0..<entry.count).map { i in
                range * (Philox.unit(Philox.word(at: UInt64(i), seed: seed &+ UInt64(e))) - 0.5)
            })
        }
    }

    /// A graph of the flow's sample direction from `noise` and its encode direction from the
    /// samples; the encode's dequantization noise is fed zeros, so the two are exact inverses.
    struct RoundTrip {
        let graph = Graph()
        let noise: Tensor, context: Tensor?, samples: Tensor, sampleLogProb: Tensor, logProb: Tensor, encoded: Tensor
        init(_ flow: GlowDensity, rows: Int) throws {
            noise = graph.input("noise", rows: rows, cols: flow.features)
            context = flow.contextFeatures > 0 ? graph.input("context", rows: rows, cols: flow.contextFeatures) : nil
            (samples, sampleLogProb) = try flow.sample(noise: noise, context: context, in: graph)
            let encoding = try flow.encode(samples, context: context, in: graph)
            (logProb, encoded) = (encoding.logProb!, encoding.noise!)
        }
        func plan(_ store: ParameterStore, rows: Int, noiseValues: [Float], contextValues: [Float]?) throws -> Plan {
            let plan = try Plan(graph: graph, backend: store.backend, outputs: [samples, sampleLogProb, logProb, encoded],
                                parameters: store)
            try plan.feed(noise, noiseValues)
            if let context, let contextValues { try plan.feed(context, contextValues) }
            for (tensor, _, _) in graph.noiseInputs { try plan.feed(tensor, [Float](repeating: 0, count: tensor.count)) }
            return plan
        }
    }

    func testSamplingInvertsEncodingOnEveryBackend() throws {
        for configuration in Self.configurations() {
            let flow = try GlowDensity(configuration)
            let rows = 3
            let trip = try RoundTrip(flow, rows: rows)
            let noise = (0..<(rows * flow.features)).map { i in Float(sin(Double(i) * 1.7)) }
            let context = flow.contextFeatures > 0 ? (0..<(rows * flow.contextFeatures)).map { Float($0 % 5) * 0.4 - 0.8 } : nil
            var results: [[Float]] = []
            for backend in try TestBackends.all() {
                let store = try ParameterStore(graph: trip.graph, backend: backend, seed: 1)
                try Self.randomize(store, seed: 3)
                let plan = try trip.plan(store, rows: rows, noiseValues: noise, contextValues: context)
                try plan.run()
                let encoded = try plan.read(trip.encoded)
                let what = "\(configuration.height)×\(configuration.width)×\(configuration.channels) on \(backend.kind)"
                // float32 through 2·(4 steps + priors) layers of O(1) values: errors of ~1e-5.
                for (i, (a, b)) in zip(encoded, noise).enumerated() {
                    XCTAssertEqual(a, b, accuracy: 1e-3 * (1 + abs(b)), "\(what): noise \(i) after sample → encode")
                }
                let lq = try plan.read(trip.sampleLogProb), lp = try plan.read(trip.logProb)
                for (a, b) in zip(lq, lp) {
                    XCTAssertEqual(a, b, accuracy: 1e-4 * (1 + abs(b)), "\(what): log q of a sample and of its encoding")
                }
                results.append(try plan.read(trip.samples) + lp)
            }
            if results.count == 2 {
                for (a, b) in zip(results[0], results[1]) {
                    XCTAssertEqual(a, b, accuracy: 1e-3 * (1 + abs(a)), "CPU and OpenCL samples and log-probs")
                }
            }
        }
    }

    /// log q(x) − log N(ε(x)) must be log|det ∂ε/∂x|, the Jacobian taken by central differences
    /// of the encoding in double and its determinant by LU. The encoding ε includes the split
    /// priors' standardization and the preprocessing (dequantization scale, logit or centering).
    /// Tolerance: with steps of 2e-2 and 1e-2 pixel units, float32 rounding gives Jacobian entries
    /// to ~1e-7·|ε|/h ≈ 1e-5 on entries of ~1/levels, and the log-det moves by Σ (J⁻¹δJ)ᵢᵢ, D of
    /// them: ≲ D·4e-5 ≈ 3e-3 for D = 64, so 1e-2 absolute still catches any missing term (each is O(1)).
    func testLogDeterminantMatchesBruteForceJacobian() throws {
        for configuration in Self.configurations() {
            let flow = try GlowDensity(configuration)
            let D = flow.features, h: Float = 2e-2, rows = 4 * D + 1
            let graph = Graph()
            let y = graph.input("y", rows: rows, cols: D)
            let context = flow.contextFeatures > 0 ? graph.input("context", rows: rows, cols: flow.contextFeatures) : nil
            let encoding = try flow.encode(y, context: context, in: graph)
            let store = try ParameterStore(graph: graph, backend: TestBackends.cpu, seed: 1)
            try Self.randomize(store, seed: 5)
            let plan = try Plan(graph: graph, backend: TestBackends.cpu, outputs: [encoding.logProb!, encoding.noise!], parameters: store)
            // A point inside the pixel range, then ± h along every pixel.
            let x0 = (0..<D).map { j in Float(configuration.levels) * (0.2 + 0.6 * Philox.unit(Philox.word(at: UInt64(j), seed: 11))) }
            var batch = x0
            for step in [h, h / 2] {
                for j in 0..<D {
                    for sign: Float in [1, -1] {
                        var x = x0
                        x[j] += sign * step
                        batch += x
                    }
                }
            }
            try plan.feed(y, batch)
            // One context for every row: the differences are along x alone.
            let cf = flow.contextFeatures
            if let context { try plan.feed(context, (0..<(rows * cf)).map { Float($0 % cf % 3) * 0.5 - 0.5 }) }
            for (tensor, _, _) in graph.noiseInputs { try plan.feed(tensor, [Float](repeating: 0, count: tensor.count)) }
            try plan.run()
            let eps = try plan.read(encoding.noise!).map(Double.init), logq = try plan.read(encoding.logProb!)
            var jacobian = [Double](repeating: 0, count: D * D)
            // Richardson's extrapolation of the central differences at h and h/2 cancels their
            // O(h²) truncation (the couplings' exp and tanh curve within a step of 1e-2).
            func central(_ j: Int, _ i: Int, pass: Int, step: Double) -> Double {
                let base = 1 + pass * 2 * D + 2 * j
                return (eps[base * D + i] - eps[(base + 1) * D + i]) / (2 * step)
            }
            for j in 0..<D {
                for i in 0..<D {
                    jacobian[i * D + j] = (4 * central(j, i, pass: 1, step: Double(h) / 2) - central(j, i, pass: 0, step: Double(h))) / 3
                }
            }
            let logNormal = -0.5 * eps[0..<D].reduce(0) { $0 + $1 * $1 } - Double(D) * 0.5 * Foundation.log(2 * Double.pi)
            let expected = Double(logq[0]) - logNormal
            XCTAssertEqual(Self.logAbsDeterminant(jacobian, D), expected, accuracy: 1e-2,
                           "\(configuration.height)×\(configuration.width)×\(configuration.channels): log|det J|")
        }
    }

    /// log|det A| by LU with partial pivoting, in double.
    static func logAbsDeterminant(_ matrix: [Double], _ n: Int) -> Double {
        var a = matrix, total = 0.0
        for k in 0..<n {
            let pivot = (k..<n).max { abs(a[$0 * n + k]) < abs(a[$1 * n + k]) }!
            if pivot != k { for j in 0..<n { a.swapAt(k * n + j, pivot * n + j) } }
            let p = a[k * n + k]
            total += Foundation.log(abs(p))
            for i in (k + 1)..<n {
                let f = a[i * n + k] / p
                for j in k..<n { a[i * n + j] -= f * a[k * n + j] }
            }
        }
        return total
    }

    func testConditionalLogProbDependsOnContext() throws {
        let configuration = Self.configurations()[1]
        let flow = try GlowDensity(configuration)
        let graph = Graph()
        let y = graph.input("y", rows: 2, cols: flow.features), context = graph.input("context", rows: 2, cols: 3)
        let logq = try flow.logProb(y, context: context, in: graph)
        let store = try ParameterStore(graph: graph, backend: TestBackends.cpu, seed: 1)
        try Self.randomize(store, seed: 9)
        let plan = try Plan(graph: graph, backend: TestBackends.cpu, outputs: [logq], parameters: store)
        let image = (0..<flow.features).map { Float($0 % 17) }
        try plan.feed(y, image + image)
        try plan.feed(context, [0.5, -1, 0.2, -0.5, 1, 0.8])
        for (tensor, _, _) in graph.noiseInputs { try plan.feed(tensor, [Float](repeating: 0.5, count: tensor.count)) }
        try plan.run()
        let values = try plan.read(logq)
        XCTAssertTrue(values.allSatisfy(\.isFinite))
        XCTAssertGreaterThan(abs(values[0] - values[1]), 1e-2, "the same image under two contexts: \(values)")
    }

    /// bits/dim = (−log p(x) + D·ln levels)/(D·ln 2) for p a density on [0, 1)ᴰ; with log q in
    /// pixel units (levels·[0, 1)) the D·ln levels is already inside log q. Hand-computed: the
    /// uniform density on [0, 17)⁶⁴ has log q = −64·ln 17 nats, log₂ 17 = 4.0875 bits/dim; a
    /// log q of −100 nats over 64 pixels is 100/(64·ln 2) = 2.2542 bits/dim.
    func testBitsPerDimension() {
        XCTAssertEqual(BitsPerDimension.from(logProb: -64 * Foundation.log(17.0), dimensions: 64), 4.0875, accuracy: 1e-4)
        XCTAssertEqual(BitsPerDimension.from(logProb: -100, dimensions: 64), 2.2542, accuracy: 1e-4)
    }

    func testPixelsOutsideTheLevelsAreRefused() throws {
        let flow = try GlowDensity(Self.configurations()[0])
        for (bad, what) in [(Float(4), "value 4"), (-1, "value -1"), (.nan, "value nan"), (1.5, "not an integer")] {
            var rows = [Float](repeating: 1, count: 2 * flow.features)
            rows[flow.features + 5] = bad
            XCTAssertThrowsError(try flow.validate(FloatRows(rows, cols: flow.features)), what) { error in
                XCTAssertTrue("\(error)".contains("image 1"), "\(error)")
            }
        }
        XCTAssertNoThrow(try flow.validate(FloatRows([Float](repeating: 3, count: flow.features), cols: flow.features)))
    }

    /// Glow on the 8×8 digits of ../shared/data (1,500 training images, 17 levels), 30 epochs:
    /// the validation images' bits/dim must be well below the uniform log₂ 17 = 4.09.
    func testTrainingOnDigitsBeatsUniformBitsPerDimension() throws {
        let data = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/data")
        let trainURL = data.appendingPathComponent("digits8x8_train_images.npy")
        guard FileManager.default.fileExists(atPath: trainURL.path) else {
            throw XCTSkip("../shared/data is not present")
        }
        let train = try NumPy.read(trainURL).floats()
        let validation = try NumPy.read(data.appendingPathComponent("digits8x8_val_images.npy")).floats()
        var configuration = GlowConfiguration(height: 8, width: 8, channels: 1, levels: 17)
        configuration.steps = 4
        configuration.hidden = 32
        let estimator = try Estimators.makeGlow(configuration, backend: TestBackends.cpu)
        try estimator.fit(train, context: nil, configuration: TrainingConfiguration(epochs: 30, batchSize: 64, learningRate: 3e-3))
        let logq = try estimator.logProb(validation, context: nil)
        let bpd = BitsPerDimension.from(logProb: logq.reduce(0) { $0 + Double($1) } / Double(logq.count), dimensions: 64)
        print("glow on 8×8 digits: validation \(String(format: "%.3f", bpd)) bits/dim (uniform 4.087)")
        XCTAssertLessThan(bpd, 3.0, "validation bits/dim \(bpd) (2.56 when written)")
    }
}
