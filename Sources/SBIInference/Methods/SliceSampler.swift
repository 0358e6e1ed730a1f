import Foundation
import SBIBackend
import SBIModels

/// Many chains of slice sampling along fixed directions (Neal 2003: stepping out, then
/// shrinkage) run in lock step, so that every density evaluation is one batched call over all
/// chains — on the device, one plan replay per step instead of one per chain. Chains that
/// finished a phase keep their state while the others go on.
///
/// The directions start as the coordinate axes; halfway through warm-up they become the columns
/// of the Cholesky factor of the chains' covariance over the second quarter of warm-up, so that
/// a correlated posterior (a galaxy's radius against its Sérsic index) is sampled in whitened
/// coordinates instead of by many short coordinate steps. They stay fixed from then on, which
/// keeps every later move a valid slice-sampling update.
public struct SliceSampler {
    public var chains = 64
    public var warmup = 200
    public var thinning = 1
    /// Stepping-out expansions per side, and shrinkage steps, before a chain gives up a move.
    public var maxSteps = 20
    public var seed: UInt64 = 0

    public init(chains: Int = 64, warmup: Int = 200, thinning: Int = 1, seed: UInt64 = 0) {
        self.chains = chains
        self.warmup = warmup
        self.thinning = thinning
        self.seed = seed
    }

    public struct Result {
        /// count × dimension, chains interleaved: draw i of every chain, then draw i + 1.
        public let samples: [Float]
        /// Split-R̂ of each dimension over the kept draws (≈ 1 when the chains agree).
        public let rHat: [Double]
        /// Effective sample size of each dimension over the kept draws (`effectiveSampleSize`).
        public let effectiveSampleSize: [Double]
        /// Density evaluations (batched calls) spent.
        public let evaluations: Int
    }

    /// Draws `count` samples from exp(logDensity) starting from `initial` (chains × dimension).
    /// `logDensity` receives chains × dimension values and returns one log density per chain.
    public func run(count: Int, dimension d: Int, initial: [Float],
                    logDensity: ([Float]) throws -> [Double]) throws -> Result {
        guard initial.count == chains * d else {
            throw SBIError.sizeMismatch("slice sampler: \(initial.count / max(d, 1)) initial points for \(chains) chains")
        }
        var theta = initial
        var logp = try logDensity(theta)
        var evaluations = 1
        guard logp.allSatisfy({ $0 > -Double.infinity }) else {
            throw SBIError.invalidArgument("slice sampler: an initial point has zero density")
        }
        var counter: UInt64 = 0
        func uniform() -> Double {
            counter += 1
            return Double(Philox.unit(Philox.word(at: counter, seed: seed)))
        }
        // Initial bracket widths from the spread of the starting points.
        var width = (0..<d).map { j -> Double in
            let values = (0..<chains).map { Double(theta[$0 * d + j]) }
            let mean = values.reduce(0, +) / Double(chains)
            let sd = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(chains - 1, 1))).squareRoot()
            return sd > 0 ? 2 * sd : 0.1
        }
        let perChain = (count + chains - 1) / chains
        let iterations = warmup + perChain * thinning
        var kept: [[Float]] = []
        var history: [[Float]] = []
        // directions[j]: the move of step j per unit of its coordinate (nil: the j-th axis).
        var directions: [[Double]]? = nil
        for iteration in 0..<iterations {
            if iteration == warmup / 2, warmup >= 20,
               let factor = SliceSampler.choleskyOfCovariance(history[(warmup / 4)...], chains: chains, dimension: d) {
                directions = (0..<d).map { j in (0..<d).map { factor[$0 * d + j] } }
                width = [Double](repeating: 2, count: d)
            }
            for j in 0..<d {
                let level = (0..<chains).map { logp[$0] + Foundation.log(uniform()) }
                // Positions along the direction, relative to each chain's state (centre 0), or
                // the coordinate itself while the directions are the axes.
                let centre = directions == nil ? (0..<chains).map { Double(theta[$0 * d + j]) } : [Double](repeating: 0, count: chains)
                var left = (0..<chains).map { centre[$0] - width[j] * uniform() }
                var right = left.map { $0 + width[j] }
                // Chain c's state moved to `position` along the direction, written into `point`
                // (which starts as a copy of the states, or is them).
                func move(_ point: inout [Float], _ c: Int, to position: Double) {
                    if let direction = directions?[j] {
                        for k in 0..<d where direction[k] != 0 {
                            point[c * d + k] = Float(Double(point[c * d + k]) + position * direction[k])
                        }
                    } else {
                        point[c * d + j] = Float(position)
                    }
                }
                func evaluate(at positions: [Double]) throws -> [Double] {
                    var point = theta
                    for c in 0..<chains { move(&point, c, to: positions[c]) }
                    evaluations += 1
                    return try logDensity(point)
                }
                // Stepping out, both sides, all chains together.
                var expandLeft = [Bool](repeating: true, count: chains), expandRight = expandLeft
                for _ in 0..<maxSteps {
                    guard expandLeft.contains(true) else { break }
                    let values = try evaluate(at: left)
                    for c in 0..<chains where expandLeft[c] {
                        if values[c] > level[c] { left[c] -= width[j] } else { expandLeft[c] = false }
                    }
                }
                for _ in 0..<maxSteps {
                    guard expandRight.contains(true) else { break }
                    let values = try evaluate(at: right)
                    for c in 0..<chains where expandRight[c] {
                        if values[c] > level[c] { right[c] += width[j] } else { expandRight[c] = false }
                    }
                }
                // Shrinkage until every chain accepts a point inside its slice.
                var active = [Bool](repeating: true, count: chains)
                var proposal = centre
                var bracket = [Double](repeating: 0, count: chains)
                for _ in 0..<(4 * maxSteps) {
                    guard active.contains(true) else { break }
                    for c in 0..<chains where active[c] { proposal[c] = left[c] + uniform() * (right[c] - left[c]) }
                    let values = try evaluate(at: proposal)
                    for c in 0..<chains where active[c] {
                        if values[c] > level[c] {
                            move(&theta, c, to: proposal[c])
                            logp[c] = values[c]
                            bracket[c] = right[c] - left[c]
                            active[c] = false
                        } else if proposal[c] < centre[c] {
                            left[c] = proposal[c]
                        } else {
                            right[c] = proposal[c]
                        }
                    }
                }
                // Warm-up tunes the initial bracket to the typical slice width.
                if iteration < warmup {
                    let accepted = bracket.filter { $0 > 0 }
                    if !accepted.isEmpty { width[j] = 0.5 * width[j] + 0.5 * accepted.reduce(0, +) / Double(accepted.count) }
                }
            }
            if iteration >= warmup && (iteration - warmup) % thinning == 0 {
                kept.append(theta)
            }
            history.append(theta)
        }
        var samples: [Float] = []
        samples.reserveCapacity(count * d)
        outer: for draw in kept {
            for c in 0..<chains {
                if samples.count == count * d { break outer }
                samples += draw[(c * d)..<((c + 1) * d)]
            }
        }
        return Result(samples: samples, rHat: SliceSampler.splitRHat(kept, chains: chains, dimension: d),
                      effectiveSampleSize: SliceSampler.effectiveSampleSize(kept, chains: chains, dimension: d),
                      evaluations: evaluations)
    }

    /// Draws `count` samples from the posterior exp(logPosterior), chains starting from prior
    /// draws resampled by their posterior weight (sampling–importance resampling over 50 draws
    /// per chain), so that they begin in the posterior's bulk rather than the prior's.
    /// `logPosterior` receives rows of θ and returns one log density per row.
    public func run(count: Int, prior: ParameterPrior, logPosterior: ([Float]) throws -> [Double]) throws -> Result {
        let d = prior.dimension
        let candidates = prior.sample(50 * chains, seed: seed &+ 17)
        let weights = try logPosterior(candidates)
        let maximum = weights.max() ?? 0
        guard maximum > -Double.infinity else { throw SBIError.invalidArgument("no prior draw has positive posterior density") }
        var cumulative: [Double] = []
        var total = 0.0
        for w in weights { total += Foundation.exp(w - maximum); cumulative.append(total) }
        var initial: [Float] = []
        for c in 0..<chains {
            let u = Double(Philox.unit(Philox.word(at: UInt64(c), seed: seed &+ 29))) * total
            let index = cumulative.firstIndex { $0 >= u } ?? (cumulative.count - 1)
            initial += candidates[(index * d)..<((index + 1) * d)]
        }
        return try run(count: count, dimension: d, initial: initial, logDensity: logPosterior)
    }

    /// Multi-chain effective sample size per dimension (Vehtari, Gelman, Simpson, Carpenter and
    /// Bürkner 2021, as Stan computes it): autocorrelations ρ̂ₜ = 1 − (W − mean autocovariance at
    /// lag t) / var⁺ from all chains, summed in Geyer's pairs while positive and made monotone;
    /// ESS = M·N / τ̂ with τ̂ = −1 + 2·Σ pairs, capped at M·N·log₁₀(M·N). `draws` holds one
    /// chains × dimension array per iteration.
    public static func effectiveSampleSize(_ draws: [[Float]], chains: Int, dimension d: Int) -> [Double] {
        let n = draws.count
        guard n >= 4, chains >= 1 else { return Array(repeating: .nan, count: d) }
        let total = Double(n * chains)
        return (0..<d).map { j in
            let series = (0..<chains).map { c in draws.map { Double($0[c * d + j]) } }
            let means = series.map { $0.reduce(0, +) / Double(n) }
            let centred = zip(series, means).map { values, mean in values.map { $0 - mean } }
            func meanAutocovariance(_ lag: Int) -> Double {
                var sum = 0.0
                for chain in centred {
                    for i in 0..<(n - lag) { sum += chain[i] * chain[i + lag] }
                }
                return sum / Double(n) / Double(chains)
            }
            let within = meanAutocovariance(0) * Double(n) / Double(n - 1)
            let grand = means.reduce(0, +) / Double(chains)
            let between = chains > 1 ? means.reduce(0) { $0 + ($1 - grand) * ($1 - grand) } / Double(chains - 1) : 0
            let pooled = within * Double(n - 1) / Double(n) + between
            guard pooled > 0 else { return total }
            func rho(_ lag: Int) -> Double { lag == 0 ? 1 : 1 - (within - meanAutocovariance(lag)) / pooled }
            // Geyer's initial positive sequence of pair sums, then its initial monotone version.
            var pairs: [Double] = []
            var lag = 0
            while lag + 1 < n {
                let pair = rho(lag) + rho(lag + 1)
                guard pair > 0 else { break }
                pairs.append(min(pair, pairs.last ?? pair))
                lag += 2
            }
            let tau = max(-1 + 2 * pairs.reduce(0, +), 1 / Foundation.log10(total))
            return total / tau
        }
    }

    /// The lower Cholesky factor (row-major d×d) of the covariance of all chains' states over
    /// `draws`; nil when there are too few states or they are degenerate.
    static func choleskyOfCovariance(_ draws: ArraySlice<[Float]>, chains: Int, dimension d: Int) -> [Double]? {
        let count = draws.count * chains
        guard count > 2 * d else { return nil }
        var mean = [Double](repeating: 0, count: d)
        for draw in draws { for i in 0..<(chains * d) { mean[i % d] += Double(draw[i]) } }
        mean = mean.map { $0 / Double(count) }
        var covariance = [Double](repeating: 0, count: d * d)
        for draw in draws {
            for c in 0..<chains {
                for a in 0..<d {
                    let u = Double(draw[c * d + a]) - mean[a]
                    for b in 0...a { covariance[a * d + b] += u * (Double(draw[c * d + b]) - mean[b]) }
                }
            }
        }
        covariance = covariance.map { $0 / Double(count - 1) }
        return Cholesky.factor(&covariance, d) ? covariance : nil
    }

    /// Split-R̂ (Gelman et al., BDA3 §11.4): each chain's draws halved, then between- against
    /// within-chain variance per dimension.
    public static func splitRHat(_ draws: [[Float]], chains: Int, dimension d: Int) -> [Double] {
        let n = draws.count / 2
        guard n >= 2 else { return Array(repeating: .nan, count: d) }
        return (0..<d).map { j in
            var means: [Double] = [], variances: [Double] = []
            for c in 0..<chains {
                for half in 0..<2 {
                    let values = (0..<n).map { Double(draws[half * n + $0][c * d + j]) }
                    let mean = values.reduce(0, +) / Double(n)
                    means.append(mean)
                    variances.append(values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n - 1))
                }
            }
            let m = Double(means.count)
            let grand = means.reduce(0, +) / m
            let between = Double(n) * means.reduce(0) { $0 + ($1 - grand) * ($1 - grand) } / (m - 1)
            let within = variances.reduce(0, +) / m
            guard within > 0 else { return 1 }
            let pooled = Double(n - 1) / Double(n) * within + between / Double(n)
            return (pooled / within).squareRoot()
        }
    }
}
