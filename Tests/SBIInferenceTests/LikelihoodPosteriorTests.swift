import XCTest
import SBIBackend
import SBITestSupport
@testable import SBIInference

/// The explicit-likelihood reference posterior and the chains' effective sample size.
final class LikelihoodPosteriorTests: XCTestCase {
    /// AR(1) chains xₜ = ρ·xₜ₋₁ + √(1 − ρ²)·zₜ have integrated autocorrelation time
    /// τ = (1 + ρ)/(1 − ρ), so ESS = M·N·(1 − ρ)/(1 + ρ); independent draws (ρ = 0) have ESS = M·N.
    /// With 8 chains of 5,000 draws τ̂'s relative standard error is about √((4K + 2)/(M·N)) for
    /// K ≈ 10 lags summed: 3%, so 12% is four standard errors.
    func testEffectiveSampleSizeOfAutoregressiveChains() {
        let (chains, n) = (8, 5_000)
        for rho in [0.0, 0.5, 0.9] {
            let z = PhiloxDraws.normals(count: chains * n, offset: 0, seed: 41)
            var state = [Double](repeating: 0, count: chains)
            for c in 0..<chains { state[c] = z[c] }
            var draws: [[Float]] = []
            for t in 0..<n {
                if t > 0 { for c in 0..<chains { state[c] = rho * state[c] + (1 - rho * rho).squareRoot() * z[t * chains + c] } }
                draws.append(state.map(Float.init))
            }
            let expected = Double(chains * n) * (1 - rho) / (1 + rho)
            let ess = SliceSampler.effectiveSampleSize(draws, chains: chains, dimension: 1)[0]
            XCTAssertEqual(ess / expected, 1, accuracy: 0.12, "ρ = \(rho): ESS \(ess), expected \(expected)")
        }
    }

    /// Chains stuck at different values carry about one draw each, not M·N.
    func testEffectiveSampleSizeOfDisagreeingChains() {
        let draws = (0..<200).map { i -> [Float] in [Float(i % 3) * 0.01, 5 + Float(i % 3) * 0.01] }
        XCTAssertLessThan(SliceSampler.effectiveSampleSize(draws, chains: 2, dimension: 1)[0], 10)
    }

    /// A Gaussian with correlation 0.995 and scales 1:100: moving along the axes, a slice step
    /// crosses the ridge's width, so τ ≈ (1 + ρ²)/(1 − ρ²) ≈ 200; the directions learned in
    /// warm-up whiten it, leaving τ of order 1. ESS above a tenth of the draws tells them apart.
    /// Moments within four Monte Carlo standard errors, the standard deviation's from the ESS of
    /// the squared deviations (which mix at their own rate).
    func testWarmUpWhitensCorrelatedPosteriors() throws {
        let rho = 0.995, scale = [1.0, 100.0], chains = 32
        let sampler = SliceSampler(chains: chains, warmup: 200, seed: 5)
        let start = (0..<(2 * chains)).map { Float(0.01 * Double($0 % 5)) }
        let result = try sampler.run(count: 6_400, dimension: 2, initial: start) { theta in
            (0..<(theta.count / 2)).map { c in
                let a = Double(theta[2 * c]) / scale[0], b = Double(theta[2 * c + 1]) / scale[1]
                return -0.5 * (a * a - 2 * rho * a * b + b * b) / (1 - rho * rho)
            }
        }
        for (j, ess) in result.effectiveSampleSize.enumerated() {
            XCTAssertGreaterThan(ess, 640, "dimension \(j)")
            let values = stride(from: j, to: result.samples.count, by: 2).map { Double(result.samples[$0]) }
            let mean = values.reduce(0, +) / Double(values.count)
            let sd = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)).squareRoot()
            XCTAssertEqual(mean, 0, accuracy: 4 * scale[j] / ess.squareRoot())
            // Samples hold draw i of every chain, then draw i + 1: one row of squares per draw.
            let squares = stride(from: 0, to: values.count, by: chains).map { first in
                values[first..<(first + chains)].map { Float(($0 - mean) * ($0 - mean)) }
            }
            let squaresESS = SliceSampler.effectiveSampleSize(squares, chains: chains, dimension: 1)[0]
            XCTAssertEqual(sd / scale[j], 1, accuracy: 4 * (0.5 / squaresESS).squareRoot())
        }
    }

    /// gaussian_linear's exact posterior is N(x_o/2, 0.05·I): the sampled means lie within four
    /// Monte Carlo standard errors (√(0.05/ESS)) and the variances within four of their own
    /// (0.05·√(2/ESS)); R̂ is near 1.
    func testGaussianLinearPosteriorIsTheAnalyticOne() throws {
        let task = GaussianLinear()
        let (_, x) = try task.sampleAndSimulate(count: 1, seed: 8)
        let result = try LikelihoodPosterior(simulator: task).sample(
            6_400, observation: x, sampler: SliceSampler(chains: 64, warmup: 100, seed: 2))
        XCTAssertEqual(result.samples.count, 6_400 * 10)
        for j in 0..<10 {
            let values = stride(from: j, to: result.samples.count, by: 10).map { Double(result.samples[$0]) }
            let mean = values.reduce(0, +) / Double(values.count)
            let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)
            let ess = result.effectiveSampleSize[j]
            XCTAssertGreaterThan(ess, 1_000)
            XCTAssertEqual(mean, Double(x[j]) / 2, accuracy: 4 * (0.05 / ess).squareRoot())
            XCTAssertEqual(variance, 0.05, accuracy: 4 * 0.05 * (2 / ess).squareRoot())
            XCTAssertLessThan(result.rHat[j], 1.05)
        }
    }

    /// The galaxy's likelihood is the Gaussian density of the residual around the noise-free
    /// render: an observation that is the render plus a known offset δ has
    /// log p = −½‖δ‖²/σ² − P·log(σ√(2π)) at that θ, on both backends.
    func testGalaxyLikelihoodIsTheGaussianOfTheResidual() throws {
        var task = GalaxySimulator()
        task.noiseSigma = 2
        let theta: [Float] = [3, 3, 1.5, 0.2, -0.1]
        let render = try task.render(theta: theta, rows: 1)
        let offset = (0..<render.count).map { Float(sin(Double($0))) }
        let observation = zip(render, offset).map { $0 + $1 }
        let sigma = 2.0, pixels = Double(render.count)
        let squares = offset.reduce(0.0) { $0 + Double($1) * Double($1) }
        let expected = -0.5 * squares / (sigma * sigma) - pixels * Foundation.log(sigma * (2 * Double.pi).squareRoot())
        for backend in try TestBackends.all() {
            let logp = try task.logLikelihood(observation: observation, theta: theta + theta, rows: 2, backend: backend)
            // Float renders: the residual is exact to the render's rounding (~1e-7 relative of fluxes ~10³).
            XCTAssertEqual(logp[0], expected, accuracy: 1e-3 * abs(expected), backend.kind)
            XCTAssertEqual(logp[0], logp[1])
        }
        // Another θ fits worse.
        let other = try task.logLikelihood(observation: observation, theta: [3, 5, 1.5, 0.2, -0.1], rows: 1, backend: nil)
        XCTAssertLessThan(other[0], expected)
    }

    /// Rows outside the prior's support get −∞ without reaching the renderer (r_e = −1 would
    /// throw there), and leave the other rows' values as they are alone.
    func testRowsOutsideThePriorAreNotRendered() throws {
        let task = GalaxySimulator()
        let inside: [Float] = [3, 3, 1.5, 0.2, -0.1], outside: [Float] = [3, -1, 1.5, 0.2, -0.1]
        let observation = try task.render(theta: inside, rows: 1)
        let posterior = LikelihoodPosterior(simulator: task)
        let both = try posterior.logPosterior(outside + inside, observation: observation)
        let alone = try posterior.logPosterior(inside, observation: observation)
        XCTAssertEqual(both[0], -.infinity)
        XCTAssertEqual(both[1], alone[0])
        XCTAssertEqual(try posterior.logPosterior(outside, observation: observation), [-.infinity])
    }
}
