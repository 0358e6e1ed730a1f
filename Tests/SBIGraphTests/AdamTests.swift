import XCTest
import SBIBackend
import SBITestSupport
@testable import SBIGraph

/// The optimizer's fused op (`AdamStep`) on both backends against PyTorch's formulas in double
/// precision, in guarded buffers, and its refusals.
final class AdamTests: XCTestCase {
    /// torch.optim.Adam (weightDecay 0) / torch.optim.AdamW, preceded by
    /// torch.nn.utils.clip_grad_norm_ when maxNorm is given, in double precision.
    struct ReferenceAdam {
        var p: [Double], m: [Double], v: [Double]
        /// m's terms summed in absolute value: the scale of its rounding error when they cancel.
        var mScale: [Double]
        let lr: Double, beta1: Double, beta2: Double, eps: Double, weightDecay: Double
        /// The parameter average, kept when the case sets an averageDecay.
        var a: [Double]
        let averageDecay: Double
        var step = 0

        init(_ parameters: [Float], _ h: AdamHyperparameters) {
            p = parameters.map(Double.init)
            m = [Double](repeating: 0, count: parameters.count)
            v = m
            mScale = m
            (lr, beta1, beta2, eps, weightDecay) = (Double(h.learningRate), Double(h.beta1), Double(h.beta2),
                                                    Double(h.epsilon), Double(h.weightDecay))
            a = p
            averageDecay = Double(h.averageDecay)
        }

        mutating func update(_ gradient: [Float], maxNorm: Double?) {
            var g = gradient.map(Double.init)
            if let maxNorm {
                let total = g.reduce(0) { $0 + $1 * $1 }.squareRoot()
                let coefficient = min(maxNorm / (total + 1e-6), 1)  // clip_coef_clamped
                g = g.map { $0 * coefficient }
            }
            step += 1
            let bias1 = 1 - Foundation.pow(beta1, Double(step)), bias2 = 1 - Foundation.pow(beta2, Double(step))
            for i in p.indices {
                p[i] *= 1 - lr * weightDecay                       // AdamW's decoupled decay
                m[i] += (g[i] - m[i]) * (1 - beta1)                // exp_avg.lerp_(grad, 1 - beta1)
                mScale[i] = beta1 * mScale[i] + (1 - beta1) * abs(g[i])
                v[i] = v[i] * beta2 + (1 - beta2) * g[i] * g[i]    // exp_avg_sq.mul_(beta2).addcmul_(...)
                let denominator = v[i].squareRoot() / bias2.squareRoot() + eps
                p[i] -= lr / bias1 * m[i] / denominator
                a[i] = averageDecay * a[i] + (1 - averageDecay) * p[i]
            }
        }
    }

    struct AdamCase {
        var name: String
        var hyper: AdamHyperparameters
        /// Clip to this global norm (through sumOfSquares on the backend), or none.
        var maxNorm: Float?
        /// Gradient scale per step: big steps trip the clip, small ones do not.
        var scales: [Float] = [1, 1, 1, 1, 1]
    }

    static let adamCases = [
        AdamCase(name: "Adam", hyper: AdamHyperparameters(learningRate: 1e-2)),
        AdamCase(name: "AdamW", hyper: AdamHyperparameters(learningRate: 3e-3, beta1: 0.8, beta2: 0.95, epsilon: 1e-6,
                                                          weightDecay: 0.1)),
        AdamCase(name: "Adam+clip", hyper: AdamHyperparameters(learningRate: 1e-2), maxNorm: 5,
                 scales: [10, 0.01, 3, 0.02, 1]),
        AdamCase(name: "Adam+average", hyper: AdamHyperparameters(learningRate: 1e-2, averageDecay: 0.7)),
        AdamCase(name: "AdamW+clip+average", hyper: AdamHyperparameters(learningRate: 5e-2, beta1: 0.5, beta2: 0.9, epsilon: 1e-8,
                                                               weightDecay: 0.3, averageDecay: 0.95),
                 maxNorm: 1, scales: [0.001, 50, 0.001, 2, 0.0004]),
    ]

    /// Five steps of each case on `backend`, compared with ReferenceAdam after every step.
    /// Returns the final parameters and moments.
    func checkAdam(on backend: Backend, count: Int = 1000, file: StaticString = #filePath, line: UInt = #line) throws -> [[Float]] {
        var results: [[Float]] = []
        for testCase in Self.adamCases {
            var random = SplitMix64(seed: 14)
            let initial = (0..<count).map { _ in random.uniform(-1, 1) }
            var reference = ReferenceAdam(initial, testCase.hyper)
            let arena = try GuardedArena(backend, capacity: 5 * count + 80)
            let p = try arena.place(initial), g = try arena.output(count)
            let m = try arena.place([Float](repeating: 0, count: count)), v = try arena.place([Float](repeating: 0, count: count))
            let norm = try arena.output(1)
            let average = testCase.hyper.averageDecay > 0 ? try arena.place(initial) : nil
            for (index, scale) in testCase.scales.enumerated() {
                // Components of very different sizes, some zero, so eps and the clip both matter.
                let gradient: [Float] = (0..<count).map { i in
                    i % 97 == 0 ? 0 : scale * random.uniform(-1, 1) * (i % 3 == 0 ? 1e-4 : 1)
                }
                try backend.upload(gradient, to: g)
                var hyper = testCase.hyper
                hyper.step = index + 1
                if let maxNorm = testCase.maxNorm {
                    try backend.sumOfSquares(g, into: norm)
                    try AdamStep.run(on: backend, parameters: p, gradients: g, firstMoment: m, secondMoment: v, hyper: hyper,
                                     gradientSquaredNorm: norm, maxGradientNorm: maxNorm, average: average)
                } else {
                    try AdamStep.run(on: backend, parameters: p, gradients: g, firstMoment: m, secondMoment: v, hyper: hyper,
                                     gradientSquaredNorm: nil, maxGradientNorm: .infinity, average: average)
                }
                reference.update(gradient, maxNorm: testCase.maxNorm.map(Double.init))
                let what = "\(testCase.name) step \(index + 1) on \(backend.kind)"
                Agreement.assertClose(try backend.download(p), reference.p, rtol: 2e-6, atol: 2e-6, what + ": parameters",
                              file: file, line: line)
                Agreement.assertClose(try backend.download(m), reference.m, rtol: 1e-5, atol: 1e-12, scale: reference.mScale,
                              what + ": first moment", file: file, line: line)
                Agreement.assertClose(try backend.download(v), reference.v, rtol: 1e-5, atol: 1e-20, what + ": second moment",
                              file: file, line: line)
                if let average {
                    Agreement.assertClose(try backend.download(average), reference.a, rtol: 2e-6, atol: 2e-6, what + ": average",
                                  file: file, line: line)
                }
            }
            try arena.checkGuards("\(testCase.name) on \(backend.kind)", file: file, line: line)
            results += [try backend.download(p), try backend.download(m), try backend.download(v)]
            if let average { results.append(try backend.download(average)) }
        }
        return results
    }

    func testAdamMatchesPyTorchOnCPU() throws {
        _ = try checkAdam(on: TestBackends.cpu)
    }

    func testAdamMatchesPyTorchOnCPUAcrossCoresWithScalarTail() throws {
        // Large enough to be split across cores; not a multiple of the 8-wide vector.
        _ = try checkAdam(on: TestBackends.cpu, count: 70_003)
    }

    func testAdamMatchesPyTorchOnOpenCLAndCPU() throws {
        let cl = try TestBackends.openCL()
        let onCL = try checkAdam(on: cl), onCPU = try checkAdam(on: TestBackends.cpu)
        for (a, b) in zip(onCPU, onCL) { Agreement.assertAgree(a, b, rtol: 2e-6, atol: 1e-7, "Adam CPU vs OpenCL") }
    }

    func testAdamFirstStepIsSignedLearningRate() throws {
        // At step 1 the bias-corrected update is lr·g/(|g| + eps): ±lr for |g| ≫ eps, on any backend.
        for backend in try TestBackends.all() {
            let p = try backend.makeBuffer([1, 1, 1, 1] as [Float]), g = try backend.makeBuffer([2, -3, 0, 1e-3] as [Float])
            let m = try backend.makeBuffer([0, 0, 0, 0] as [Float]), v = try backend.makeBuffer([0, 0, 0, 0] as [Float])
            try AdamStep.run(on: backend, parameters: p.view, gradients: g.view, firstMoment: m.view, secondMoment: v.view,
                             hyper: AdamHyperparameters(learningRate: 0.1), gradientSquaredNorm: nil, maxGradientNorm: 0)
            Agreement.assertClose(try backend.download(p.view), [0.9, 1.1, 1, 1 - 0.1 * 1e-3 / (1e-3 + 1e-8)], rtol: 1e-6, atol: 1e-7,
                                  "first Adam step on \(backend.kind)")
        }
    }

    /// Calls that must be refused identically by both backends.
    func testBadCallsAreRefusedAlike() throws {
        for b in try TestBackends.all() {
            let four = try b.makeBuffer(count: 4).view, six = try b.makeBuffer(count: 6).view
            let twelve = try b.makeBuffer(count: 12).view, one = try b.makeBuffer(count: 1).view
            let hyper = AdamHyperparameters(learningRate: 1e-3)
            func run(_ p: BufferView = four, _ g: BufferView = four, _ m: BufferView = four, _ v: BufferView = four,
                     hyper h: AdamHyperparameters = hyper, norm: BufferView? = nil, max: Float = 1,
                     average: BufferView? = nil) throws {
                try AdamStep.run(on: b, parameters: p, gradients: g, firstMoment: m, secondMoment: v, hyper: h,
                                 gradientSquaredNorm: norm, maxGradientNorm: max, average: average)
            }
            let calls: [(String, () throws -> Void)] = [
                ("gradients", { try run(four, six) }),
                ("first moment", { try run(four, four, one) }),
                ("second moment", { try run(four, four, four, twelve) }),
                ("norm", { try run(norm: four) }),
                ("empty norm", { try run(norm: one.buffer.view(offset: 0, count: 0)) }),
                ("step 0", { try run(hyper: AdamHyperparameters(learningRate: 1e-3, step: 0)) }),
                ("average", { try run(max: 0, average: six) }),
                ("average decay", { try run(hyper: AdamHyperparameters(learningRate: 1e-3, averageDecay: 1.5), max: 0, average: four) }),
                ("negative max norm", { try run(norm: one, max: -1) }),
            ]
            for (name, call) in calls {
                XCTAssertThrowsError(try call(), "adam \(name) on \(b.kind)") { error in
                    guard let error = error as? SBIError else { return XCTFail("adam \(name): \(error)") }
                    switch error {
                    case .sizeMismatch, .invalidArgument: break
                    default: XCTFail("adam \(name) on \(b.kind): \(error)")
                    }
                }
            }
        }
    }
}
