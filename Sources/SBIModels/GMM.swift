import Foundation
import SBIData
import SBIBackend
import SBIGraph

/// A Gaussian mixture with full covariances fitted by expectation–maximization: the classical
/// baseline density estimator ("gmm"), computed in double precision on the host.
///
/// Unconditional, it models q(y). With context (`contextFeatures > 0`) it fits one joint mixture
/// to the vectors x = [context, y] and conditions it analytically: q(y | c) is again a mixture,
/// with weights ∝ π_k N(c; μ_k^c, Σ_k^cc), means μ_k^y + Σ_k^yc (Σ_k^cc)⁻¹ (c − μ_k^c) and
/// covariances Σ_k^yy − Σ_k^yc (Σ_k^cc)⁻¹ Σ_k^cy.
///
/// The joint vector puts the context first on purpose. With the lower Cholesky factor of a
/// component's covariance partitioned as L = [[A, 0], [B, C]] (A: context × context), A is the
/// factor of Σ^cc, the regression Σ^yc (Σ^cc)⁻¹ is B A⁻¹ and the conditional covariance is C Cᵀ.
/// So one forward substitution z = L⁻¹(x − μ) gives log N(x) from all of z and log N(c) from its
/// first entries, and conditioning needs no other factorization and no inverse. Means and factors
/// (in the API and in saved files) are in this [context, y] order.
///
/// Fitting follows scikit-learn's `GaussianMixture(covariance_type="full")`:
/// - initialization: k-means++ seeding (Philox, seeded by the training seed) followed by Lloyd
///   iterations; the hard labels give the initial weights, means and covariances. Distances are
///   measured on per-feature standardized data so that features of different scales count alike.
/// - every covariance gets `regularization`·I added (scikit-learn's `reg_covar`); by default
///   1e-6 times the mean per-feature variance of the training data, so that the fit is invariant
///   to a common rescaling of the data (scikit-learn's default is an absolute 1e-6).
/// - convergence: scikit-learn's semantics: EM stops when the mean (per row) joint
///   log-likelihood of the training rows changes by less than `tolerance` (default 1e-3, as
///   scikit-learn's `tol`) between consecutive iterations.
/// - component weights come from N_k + 10ε like scikit-learn, so no weight is exactly zero.
///
/// Each iteration costs O(N·K·D²): one forward substitution per row and component (E-step) and
/// one weighted scatter per row and component (M-step), plus K Cholesky factorizations. Both
/// steps run on all cores over fixed partitions (row blocks, components) and combine partial
/// results in a fixed order, so results do not depend on the number of cores.
public final class GaussianMixture: DensityEstimator {
    /// The model's own settings; training settings come from `TrainingConfiguration`.
    public struct Options: Codable, Equatable, Sendable {
        /// Mixture components K; capped at the number of training rows.
        public var components: Int
        /// Added to every covariance's diagonal; nil: 1e-6 × the mean feature variance of the data.
        public var regularization: Double?
        /// Convergence threshold on the change of the mean training log-likelihood (nats per row).
        public var tolerance: Double

        public init(components: Int = 10, regularization: Double? = nil, tolerance: Double = 1e-3) {
            self.components = components
            self.regularization = regularization
            self.tolerance = tolerance
        }
    }

    /// A mixture of Gaussians over y, as `mixture(context:)` returns it.
    public struct Mixture: Equatable, Sendable {
        /// K weights summing to 1.
        public let weights: [Double]
        /// K means, each `features` wide.
        public let means: [[Double]]
        /// K covariances, each features×features row-major.
        public let covariances: [[Double]]
    }

    public let name = "gmm"
    public let features: Int
    public let contextFeatures: Int
    public private(set) var options: Options
    /// Width of the joint vectors [context, y].
    public var dimension: Int { features + contextFeatures }
    /// Components of the fitted model; before fitting, options.components (which fitting caps at
    /// the number of training rows).
    public var components: Int { parameters?.k ?? options.components }
    /// The regularization the fit used (resolved from the default), nil before fitting.
    public private(set) var regularization: Double?
    /// The loss history of the last fit (also restored by `load`).
    public var history: [EpochRecord] { state.history }
    /// Whether the last fit stopped because the log-likelihood change fell below the tolerance.
    public var converged: Bool { state.converged }
    public private(set) var trainingConfiguration: TrainingConfiguration?

    var parameters: Parameters?
    var state = FitState()

    public init(features: Int, contextFeatures: Int = 0, options: Options = Options()) throws {
        guard features > 0, contextFeatures >= 0 else {
            throw SBIError.invalidArgument("gmm: features must be positive and context features non-negative (got \(features), \(contextFeatures))")
        }
        try Self.check(options)
        self.features = features
        self.contextFeatures = contextFeatures
        self.options = options
    }

    public convenience init(features: Int, contextFeatures: Int = 0, components: Int) throws {
        try self.init(features: features, contextFeatures: contextFeatures, options: Options(components: components))
    }

    /// A mixture with given parameters over the joint vectors [context, y] (`features +
    /// contextFeatures` wide): weights (summing to 1), means and row-major covariances.
    public convenience init(weights: [Double], means: [[Double]], covariances: [[Double]],
                            features: Int, contextFeatures: Int = 0) throws {
        try self.init(features: features, contextFeatures: contextFeatures, options: Options(components: weights.count))
        let d = dimension, k = weights.count
        guard k > 0, means.count == k, covariances.count == k else {
            throw SBIError.sizeMismatch("gmm: \(k) weights, \(means.count) means and \(covariances.count) covariances; expected the same positive number")
        }
        var flatMeans: [Double] = [], factors: [Double] = []
        for c in 0..<k {
            guard means[c].count == d, covariances[c].count == d * d else {
                throw SBIError.sizeMismatch("gmm: component \(c) has a mean of \(means[c].count) and a covariance of \(covariances[c].count) values; expected \(d) and \(d)×\(d)")
            }
            var factor = covariances[c]
            let symmetric = (0..<d).allSatisfy { i in (0..<i).allSatisfy { j in
                let (a, b) = (factor[i * d + j], factor[j * d + i])
                return abs(a - b) <= 1e-12 * max(1, abs(a), abs(b)) } }
            guard symmetric, factor.allSatisfy(\.isFinite), Cholesky.factor(&factor, d) else {
                throw SBIError.invalidArgument("gmm: covariance \(c) is not finite, symmetric and positive definite")
            }
            flatMeans += means[c]
            factors += factor
        }
        parameters = try Parameters.validated(k: k, d: d, dc: contextFeatures, weights: weights, means: flatMeans,
                                              cholesky: factors) { SBIError.invalidArgument("gmm: \($0)") }
    }

    static func check(_ options: Options) throws {
        guard options.components > 0 else {
            throw SBIError.invalidArgument("gmm: components must be positive (got \(options.components))")
        }
        guard options.tolerance.isFinite, options.tolerance >= 0 else {
            throw SBIError.invalidArgument("gmm: tolerance must be finite and non-negative (got \(options.tolerance))")
        }
        if let r = options.regularization, !(r.isFinite && r >= 0) {
            throw SBIError.invalidArgument("gmm: regularization must be finite and non-negative (got \(r))")
        }
    }

    // MARK: parameters

    /// Fitted parameters over x = [context, y] and quantities derived from them.
    struct Parameters: Equatable {
        let k: Int, d: Int, dc: Int
        /// K weights.
        let weights: [Double]
        /// K×D means.
        let means: [Double]
        /// K×D×D lower Cholesky factors of the covariances, row-major (upper parts zero).
        let cholesky: [Double]
        let logWeights: [Double]
        /// K×D reciprocals of the factors' diagonals.
        let inverseDiagonal: [Double]
        /// Σ_i log L_ii + D/2·log 2π: minus the log normalizer of each component.
        let jointNormalizer: [Double]
        /// Σ_{i<dc} log L_ii + dc/2·log 2π, for the context marginal.
        let contextNormalizer: [Double]

        init(k: Int, d: Int, dc: Int, weights: [Double], means: [Double], cholesky: [Double]) {
            self.k = k
            self.d = d
            self.dc = dc
            self.weights = weights
            self.means = means
            self.cholesky = cholesky
            logWeights = weights.map { Foundation.log($0) }
            var inverse = [Double](repeating: 0, count: k * d)
            var joint = [Double](repeating: 0, count: k), context = [Double](repeating: 0, count: k)
            let halfLog2Pi = 0.5 * Foundation.log(2 * Double.pi)
            for c in 0..<k {
                var sum = 0.0
                for i in 0..<d {
                    let diagonal = cholesky[c * d * d + i * d + i]
                    inverse[c * d + i] = 1 / diagonal
                    sum += Foundation.log(diagonal)
                    if i + 1 == dc { context[c] = sum + Double(dc) * halfLog2Pi }
                }
                joint[c] = sum + Double(d) * halfLog2Pi
            }
            inverseDiagonal = inverse
            jointNormalizer = joint
            contextNormalizer = context
        }

        /// Checks values that came from outside (a file, the caller); `fail` builds the error.
        static func validated(k: Int, d: Int, dc: Int, weights: [Double], means: [Double], cholesky: [Double],
                              fail: (String) -> Error) throws -> Parameters {
            guard weights.count == k, means.count == k * d, cholesky.count == k * d * d else {
                throw fail("expected \(k) weights, \(k)×\(d) means and \(k)×\(d)×\(d) Cholesky factors")
            }
            if let c = weights.firstIndex(where: { !($0.isFinite && $0 >= 0) }) {
                throw fail("'weights' entry \(c) is \(weights[c]); weights must be finite and non-negative")
            }
            let total = weights.reduce(0, +)
            guard abs(total - 1) <= 1e-6 else { throw fail("'weights' sum to \(total), not 1") }
            if let i = means.firstIndex(where: { !$0.isFinite }) {
                throw fail("'means' entry [\(i / d), \(i % d)] is \(means[i])")
            }
            for c in 0..<k {
                for i in 0..<d {
                    for j in 0..<d {
                        let value = cholesky[c * d * d + i * d + j]
                        if j > i, value != 0 {
                            throw fail("'cholesky' factor \(c) is not lower-triangular (entry [\(i), \(j)] is \(value))")
                        }
                        if j == i, !(value.isFinite && value > 0) {
                            throw fail("'cholesky' factor \(c) has diagonal entry [\(i), \(i)] = \(value); it must be positive")
                        }
                        if !value.isFinite { throw fail("'cholesky' factor \(c) entry [\(i), \(j)] is \(value)") }
                    }
                }
            }
            return Parameters(k: k, d: d, dc: dc, weights: weights, means: means, cholesky: cholesky)
        }
    }

    // MARK: evaluation

    static let blockRows = 256

    /// For each row of x (rows×D, [context, y]): log Σ_k π_k N_k(x) and, when there is a context,
    /// log Σ_k π_k N_k(x_c) of its context part; with `responsibilities` (rows×K) also the
    /// posterior component probabilities. Rows are processed in fixed blocks, in parallel.
    static func evaluate(_ p: Parameters, _ x: UnsafePointer<Double>, rows: Int,
                         responsibilities: UnsafeMutablePointer<Double>? = nil) -> (joint: [Double], context: [Double]) {
        let (k, d, dc) = (p.k, p.d, p.dc)
        var joint = [Double](repeating: 0, count: rows)
        var context = [Double](repeating: 0, count: dc > 0 ? rows : 0)
        let blocks = (rows + blockRows - 1) / blockRows
        joint.withUnsafeMutableBufferPointer { jointOut in
        context.withUnsafeMutableBufferPointer { contextOut in
        p.means.withUnsafeBufferPointer { means in
        p.cholesky.withUnsafeBufferPointer { factors in
        p.inverseDiagonal.withUnsafeBufferPointer { inverse in
        p.logWeights.withUnsafeBufferPointer { logWeights in
        p.jointNormalizer.withUnsafeBufferPointer { jointNormalizer in
        p.contextNormalizer.withUnsafeBufferPointer { contextNormalizer in
            let jointOut = jointOut.baseAddress!, contextOut = contextOut.baseAddress
            let means = means.baseAddress!, factors = factors.baseAddress!, inverse = inverse.baseAddress!
            let logWeights = logWeights.baseAddress!, jointNormalizer = jointNormalizer.baseAddress!
            let contextNormalizer = contextNormalizer.baseAddress!
            DispatchQueue.concurrentPerform(iterations: blocks) { block in
                let scratch = UnsafeMutablePointer<Double>.allocate(capacity: d + 2 * k)
                defer { scratch.deallocate() }
                let z = scratch, lj = scratch + d, lc = scratch + d + k
                for n in (block * blockRows)..<min(rows, (block + 1) * blockRows) {
                    let row = x + n * d
                    var largest = -Double.infinity, largestContext = -Double.infinity
                    for c in 0..<k {
                        let mu = means + c * d, factor = factors + c * d * d, inv = inverse + c * d
                        var squares = 0.0, contextSquares = 0.0
                        for i in 0..<d {
                            var s = row[i] - mu[i]
                            let li = factor + i * d
                            for j in 0..<i { s -= li[j] * z[j] }
                            let zi = s * inv[i]
                            z[i] = zi
                            squares += zi * zi
                            if i + 1 == dc { contextSquares = squares }
                        }
                        lj[c] = logWeights[c] - 0.5 * squares - jointNormalizer[c]
                        largest = max(largest, lj[c])
                        if dc > 0 {
                            lc[c] = logWeights[c] - 0.5 * contextSquares - contextNormalizer[c]
                            largestContext = max(largestContext, lc[c])
                        }
                    }
                    let total = logSumExp(lj, k, largest)
                    jointOut[n] = total
                    if let responsibilities {
                        for c in 0..<k { responsibilities[n * k + c] = Foundation.exp(lj[c] - total) }
                    }
                    if dc > 0 { contextOut![n] = logSumExp(lc, k, largestContext) }
                }
            }
        }}}}}}}}
        return (joint, context)
    }

    @inline(__always)
    static func logSumExp(_ values: UnsafePointer<Double>, _ count: Int, _ largest: Double) -> Double {
        guard largest.isFinite else { return largest }
        var sum = 0.0
        for i in 0..<count { sum += Foundation.exp(values[i] - largest) }
        return largest + Foundation.log(sum)
    }

    static func logSumExp(_ values: [Double]) -> Double {
        let m = values.max() ?? -.infinity
        guard m.isFinite else { return m }
        var sum = 0.0
        for v in values { sum += Foundation.exp(v - m) }
        return m + Foundation.log(sum)
    }

    /// Weights, means and Cholesky factors from responsibilities (rows×K), with `regularization`
    /// on the diagonals. Throws naming the component whose covariance is not positive definite.
    static func maximize(_ x: UnsafePointer<Double>, rows: Int, d: Int, dc: Int, k: Int,
                         responsibilities: UnsafePointer<Double>, regularization: Double, iteration: Int) throws -> Parameters {
        var counts = [Double](repeating: 0, count: k)
        var means = [Double](repeating: 0, count: k * d)
        var factors = [Double](repeating: 0, count: k * d * d)
        var failed = [Bool](repeating: false, count: k)
        counts.withUnsafeMutableBufferPointer { countsOut in
        means.withUnsafeMutableBufferPointer { meansOut in
        factors.withUnsafeMutableBufferPointer { factorsOut in
        failed.withUnsafeMutableBufferPointer { failedOut in
            let countsOut = countsOut.baseAddress!, meansOut = meansOut.baseAddress!
            let factorsOut = factorsOut.baseAddress!, failedOut = failedOut.baseAddress!
            DispatchQueue.concurrentPerform(iterations: k) { c in
                let mean = meansOut + c * d, covariance = factorsOut + c * d * d
                var count = 0.0
                for n in 0..<rows {
                    let r = responsibilities[n * k + c]
                    if r == 0 { continue }
                    count += r
                    let row = x + n * d
                    for i in 0..<d { mean[i] += r * row[i] }
                }
                count += 10 * Double.ulpOfOne  // as scikit-learn: no empty component
                for i in 0..<d { mean[i] /= count }
                let difference = UnsafeMutablePointer<Double>.allocate(capacity: d)
                defer { difference.deallocate() }
                for n in 0..<rows {
                    let r = responsibilities[n * k + c]
                    if r == 0 { continue }
                    let row = x + n * d
                    for i in 0..<d { difference[i] = row[i] - mean[i] }
                    for i in 0..<d {
                        let ri = r * difference[i]
                        let out = covariance + i * d
                        for j in 0...i { out[j] += ri * difference[j] }
                    }
                }
                for i in 0..<d {
                    for j in 0...i { covariance[i * d + j] /= count }
                    covariance[i * d + i] += regularization
                }
                countsOut[c] = count
                failedOut[c] = !Cholesky.factor(covariance, d)
            }
        }}}}
        if let c = failed.firstIndex(of: true) {
            throw SBIError.invalidArgument("gmm: the covariance of component \(c) is not positive definite at iteration \(iteration) "
                                           + "(regularization \(regularization)); increase the regularization or use fewer components")
        }
        let total = counts.reduce(0, +)
        return Parameters(k: k, d: d, dc: dc, weights: counts.map { $0 / total }, means: means, cholesky: factors)
    }

    // MARK: initialization

    /// Uniform in (0, 1) with 52 random bits from words 2i and 2i+1 of the Philox stream `seed`.
    @inline(__always)
    static func uniform(_ i: UInt64, seed: UInt64) -> Double {
        let block = Philox.block(counter: i / 2, seed: seed)
        let (a, b) = i % 2 == 0 ? (block.0, block.1) : (block.2, block.3)
        return uniform(a, b)
    }

    @inline(__always)
    static func uniform(_ a: UInt32, _ b: UInt32) -> Double {
        (Double((UInt64(a) << 32 | UInt64(b)) >> 12) + 0.5) * 0x1p-52
    }

    /// k-means++ seeding and Lloyd iterations on standardized rows; returns the labels (of the
    /// last assignment step).
    static func kMeans(_ x: [Double], rows: Int, d: Int, k: Int, seed: UInt64, maxIterations: Int = 100) -> [Int] {
        let key = seed ^ (0x474D_4D5F_4B4D_4541 &* 0x9E37_79B9_7F4A_7C15)  // "GMM_KMEA" stream
        // Standardize so that distances weigh features alike.
        var mean = [Double](repeating: 0, count: d), variance = [Double](repeating: 0, count: d)
        for n in 0..<rows { for i in 0..<d { mean[i] += x[n * d + i] } }
        for i in 0..<d { mean[i] /= Double(rows) }
        for n in 0..<rows { for i in 0..<d { let t = x[n * d + i] - mean[i]; variance[i] += t * t } }
        let scale = variance.map { $0 > 0 ? 1 / ($0 / Double(rows)).squareRoot() : 1 }
        var s = [Double](repeating: 0, count: rows * d)
        for n in 0..<rows { for i in 0..<d { s[n * d + i] = (x[n * d + i] - mean[i]) * scale[i] } }

        var centers = [Double](repeating: 0, count: k * d)
        var labels = [Int](repeating: -1, count: rows)
        s.withUnsafeBufferPointer { sBuffer in
        centers.withUnsafeMutableBufferPointer { centersBuffer in
        labels.withUnsafeMutableBufferPointer { labelsBuffer in
            let s = sBuffer.baseAddress!, centers = centersBuffer.baseAddress!, labels = labelsBuffer.baseAddress!
            @inline(__always) func distance(_ n: Int, _ c: Int) -> Double {
                var sum = 0.0
                for i in 0..<d { let t = s[n * d + i] - centers[c * d + i]; sum += t * t }
                return sum
            }
            func choose(_ c: Int, _ n: Int) { centers.advanced(by: c * d).update(from: s + n * d, count: d) }

            // k-means++ seeding: each further center drawn with probability ∝ squared distance.
            choose(0, min(rows - 1, Int(uniform(0, seed: key) * Double(rows))))
            var nearest = (0..<rows).map { distance($0, 0) }
            for c in 1..<max(1, k) {
                let total = nearest.reduce(0, +)
                let u = uniform(UInt64(c), seed: key)
                var chosen = min(rows - 1, Int(u * Double(rows)))  // all rows on centers already: uniform
                if total > 0 {
                    let target = u * total
                    var cumulative = 0.0
                    for n in 0..<rows where nearest[n] > 0 {
                        cumulative += nearest[n]
                        chosen = n
                        if cumulative >= target { break }
                    }
                }
                choose(c, chosen)
                for n in 0..<rows { nearest[n] = min(nearest[n], distance(n, c)) }
            }

            // Lloyd iterations until no label changes or the centers settle; assignments in parallel over fixed blocks.
            let blocks = (rows + blockRows - 1) / blockRows
            var changes = [Int](repeating: 0, count: blocks)
            for _ in 0..<maxIterations {
                changes.withUnsafeMutableBufferPointer { changesBuffer in
                    let changes = changesBuffer.baseAddress!
                    DispatchQueue.concurrentPerform(iterations: blocks) { block in
                        var changed = 0
                        for n in (block * blockRows)..<min(rows, (block + 1) * blockRows) {
                            var best = 0, bestDistance = Double.infinity
                            for c in 0..<k {
                                let t = distance(n, c)
                                if t < bestDistance { bestDistance = t; best = c }
                            }
                            if labels[n] != best { labels[n] = best; changed += 1 }
                        }
                        changes[block] = changed
                    }
                }
                if changes.allSatisfy({ $0 == 0 }) { break }
                var sums = [Double](repeating: 0, count: k * d), counts = [Int](repeating: 0, count: k)
                for n in 0..<rows {
                    counts[labels[n]] += 1
                    for i in 0..<d { sums[labels[n] * d + i] += s[n * d + i] }
                }
                var shift = 0.0
                for c in 0..<k where counts[c] > 0 {  // an empty cluster keeps its center
                    for i in 0..<d {
                        let center = sums[c * d + i] / Double(counts[c])
                        shift += (center - centers[c * d + i]) * (center - centers[c * d + i])
                        centers[c * d + i] = center
                    }
                }
                // scikit-learn's criterion: centers moved by less than 1e-4 × the mean variance
                // (1 after standardization) in total squared distance.
                if shift <= 1e-4 { break }
            }
        }}}
        return labels
    }

    // MARK: input checks

    /// Rows of y after checking width and finiteness.
    func rows(of y: [Float], _ what: String = "y") throws -> Int {
        guard y.count % features == 0 else {
            throw SBIError.sizeMismatch("gmm: \(what) has \(y.count) values, not a multiple of \(features) features")
        }
        try Self.finite(y, width: features, what)
        return y.count / features
    }

    static func finite(_ values: [Float], width: Int, _ what: String) throws {
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw SBIError.invalidArgument("gmm: \(what) has a non-finite value (\(values[bad])) at row \(bad / width), feature \(bad % width)")
        }
    }

    /// Context rows after checking: nil for an unconditional model, else `rows` rows or one row
    /// (`allowBroadcast`) of `contextFeatures`.
    func checkContext(_ context: [Float]?, rows: Int?, allowBroadcast: Bool = true) throws -> Int {
        if contextFeatures == 0 {
            if let context, !context.isEmpty { throw SBIError.invalidArgument("gmm: the model is unconditional but a context was given") }
            return 0
        }
        guard let context else {
            throw SBIError.invalidArgument("gmm: the model is conditional: a context of \(contextFeatures) features is required")
        }
        guard context.count % contextFeatures == 0, context.count > 0 else {
            throw SBIError.sizeMismatch("gmm: context has \(context.count) values, not a positive multiple of \(contextFeatures) features")
        }
        let contextRows = context.count / contextFeatures
        if let rows, contextRows != rows, !(allowBroadcast && contextRows == 1) {
            throw SBIError.sizeMismatch("gmm: context has \(contextRows) rows; expected \(rows)\(allowBroadcast ? " or 1" : "")")
        }
        try Self.finite(context, width: contextFeatures, "context")
        return contextRows
    }

    /// Joint rows [context, y] in double precision (a single context row is repeated).
    func joint(_ y: [Float], rows: Int, context: [Float]?) -> [Double] {
        let d = dimension, dc = contextFeatures, dy = features
        var x = [Double](repeating: 0, count: rows * d)
        let broadcast = (context?.count ?? 0) == dc
        for n in 0..<rows {
            if dc > 0, let context {
                let source = broadcast ? 0 : n * dc
                for i in 0..<dc { x[n * d + i] = Double(context[source + i]) }
            }
            for i in 0..<dy { x[n * d + dc + i] = Double(y[n * dy + i]) }
        }
        return x
    }

    func fitted() throws -> Parameters {
        guard let parameters else { throw SBIError.invalidArgument("gmm: the model is not fitted; fit or load it first") }
        return parameters
    }

    // MARK: fitting

    /// What a checkpoint carries across a restart (and a saved model keeps as its history).
    struct FitState: Codable, Equatable {
        var iteration = 0
        var history: [EpochRecord] = []
        var bestValidationLoss = Double.infinity
        var iterationsWithoutImprovement = 0
        var converged = false
        var stoppedEarly = false
        var trainingRows = 0
        var validationRows = 0
    }

    /// EM on [context, y]. `configuration` maps as: `epochs` = the maximum number of EM
    /// iterations; `seed` seeds the k-means++ initialization and the validation split (the same
    /// split `Trainer` uses); `validationFraction` holds out rows whose mean negative conditional
    /// log-likelihood is the validation loss (the training value when 0); `patience` stops after
    /// that many iterations without a better validation loss (only with a validation split), and
    /// the parameters with the best validation loss are kept. Batch size, learning rate, weight
    /// decay, clipping and schedule do not apply to EM and are ignored; records carry learning rate 0.
    ///
    /// One record per iteration: the losses of the parameters after that iteration's M-step, as
    /// mean −log q(y | context) (−log q(y) unconditionally). With `checkpoint`, the state is saved
    /// after every iteration; with `resume` and an existing checkpoint, EM continues from it and
    /// reaches bit for bit the parameters of an uninterrupted run.
    @discardableResult
    public func fit(_ y: [Float], context: [Float]? = nil, configuration: TrainingConfiguration = TrainingConfiguration(),
                    checkpoint: URL? = nil, resume: Bool = false, progress: ((EpochRecord) -> Void)? = nil) throws -> [EpochRecord] {
        let rows = try rows(of: y)
        _ = try checkContext(context, rows: rows, allowBroadcast: false)
        guard configuration.epochs >= 0 else {
            throw SBIError.invalidArgument("gmm: epochs (EM iterations) must be non-negative (got \(configuration.epochs))")
        }
        guard configuration.validationFraction >= 0, configuration.validationFraction < 1 else {
            throw SBIError.invalidArgument("gmm: validation fraction must be in [0, 1) (got \(configuration.validationFraction))")
        }
        let d = dimension, dc = contextFeatures
        let all = joint(y, rows: rows, context: context)

        // The validation split of every estimator, so that neural estimators and the GMM hold out the same rows.
        let split = Trainer.validationSplit(rows: rows, configuration: configuration)
        let order = (split.training + split.validation).map(Int.init)
        let validationRows = split.validation.count
        let trainingRows = rows - validationRows
        guard trainingRows >= 2 else {
            throw SBIError.invalidArgument("gmm: \(trainingRows) training rows; at least 2 are needed")
        }
        var x = [Double](repeating: 0, count: trainingRows * d), validation = [Double](repeating: 0, count: validationRows * d)
        for (position, n) in order.enumerated() {
            if position < trainingRows {
                x.replaceSubrange(position * d ..< position * d + d, with: all[n * d ..< n * d + d])
            } else {
                let v = position - trainingRows
                validation.replaceSubrange(v * d ..< v * d + d, with: all[n * d ..< n * d + d])
            }
        }
        let k = min(options.components, trainingRows)

        // Default regularization: 1e-6 × the mean feature variance of the training rows.
        let regularization: Double
        if let r = options.regularization {
            regularization = r
        } else {
            var meanVariance = 0.0
            for i in 0..<d {
                var mean = 0.0, squares = 0.0
                for n in 0..<trainingRows { mean += x[n * d + i] }
                mean /= Double(trainingRows)
                for n in 0..<trainingRows { let t = x[n * d + i] - mean; squares += t * t }
                meanVariance += squares / Double(trainingRows)
            }
            meanVariance /= Double(d)
            regularization = 1e-6 * (meanVariance > 0 ? meanVariance : 1)
        }

        var current: Parameters
        var best: Parameters
        var state = FitState(trainingRows: trainingRows, validationRows: validationRows)
        if resume, let checkpoint, FileManager.default.fileExists(atPath: checkpoint.path) {
            let restored = try restore(from: checkpoint, configuration: configuration, k: k, regularization: regularization,
                                       trainingRows: trainingRows, validationRows: validationRows)
            (current, best, state) = restored
        } else {
            let labels = Self.kMeans(x, rows: trainingRows, d: d, k: k, seed: configuration.seed)
            var hard = [Double](repeating: 0, count: trainingRows * k)
            for n in 0..<trainingRows { hard[n * k + labels[n]] = 1 }
            current = try x.withUnsafeBufferPointer { xp in
                try Self.maximize(xp.baseAddress!, rows: trainingRows, d: d, dc: dc, k: k,
                                  responsibilities: hard, regularization: regularization, iteration: 0)
            }
            best = current
        }

        var responsibilities = [Double](repeating: 0, count: trainingRows * k)
        func expectation(_ p: Parameters) -> (joint: Double, conditional: Double) {
            let (joint, marginal) = x.withUnsafeBufferPointer { xp in
                responsibilities.withUnsafeMutableBufferPointer { rp in
                    Self.evaluate(p, xp.baseAddress!, rows: trainingRows, responsibilities: rp.baseAddress!)
                }
            }
            let total = joint.reduce(0, +)
            return (total / Double(trainingRows), (total - marginal.reduce(0, +)) / Double(trainingRows))
        }
        func validationLoss(_ p: Parameters) -> Double {
            let (joint, marginal) = validation.withUnsafeBufferPointer { Self.evaluate(p, $0.baseAddress!, rows: validationRows) }
            return -(joint.reduce(0, +) - marginal.reduce(0, +)) / Double(validationRows)
        }

        self.regularization = regularization
        self.trainingConfiguration = configuration
        self.state = state
        self.parameters = best
        var likelihood = expectation(current).joint
        while state.iteration < configuration.epochs && !state.converged && !state.stoppedEarly {
            let started = DispatchTime.now().uptimeNanoseconds
            let next = try x.withUnsafeBufferPointer { xp in
                try Self.maximize(xp.baseAddress!, rows: trainingRows, d: d, dc: dc, k: k, responsibilities: responsibilities,
                                  regularization: regularization, iteration: state.iteration + 1)
            }
            let (nextLikelihood, conditional) = expectation(next)
            guard nextLikelihood.isFinite else {
                throw SBIError.invalidArgument("gmm: the log-likelihood became \(nextLikelihood) at iteration \(state.iteration + 1); increase the regularization")
            }
            let trainingLoss = -conditional
            let heldOut = validationRows > 0 ? validationLoss(next) : trainingLoss
            if validationRows == 0 || heldOut < state.bestValidationLoss {
                state.bestValidationLoss = min(state.bestValidationLoss, heldOut)
                state.iterationsWithoutImprovement = 0
                best = next
            } else {
                state.iterationsWithoutImprovement += 1
                if state.iterationsWithoutImprovement >= configuration.patience { state.stoppedEarly = true }
            }
            state.converged = abs(nextLikelihood - likelihood) < options.tolerance
            current = next
            likelihood = nextLikelihood
            state.iteration += 1
            let record = Self.record(epoch: state.iteration, trainingLoss: trainingLoss, validationLoss: heldOut,
                                         seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
            state.history.append(record)
            self.state = state
            self.parameters = best
            if let checkpoint { try file(current: current).write(to: checkpoint) }
            progress?(record)
        }
        self.state = state
        self.parameters = best
        return state.history
    }

    /// An EpochRecord of an EM iteration (EM has no learning rate: 0).
    static func record(epoch: Int, trainingLoss: Double, validationLoss: Double, seconds: Double) -> EpochRecord {
        EpochRecord(epoch: epoch, trainingLoss: trainingLoss, validationLoss: validationLoss, learningRate: 0, seconds: seconds)
    }

    /// The checkpoint's current and best parameters and state; refuses a checkpoint of a
    /// different model, configuration (other than the number of iterations) or data size.
    func restore(from url: URL, configuration: TrainingConfiguration, k: Int, regularization: Double,
                 trainingRows: Int, validationRows: Int) throws -> (Parameters, Parameters, FitState) {
        let path = url.path
        let file = try SafetensorsFile.read(from: url)
        let loaded = try Self.load(file, path: path)
        guard loaded.features == features, loaded.contextFeatures == contextFeatures, loaded.components == k,
              loaded.options.tolerance == options.tolerance, loaded.regularization == regularization else {
            throw SBIError.invalidArgument("\(path): the checkpoint is of a different gmm (\(loaded.components) components over "
                                           + "\(loaded.features)+\(loaded.contextFeatures) features, regularization \(loaded.regularization ?? .nan)); resume with the same options and data")
        }
        guard var saved = loaded.trainingConfiguration else {
            throw SBIError.invalidArgument("\(path): metadata 'training.configuration' is missing (not a checkpoint)")
        }
        saved.epochs = configuration.epochs  // a resumed run may iterate longer
        guard saved == configuration else {
            throw SBIError.invalidArgument("\(path): the checkpoint was fitted with a different configuration; resume with the same options")
        }
        guard loaded.state.trainingRows == trainingRows, loaded.state.validationRows == validationRows else {
            throw SBIError.invalidArgument("\(path): the checkpoint was fitted on \(loaded.state.trainingRows)+\(loaded.state.validationRows) rows, "
                                           + "this data has \(trainingRows)+\(validationRows)")
        }
        let current = try Self.parameters(in: file, prefix: "em.", k: k, d: dimension, dc: contextFeatures, path: path)
        return (current, loaded.parameters!, loaded.state)
    }

    // MARK: evaluation API

    /// log q(y | context) per row (log q(y) unconditionally); context has as many rows as y, or one.
    public func logProb(_ y: [Float], context: [Float]?) throws -> [Float] {
        let p = try fitted()
        let rows = try rows(of: y)
        if rows == 0 && (context ?? []).isEmpty { return [] }
        _ = try checkContext(context, rows: rows)
        guard rows > 0 else { return [] }
        let x = joint(y, rows: rows, context: context)
        let (joint, marginal) = x.withUnsafeBufferPointer { Self.evaluate(p, $0.baseAddress!, rows: rows) }
        return (0..<rows).map { Float(contextFeatures > 0 ? joint[$0] - marginal[$0] : joint[$0]) }
    }

    /// The conditional mixture of one context row: log weights (normalized) and K×dy means.
    static func conditional(_ p: Parameters, context c: UnsafePointer<Double>?) -> (logWeights: [Double], means: [Double]) {
        let (k, d, dc) = (p.k, p.d, p.dc)
        let dy = d - dc
        var logWeights = p.logWeights
        var means = [Double](repeating: 0, count: k * dy)
        var z = [Double](repeating: 0, count: dc)
        for comp in 0..<k {
            let mu = comp * d, factor = comp * d * d
            var squares = 0.0
            for i in 0..<dc {
                var s = c![i] - p.means[mu + i]
                for j in 0..<i { s -= p.cholesky[factor + i * d + j] * z[j] }
                z[i] = s * p.inverseDiagonal[comp * d + i]
                squares += z[i] * z[i]
            }
            if dc > 0 { logWeights[comp] += -0.5 * squares - p.contextNormalizer[comp] }
            for i in 0..<dy {  // μ^y + B z, B the factor's lower-left block
                var m = p.means[mu + dc + i]
                for j in 0..<dc { m += p.cholesky[factor + (dc + i) * d + j] * z[j] }
                means[comp * dy + i] = m
            }
        }
        let total = logSumExp(logWeights)
        return (logWeights.map { $0 - total }, means)
    }

    /// q(y | context) (q(y) for an unconditional model, context nil) as an explicit mixture.
    public func mixture(context: [Float]? = nil) throws -> Mixture {
        let p = try fitted()
        let contextRows = try checkContext(context, rows: 1)
        let dy = features, dc = contextFeatures, d = dimension
        let c = contextRows > 0 ? context!.map(Double.init) : []
        let (logWeights, means) = c.withUnsafeBufferPointer { Self.conditional(p, context: $0.baseAddress) }
        var covariances: [[Double]] = []
        for comp in 0..<p.k {
            var covariance = [Double](repeating: 0, count: dy * dy)
            for i in 0..<dy {
                for j in 0..<dy {
                    var s = 0.0
                    for q in 0...min(i, j) {
                        s += p.cholesky[comp * d * d + (dc + i) * d + dc + q] * p.cholesky[comp * d * d + (dc + j) * d + dc + q]
                    }
                    covariance[i * dy + j] = s
                }
            }
            covariances.append(covariance)
        }
        return Mixture(weights: logWeights.map { Foundation.exp($0) },
                       means: (0..<p.k).map { Array(means[$0 * dy ..< ($0 + 1) * dy]) }, covariances: covariances)
    }

    /// `count` samples per context row (groups in context order), or `count` unconditional samples.
    /// Sample j (counting across groups) uses Philox blocks j·B ..< (j+1)·B of `seed`, B = 1 +
    /// ⌈features/2⌉: the first picks the component, each further one gives a Box–Muller pair.
    public func sample(_ count: Int, context: [Float]?, seed: UInt64) throws -> [Float] {
        let p = try fitted()
        guard count >= 0 else { throw SBIError.invalidArgument("gmm: sample count must be non-negative (got \(count))") }
        let contextRows = try checkContext(context, rows: nil)
        let groups = max(1, contextRows)
        let dy = features, dc = contextFeatures, d = dimension, k = p.k
        // The conditional mixture of each group: cumulative weights and means.
        var cumulative = [Double](repeating: 0, count: groups * k), means = [Double](repeating: 0, count: groups * k * dy)
        let c = context.map { $0.map(Double.init) } ?? []
        c.withUnsafeBufferPointer { cp in
            for g in 0..<groups {
                let (logWeights, m) = Self.conditional(p, context: dc > 0 ? cp.baseAddress! + g * dc : nil)
                var running = 0.0
                for comp in 0..<k {
                    running += Foundation.exp(logWeights[comp])
                    cumulative[g * k + comp] = running
                }
                means.replaceSubrange(g * k * dy ..< (g + 1) * k * dy, with: m)
            }
        }
        let total = groups * count
        guard total > 0 else { return [] }
        var out = [Float](repeating: 0, count: total * dy)
        let blocksPerSample = UInt64(1 + (dy + 1) / 2)
        let chunk = 1024
        out.withUnsafeMutableBufferPointer { outBuffer in
            let outBase = outBuffer.baseAddress!
            DispatchQueue.concurrentPerform(iterations: (total + chunk - 1) / chunk) { part in
                var noise = [Double](repeating: 0, count: dy + 1)
                for j in (part * chunk)..<min(total, (part + 1) * chunk) {
                    let g = j / max(count, 1)
                    let first = UInt64(j) &* blocksPerSample
                    let pick = Philox.block(counter: first, seed: seed)
                    let u = Self.uniform(pick.0, pick.1) * cumulative[g * k + k - 1]
                    var comp = 0
                    while comp < k - 1 && cumulative[g * k + comp] < u { comp += 1 }
                    for pair in 0..<((dy + 1) / 2) {
                        let b = Philox.block(counter: first + 1 + UInt64(pair), seed: seed)
                        let radius = (-2 * Foundation.log(Self.uniform(b.0, b.1))).squareRoot()
                        let angle = 2 * Double.pi * Self.uniform(b.2, b.3)
                        noise[2 * pair] = radius * Foundation.cos(angle)
                        noise[2 * pair + 1] = radius * Foundation.sin(angle)
                    }
                    let factor = comp * d * d
                    for i in 0..<dy {  // mean + C ε, C the factor's lower-right block
                        var v = means[(g * k + comp) * dy + i]
                        for q in 0...i { v += p.cholesky[factor + (dc + i) * d + dc + q] * noise[q] }
                        outBase[j * dy + i] = Float(v)
                    }
                }
            }
        }
        return out
    }

    // MARK: persistence

    public static let formatValue = "sbi-gpu-gmm-1"

    /// The model configuration stored in metadata 'gmm.configuration'.
    struct StoredConfiguration: Codable, Equatable {
        var features: Int
        var contextFeatures: Int
        var components: Int
        var regularization: Double
        var tolerance: Double
        /// The order of the joint vectors that means and factors describe.
        var layout = "context,y"
    }

    /// The model as a safetensors file: F64 tensors 'weights' [K], 'means' [K, D] and 'cholesky'
    /// [K, D, D] (lower factors of the covariances, joint order [context, y]); with `current`, the
    /// EM iterate to resume from as 'em.weights', 'em.means', 'em.cholesky'.
    func file(current: Parameters? = nil) throws -> SafetensorsFile {
        let p = try fitted()
        var file = SafetensorsFile()
        func put(_ p: Parameters, _ prefix: String) throws {
            file[prefix + "weights"] = try SafetensorsTensor(doubles: p.weights, shape: [p.k])
            file[prefix + "means"] = try SafetensorsTensor(doubles: p.means, shape: [p.k, p.d])
            file[prefix + "cholesky"] = try SafetensorsTensor(doubles: p.cholesky, shape: [p.k, p.d, p.d])
        }
        try put(p, "")
        if let current { try put(current, "em.") }
        func json<T: Encodable>(_ value: T) throws -> String { try Checkpoint.json(value) }
        file.metadata["format"] = Self.formatValue
        file.metadata["estimator"] = name
        file.metadata["gmm.configuration"] = try json(StoredConfiguration(
            features: features, contextFeatures: contextFeatures, components: p.k,
            regularization: regularization ?? 0, tolerance: options.tolerance))
        if let trainingConfiguration {
            file.metadata["training.configuration"] = try json(trainingConfiguration)
            file.metadata["training.state"] = try json(state)
        }
        return file
    }

    /// Writes weights, means, Cholesky factors and the configuration, atomically.
    public func save(to url: URL) throws {
        try file().write(to: url)
    }

    /// Reads a model written by `save(to:)` (or a fitting checkpoint). Malformed files are refused
    /// with one line naming the file and the field.
    public static func load(from url: URL) throws -> GaussianMixture {
        try load(try SafetensorsFile.read(from: url), path: url.path)
    }

    /// A model from a parsed file; `path` names it in errors.
    public static func load(_ file: SafetensorsFile, path: String) throws -> GaussianMixture {
        func fail(_ message: String) -> SBIError { SBIError.invalidArgument("\(path): \(message)") }
        func decode<T: Decodable>(_ type: T.Type, _ key: String, required: Bool) throws -> T? {
            guard let text = file.metadata[key] else {
                if required { throw fail("metadata '\(key)' is missing (not a gmm file?)") }
                return nil
            }
            do { return try Checkpoint.decoder.decode(type, from: Data(text.utf8)) } catch {
                throw fail("metadata '\(key)' is not valid: \(describe(error))")
            }
        }
        guard let estimator = file.metadata["estimator"] else { throw fail("metadata 'estimator' is missing (not an sbi-gpu model?)") }
        guard estimator == "gmm" else { throw fail("metadata 'estimator' is '\(estimator)', not 'gmm'") }
        guard file.metadata["format"] == formatValue else {
            throw fail("metadata 'format' is \(file.metadata["format"].map { "'\($0)'" } ?? "missing"); expected '\(formatValue)'")
        }
        let stored = try decode(StoredConfiguration.self, "gmm.configuration", required: true)!
        guard stored.features > 0, stored.contextFeatures >= 0, stored.components > 0,
              stored.regularization.isFinite, stored.regularization >= 0, stored.tolerance.isFinite, stored.tolerance >= 0 else {
            throw fail("metadata 'gmm.configuration' has invalid values (features \(stored.features), context features "
                       + "\(stored.contextFeatures), components \(stored.components), regularization \(stored.regularization), tolerance \(stored.tolerance))")
        }
        guard stored.layout == "context,y" else { throw fail("metadata 'gmm.configuration' has layout '\(stored.layout)'; expected 'context,y'") }
        let model = try GaussianMixture(features: stored.features, contextFeatures: stored.contextFeatures,
                                        options: Options(components: stored.components, regularization: nil, tolerance: stored.tolerance))
        model.regularization = stored.regularization
        model.parameters = try parameters(in: file, prefix: "", k: stored.components, d: model.dimension,
                                          dc: stored.contextFeatures, path: path)
        model.trainingConfiguration = try decode(TrainingConfiguration.self, "training.configuration", required: false)
        if let state = try decode(FitState.self, "training.state", required: false) { model.state = state }
        return model
    }

    static func parameters(in file: SafetensorsFile, prefix: String, k: Int, d: Int, dc: Int, path: String) throws -> Parameters {
        func fail(_ message: String) -> SBIError { SBIError.invalidArgument("\(path): \(message)") }
        func tensor(_ name: String, _ shape: [Int], _ meaning: String) throws -> [Double] {
            guard let tensor = file[prefix + name] else { throw fail("tensor '\(prefix + name)' is missing") }
            guard tensor.shape == shape else {
                throw fail("tensor '\(prefix + name)' has shape \(tensor.shape); expected \(shape) (\(meaning))")
            }
            guard tensor.dtype == .f64 || tensor.dtype == .f32 else {
                throw fail("tensor '\(prefix + name)' has dtype \(tensor.dtype.rawValue); expected F64 or F32")
            }
            return try tensor.doubles
        }
        let weights = try tensor("weights", [k], "components")
        let means = try tensor("means", [k, d], "components × joint features")
        let factors = try tensor("cholesky", [k, d, d], "components × joint features × joint features")
        return try Parameters.validated(k: k, d: d, dc: dc, weights: weights, means: means, cholesky: factors) { message in
            fail(prefix.isEmpty ? message : message.replacingOccurrences(of: "'", with: "'\(prefix)", options: [], range: nil))
        }
    }

    /// A decoding error in one line.
    static func describe(_ error: Error) -> String {
        let text: String
        switch error {
        case let DecodingError.keyNotFound(key, _): text = "field '\(key.stringValue)' is missing"
        case let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context),
             let DecodingError.dataCorrupted(context):
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            text = (field.isEmpty ? "" : "field '\(field)': ") + context.debugDescription
        default: text = "\(error)"
        }
        return text.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}
