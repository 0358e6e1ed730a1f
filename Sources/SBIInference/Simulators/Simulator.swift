import Foundation
import SBIBackend

/// A simulator x ~ p(x | θ): a prior over θ and a seeded, batched forward model.
///
/// `simulate` maps `rows` parameter vectors (row-major rows×parameterDimension) to `rows`
/// observations (row-major rows×observationDimension; images flattened row by row). The result
/// is a function of (θ, seed) alone: each row draws its randomness from its own positions of the
/// Philox stream of `seed`, so row r of a batch equals row r of any longer batch with the same
/// seed and leading rows, and the backend (nil: the host / CPU backend) does not change the
/// numbers beyond float rounding.
public protocol Simulator: Sendable {
    /// The registry name, e.g. "two_moons".
    var name: String { get }
    /// One line for listings.
    var summary: String { get }
    /// Names of θ's components, in order.
    var parameterNames: [String] { get }
    /// The shape of one observation: [d] for vectors, [height, width] for images.
    var observationShape: [Int] { get }
    var prior: Prior { get }
    func simulate(theta: [Float], rows: Int, seed: UInt64, backend: Backend?) throws -> [Float]
}

extension Simulator {
    public var parameterDimension: Int { parameterNames.count }
    public var observationDimension: Int { observationShape.reduce(1, *) }

    public func simulate(theta: [Float], rows: Int, seed: UInt64) throws -> [Float] {
        try simulate(theta: theta, rows: rows, seed: seed, backend: nil)
    }

    /// `count` draws θ from the prior and their simulations. θ and the simulator noise use
    /// independent streams derived from `seed`.
    public func sampleAndSimulate(count: Int, seed: UInt64, backend: Backend? = nil) throws
        -> (theta: [Float], x: [Float]) {
        let theta = prior.sample(count, seed: PhiloxDraws.derivedSeed(seed, stream: 0))
        let x = try simulate(theta: theta, rows: count, seed: PhiloxDraws.derivedSeed(seed, stream: 1), backend: backend)
        return (theta, x)
    }

    /// Throws unless θ holds `rows` whole rows of finite parameters.
    func checkTheta(_ theta: [Float], rows: Int) throws {
        guard rows >= 0 else { throw SBIError.invalidArgument("\(name): negative row count \(rows)") }
        guard theta.count == rows * parameterDimension else {
            throw SBIError.sizeMismatch(
                "\(name): θ has \(theta.count) values for \(rows) rows of \(parameterDimension) parameters (\(parameterNames.joined(separator: ", ")))")
        }
        if let bad = theta.firstIndex(where: { !$0.isFinite }) {
            throw SBIError.invalidArgument("\(name): θ row \(bad / parameterDimension), \(parameterNames[bad % parameterDimension]) is \(theta[bad])")
        }
    }
}

/// A simulator whose likelihood p(x | θ) is known in closed form (a noise model around a
/// deterministic render): the exact posterior can then be sampled (`LikelihoodPosterior`) as the
/// reference that simulation-based estimates are measured against.
public protocol ExplicitLikelihood: Simulator {
    /// log p(observation | θ) for each of `rows` rows of θ, in double precision. Every row must
    /// lie in the prior's support (a renderer may refuse others).
    func logLikelihood(observation: [Float], theta: [Float], rows: Int, backend: Backend?) throws -> [Double]
}

extension ExplicitLikelihood {
    /// Σᵢ log N(xᵢ; μᵢ, σ²) of each row of `means` (rows × the observation's size) around `observation`.
    func gaussianLogLikelihood(observation: [Float], means: [Float], rows: Int, variance: Double) -> [Double] {
        let p = observation.count
        let constant = -0.5 * Double(p) * Foundation.log(2 * Double.pi * variance)
        return (0..<rows).map { r in
            var squares = 0.0
            for i in 0..<p {
                let residual = Double(observation[i]) - Double(means[r * p + i])
                squares += residual * residual
            }
            return constant - 0.5 * squares / variance
        }
    }
}

/// The built-in simulators by name.
public enum Simulators {
    /// Fresh instances of every built-in simulator, in listing order.
    public static var all: [any Simulator] {
        [TwoMoons(), GaussianLinear(), GalaxySimulator(), GaussianRandomField()]
    }

    public static var names: [String] { all.map(\.name) }

    /// (name, one-line description) of each simulator, for `--help` and listings.
    public static var catalog: [(name: String, summary: String)] { all.map { ($0.name, $0.summary) } }

    /// The simulator called `name` (case-insensitive; '-' and '_' are interchangeable); an unknown
    /// name throws a one-line error listing the known ones.
    public static func named(_ name: String) throws -> any Simulator {
        let key = name.lowercased().replacingOccurrences(of: "-", with: "_")
        guard let simulator = all.first(where: { $0.name == key }) else {
            throw SBIError.invalidArgument("unknown simulator '\(name)'; available: \(names.joined(separator: ", "))")
        }
        return simulator
    }
}
