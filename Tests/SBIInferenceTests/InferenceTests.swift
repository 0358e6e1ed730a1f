import XCTest
import Foundation
import SBIBackend
import SBIGraph
import SBIModels
@testable import SBIInference

/// An isotropic Gaussian prior written independently of the library's priors.
struct IsotropicGaussianPrior: ParameterPrior {
    let dimension: Int
    let variance: Double
    func logDensity(_ theta: ArraySlice<Float>) -> Double {
        -0.5 * theta.reduce(0) { $0 + Double($1) * Double($1) } / variance
            - 0.5 * Double(dimension) * Foundation.log(2 * Double.pi * variance)
    }
    func sample(_ count: Int, seed: UInt64) -> [Float] {
        gaussianDraws(count * dimension, seed: seed).map { Float($0 * variance.squareRoot()) }
    }
}

/// A box prior, for rejection tests.
struct BoxPrior: ParameterPrior {
    let dimension: Int
    let bound: Float
    func logDensity(_ theta: ArraySlice<Float>) -> Double {
        theta.allSatisfy { abs($0) <= bound } ? -Double(dimension) * Foundation.log(2 * Double(bound)) : -.infinity
    }
    func sample(_ count: Int, seed: UInt64) -> [Float] {
        (0..<(count * dimension)).map { bound * (2 * Philox.unit(Philox.word(at: UInt64($0), seed: seed)) - 1) }
    }
}

func gaussianDraws(_ n: Int, seed: UInt64) -> [Double] {
    (0..<n).map { i in
        let u1 = Double(Philox.unit(Philox.word(at: UInt64(2 * i), seed: seed)))
        let u2 = Double(Philox.unit(Philox.word(at: UInt64(2 * i + 1), seed: seed)))
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }
}

func columnMoments(_ values: [Float], _ d: Int) -> (mean: [Double], variance: [Double]) {
    let n = values.count / d
    let mean = (0..<d).map { j in (0..<n).reduce(0.0) { $0 + Double(values[$1 * d + j]) } / Double(n) }
    let variance = (0..<d).map { j in
        (0..<n).reduce(0.0) { $0 + (Double(values[$1 * d + j]) - mean[j]) * (Double(values[$1 * d + j]) - mean[j]) } / Double(n - 1)
    }
    return (mean, variance)
}

/// gaussian_linear (sbibm): θ ~ N(0, 0.1·I), x ~ N(θ, 0.1·I), so θ | x ~ N(x/2, 0.05·I).
func gaussianLinearPairs(_ n: Int, d: Int, seed: UInt64) -> (theta: [Float], x: [Float]) {
    let z = gaussianDraws(2 * n * d, seed: seed)
    let s = 0.1.squareRoot()
    let theta = (0..<(n * d)).map { Float(s * z[$0]) }
    let x = (0..<(n * d)).map { theta[$0] + Float(s * z[n * d + $0]) }
    return (theta, x)
}

final class InferenceTests: XCTestCase {
    /// Batched slice sampling of a correlated 2-D Gaussian: moments within a few standard errors
    /// (12 800 draws of 64 chains: 200 per chain, enough for split-R̂ below 1.05) and R̂ near 1.
    func testSliceSamplerRecoversGaussian() throws {
        let mean = [1.0, -2.0], sd = [0.5, 2.0], rho = 0.8
        let sampler = SliceSampler(chains: 64, warmup: 100, thinning: 1, seed: 3)
        let start = (0..<128).map { Float(0.1 * Double($0 % 7)) }
        let result = try sampler.run(count: 12_800, dimension: 2, initial: start) { theta in
            (0..<(theta.count / 2)).map { c in
                let a = (Double(theta[2 * c]) - mean[0]) / sd[0], b = (Double(theta[2 * c + 1]) - mean[1]) / sd[1]
                return -0.5 * (a * a - 2 * rho * a * b + b * b) / (1 - rho * rho)
            }
        }
        XCTAssertEqual(result.samples.count, 25_600)
        let (m, v) = columnMoments(result.samples, 2)
        XCTAssertEqual(m[0], mean[0], accuracy: 0.05)
        XCTAssertEqual(m[1], mean[1], accuracy: 0.2)
        XCTAssertEqual(v[0].squareRoot(), sd[0], accuracy: 0.05)
        XCTAssertEqual(v[1].squareRoot(), sd[1], accuracy: 0.2)
        for r in result.rHat { XCTAssertLessThan(r, 1.05) }
    }

    func testSplitRHatDetectsDisagreeingChains() {
        // Two chains stuck at different values: R̂ ≫ 1.
        let draws = (0..<100).map { i -> [Float] in [Float(i % 3) * 0.01, 5 + Float(i % 3) * 0.01] }
        XCTAssertGreaterThan(SliceSampler.splitRHat(draws, chains: 2, dimension: 1)[0], 10)
    }

    /// NPE on gaussian_linear recovers the analytic posterior N(x_o/2, 0.05·I): per-dimension
    /// means within 0.05 (prior sd 0.32) and standard deviations within 15% of √0.05.
    func testNPERecoversGaussianLinearPosterior() throws {
        let d = 10
        let (theta, x) = gaussianLinearPairs(10_000, d: d, seed: 1)
        var configuration = FlowConfiguration(kind: .maf, features: d, contextFeatures: d)
        configuration.hidden = [50, 50]
        configuration.seed = 2
        let npe = NPE(estimator: try Estimators.makeFlow(configuration, backend: CPUBackend()),
                      prior: IsotropicGaussianPrior(dimension: d, variance: 0.1))
        try npe.train(theta: theta, x: x, configuration: TrainingConfiguration(
            epochs: 60, batchSize: 256, learningRate: 1e-3, validationFraction: 0.1, patience: 10, seed: 4))
        let observation = (0..<d).map { Float(0.3 * Double($0 % 3) - 0.3) }
        let (samples, acceptance) = try npe.sample(4000, observations: observation, seed: 5)
        XCTAssertEqual(acceptance, [1])
        let (m, v) = columnMoments(samples, d)
        for j in 0..<d {
            XCTAssertEqual(m[j], Double(observation[j]) / 2, accuracy: 0.05, "mean[\(j)]")
            XCTAssertEqual(v[j].squareRoot(), 0.05.squareRoot(), accuracy: 0.15 * 0.05.squareRoot(), "sd[\(j)]")
        }
    }

    /// NPE samples outside a box prior are rejected and the acceptance rate reports the leak.
    func testNPERejectsSamplesOutsideThePrior() throws {
        let estimator = try Estimators.makeFlow(FlowConfiguration(kind: .realnvp, features: 1, contextFeatures: 1), backend: CPUBackend())
        let theta = gaussianDraws(2000, seed: 8).map(Float.init), x = gaussianDraws(2000, seed: 9).map(Float.init)
        let npe = NPE(estimator: estimator, prior: BoxPrior(dimension: 1, bound: 0.5))
        try npe.train(theta: theta, x: x, configuration: TrainingConfiguration(epochs: 5, batchSize: 100, seed: 1))
        let (samples, acceptance) = try npe.sample(500, observations: [0], seed: 2)
        XCTAssertEqual(samples.count, 500)
        XCTAssertTrue(samples.allSatisfy { abs($0) <= 0.5 })
        // q ≈ N(0, 1): about 38% of its mass lies in [−0.5, 0.5].
        XCTAssertEqual(acceptance[0], 0.38, accuracy: 0.1)
    }

    /// NLE on a 2-D linear-Gaussian model: slice-sampled posterior moments match the analytic ones.
    func testNLERecoversGaussianLinearPosterior() throws {
        let d = 2
        let (theta, x) = gaussianLinearPairs(6000, d: d, seed: 11)
        var configuration = FlowConfiguration(kind: .maf, features: d, contextFeatures: d)
        configuration.hidden = [32, 32]
        configuration.transforms = 3
        let nle = NLE(estimator: try Estimators.makeFlow(configuration, backend: CPUBackend()),
                      prior: IsotropicGaussianPrior(dimension: d, variance: 0.1))
        try nle.train(theta: theta, x: x, configuration: TrainingConfiguration(
            epochs: 40, batchSize: 256, learningRate: 2e-3, patience: 10, seed: 4))
        let observation: [Float] = [0.4, -0.2]
        let result = try nle.sample(3000, observation: observation, sampler: SliceSampler(chains: 50, warmup: 50, seed: 6))
        let (m, v) = columnMoments(result.samples, d)
        for j in 0..<d {
            XCTAssertEqual(m[j], Double(observation[j]) / 2, accuracy: 0.05, "mean[\(j)]")
            XCTAssertEqual(v[j].squareRoot(), 0.05.squareRoot(), accuracy: 0.2 * 0.05.squareRoot(), "sd[\(j)]")
        }
        for r in result.rHat { XCTAssertLessThan(r, 1.1) }
    }

    /// Rejection ABC keeps the closest simulations and concentrates on the analytic posterior.
    func testRejectionABC() throws {
        let (theta, x) = gaussianLinearPairs(50_000, d: 1, seed: 21)
        let (accepted, distances) = try RejectionABC.accept(theta: theta, x: x, parameters: 1, observation: [0.3],
                                                            quantile: 0.02)
        XCTAssertEqual(accepted.count, 1000)
        XCTAssertEqual(distances, distances.sorted())
        let (m, v) = columnMoments(accepted, 1)
        XCTAssertEqual(m[0], 0.15, accuracy: 0.03)
        XCTAssertEqual(v[0].squareRoot(), 0.05.squareRoot(), accuracy: 0.04)
        XCTAssertThrowsError(try RejectionABC.accept(theta: theta, x: x, parameters: 1, observation: [0.3], quantile: 0))
    }
}
