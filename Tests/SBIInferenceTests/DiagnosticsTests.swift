import XCTest
import SBITestSupport
import Foundation
import SBIBackend
import SBIGraph
import SBIModels
@testable import SBIInference

/// Standard normal draws from a Philox stream (Box–Muller in double precision).
private func diagnosticNormals(_ n: Int, seed: UInt64) -> [Double] {
    (0..<n).map { i in
        let u1 = Double(Philox.unit(Philox.word(at: UInt64(2 * i), seed: seed)))
        let u2 = Double(Philox.unit(Philox.word(at: UInt64(2 * i + 1), seed: seed)))
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }
}

/// The conjugate model θ ~ N(0, σ₀²I), x | θ ~ N(θ, σ²I) with σ₀² = 1, σ² = 0.25: the posterior
/// is N(0.8·x, 0.2·I). A "posterior" of the form N(0.8·x + shift·s, (scale·s)²·I), s = √0.2,
/// is exact for scale 1 and shift 0, overconfident for scale < 1 and biased for shift ≠ 0.
private struct ConjugateGaussian {
    let d: Int
    let n: Int
    let theta: [Float]
    let x: [Float]
    static let priorVariance = 1.0, noiseVariance = 0.25
    static let posteriorVariance = priorVariance * noiseVariance / (priorVariance + noiseVariance)
    static let shrinkage = priorVariance / (priorVariance + noiseVariance)

    init(n: Int, d: Int, seed: UInt64) {
        self.n = n
        self.d = d
        let z = diagnosticNormals(2 * n * d, seed: seed)
        let theta = (0..<(n * d)).map { Float(ConjugateGaussian.priorVariance.squareRoot() * z[$0]) }
        self.theta = theta
        x = (0..<(n * d)).map { theta[$0] + Float(ConjugateGaussian.noiseVariance.squareRoot() * z[n * d + $0]) }
    }

    func mean(_ x: ArraySlice<Float>, shift: Double) -> [Double] {
        x.map { Self.shrinkage * Double($0) + shift * Self.posteriorVariance.squareRoot() }
    }

    /// L samples of the (possibly miscalibrated) posterior for observation x.
    func sample(_ l: Int, x: ArraySlice<Float>, index: Int, scale: Double, shift: Double, seed: UInt64) -> [Float] {
        let mu = mean(x, shift: shift), s = scale * Self.posteriorVariance.squareRoot()
        let z = diagnosticNormals(l * d, seed: seed &+ UInt64(index) &* 0x9E37_79B9)
        return (0..<(l * d)).map { Float(mu[$0 % d] + s * z[$0]) }
    }

    func logDensity(_ rows: [Float], x: ArraySlice<Float>, scale: Double, shift: Double) -> [Double] {
        let mu = mean(x, shift: shift), variance = scale * scale * Self.posteriorVariance
        return stride(from: 0, to: rows.count, by: d).map { start in
            var q = -0.5 * Double(d) * Foundation.log(2 * Double.pi * variance)
            for j in 0..<d { q -= 0.5 * (Double(rows[start + j]) - mu[j]) * (Double(rows[start + j]) - mu[j]) / variance }
            return q
        }
    }

    func allSamples(_ l: Int, scale: Double, shift: Double, seed: UInt64) -> [Float] {
        (0..<n).flatMap { i in sample(l, x: x[(i * d)..<((i + 1) * d)], index: i, scale: scale, shift: shift, seed: seed) }
    }
}

/// The conjugate model's posterior (scaled by `scale`) as a DensityEstimator, for the
/// estimator-based entry points. Samples for context row c use Philox stream seed + c.
private final class AnalyticPosterior: DensityEstimator {
    let model: ConjugateGaussian
    let scale: Double
    var name: String { "analytic" }
    var features: Int { model.d }
    var contextFeatures: Int { model.d }
    private(set) var logProbRows: [Int] = []
    init(model: ConjugateGaussian, scale: Double) {
        self.model = model
        self.scale = scale
    }
    func fit(_ y: [Float], context: [Float]?, configuration: TrainingConfiguration, checkpoint: URL?, resume: Bool,
             progress: ((EpochRecord) -> Void)?) throws -> [EpochRecord] {
        throw SBIError.invalidArgument("analytic posterior: nothing to fit")
    }
    func logProb(_ y: [Float], context: [Float]?) throws -> [Float] {
        let d = model.d, context = context!, rows = y.count / d
        precondition(context.count == y.count, "one context row per row")
        logProbRows.append(rows)
        return (0..<rows).map { r in
            Float(model.logDensity(Array(y[(r * d)..<((r + 1) * d)]), x: context[(r * d)..<((r + 1) * d)],
                                   scale: scale, shift: 0)[0])
        }
    }
    func sample(_ count: Int, context: [Float]?, seed: UInt64) throws -> [Float] {
        let d = model.d, context = context!
        return (0..<(context.count / d)).flatMap { c in
            model.sample(count, x: context[(c * d)..<((c + 1) * d)], index: c, scale: scale, shift: 0, seed: seed)
        }
    }
    func save(to url: URL) throws {}
}

/// Rows of N(mean, I) in d dimensions.
private func gaussianSet(_ n: Int, d: Int, mean: [Double], seed: UInt64) -> [Float] {
    let z = diagnosticNormals(n * d, seed: seed)
    return (0..<(n * d)).map { Float(mean[$0 % d] + z[$0]) }
}

final class DiagnosticsTests: XCTestCase {
    // MARK: statistics

    /// The p-value functions against scipy.stats (chi2.sf, kstwobign.sf, ks_2samp exact).
    func testStatisticalFunctionsMatchSciPy() {
        XCTAssertEqual(StatisticalTests.chiSquareSurvival(3.841458820694124, degreesOfFreedom: 1), 0.05, accuracy: 1e-9)
        XCTAssertEqual(StatisticalTests.chiSquareSurvival(18.307, degreesOfFreedom: 10), 0.05000058909139812, accuracy: 1e-9)
        XCTAssertEqual(StatisticalTests.chiSquareSurvival(50, degreesOfFreedom: 19), 0.0001310611647931629, accuracy: 1e-11)
        XCTAssertEqual(StatisticalTests.chiSquareSurvival(0.5, degreesOfFreedom: 3), 0.9188914116546758, accuracy: 1e-9)
        XCTAssertEqual(StatisticalTests.kolmogorovSurvival(1.3580986393225507), 0.05, accuracy: 1e-9)
        XCTAssertEqual(StatisticalTests.kolmogorovSurvival(0.5), 0.9639452436648751, accuracy: 1e-9)

        let a = (0...30).map { Double($0) / 30 }
        let cubed = StatisticalTests.twoSampleKolmogorovSmirnov(a.map { $0 * $0 * $0 }, a)
        XCTAssertEqual(cubed.statistic, 0.3870967741935484, accuracy: 1e-12)
        XCTAssertEqual(cubed.pValue, 0.018400608756955844, accuracy: 1e-9)
        let unequal = StatisticalTests.twoSampleKolmogorovSmirnov([0.1, 0.2, 0.3, 0.4, 0.5],
                                                                  [0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95])
        XCTAssertEqual(unequal.statistic, 0.7142857142857143, accuracy: 1e-12)
        XCTAssertEqual(unequal.pValue, 0.06565656565656565, accuracy: 1e-9)

        let ks = StatisticalTests.kolmogorovSmirnovUniform([0.05, 0.1, 0.3, 0.31, 0.5, 0.52, 0.7, 0.9, 0.91, 0.99])
        XCTAssertEqual(ks.statistic, 0.2, accuracy: 1e-12)
        XCTAssertEqual(ks.pValue, 0.7487, accuracy: 0.03)  // scipy's exact value; ours is asymptotic
    }

    // MARK: SBC

    func testSBCUniformForExactPosteriorAndDetectsOverconfidence() throws {
        let model = ConjugateGaussian(n: 1000, d: 2, seed: 11)
        let l = 99
        func run(scale: Double) throws -> SBCResult {
            try SBC.run(theta: model.theta, observations: model.x, dimension: 2, samplesPerPosterior: l, seed: 3) { i, x in
                model.sample(l, x: x, index: i, scale: scale, shift: 0, seed: 101)
            }
        }
        let exact = try run(scale: 1)
        XCTAssertEqual(exact.ranks.count, 2000)
        XCTAssertEqual(exact.bins, 20)
        XCTAssertEqual(exact.expectedCounts.reduce(0, +), 1000, accuracy: 1e-9)
        XCTAssertEqual(exact.expectedCounts, [Double](repeating: 50, count: 20))
        XCTAssertEqual(exact.histograms.map { $0.reduce(0, +) }, [1000, 1000])
        XCTAssertTrue(exact.ranks.allSatisfy { (0...l).contains($0) })
        print("SBC exact: χ² p \(exact.chiSquarePValues), KS p \(exact.ksPValues)")
        for p in exact.minimumPValues { XCTAssertGreaterThan(p, 0.01) }

        let overconfident = try run(scale: 0.5)
        print("SBC overconfident: χ² p \(overconfident.chiSquarePValues), KS p \(overconfident.ksPValues)")
        for j in 0..<2 {
            XCTAssertLessThan(overconfident.chiSquarePValues[j], 1e-10)
            XCTAssertLessThan(overconfident.ksPValues[j], 1e-6)
            // The ∪ shape: the outer bins hold far more than their share.
            let h = overconfident.histograms[j]
            XCTAssertGreaterThan(h[0] + h[19], 4 * 50)
        }
        // The same ranks from precomputed samples, and the analysis of those ranks alone.
        let samples = model.allSamples(l, scale: 1, shift: 0, seed: 101)
        let again = try SBC.run(theta: model.theta, posteriorSamples: samples, dimension: 2, samplesPerPosterior: l, seed: 3)
        XCTAssertEqual(again.ranks, exact.ranks)
        XCTAssertEqual(again.chiSquarePValues, exact.chiSquarePValues)
        XCTAssertThrowsError(try SBC.analyze(ranks: [0, 100], dimension: 1, samplesPerPosterior: 99))
        XCTAssertThrowsError(try SBC.run(theta: model.theta, posteriorSamples: [1, 2], dimension: 2, samplesPerPosterior: l))
    }

    /// Ranks of tied (discrete) samples are split uniformly, and uneven bins get exact expectations.
    func testSBCTiesAndUnevenBins() throws {
        // θ and all samples equal: the rank is uniform over 0...L by the tie split.
        let n = 2000, l = 9
        let result = try SBC.run(theta: [Float](repeating: 1, count: n), posteriorSamples: [Float](repeating: 1, count: n * l),
                                 dimension: 1, samplesPerPosterior: l, bins: 4, seed: 5)
        XCTAssertEqual(result.expectedCounts, [600, 400, 600, 400])  // 10 rank values in bins of 3, 2, 3, 2
        XCTAssertGreaterThan(result.chiSquarePValues[0], 0.001)
        XCTAssertGreaterThan(result.ksPValues[0], 0.001)
    }

    // MARK: expected coverage

    func testExpectedCoverageDiagonalForExactPosteriorAndBelowForOverconfident() throws {
        let model = ConjugateGaussian(n: 1000, d: 2, seed: 21)
        let l = 200
        func run(scale: Double) throws -> CoverageResult {
            try ExpectedCoverage.run(theta: model.theta, observations: model.x, dimension: 2, samplesPerPosterior: l,
                                     levels: ExpectedCoverage.levels(21),
                                     sampler: { i, x in model.sample(l, x: x, index: i, scale: scale, shift: 0, seed: 202) },
                                     logDensity: { rows, x in model.logDensity(rows, x: x, scale: scale, shift: 0) })
        }
        let exact = try run(scale: 1)
        print("coverage exact: \(exact.coverage.map { ($0 * 1000).rounded() / 1000 }), max dev \(exact.maximumDeviation)")
        XCTAssertEqual(exact.levels.count, 21)
        XCTAssertEqual(exact.coverage.first!, 0)
        XCTAssertEqual(exact.coverage.last!, 1, accuracy: 0.01)
        XCTAssertLessThan(exact.maximumDeviation, 0.05)  // ~3.5 binomial standard errors at N = 1000
        XCTAssertEqual(exact.signedArea, 0, accuracy: 0.02)

        let overconfident = try run(scale: 0.5)
        print("coverage overconfident: \(overconfident.coverage.map { ($0 * 1000).rounded() / 1000 }), area \(overconfident.signedArea)")
        for (alpha, c) in zip(overconfident.levels, overconfident.coverage) where alpha > 0.05 && alpha < 0.95 {
            XCTAssertLessThan(c, 0.75 * alpha, "level \(alpha)")
        }
        XCTAssertLessThan(overconfident.signedArea, -0.15)

        let underconfident = try run(scale: 2)
        XCTAssertGreaterThan(underconfident.signedArea, 0.15)
    }

    // MARK: TARP

    func testTARPCalibratedNearZeroAndBiasedFar() throws {
        let model = ConjugateGaussian(n: 1000, d: 2, seed: 31)
        let l = 200
        func run(scale: Double, shift: Double) throws -> TARPResult {
            try TARP.run(theta: model.theta, posteriorSamples: model.allSamples(l, scale: scale, shift: shift, seed: 303),
                         dimension: 2, samplesPerPosterior: l, seed: 7)
        }
        let exact = try run(scale: 1, shift: 0)
        XCTAssertEqual(exact.alpha.count, 101)  // N/10 bins
        XCTAssertEqual(exact.ecp.first!, 0)
        XCTAssertEqual(exact.ecp.last!, 1, accuracy: 1e-12)
        XCTAssertEqual(exact.references.count, 2000)
        print("TARP exact: ATC \(exact.atc), KS p \(exact.ksPValue)")
        XCTAssertEqual(exact.atc, 0, accuracy: 0.02)
        XCTAssertGreaterThan(exact.ksPValue, 0.05)

        XCTAssertLessThan(exact.totalAbsoluteDeviation, 2)
        XCTAssertLessThan(exact.maximumDeviation, 0.05)

        // A moderate bias (1.5 posterior standard deviations in each dimension): f piles up at
        // both ends unevenly and the curve crosses the diagonal, so the ATC (upper half only)
        // stays small, as sbi's tests note; the KS test and the whole-curve deviation catch it.
        let biased = try run(scale: 1, shift: 1.5)
        print("TARP biased: ATC \(biased.atc), KS p \(biased.ksPValue), Σ|ecp − α| \(biased.totalAbsoluteDeviation)")
        XCTAssertLessThan(biased.ksPValue, 0.01)
        XCTAssertGreaterThan(biased.totalAbsoluteDeviation, 3)
        XCTAssertGreaterThan(biased.maximumDeviation, 0.1)

        // A strong bias (8 standard deviations): the ATC itself is clearly nonzero.
        let farBiased = try run(scale: 1, shift: 8)
        print("TARP strongly biased: ATC \(farBiased.atc), KS p \(farBiased.ksPValue)")
        XCTAssertGreaterThan(abs(farBiased.atc), 0.04)
        XCTAssertLessThan(farBiased.ksPValue, 1e-6)

        let overconfident = try run(scale: 0.5, shift: 0)
        print("TARP overconfident: ATC \(overconfident.atc), KS p \(overconfident.ksPValue)")
        XCTAssertLessThan(overconfident.atc, -0.03)
        let underconfident = try run(scale: 2, shift: 0)
        print("TARP underconfident: ATC \(underconfident.atc), KS p \(underconfident.ksPValue)")
        XCTAssertGreaterThan(underconfident.atc, 0.03)
    }

    /// The ECP curve and ATC of hand-made coverage values (np.histogram's binning).
    func testTARPCurveAndCheck() {
        let (ecp, alpha) = TARP.curve(coverageValues: [0, 0.25, 0.5, 0.75, 1], bins: 4)
        XCTAssertEqual(alpha, [0, 0.25, 0.5, 0.75, 1])
        XCTAssertEqual(ecp, [0, 0.2, 0.4, 0.6, 1])  // the last bin is closed: it holds 0.75 and 1
        let summary = TARP.check(ecp: ecp, alpha: alpha)
        // midindex 2: (0.4 − 0.5 + 0.6 − 0.75 + 1 − 1)·0.25
        XCTAssertEqual(summary.atc, -0.0625, accuracy: 1e-12)
        let (_, unitAlpha) = TARP.curve(coverageValues: [0.4, 0.6], bins: 2, range: .unit)
        XCTAssertEqual(unitAlpha, [0, 0.5, 1])
    }

    /// The DensityEstimator entry points agree with the closure ones on the same samples.
    func testEstimatorEntryPoints() throws {
        let model = ConjugateGaussian(n: 400, d: 2, seed: 71)
        let l = 400  // 400 observations × 400 samples: the log densities come in two chunks
        for scale in [1.0, 0.5] {
            let estimator = AnalyticPosterior(model: model, scale: scale)
            let sampler: (Int, ArraySlice<Float>) throws -> [Float] = { i, x in
                model.sample(l, x: x, index: i, scale: scale, shift: 0, seed: 9)
            }
            let sbc = try SBC.run(estimator: estimator, theta: model.theta, observations: model.x, samplesPerPosterior: l, seed: 9)
            let sbcClosure = try SBC.run(theta: model.theta, observations: model.x, dimension: 2, samplesPerPosterior: l,
                                         seed: 9, sampler: sampler)
            XCTAssertEqual(sbc.ranks, sbcClosure.ranks)

            let coverage = try ExpectedCoverage.run(estimator: estimator, theta: model.theta, observations: model.x,
                                                    samplesPerPosterior: l, seed: 9)
            let coverageClosure = try ExpectedCoverage.run(
                theta: model.theta, observations: model.x, dimension: 2, samplesPerPosterior: l, sampler: sampler,
                logDensity: { rows, x in
                    model.logDensity(rows, x: x, scale: scale, shift: 0).map { Double(Float($0)) }
                })
            XCTAssertEqual(coverage.credibility, coverageClosure.credibility)
            XCTAssertEqual(estimator.logProbRows, [400, 163 * 400, 163 * 400, 74 * 400])

            let tarp = try TARP.run(estimator: estimator, theta: model.theta, observations: model.x, samplesPerPosterior: l, seed: 9)
            let tarpSamples = try TARP.run(theta: model.theta, posteriorSamples: model.allSamples(l, scale: scale, shift: 0, seed: 9),
                                           dimension: 2, samplesPerPosterior: l, seed: 9)
            XCTAssertEqual(tarp.coverageValues, tarpSamples.coverageValues)
            XCTAssertEqual(tarp.atc, tarpSamples.atc)
            if scale == 1 {
                XCTAssertGreaterThan(sbc.minimumPValues.min()!, 0.001)
                XCTAssertLessThan(coverage.maximumDeviation, 0.08)
            } else {
                XCTAssertLessThan(sbc.minimumPValues.max()!, 1e-6)
                XCTAssertLessThan(coverage.signedArea, -0.15)
            }
        }
        let estimator = AnalyticPosterior(model: model, scale: 1)
        XCTAssertThrowsError(try SBC.run(estimator: estimator, theta: model.theta, observations: [1, 2, 3],
                                         samplesPerPosterior: 10))
    }

    // MARK: C2ST

    func testC2STSameDistributionNearHalf() throws {
        let x = gaussianSet(2000, d: 2, mean: [0, 0], seed: 61)
        let y = gaussianSet(2000, d: 2, mean: [0, 0], seed: 62)
        let result = try C2ST.score(reference: x, samples: y, dimension: 2)
        print("C2ST same: \(result.accuracy) folds \(result.foldAccuracies) epochs \(result.epochs)")
        XCTAssertEqual(result.foldAccuracies.count, 5)
        XCTAssertEqual(result.accuracy, 0.5, accuracy: 0.03)
    }

    func testC2STSeparatedNearOneAndShiftedBetween() throws {
        let x = gaussianSet(2000, d: 2, mean: [0, 0], seed: 51)
        let far = gaussianSet(2000, d: 2, mean: [8, 8], seed: 52)
        let separated = try C2ST.score(reference: x, samples: far, dimension: 2)
        print("C2ST separated: \(separated.accuracy) epochs \(separated.epochs)")
        XCTAssertGreaterThan(separated.accuracy, 0.99)

        // A unit shift along one axis: the Bayes accuracy is Φ(½) ≈ 0.691.
        let shifted = try C2ST.score(reference: x, samples: gaussianSet(2000, d: 2, mean: [1, 0], seed: 53), dimension: 2)
        print("C2ST shifted: \(shifted.accuracy) epochs \(shifted.epochs)")
        XCTAssertEqual(shifted.accuracy, 0.691, accuracy: 0.03)
    }

    /// The same three data sets through sbibm's c2st code with scikit-learn, when it is installed.
    func testC2STMatchesScikitLearn() throws {
        guard Self.python(["-c", "import sklearn, numpy"]) == 0 else {
            throw XCTSkip("python3 with scikit-learn is not available")
        }
        let x = gaussianSet(2000, d: 2, mean: [0, 0], seed: 61)
        let sets: [(String, [Float])] = [
            ("same", gaussianSet(2000, d: 2, mean: [0, 0], seed: 62)),
            ("shifted", gaussianSet(2000, d: 2, mean: [1, 0], seed: 63)),
            ("separated", gaussianSet(2000, d: 2, mean: [8, 8], seed: 64)),
        ]
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("c2st-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func write(_ values: [Float], _ name: String) throws {
            let text = stride(from: 0, to: values.count, by: 2).map { "\(values[$0]) \(values[$0 + 1])" }.joined(separator: "\n")
            try text.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        try write(x, "x.txt")
        for (name, y) in sets { try write(y, "\(name).txt") }
        // sbibm.metrics.c2st, with NumPy in place of torch.
        let script = """
        import sys, numpy as np
        from sklearn.model_selection import KFold, cross_val_score
        from sklearn.neural_network import MLPClassifier
        d = sys.argv[1]
        X = np.loadtxt(d + "/x.txt", dtype=np.float32)
        for name in ["same", "shifted", "separated"]:
            Y = np.loadtxt(d + "/" + name + ".txt", dtype=np.float32)
            mean, std = X.mean(axis=0), X.std(axis=0, ddof=1)
            Xz, Yz = (X - mean) / std, (Y - mean) / std
            ndim = X.shape[1]
            clf = MLPClassifier(activation="relu", hidden_layer_sizes=(10 * ndim, 10 * ndim),
                                max_iter=1000, solver="adam", random_state=1)
            data = np.concatenate((Xz, Yz))
            target = np.concatenate((np.zeros((X.shape[0],)), np.ones((Y.shape[0],))))
            shuffle = KFold(n_splits=5, shuffle=True, random_state=1)
            scores = cross_val_score(clf, data, target, cv=shuffle, scoring="accuracy")
            print(name, float(np.mean(scores)))
        """
        let output = try XCTUnwrap(Self.pythonOutput(["-c", script, directory.path]))
        var reference: [String: Double] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let v = Double(parts[1]) { reference[String(parts[0])] = v }
        }
        for (name, y) in sets {
            let ours = try C2ST.score(reference: x, samples: y, dimension: 2).accuracy
            let theirs = try XCTUnwrap(reference[name], "no sklearn score for \(name) in \(output)")
            print("C2ST \(name): ours \(ours), sklearn \(theirs)")
            XCTAssertEqual(ours, theirs, accuracy: 0.03, name)
        }
    }

    /// The classifier trains the same on the OpenCL device (PoCL here) as on the CPU: 300 rows a
    /// set leave 480 training rows a fold, so every epoch also runs the 80-row remainder batch.
    func testC2STOnOpenCLMatchesCPU() throws {
        let gpu = try TestBackends.openCL()
        let x = gaussianSet(300, d: 2, mean: [0, 0], seed: 81)
        let y = gaussianSet(300, d: 2, mean: [1, 0], seed: 82)
        let configuration = C2STConfiguration(maxEpochs: 60)
        let cpu = try C2ST.score(reference: x, samples: y, dimension: 2, configuration: configuration)
        let cl = try C2ST.score(reference: x, samples: y, dimension: 2, configuration: configuration, backend: gpu)
        print("C2ST cpu \(cpu.accuracy) \(cpu.epochs), opencl \(cl.accuracy) \(cl.epochs)")
        XCTAssertEqual(cl.accuracy, cpu.accuracy, accuracy: 0.02)
        for (a, b) in zip(cl.finalLosses, cpu.finalLosses) { XCTAssertEqual(a, b, accuracy: 0.01) }
        XCTAssertEqual(cpu.accuracy, 0.69, accuracy: 0.08)
    }

    func testC2STRejectsBadInput() {
        XCTAssertThrowsError(try C2ST.score(reference: [1, 2, 3], samples: [1, 2], dimension: 2))
        XCTAssertThrowsError(try C2ST.score(reference: [1, 2], samples: [.nan, 2], dimension: 2))
    }

    // MARK: helpers

    @discardableResult
    static func python(_ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    static func pythonOutput(_ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self)
    }
}
