import XCTest
import SBITestSupport
import Foundation
import SBIBackend
import SBIGraph
@testable import SBIModels

func modelBackends() throws -> [Backend] { try TestBackends.all() }

/// Uniform values in ±bound from the Philox stream.
func uniformValues(_ count: Int, seed: UInt64, bound: Float = 1) -> [Float] {
    (0..<count).map { bound * (2 * Philox.unit(Philox.word(at: UInt64($0), seed: seed)) - 1) }
}

/// Standard normals by Box–Muller in double, from the Philox stream.
func normalValues(_ count: Int, seed: UInt64) -> [Double] {
    (0..<count).map { i in
        let u1 = Double(Philox.unit(Philox.word(at: UInt64(2 * i), seed: seed)))
        let u2 = Double(Philox.unit(Philox.word(at: UInt64(2 * i + 1), seed: seed)))
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }
}

/// log|det| of a square matrix (row-major, double) by LU with partial pivoting.
func logAbsDeterminant(_ matrix: [Double], _ n: Int) -> Double {
    var a = matrix, result = 0.0
    for k in 0..<n {
        var pivot = k
        for i in (k + 1)..<max(k + 1, n) where abs(a[i * n + k]) > abs(a[pivot * n + k]) { pivot = i }
        if pivot != k { for j in 0..<n { a.swapAt(k * n + j, pivot * n + j) } }
        let p = a[k * n + k]
        result += Foundation.log(abs(p))
        for i in (k + 1)..<max(k + 1, n) {
            let f = a[i * n + k] / p
            for j in k..<n { a[i * n + j] -= f * a[k * n + j] }
        }
    }
    return result
}

/// A bijector under test with random, non-trivial parameters: forward and inverse plans.
struct BijectorHarness {
    let forward: Plan, inverse: Plan
    let x: Tensor, y: Tensor, forwardLogDet: Tensor
    let z: Tensor, xBack: Tensor, inverseLogDet: Tensor
    let context: (Tensor, Tensor)?
    let store: ParameterStore

    init(_ bijector: Bijector, rows: Int, features: Int, contextFeatures: Int, backend: Backend) throws {
        let fg = Graph()
        x = fg.input("x", rows: rows, cols: features)
        let cf = contextFeatures > 0 ? fg.input("context", rows: rows, cols: contextFeatures) : nil
        (y, forwardLogDet) = try bijector.forward(x, context: cf, in: fg)
        store = try ParameterStore(graph: fg, backend: backend, seed: 5)
        // Random parameters everywhere (zero-initialized output layers would make it the identity).
        for e in store.entries { try store.write(e.name, uniformValues(e.count, seed: UInt64(e.offset) &+ 77, bound: 0.3)) }
        forward = try Plan(graph: fg, backend: backend, outputs: [y, forwardLogDet], parameters: store)
        let ig = Graph()
        z = ig.input("z", rows: rows, cols: features)
        let ci = contextFeatures > 0 ? ig.input("context", rows: rows, cols: contextFeatures) : nil
        (xBack, inverseLogDet) = try bijector.inverse(z, context: ci, in: ig)
        inverse = try Plan(graph: ig, backend: backend, outputs: [xBack, inverseLogDet], parameters: store)
        context = cf.flatMap { a in ci.map { (a, $0) } }
    }

    func run(_ input: [Float], context values: [Float]?) throws -> (y: [Float], ld: [Float], back: [Float], ild: [Float]) {
        try forward.feed(x, input)
        if let context, let values { try forward.feed(context.0, values); try inverse.feed(context.1, values) }
        try forward.run()
        let y = try forward.read(self.y), ld = try forward.read(forwardLogDet)
        try inverse.feed(z, y)
        try inverse.run()
        return (y, ld, try inverse.read(xBack), try inverse.read(inverseLogDet))
    }
}

final class FlowTests: XCTestCase {
    func bijectors(features d: Int, context c: Int) -> [(String, Bijector)] {
        (c > 0 ? [("conditional affine", ConditionalAffine(name: "l", features: d, contextFeatures: c, bound: 2))] : []) + [
            ("affine coupling halves", AffineCoupling(name: "a", mask: CouplingMask.halves.values(layer: 0, features: d),
                                                      contextFeatures: c, hidden: [16], bound: 2)),
            ("affine coupling checkerboard", AffineCoupling(name: "b", mask: CouplingMask.checkerboard.values(layer: 1, features: d),
                                                            contextFeatures: c, hidden: [16, 16], bound: 0)),
            ("affine coupling random", AffineCoupling(name: "r", mask: CouplingMask.random.values(layer: 1, features: d, seed: 3),
                                                      contextFeatures: c, hidden: [16], activation: .tanh)),
            ("permutation", Permutation.random(d, seed: 9)),
            ("actnorm", ActNorm(name: "n", features: d)),
            ("standardize", Standardize(mean: uniformValues(d, seed: 1), std: uniformValues(d, seed: 2).map { 1.5 + $0 })),
            ("maf", MaskedAutoregressive(name: "m", features: d, contextFeatures: c, hidden: [16, 16])),
        ]
    }

    /// inverse(forward(x)) = x and forward log-det = −inverse log-det, for every bijector, on both backends.
    func testEveryBijectorInverts() throws {
        for backend in try modelBackends() {
            for c in [0, 3] {
                for (name, bijector) in bijectors(features: 5, context: c) {
                    let h = try BijectorHarness(bijector, rows: 7, features: 5, contextFeatures: c, backend: backend)
                    let x = uniformValues(35, seed: 4, bound: 2)
                    let (_, ld, back, ild) = try h.run(x, context: c > 0 ? uniformValues(21, seed: 6) : nil)
                    for (a, b) in zip(back, x) { XCTAssertEqual(a, b, accuracy: 1e-4, "\(name) c=\(c) on \(backend.kind)") }
                    for (a, b) in zip(ld, ild) { XCTAssertEqual(a, -b, accuracy: 1e-4, "\(name) log-det on \(backend.kind)") }
                }
            }
        }
    }

    /// The forward log-det against log|det| of the Jacobian by central differences. Float32
    /// forward passes with h = 1e-2 give Jacobian entries to ~1e-4, so log|det| to ~1e-3 for
    /// these well-conditioned maps; 5e-3 is the tolerance.
    func testLogDeterminantMatchesBruteForceJacobian() throws {
        let backend = CPUBackend(), d = 4, h: Float = 1e-2
        for (name, bijector) in bijectors(features: d, context: 2) {
            let harness = try BijectorHarness(bijector, rows: 2 * d + 1, features: d, contextFeatures: 2, backend: backend)
            let point = uniformValues(d, seed: 12, bound: 1.5)
            var batch = point
            for j in 0..<d {
                var plus = point, minus = point
                plus[j] += h
                minus[j] -= h
                batch += plus + minus
            }
            let context = Array([[Float]](repeating: [0.3, -0.7], count: 2 * d + 1).joined())
            let (y, ld, _, _) = try harness.run(batch, context: context)
            var jacobian = [Double](repeating: 0, count: d * d)
            for j in 0..<d {
                for i in 0..<d {
                    let plus = y[(1 + 2 * j) * d + i], minus = y[(2 + 2 * j) * d + i]
                    jacobian[i * d + j] = Double(plus - minus) / Double(2 * h)
                }
            }
            XCTAssertEqual(Double(ld[0]), logAbsDeterminant(jacobian, d), accuracy: 5e-3, name)
        }
    }

    /// A whole flow inverts: sampling then evaluating gives back the sample's own log q.
    func testWholeFlowsInvertAndAgreeAcrossBackends() throws {
        var results: [[Float]] = []
        for backend in try modelBackends() {
            for kind in [FlowConfiguration.Kind.realnvp, .maf, .nsf] {
                var configuration = FlowConfiguration(kind: kind, features: 3, contextFeatures: 2)
                configuration.hidden = [16, 16]
                configuration.transforms = 3
                let estimator = try Estimators.makeFlow(configuration, backend: backend)
                let y = uniformValues(300, seed: 1, bound: 2), context = uniformValues(200, seed: 2)
                try estimator.fit(y, context: context,
                                  configuration: TrainingConfiguration(epochs: 2, batchSize: 32, seed: 1))
                let (samples, logq) = try estimator.sampleWithLogProb(50, context: [0.5, -0.5], seed: 3)
                let evaluated = try estimator.logProb(samples, context: [0.5, -0.5])
                for (a, b) in zip(logq, evaluated) { XCTAssertEqual(a, b, accuracy: 2e-3, "\(kind) on \(backend.kind)") }
                results.append(evaluated)
            }
        }
        if results.count == 6 {
            for (a, b) in zip(results[0] + results[1] + results[2], results[3] + results[4] + results[5]) {
                XCTAssertEqual(a, b, accuracy: 1e-2 * max(1, abs(a)), "backends disagree")
            }
        }
    }

    /// q integrates to 1 over a grid, for D = 1 (trapezoid, 4001 points) and D = 2 (401² points).
    func testDensitiesIntegrateToOne() throws {
        let backend = CPUBackend()
        for kind in [FlowConfiguration.Kind.realnvp, .maf, .nsf] {
            for d in [1, 2] {
                var configuration = FlowConfiguration(kind: kind, features: d)
                configuration.hidden = [16]
                configuration.transforms = 2
                let estimator = try Estimators.makeFlow(configuration, backend: backend)
                let data = mixtureSamples(1000, d: d, seed: 3).map(Float.init)
                try estimator.fit(data, context: nil, configuration: TrainingConfiguration(epochs: 3, batchSize: 64, seed: 1))
                let (low, high) = (-9.0, 9.0)
                let n = d == 1 ? 4001 : 401
                let step = (high - low) / Double(n - 1)
                var points: [Float] = []
                for i in 0..<n {
                    if d == 1 { points.append(Float(low + Double(i) * step)); continue }
                    for j in 0..<n { points += [Float(low + Double(i) * step), Float(low + Double(j) * step)] }
                }
                let logq = try estimator.logProb(points, context: nil)
                var integral = 0.0
                for (index, v) in logq.enumerated() {
                    let weights = d == 1 ? trapezoid(index, n) : trapezoid(index / n, n) * trapezoid(index % n, n)
                    integral += weights * Foundation.exp(Double(v))
                }
                integral *= Foundation.pow(step, Double(d))
                XCTAssertEqual(integral, 1, accuracy: 1e-3, "\(kind) D=\(d)")
            }
        }
    }

    func trapezoid(_ i: Int, _ n: Int) -> Double { i == 0 || i == n - 1 ? 0.5 : 1 }

    /// Each flow fitted to a two-component 2-D mixture comes within 0.05 nats of the true
    /// density's held-out average log-likelihood.
    func testFlowsFitTwoComponentMixture() throws {
        let backend = CPUBackend()
        let train = mixtureSamples(8000, d: 2, seed: 21).map(Float.init)
        let test = mixtureSamples(4000, d: 2, seed: 22)
        let truth = stride(from: 0, to: test.count, by: 2).map { mixtureLogDensity(test[$0], test[$0 + 1]) }
        let trueMean = truth.reduce(0, +) / Double(truth.count)
        for kind in [FlowConfiguration.Kind.realnvp, .maf, .nsf] {
            var configuration = FlowConfiguration(kind: kind, features: 2)
            configuration.hidden = [64, 64]
            configuration.transforms = kind == .realnvp ? 6 : 5
            configuration.seed = 4
            let estimator = try Estimators.makeFlow(configuration, backend: backend)
            try estimator.fit(train, context: nil, configuration: TrainingConfiguration(
                epochs: 150, batchSize: 256, learningRate: 2e-3, schedule: .cosine(minimumFactor: 0.01),
                validationFraction: 0.1, patience: 30, seed: 2))
            let logq = try estimator.logProb(test.map(Float.init), context: nil).map(Double.init)
            let mean = logq.reduce(0, +) / Double(logq.count)
            XCTAssertGreaterThan(mean, trueMean - 0.05, "\(kind): held-out \(mean) vs true \(trueMean)")
        }
    }

    /// A conditional flow on a linear-Gaussian model recovers the analytic posterior
    /// (`LinearGaussianPosterior`).
    func testConditionalFlowRecoversLinearGaussianPosterior() throws {
        let (theta, x) = LinearGaussianPosterior.simulations()
        var configuration = FlowConfiguration(kind: .realnvp, features: 2, contextFeatures: 2)
        configuration.hidden = [64, 64]
        let estimator = try Estimators.makeFlow(configuration, backend: CPUBackend())
        // With the parameter averaging the CLI trains with: the last iterate alone carries Adam's
        // step noise, which moves this posterior's mean by up to 0.05 from seed to seed.
        try estimator.fit(theta, context: x, configuration: TrainingConfiguration(
            epochs: 80, batchSize: 256, learningRate: 2e-3, schedule: .cosine(minimumFactor: 0.05), patience: 20, seed: 3,
            averagingEpochs: 2))
        let observed = LinearGaussianPosterior.observed.map(Float.init)
        LinearGaussianPosterior.assertMoments(of: try estimator.sample(5000, context: observed, seed: 9).map(Double.init))
    }

    /// A context-embedding MLP trains with the flow (its weights move), the flow still inverts,
    /// and a saved model rebuilds it.
    func testContextEmbedding() throws {
        let backend = CPUBackend()
        var configuration = FlowConfiguration(kind: .realnvp, features: 2, contextFeatures: 12)
        configuration.hidden = [16]
        configuration.transforms = 2
        configuration.embedding = [16, 3]
        let estimator = try Estimators.makeFlow(configuration, backend: backend)
        let y = uniformValues(800, seed: 1), c = uniformValues(4800, seed: 2)
        try estimator.fit(y, context: c, configuration: TrainingConfiguration(epochs: 1, batchSize: 40, seed: 1))
        let store = try XCTUnwrap(estimator.store)
        XCTAssertEqual(try store.entry("embedding.1.weight").rows, 16)
        let (samples, logq) = try estimator.sampleWithLogProb(20, context: Array(c.prefix(12)), seed: 3)
        let evaluated = try estimator.logProb(samples, context: Array(c.prefix(12)))
        for (a, b) in zip(logq, evaluated) { XCTAssertEqual(a, b, accuracy: 2e-3) }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("embedding-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try estimator.save(to: url)
        XCTAssertEqual(try Estimators.load(from: url, backend: backend).logProb(samples, context: Array(c.prefix(12))), evaluated)
    }

    /// A flow conditioned through a CNN embedding (8×6×2 images, two conv + pool blocks, a dense
    /// head): log q agrees across backends, its gradient with respect to the convolutions'
    /// weights and biases matches finite differences (each kernel's gradient is checked in the
    /// op table; this checks that the layer wires them), and a save and load reproduces log q
    /// from the stored configuration.
    func testConvolutionalEmbedding() throws {
        try checkConvolutionalEmbedding(residual: false, checked: [
            ("embedding.conv0.weight", [3, 3, 2, 4]), ("embedding.conv0.bias", [1, 4]),
            ("embedding.conv1.weight", [3, 3, 4, 8]), ("embedding.conv1.bias", [1, 8])])
    }

    /// The same for the ResNet variant: the residual units' convolutions (the skip joins them to
    /// the block's) get their gradients too, and a configuration saved before `residual` existed
    /// decodes as the plain CNN.
    func testResidualConvolutionalEmbedding() throws {
        try checkConvolutionalEmbedding(residual: true, checked: [
            ("embedding.conv0.weight", [3, 3, 2, 4]), ("embedding.res0.a.weight", [3, 3, 4, 4]),
            ("embedding.res0.b.weight", [3, 3, 4, 4]), ("embedding.res0.b.bias", [1, 4]),
            ("embedding.res1.a.weight", [3, 3, 8, 8]), ("embedding.res1.b.weight", [3, 3, 8, 8])])
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(
            ConvolutionalEmbedding(height: 8, width: 8, channels: 1, blockChannels: [4], head: [3], residual: true))) as? [String: Any])
        json["residual"] = nil
        let older = try JSONDecoder().decode(ConvolutionalEmbedding.self, from: JSONSerialization.data(withJSONObject: json))
        XCTAssertFalse(older.residual)
        XCTAssertEqual(older.summary, "cnn: channels 4, head 3")
    }

    func checkConvolutionalEmbedding(residual: Bool, checked: [(String, [Int])]) throws {
        let (rows, side, step) = (5, (h: 8, w: 6, c: 2), Float(1e-2))
        let cnn = ConvolutionalEmbedding(height: side.h, width: side.w, channels: side.c, blockChannels: [4, 8], head: [16, 3],
                                         activation: .softplus, residual: residual)
        var configuration = FlowConfiguration(kind: .nsf, features: 2, contextFeatures: cnn.inputFeatures)
        configuration.hidden = [16]
        configuration.activation = "tanh"
        configuration.transforms = 2
        configuration.convolutionalEmbedding = cnn
        let flow = try configuration.makeFlow()
        let y = uniformValues(rows * 2, seed: 1), c = uniformValues(rows * cnn.inputFeatures, seed: 2)
        var logqs: [[Float]] = []
        for backend in try modelBackends() {
            let graph = Graph()
            let yi = graph.input("y", rows: rows, cols: 2), ci = graph.input("c", rows: rows, cols: cnn.inputFeatures)
            let logq = try flow.logProb(yi, context: ci, in: graph)
            let loss = try graph.sum(logq)
            let parameters = checked.map { graph.parameter($0.0, shape: $0.1, initializer: .zeros) }
            let grads = try graph.gradients(of: loss, with: parameters)
            let store = try ParameterStore(graph: graph, backend: backend, seed: 5)
            for e in store.entries { try store.write(e.name, uniformValues(e.count, seed: UInt64(e.offset) &+ 77, bound: 0.3)) }
            let forward = try Plan(graph: graph, backend: backend, outputs: [logq, loss], parameters: store)
            let train = try Plan(graph: graph, backend: backend, outputs: [loss], parameters: store,
                                 gradients: zip(grads, checked).map { ($0, $1.0) })
            // Inputs are fed before every run: the plan reuses their space once they are read.
            func run(_ plan: Plan) throws { try plan.feed(yi, y); try plan.feed(ci, c); try plan.run() }
            try run(forward)
            logqs.append(try forward.read(logq))
            try run(train)
            // Max pooling and the spline knots leave log q piecewise smooth (softplus and tanh
            // stand in for ReLU to keep kinks rare): a difference whose step crosses a kink is off
            // by part of the slope jump however small the step. A kink within h lies on one side
            // of the point, so one of the one-sided Richardson estimates 2·D(h/2) − D(h) (error
            // O(h²·f‴) plus rounding ≈ 5·ulp(loss)/h ≈ 1e-3) is smooth: the gradient must match
            // the nearer of the two, within the op table's bound. Kinks on both sides within h
            // escape both estimates, which then disagree with each other as well: such elements
            // (more of them in the residual variant, whose extra convolutions move each pooled
            // window more per step; a smaller h would drown in rounding) cannot be checked by
            // differences and are counted instead, at most one in ten of those checked, while
            // every element whose two estimates agree must match.
            let h = step
            var checkedCount = 0, kinkedBothSides = 0
            for (name, _) in checked {
                let analytic = try store.read(name, from: store.gradients)
                var values = try store.read(name)
                XCTAssertTrue(analytic.contains { abs($0) > 1e-3 }, "\(name) gets a gradient")
                func lossAfter(moving j: Int, by step: Float) throws -> Float {
                    let original = values[j]
                    values[j] = original + step
                    try store.write(name, values)
                    try run(forward)
                    values[j] = original
                    try store.write(name, values)
                    return try forward.read(loss)[0]
                }
                for j in stride(from: 0, to: values.count, by: 3) {
                    let f0 = try lossAfter(moving: j, by: 0)
                    let estimates = try [h, -h].map { step -> Float in
                        let (half, full) = ((try lossAfter(moving: j, by: step / 2) - f0) / (step / 2), (try lossAfter(moving: j, by: step) - f0) / step)
                        return 2 * half - full
                    }
                    let nearer = estimates.min { abs($0 - analytic[j]) < abs($1 - analytic[j]) }!
                    let tolerance = 2e-3 + 1e-2 * abs(nearer)
                    checkedCount += 1
                    if abs(analytic[j] - nearer) > tolerance && abs(estimates[0] - estimates[1]) > 2 * tolerance {
                        kinkedBothSides += 1
                        continue
                    }
                    XCTAssertEqual(analytic[j], nearer, accuracy: tolerance,
                                   "\(backend.kind): d/d\(name)[\(j)] (one-sided estimates \(estimates))")
                }
            }
            XCTAssertLessThanOrEqual(10 * kinkedBothSides, checkedCount,
                                     "\(backend.kind): \(kinkedBothSides) of \(checkedCount) elements with kinks on both sides")
        }
        for other in logqs.dropFirst() {
            for (a, b) in zip(logqs[0], other) { XCTAssertEqual(a, b, accuracy: 1e-4 * (1 + abs(a)), "CPU and OpenCL log q") }
        }
        // Through the estimator: a short fit, then a save and load.
        let backend = CPUBackend()
        let estimator = try Estimators.makeFlow(configuration, backend: backend)
        let many = uniformValues(200 * 2, seed: 3), images = uniformValues(200 * cnn.inputFeatures, seed: 4)
        try estimator.fit(many, context: images, configuration: TrainingConfiguration(epochs: 1, batchSize: 40, seed: 1))
        XCTAssertEqual(try XCTUnwrap(estimator.store).entry("embedding.conv1.weight").shape, [3, 3, 4, 8])
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cnn-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try estimator.save(to: url)
        let context = Array(images.prefix(cnn.inputFeatures))
        XCTAssertEqual(try Estimators.load(from: url, backend: backend).logProb(Array(many.prefix(20)), context: context),
                       try estimator.logProb(Array(many.prefix(20)), context: context))
        var wrong = configuration
        wrong.contextFeatures = 10
        XCTAssertThrowsError(try wrong.makeFlow(), "a CNN for 96 values cannot take 10")
    }

    /// Conditional flows start with the conditional affine layer; configurations saved before it
    /// existed (no `conditionalAffine` key) rebuild without it, so their weights still fit.
    func testConditionalAffineLayerAndOlderConfigurations() throws {
        let configuration = FlowConfiguration(kind: .nsf, features: 3, contextFeatures: 2)
        XCTAssertTrue(try configuration.makeFlow().bijectors.first is ConditionalAffine)
        XCTAssertFalse(try FlowConfiguration(kind: .nsf, features: 3).makeFlow().bijectors.contains { $0 is ConditionalAffine },
                       "an unconditional flow has no context to be linear in")
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(configuration)) as? [String: Any])
        XCTAssertEqual(json.removeValue(forKey: "conditionalAffine") as? Bool, true)
        let older = try JSONDecoder().decode(FlowConfiguration.self, from: JSONSerialization.data(withJSONObject: json))
        XCTAssertNil(older.conditionalAffine)
        let bijectors = try older.makeFlow().bijectors
        XCTAssertFalse(bijectors.contains { $0 is ConditionalAffine })
        XCTAssertEqual(bijectors.count, try configuration.makeFlow().bijectors.count - 1)
    }

    /// Dropout in every kind of flow: the training graph holds a mask per hidden layer of each
    /// transform's net, the evaluation graph none, so log q is deterministic after training and
    /// unchanged by a save and load; the rate is kept in the saved configuration.
    func testDropoutTrainsOnlyInTheStepGraphs() throws {
        let backend = CPUBackend()
        for kind in [FlowConfiguration.Kind.realnvp, .nsf, .maf] {
            var configuration = FlowConfiguration(kind: kind, features: 2, contextFeatures: 2)
            configuration.hidden = [16, 16]
            configuration.transforms = 2
            configuration.dropout = 0.25
            let flow = try configuration.makeFlow()
            let graph = Graph()
            graph.isTraining = true
            _ = try flow.logProb(graph.input("y", rows: 8, cols: 2), context: graph.input("c", rows: 8, cols: 2), in: graph)
            XCTAssertEqual(graph.dropoutMasks.count, 2 * 2, "\(kind): a mask per hidden layer per transform")
            let estimator = try Estimators.makeFlow(configuration, backend: backend)
            let y = uniformValues(400, seed: 1), c = uniformValues(400, seed: 2)
            let history = try estimator.fit(y, context: c, configuration: TrainingConfiguration(epochs: 3, batchSize: 32, seed: 1))
            XCTAssertTrue(history.allSatisfy { $0.trainingLoss.isFinite && $0.validationLoss.isFinite }, "\(kind)")
            let points = Array(y.prefix(40)), context = Array(c.prefix(40))
            let logq = try estimator.logProb(points, context: context)
            XCTAssertEqual(try estimator.logProb(points, context: context), logq, "\(kind): evaluation draws no masks")
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("dropout-\(UUID().uuidString).safetensors")
            defer { try? FileManager.default.removeItem(at: url) }
            try estimator.save(to: url)
            XCTAssertEqual(try Estimators.load(from: url, backend: backend).logProb(points, context: context), logq)
        }
        var bad = FlowConfiguration(kind: .nsf, features: 2, contextFeatures: 2)
        bad.dropout = 1
        XCTAssertThrowsError(try bad.makeFlow())
    }

    func testSaveAndLoadReproduceLogProb() throws {
        let backend = CPUBackend()
        var configuration = FlowConfiguration(kind: .realnvp, features: 2, contextFeatures: 1)
        configuration.hidden = [8]
        let estimator = try Estimators.makeFlow(configuration, backend: backend)
        let y = uniformValues(400, seed: 1), c = uniformValues(200, seed: 2)
        try estimator.fit(y, context: c, configuration: TrainingConfiguration(epochs: 2, batchSize: 50, seed: 1))
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("flow-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try estimator.save(to: url)
        let loaded = try Estimators.load(from: url, backend: backend)
        XCTAssertEqual(loaded.name, "realnvp")
        XCTAssertEqual(try loaded.logProb(Array(y.prefix(20)), context: Array(c.prefix(10))),
                       try estimator.logProb(Array(y.prefix(20)), context: Array(c.prefix(10))))
    }
}

// MARK: a known two-component mixture

/// 0.4·N((−1.5, 0), diag(0.5², 1)) + 0.6·N((1, 1), [[0.6², ρ], [ρ, 0.4²]]) with ρ = 0.5·0.6·0.4 in 2-D;
/// in 1-D, the first coordinate's marginal.
func mixtureSamples(_ n: Int, d: Int, seed: UInt64) -> [Double] {
    let z = normalValues(3 * n, seed: seed)
    var out: [Double] = []
    for i in 0..<n {
        let u = Double(Philox.unit(Philox.word(at: UInt64(i), seed: seed &+ 1000)))
        let (a, b) = (z[3 * i], z[3 * i + 1])
        let point: [Double] = u < 0.4 ? [-1.5 + 0.5 * a, b]
            : [1 + 0.6 * a, 1 + 0.4 * (0.5 * a + (0.75).squareRoot() * b)]
        out += point.prefix(d)
    }
    return out
}

func mixtureLogDensity(_ x: Double, _ y: Double) -> Double {
    func gaussian(_ dx: Double, _ dy: Double, _ sx: Double, _ sy: Double, _ rho: Double) -> Double {
        let q = (dx * dx / (sx * sx) - 2 * rho * dx * dy / (sx * sy) + dy * dy / (sy * sy)) / (1 - rho * rho)
        return Foundation.exp(-0.5 * q) / (2 * Double.pi * sx * sy * (1 - rho * rho).squareRoot())
    }
    return Foundation.log(0.4 * gaussian(x + 1.5, y, 0.5, 1, 0) + 0.6 * gaussian(x - 1, y - 1, 0.6, 0.4, 0.5))
}
