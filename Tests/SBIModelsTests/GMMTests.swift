import Foundation
import XCTest
import SBIBackend
import SBIGraph
import SBIData
@testable import SBIModels

/// The EM-fitted Gaussian mixture baseline: fit quality against a known density, normalization,
/// analytic conditioning, sampling moments, persistence and input checks.
final class GMMTests: XCTestCase {
    // MARK: a known 2-D, 2-component mixture, computed here independently of GaussianMixture

    struct Gaussian2 {
        let weight: Double
        let mean: (Double, Double)
        let covariance: (xx: Double, xy: Double, yy: Double)
        var determinant: Double { covariance.xx * covariance.yy - covariance.xy * covariance.xy }
        /// Lower Cholesky factor entries (l11, l21, l22).
        var factor: (Double, Double, Double) {
            let l11 = covariance.xx.squareRoot(), l21 = covariance.xy / l11
            return (l11, l21, (covariance.yy - l21 * l21).squareRoot())
        }
        func logDensity(_ x: Double, _ y: Double) -> Double {
            let (dx, dy) = (x - mean.0, y - mean.1)
            let quadratic = (covariance.yy * dx * dx - 2 * covariance.xy * dx * dy + covariance.xx * dy * dy) / determinant
            return -0.5 * quadratic - 0.5 * log(determinant) - log(2 * Double.pi)
        }
    }

    static let truth = [
        Gaussian2(weight: 0.35, mean: (-2, 0.5), covariance: (0.6, 0.25, 0.4)),
        Gaussian2(weight: 0.65, mean: (1.5, -1), covariance: (0.3, -0.1, 0.8)),
    ]

    static func trueLogDensity(_ x: Double, _ y: Double) -> Double {
        let terms = truth.map { log($0.weight) + $0.logDensity(x, y) }
        let m = terms.max()!
        return m + log(terms.reduce(0) { $0 + exp($1 - m) })
    }

    /// Standard normals from Philox (Box–Muller on pairs of words), independent of the model's sampler.
    static func normals(_ count: Int, seed: UInt64) -> [Double] {
        (0..<count).map { i in
            let pair = UInt64(i / 2) * 2
            let u1 = Double(Philox.unit(Philox.word(at: pair, seed: seed)))
            let u2 = Double(Philox.unit(Philox.word(at: pair + 1, seed: seed)))
            let r = (-2 * log(u1)).squareRoot()
            return i % 2 == 0 ? r * cos(2 * Double.pi * u2) : r * sin(2 * Double.pi * u2)
        }
    }

    static func truthSamples(_ rows: Int, seed: UInt64) -> [Float] {
        let z = normals(2 * rows, seed: seed)
        var out: [Float] = []
        for n in 0..<rows {
            let u = Double(Philox.unit(Philox.word(at: UInt64(n), seed: seed &+ 0x1000)))
            let g = u < truth[0].weight ? truth[0] : truth[1]
            let (l11, l21, l22) = g.factor
            out.append(Float(g.mean.0 + l11 * z[2 * n]))
            out.append(Float(g.mean.1 + l21 * z[2 * n] + l22 * z[2 * n + 1]))
        }
        return out
    }

    static func configuration(epochs: Int = 300, validation: Double = 0, seed: UInt64 = 1) -> TrainingConfiguration {
        TrainingConfiguration(epochs: epochs, validationFraction: validation, seed: seed)
    }

    func temporaryURL(_ name: String) -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gmm-tests-\(getpid())", isDirectory: true)
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory.appendingPathComponent(name)
    }

    // MARK: fit quality

    /// Held-out average log-likelihood within 0.05 nats of the true density's on the same points
    /// (4000 training rows: the expected excess is about (parameters)/(2N) ≈ 0.0014 nats for
    /// K = 2 and 0.007 for K = 10), for the true K and for the default K = 10.
    func testHeldOutLikelihoodMatchesTruth() throws {
        let train = Self.truthSamples(4000, seed: 11)
        let test = Self.truthSamples(4000, seed: 12)
        let truthMean = stride(from: 0, to: test.count, by: 2)
            .map { Self.trueLogDensity(Double(test[$0]), Double(test[$0 + 1])) }.reduce(0, +) / 4000
        for components in [2, 10] {
            let model = try GaussianMixture(features: 2, components: components)
            let history = try model.fit(train, configuration: Self.configuration())
            XCTAssertTrue(model.converged, "K=\(components) did not converge in \(history.count) iterations")
            XCTAssertEqual(model.components, components)
            // EM never decreases the training likelihood (up to rounding and the tiny regularization).
            for (a, b) in zip(history, history.dropFirst()) {
                XCTAssertLessThanOrEqual(b.trainingLoss, a.trainingLoss + 1e-9, "K=\(components) epoch \(b.epoch)")
            }
            XCTAssertEqual(history.map(\.epoch), Array(1...history.count))
            XCTAssertEqual(history.last!.validationLoss, history.last!.trainingLoss)  // no validation split
            let fitted = try model.logProb(test, context: nil).map(Double.init).reduce(0, +) / 4000
            print("GMM K=\(components): \(history.count) iterations, held-out mean log q \(fitted), truth \(truthMean)")
            XCTAssertEqual(fitted, truthMean, accuracy: 0.05, "K=\(components)")
        }
    }

    /// A validation split: the validation loss is the held-out mean NLL, and the parameters kept
    /// are those with the best validation loss.
    func testValidationSplit() throws {
        let data = Self.truthSamples(2000, seed: 21)
        let model = try GaussianMixture(features: 2, components: 3)
        let history = try model.fit(data, configuration: Self.configuration(validation: 0.25))
        XCTAssertFalse(history.isEmpty)
        let best = history.map(\.validationLoss).min()!
        XCTAssertTrue(history.allSatisfy { $0.validationLoss != $0.trainingLoss })
        // The kept model's loss on the held-out rows (the same split Trainer draws) is the best one.
        let split = Trainer.validationSplit(rows: 2000, configuration: Self.configuration(validation: 0.25))
        XCTAssertEqual(split.validation.count, 500)
        var heldOut: [Float] = []
        for row in split.validation.map(Int.init) { heldOut += [data[2 * row], data[2 * row + 1]] }
        let loss = -(try model.logProb(heldOut, context: nil)).map(Double.init).reduce(0, +) / 500
        XCTAssertEqual(loss, best, accuracy: 1e-5)
    }

    // MARK: normalization

    /// The density integrates to 1 ± 1e-3 (midpoint rule on grids much finer than the smallest
    /// standard deviation, wide enough that the tails outside are negligible).
    func testNormalization() throws {
        // D = 1: three modes.
        let z = Self.normals(3000, seed: 31)
        let centers: [Double] = [-3, 0.5, 4], scales: [Double] = [0.5, 1, 0.7]
        let oneD = (0..<3000).map { Float(centers[$0 % 3] + scales[$0 % 3] * z[$0]) }
        let model1 = try GaussianMixture(features: 1, components: 3)
        try model1.fit(oneD, configuration: Self.configuration())
        let h1 = 0.001
        let grid1 = (0..<24000).map { Float(-12 + (Double($0) + 0.5) * h1) }
        let mass1 = try model1.logProb(grid1, context: nil).reduce(0) { $0 + exp(Double($1)) } * h1
        XCTAssertEqual(mass1, 1, accuracy: 1e-3)

        // D = 2: the known mixture.
        let model2 = try GaussianMixture(features: 2, components: 3)
        try model2.fit(Self.truthSamples(3000, seed: 32), configuration: Self.configuration())
        let h2 = 0.02, side = 800
        var grid2: [Float] = []
        grid2.reserveCapacity(2 * side * side)
        for i in 0..<side {
            for j in 0..<side {
                grid2.append(Float(-8 + (Double(i) + 0.5) * h2))
                grid2.append(Float(-8 + (Double(j) + 0.5) * h2))
            }
        }
        let mass2 = try model2.logProb(grid2, context: nil).reduce(0) { $0 + exp(Double($1)) } * h2 * h2
        XCTAssertEqual(mass2, 1, accuracy: 1e-3)

        // Conditional: q(y | c) integrates to 1 over y for each c.
        let joint = Self.truthSamples(3000, seed: 33)  // column 0 as context, column 1 as y
        let y = stride(from: 1, to: joint.count, by: 2).map { joint[$0] }
        let c = stride(from: 0, to: joint.count, by: 2).map { joint[$0] }
        let conditional = try GaussianMixture(features: 1, contextFeatures: 1, components: 3)
        try conditional.fit(y, context: c, configuration: Self.configuration())
        for context: Float in [-3, -0.5, 1.5, 4] {
            let mass = try conditional.logProb(grid1, context: [context]).reduce(0) { $0 + exp(Double($1)) } * h1
            XCTAssertEqual(mass, 1, accuracy: 1e-3, "context \(context)")
        }
    }

    // MARK: conditioning

    /// Linear-Gaussian model: c ~ N(m, S) (2-D), y = A c + b + e, e ~ N(0, R) (2-D). The joint is
    /// Gaussian, so K = 1 fitted on 20000 rows must recover E[y | c] = A c + b and Cov[y | c] = R.
    /// Tolerances are about 5 standard errors: the conditional mean's error is the intercept's
    /// (√(R_ii/N) ≈ 0.004) plus the slope's (√(R_ii/(N·S_jj)) ≈ 0.004 per unit of |c − m|, |c − m| ≤ 2.5),
    /// so ≤ 0.015 → 0.06; a covariance entry's is √((R_ii R_jj + R_ij²)/N) ≤ 0.004 → 0.02.
    func testConditioningRecoversLinearGaussian() throws {
        let a = [[1.5, -0.5], [0.3, 2.0]], b = [0.5, -1.0]
        let r = [[0.3, 0.1], [0.1, 0.2]]
        let m = [1.0, -0.5], sL = [[1.0, 0], [0.4, 0.8]]  // S = sL sLᵀ
        let rL11 = r[0][0].squareRoot(), rL21 = r[1][0] / rL11, rL22 = (r[1][1] - rL21 * rL21).squareRoot()
        let rows = 20000
        let z = Self.normals(4 * rows, seed: 41)
        var y: [Float] = [], c: [Float] = []
        for n in 0..<rows {
            let c0 = m[0] + sL[0][0] * z[4 * n], c1 = m[1] + sL[1][0] * z[4 * n] + sL[1][1] * z[4 * n + 1]
            let e0 = rL11 * z[4 * n + 2], e1 = rL21 * z[4 * n + 2] + rL22 * z[4 * n + 3]
            c += [Float(c0), Float(c1)]
            y += [Float(a[0][0] * c0 + a[0][1] * c1 + b[0] + e0), Float(a[1][0] * c0 + a[1][1] * c1 + b[1] + e1)]
        }
        let model = try GaussianMixture(features: 2, contextFeatures: 2, components: 1)
        try model.fit(y, context: c, configuration: Self.configuration())
        for point in [[1.0, -0.5], [-1.0, 1.0], [3.0, 0.5], [0.0, -2.5]] {
            let mixture = try model.mixture(context: point.map(Float.init))
            XCTAssertEqual(mixture.weights, [1])
            for i in 0..<2 {
                let expected = a[i][0] * point[0] + a[i][1] * point[1] + b[i]
                XCTAssertEqual(mixture.means[0][i], expected, accuracy: 0.06, "mean \(i) at \(point)")
                for j in 0..<2 {
                    XCTAssertEqual(mixture.covariances[0][i * 2 + j], r[i][j], accuracy: 0.02, "covariance [\(i), \(j)] at \(point)")
                }
            }
        }
    }

    /// With known parameters (K = 2, one context and two y features) the conditional mixture
    /// matches the textbook formulas computed here with explicit inverses, to rounding, and
    /// logProb(y | c) is the log of that mixture's density.
    func testConditionalMixtureMatchesFormulas() throws {
        // Joint order [context, y]: 1 + 2 = 3 features.
        let weights = [0.3, 0.7]
        let means = [[0.5, -1.0, 2.0], [-1.0, 1.0, 0.0]]
        let covariances = [[1.0, 0.4, -0.3, 0.4, 0.9, 0.2, -0.3, 0.2, 0.7],
                           [0.5, -0.2, 0.1, -0.2, 1.2, 0.3, 0.1, 0.3, 0.6]]
        let model = try GaussianMixture(weights: weights, means: means, covariances: covariances, features: 2, contextFeatures: 1)
        for c in [-1.5, 0.0, 0.75] {  // exact in Float, as the API takes the context
            let mixture = try model.mixture(context: [Float(c)])
            // Expected, with the scalar Σ^cc.
            var expectedWeights = [Double](), expectedMeans = [[Double]](), expectedCovariances = [[Double]]()
            for k in 0..<2 {
                let s = covariances[k]
                let scc = s[0], syc = [s[3], s[6]]
                expectedWeights.append(weights[k] * exp(-0.5 * (c - means[k][0]) * (c - means[k][0]) / scc) / (2 * Double.pi * scc).squareRoot())
                expectedMeans.append([means[k][1] + syc[0] / scc * (c - means[k][0]), means[k][2] + syc[1] / scc * (c - means[k][0])])
                expectedCovariances.append([s[4] - syc[0] * syc[0] / scc, s[5] - syc[0] * syc[1] / scc,
                                            s[7] - syc[1] * syc[0] / scc, s[8] - syc[1] * syc[1] / scc])
            }
            let total = expectedWeights.reduce(0, +)
            for k in 0..<2 {
                XCTAssertEqual(mixture.weights[k], expectedWeights[k] / total, accuracy: 1e-12)
                for i in 0..<2 { XCTAssertEqual(mixture.means[k][i], expectedMeans[k][i], accuracy: 1e-12) }
                for i in 0..<4 { XCTAssertEqual(mixture.covariances[k][i], expectedCovariances[k][i], accuracy: 1e-12) }
            }
            // logProb of a few y against the explicit mixture density.
            for yPoint in [[0.0, 0.0], [1.0, 2.5], [-2.0, 0.5]] {
                var density = 0.0
                for k in 0..<2 {
                    let v = mixture.covariances[k]
                    let det = v[0] * v[3] - v[1] * v[2]
                    let (d0, d1) = (yPoint[0] - mixture.means[k][0], yPoint[1] - mixture.means[k][1])
                    let q = (v[3] * d0 * d0 - 2 * v[1] * d0 * d1 + v[0] * d1 * d1) / det
                    density += mixture.weights[k] * exp(-0.5 * q) / (2 * Double.pi * det.squareRoot())
                }
                let logq = try model.logProb(yPoint.map(Float.init), context: [Float(c)])
                XCTAssertEqual(Double(logq[0]), log(density), accuracy: 1e-5)
            }
        }
    }

    // MARK: sampling

    static func moments(_ values: [Float], width: Int, rows: Range<Int>) -> (mean: [Double], covariance: [Double]) {
        var mean = [Double](repeating: 0, count: width), covariance = [Double](repeating: 0, count: width * width)
        for n in rows { for i in 0..<width { mean[i] += Double(values[n * width + i]) } }
        for i in 0..<width { mean[i] /= Double(rows.count) }
        for n in rows {
            for i in 0..<width {
                for j in 0..<width {
                    covariance[i * width + j] += (Double(values[n * width + i]) - mean[i]) * (Double(values[n * width + j]) - mean[j])
                }
            }
        }
        return (mean, covariance.map { $0 / Double(rows.count) })
    }

    static func mixtureMoments(_ m: GaussianMixture.Mixture) -> (mean: [Double], covariance: [Double]) {
        let width = m.means[0].count
        var mean = [Double](repeating: 0, count: width), second = [Double](repeating: 0, count: width * width)
        for k in m.weights.indices {
            for i in 0..<width {
                mean[i] += m.weights[k] * m.means[k][i]
                for j in 0..<width {
                    second[i * width + j] += m.weights[k] * (m.covariances[k][i * width + j] + m.means[k][i] * m.means[k][j])
                }
            }
        }
        for i in 0..<width { for j in 0..<width { second[i * width + j] -= mean[i] * mean[j] } }
        return (mean, second)
    }

    /// Sample means and covariances agree with the mixture's analytic moments within 6 standard
    /// errors (√(Σ_ii/N) for means, √((Σ_ii Σ_jj + Σ_ij²)/N) for covariances), unconditionally
    /// and per context group; the same seed repeats, another seed differs.
    func testSamplingMoments() throws {
        let unconditional = try GaussianMixture(
            weights: Self.truth.map(\.weight), means: Self.truth.map { [$0.mean.0, $0.mean.1] },
            covariances: Self.truth.map { [$0.covariance.xx, $0.covariance.xy, $0.covariance.xy, $0.covariance.yy] }, features: 2)
        let conditional = try GaussianMixture(
            weights: [0.3, 0.7], means: [[0.5, -1.0, 2.0], [-1.0, 1.0, 0.0]],
            covariances: [[1.0, 0.4, -0.3, 0.4, 0.9, 0.2, -0.3, 0.2, 0.7], [0.5, -0.2, 0.1, -0.2, 1.2, 0.3, 0.1, 0.3, 0.6]],
            features: 2, contextFeatures: 1)
        let count = 100_000
        func check(_ samples: [Float], group: Int, _ expected: GaussianMixture.Mixture, _ label: String) {
            let (mean, covariance) = Self.moments(samples, width: 2, rows: group * count ..< (group + 1) * count)
            let (trueMean, trueCovariance) = Self.mixtureMoments(expected)
            for i in 0..<2 {
                XCTAssertEqual(mean[i], trueMean[i], accuracy: 6 * (trueCovariance[i * 3] / Double(count)).squareRoot(), "\(label) mean \(i)")
                for j in 0..<2 {
                    let se = ((trueCovariance[i * 3] * trueCovariance[j * 3] + pow(trueCovariance[i * 2 + j], 2)) / Double(count)).squareRoot()
                    XCTAssertEqual(covariance[i * 2 + j], trueCovariance[i * 2 + j], accuracy: 6 * se, "\(label) covariance [\(i), \(j)]")
                }
            }
        }
        let samples = try unconditional.sample(count, context: nil, seed: 5)
        XCTAssertEqual(samples.count, 2 * count)
        check(samples, group: 0, try unconditional.mixture(), "unconditional")
        XCTAssertEqual(samples, try unconditional.sample(count, context: nil, seed: 5))
        XCTAssertNotEqual(samples, try unconditional.sample(count, context: nil, seed: 6))

        let contexts: [Float] = [-1.2, 0.9]
        let grouped = try conditional.sample(count, context: contexts, seed: 7)
        XCTAssertEqual(grouped.count, 2 * 2 * count)
        for (g, c) in contexts.enumerated() {
            check(grouped, group: g, try conditional.mixture(context: [c]), "context \(c)")
        }
        XCTAssertEqual(try conditional.sample(0, context: contexts, seed: 7), [])
    }

    // MARK: persistence

    func testSaveLoadRoundTrip() throws {
        let joint = Self.truthSamples(1500, seed: 51)
        let noise = Self.normals(1500, seed: 52)
        let c = (0..<1500).map { Float(0.5 * Double(joint[2 * $0]) - 0.3 * Double(joint[2 * $0 + 1]) + noise[$0]) }
        let y = joint
        let models = [(try GaussianMixture(features: 2, components: 4), nil as [Float]?),
                      (try GaussianMixture(features: 2, contextFeatures: 1, components: 3), c)]
        for (model, context) in models {
            try model.fit(y, context: context, configuration: Self.configuration(validation: 0.1))
            let url = temporaryURL("model-\(model.contextFeatures).safetensors")
            try model.save(to: url)
            let file = try SafetensorsFile.read(from: url)
            XCTAssertEqual(file.metadata["estimator"], "gmm")
            XCTAssertEqual(Set(file.tensors.keys), ["weights", "means", "cholesky"])
            XCTAssertEqual(file["cholesky"]?.shape, [model.components, model.dimension, model.dimension])
            let loaded = try GaussianMixture.load(from: url)
            XCTAssertEqual(loaded.features, model.features)
            XCTAssertEqual(loaded.contextFeatures, model.contextFeatures)
            XCTAssertEqual(loaded.components, model.components)
            XCTAssertEqual(loaded.regularization, model.regularization)
            XCTAssertEqual(loaded.history, model.history)
            XCTAssertEqual(loaded.trainingConfiguration, model.trainingConfiguration)
            XCTAssertEqual(try loaded.logProb(y, context: context), try model.logProb(y, context: context))
            let sampleContext: [Float]? = context.map { Array($0.prefix(3)) }
            XCTAssertEqual(try loaded.sample(50, context: sampleContext, seed: 3), try model.sample(50, context: sampleContext, seed: 3))
        }
    }

    /// A run resumed from its checkpoint ends with the parameters and history of an uninterrupted run.
    func testResumeMatchesUninterruptedRun() throws {
        let data = Self.truthSamples(2000, seed: 61)
        let options = GaussianMixture.Options(components: 4, tolerance: 1e-7)
        let configuration = Self.configuration(epochs: 25, validation: 0.2, seed: 3)
        let reference = try GaussianMixture(features: 2, options: options)
        let full = try reference.fit(data, configuration: configuration)

        let url = temporaryURL("resume.safetensors")
        try? FileManager.default.removeItem(at: url)
        var short = configuration
        short.epochs = 6
        let first = try GaussianMixture(features: 2, options: options)
        XCTAssertEqual(try first.fit(data, configuration: short, checkpoint: url).count, 6)
        let resumed = try GaussianMixture(features: 2, options: options)
        let history = try resumed.fit(data, configuration: configuration, checkpoint: url, resume: true)
        XCTAssertEqual(history.count, full.count)
        XCTAssertEqual(history.map(\.trainingLoss), full.map(\.trainingLoss))
        XCTAssertEqual(history.map(\.validationLoss), full.map(\.validationLoss))
        XCTAssertEqual(try resumed.logProb(data, context: nil), try reference.logProb(data, context: nil))
        // The checkpoint is itself a loadable model (the best parameters so far).
        XCTAssertEqual(try GaussianMixture.load(from: url).logProb(data, context: nil), try reference.logProb(data, context: nil))
        // A different configuration is refused.
        var other = configuration
        other.seed = 4
        XCTAssertThrowsError(try GaussianMixture(features: 2, options: options).fit(data, configuration: other, checkpoint: url, resume: true))
    }

    func testMalformedFilesAreRefused() throws {
        let model = try GaussianMixture(features: 2, components: 2)
        try model.fit(Self.truthSamples(500, seed: 71), configuration: Self.configuration())
        let url = temporaryURL("good.safetensors")
        try model.save(to: url)
        let bytes = try Data(contentsOf: url)

        func refused(_ name: String, _ data: Data, mentioning words: [String], line: UInt = #line) {
            let bad = temporaryURL(name)
            XCTAssertNoThrow(try data.write(to: bad), line: line)
            XCTAssertThrowsError(try GaussianMixture.load(from: bad), line: line) { error in
                let text = "\(error)"
                XCTAssertFalse(text.contains("\n"), "not one line: \(text)", line: line)
                for word in [bad.path] + words { XCTAssertTrue(text.contains(word), "'\(text)' lacks '\(word)'", line: line) }
            }
        }
        refused("truncated.safetensors", bytes.prefix(bytes.count / 2), mentioning: ["truncated"])
        refused("short.safetensors", bytes.prefix(5), mentioning: ["truncated"])

        func edited(_ change: (inout SafetensorsFile) throws -> Void) throws -> Data {
            var file = try SafetensorsFile.read(from: url)
            try change(&file)
            return try file.encoded()
        }
        refused("missing.safetensors", try edited { $0.tensors["means"] = nil }, mentioning: ["'means'", "missing"])
        refused("shape.safetensors", try edited { $0["cholesky"] = try SafetensorsTensor(doubles: [1, 0, 0, 1], shape: [1, 2, 2]) },
                mentioning: ["'cholesky'", "shape"])
        refused("diagonal.safetensors", try edited {
            var factors = try $0["cholesky"]!.doubles
            factors[3] = -1
            $0["cholesky"] = try SafetensorsTensor(doubles: factors, shape: [2, 2, 2])
        }, mentioning: ["'cholesky'", "diagonal"])
        refused("weights.safetensors", try edited { $0["weights"] = try SafetensorsTensor(doubles: [0.5, .nan], shape: [2]) },
                mentioning: ["'weights'"])
        refused("metadata.safetensors", try edited { $0.metadata["gmm.configuration"] = "{\"features\": 2}" },
                mentioning: ["'gmm.configuration'"])
        refused("estimator.safetensors", try edited { $0.metadata["estimator"] = nil }, mentioning: ["'estimator'"])
    }

    // MARK: input checks

    func testInvalidInputsAreRefused() throws {
        let model = try GaussianMixture(features: 2, components: 2)
        XCTAssertThrowsError(try model.logProb([0, 0], context: nil)) { XCTAssertTrue("\($0)".contains("not fitted")) }
        var data = Self.truthSamples(200, seed: 81)
        try model.fit(data, configuration: Self.configuration())
        data[7] = .nan
        XCTAssertThrowsError(try model.fit(data, configuration: Self.configuration())) {
            XCTAssertTrue("\($0)".contains("row 3, feature 1"), "\($0)")
        }
        XCTAssertThrowsError(try model.logProb([0, 0, .infinity, 0], context: nil))
        XCTAssertThrowsError(try model.logProb([0, 0, 1], context: nil)) { XCTAssertTrue($0 is SBIError) }
        XCTAssertThrowsError(try model.logProb([0, 0], context: [1]))
        XCTAssertThrowsError(try model.sample(-1, context: nil, seed: 0))
        XCTAssertThrowsError(try GaussianMixture(features: 2, components: 0))
        XCTAssertThrowsError(try GaussianMixture(features: 0))

        let conditional = try GaussianMixture(features: 1, contextFeatures: 2, components: 2)
        let y = (0..<100).map { Float($0 % 7) }, c = (0..<200).map { Float($0 % 5) }
        XCTAssertThrowsError(try conditional.fit(y, context: nil, configuration: Self.configuration()))
        XCTAssertThrowsError(try conditional.fit(y, context: Array(c.dropLast(2)), configuration: Self.configuration()))
        try conditional.fit(y, context: c, configuration: Self.configuration())
        XCTAssertThrowsError(try conditional.logProb([1, 2], context: [0, 0, 0, 0, 0, 0]))  // 3 context rows for 2 y rows
        XCTAssertEqual(try conditional.logProb([1, 2], context: [0, 0]).count, 2)  // one context row broadcasts
        XCTAssertThrowsError(try conditional.sample(3, context: [0, .nan], seed: 0))
        XCTAssertThrowsError(try conditional.sample(3, context: nil, seed: 0))
        // K is capped at the training rows.
        let small = try GaussianMixture(features: 2)
        try small.fit([0, 0, 1, 1, 2, 0, 0, 3], configuration: Self.configuration(epochs: 5))
        XCTAssertEqual(small.components, 4)
        try small.fit(Self.truthSamples(100, seed: 82), configuration: Self.configuration(epochs: 5))
        XCTAssertEqual(small.components, 10)
    }
}
