import Foundation
import SBIBackend
import SBIGraph

/// A mixture density network (Bishop 1994), the "mdn" estimator: a mixture of K full-covariance
/// Gaussians whose weights, means and covariances are functions of the context,
///
///     q(y | c) = Σ_k π_k(c) N(y; μ_k(c), (U_k(c)ᵀ U_k(c))⁻¹),
///
/// with U_k the upper-triangular Cholesky factor of component k's PRECISION matrix, as in
/// pyknos' `MultivariateGaussianMDN` that `sbi` uses. Its diagonal is exp(raw) (positive), its
/// strictly-upper entries are raw, so every raw output gives a valid covariance and
///
///     log N(y; μ_k, (U_kᵀU_k)⁻¹) = −(D/2)·log 2π + Σ_i log U_k,ii − ½‖U_k (y − μ_k)‖².
///
/// Conditional (contextFeatures > 0), an MLP maps the context to the raw outputs
/// [K logits | K·D means | K·D diagonal raws | K·D(D−1)/2 strictly-upper raws] (component-major;
/// strictly-upper entries of each component in row-major order). Unconditional, those four
/// groups are plain parameters shared by every row (`hidden` is then unused).
///
/// log q is built from existing differentiable graph ops, so autodiff gives its gradients:
/// - log π = logits − logSumExpRows(logits);
/// - the differences y − μ_k for all k at once: y·R − μ with R = [I … I] (D×KD);
/// - U_k(y − μ_k) for all k: the triangular entries, laid out [diagonals | strictly-upper] like
///   the raw outputs, times the matching differences (diff·G, G a 0/1 gather matrix KD×KT′ with
///   T′ = D(D+1)/2), summed into their rows by a 0/1 matrix (KT′×KD);
/// - squared norms and log-diagonal sums per component by a 0/1 matrix KD×K;
/// - the K component log-densities (rows×K) reduced by logSumExpRows.
/// The constant matrices are small (K·D × K·D(D+1)/2), so this costs a few thin GEMMs per batch.
///
/// Sampling picks a component per sample by its weight and draws y = μ_k + U_k⁻¹z with z ~ N(0, I)
/// by back substitution, on the host in double precision with Philox-seeded randomness.
public struct MixtureDensityNetwork: HostSampledDensity {
    /// The MDN's architecture; stored in saved files (metadata "mdn.configuration").
    public struct Configuration: Codable, Equatable, Sendable {
        public var features: Int
        public var contextFeatures: Int
        /// Mixture components K.
        public var components = 10
        /// Hidden widths of the context network (conditional MDNs only).
        public var hidden = [50, 50]
        /// "tanh", "relu", "leakyRelu", "sigmoid" or "softplus".
        public var activation = "tanh"
        /// A CNN that embeds image context before the network (nil: the network sees the context).
        public var convolutionalEmbedding: ConvolutionalEmbedding? = nil
        /// Seeds the data-dependent choice of initial means (see `initialize`).
        public var seed: UInt64 = 0

        public init(features: Int, contextFeatures: Int = 0) {
            self.features = features
            self.contextFeatures = contextFeatures
        }

        public var unaryActivation: UnaryOp { .activation(named: activation) ?? .tanh }
    }

    /// One context's mixture in standardized units, in double precision.
    public struct Mixture: Equatable, Sendable {
        /// K log-weights (normalized: their exponentials sum to 1).
        public let logWeights: [Double]
        /// K means, each D wide.
        public let means: [[Double]]
        /// K upper-triangular precision factors U_k, each D×D row-major (zeros below the diagonal).
        public let precisionFactors: [[Double]]
    }

    public let configuration: Configuration
    public var features: Int { configuration.features }
    public var contextFeatures: Int { configuration.contextFeatures }
    public var components: Int { configuration.components }
    /// Strictly-upper entries of one factor: D(D−1)/2.
    var offDiagonal: Int { features * (features - 1) / 2 }
    /// Raw outputs per context row: K + K·D + K·D + K·D(D−1)/2.
    public var outputWidth: Int { components * (1 + 2 * features + offDiagonal) }

    public init(_ configuration: Configuration) throws {
        guard configuration.features > 0, configuration.contextFeatures >= 0, configuration.components > 0,
              configuration.hidden.allSatisfy({ $0 > 0 }) else {
            throw SBIError.invalidArgument("an MDN needs features > 0, components > 0 and positive hidden widths")
        }
        if let cnn = configuration.convolutionalEmbedding {
            try cnn.validate()
            guard cnn.inputFeatures == configuration.contextFeatures else {
                throw SBIError.invalidArgument("the CNN embedding takes \(cnn.inputFeatures) values per row, but the MDN's context has \(configuration.contextFeatures)")
            }
        }
        self.configuration = configuration
    }

    var network: MLP {
        MLP(name: "mdn.net", widths: [configuration.convolutionalEmbedding?.outputFeatures ?? contextFeatures]
                + configuration.hidden + [outputWidth],
            activation: configuration.unaryActivation)
    }

    /// The network's raw outputs for a context, through the embedding when there is one.
    func rawOutputs(_ context: Tensor, in graph: Graph) throws -> Tensor {
        try network(try configuration.convolutionalEmbedding.map { try $0.embed(context, in: graph) } ?? context, in: graph)
    }

    /// The raw outputs, rows×(group width) for a context of `rows` rows, or 1×(group width) shared
    /// parameters when unconditional.
    func heads(context: Tensor?, in graph: Graph) throws
        -> (logits: Tensor, means: Tensor, diagonal: Tensor, offDiagonal: Tensor?) {
        let k = components, d = features
        if contextFeatures > 0 {
            guard let context else {
                throw SBIError.invalidArgument("this MDN is conditional: a context of \(contextFeatures) features is required")
            }
            let out = try rawOutputs(context, in: graph)
            return (try graph.slice(out, start: 0, width: k),
                    try graph.slice(out, start: k, width: k * d),
                    try graph.slice(out, start: k + k * d, width: k * d),
                    offDiagonal > 0 ? try graph.slice(out, start: k + 2 * k * d, width: k * offDiagonal) : nil)
        }
        // Means start at random points (overwritten by data points in `initialize`) so that the
        // components differ; weights start uniform and every factor at the identity.
        return (graph.parameter("mdn.logits", rows: 1, cols: k, initializer: .zeros),
                graph.parameter("mdn.means", rows: 1, cols: k * d, initializer: .normal(std: 1)),
                graph.parameter("mdn.diagonal", rows: 1, cols: k * d, initializer: .zeros),
                offDiagonal > 0 ? graph.parameter("mdn.offdiagonal", rows: 1, cols: k * offDiagonal, initializer: .zeros) : nil)
    }

    /// The strictly-upper pairs (i, j), i < j, in row-major order: the layout of each
    /// component's strictly-upper raws.
    var upperPairs: [(Int, Int)] {
        var pairs: [(Int, Int)] = []
        for i in 0..<features { for j in (i + 1)..<max(i + 1, features) { pairs.append((i, j)) } }
        return pairs
    }

    /// For each column of the triangular layout [K·D diagonals | K·D(D−1)/2 strictly-upper]:
    /// (component, row i, column j) of the factor entry it holds.
    var triangularLayout: [(k: Int, i: Int, j: Int)] {
        var layout: [(k: Int, i: Int, j: Int)] = []
        for k in 0..<components { for i in 0..<features { layout.append((k, i, i)) } }
        for k in 0..<components { for (i, j) in upperPairs { layout.append((k, i, j)) } }
        return layout
    }

    public func logProb(_ y: Tensor, context: Tensor?, in graph: Graph) throws -> Tensor {
        guard y.cols == features else { throw SBIError.sizeMismatch("MDN takes \(features) features, got \(y)") }
        let k = components, d = features, kd = k * d
        let (logits, means, diagonal, upper) = try heads(context: context, in: graph)
        let layout = triangularLayout
        let width = layout.count

        // log π_k = logits − logsumexp(logits).
        let logWeights = try graph.subtract(logits, try graph.logSumExpRows(logits))
        // Σ_i log U_k,ii = Σ_i raw diagonal: diagonal·perComponent (KD×K).
        var perComponent = [Float](repeating: 0, count: kd * k)
        for c in 0..<k { for i in 0..<d { perComponent[(c * d + i) * k + c] = 1 } }
        let perComponentSum = graph.constant(perComponent, rows: kd, cols: k)
        let logDiagonal = try graph.matmul(diagonal, perComponentSum)

        // y − μ_k for every k: y·[I … I] − μ, rows×KD.
        var replicate = [Float](repeating: 0, count: d * kd)
        for c in 0..<k { for i in 0..<d { replicate[i * kd + c * d + i] = 1 } }
        let difference = try graph.subtract(try graph.matmul(y, graph.constant(replicate, rows: d, cols: kd)), means)

        // U_k (y − μ_k): entry (k, i, j) of the triangle times difference (k, j), summed over j.
        var gather = [Float](repeating: 0, count: kd * width)
        var scatter = [Float](repeating: 0, count: width * kd)
        for (column, entry) in layout.enumerated() {
            gather[(entry.k * d + entry.j) * width + column] = 1
            scatter[column * kd + entry.k * d + entry.i] = 1
        }
        let entries = try upper.map { try graph.concat([try graph.exp(diagonal), $0]) } ?? (try graph.exp(diagonal))
        let gathered = try graph.matmul(difference, graph.constant(gather, rows: kd, cols: width))
        let whitened = try graph.matmul(try graph.multiply(gathered, entries), graph.constant(scatter, rows: width, cols: kd))
        let squaredNorms = try graph.matmul(try graph.square(whitened), perComponentSum)

        // log π_k + log N(y; μ_k, (U_kᵀU_k)⁻¹), rows×K, then log Σ_k.
        let halfLog2Pi = 0.5 * Foundation.log(2 * Double.pi)
        let gaussian = try graph.affine(squaredNorms, scale: -0.5, shift: Float(-Double(d) * halfLog2Pi))
        let joint = try graph.add(gaussian, try graph.add(logWeights, logDiagonal))
        return try graph.logSumExpRows(joint)
    }

    /// Data-dependent initialization (standardized y): the K means start at K distinct training
    /// points drawn with Philox (seed `configuration.seed`); for a conditional MDN, that is the
    /// output layer's bias for the means. Components then cover the data from the first step.
    public func initialize(store: ParameterStore, data: InitializationData) throws {
        let rows = data.rows
        guard rows > 0 else { return }
        // A partial Fisher–Yates shuffle picks min(K, rows) distinct rows; the rest repeat.
        var order = Array(0..<rows)
        for i in 0..<min(components, rows - 1) {
            let u = Double(Philox.unit(Philox.word(at: UInt64(i), seed: configuration.seed &+ 0x6D64_6E)))
            order.swapAt(i, i + min(rows - 1 - i, Int(u * Double(rows - i))))
        }
        var means: [Float] = []
        for c in 0..<components {
            let row = order[c % min(components, rows)]
            means += data.y(row..<(row + 1))
        }
        if contextFeatures == 0 {
            try store.write("mdn.means", means)
        } else {
            let name = network.biasName(network.layerCount - 1)
            var bias = try store.read(name)
            bias.replaceSubrange(components..<(components + components * features), with: means)
            try store.write(name, bias)
        }
    }

    // MARK: host side

    /// The mixtures for `rows` standardized context rows (ignored and nil when unconditional:
    /// one mixture), downloaded from the trained parameters and converted to double.
    public func mixtures(context: [Float]?, rows: Int, store: ParameterStore) throws -> [Mixture] {
        let k = components, d = features
        var raw: [Float]
        var count = 1
        if contextFeatures > 0 {
            guard let context, rows > 0, context.count == rows * contextFeatures else {
                throw SBIError.sizeMismatch("MDN context: expected \(rows) rows of \(contextFeatures) features")
            }
            let graph = Graph()
            let c = graph.input("context", rows: rows, cols: contextFeatures)
            let out = try rawOutputs(c, in: graph)
            let plan = try Plan(graph: graph, backend: store.backend, outputs: [out], parameters: store)
            try plan.feed(c, context)
            try plan.run()
            raw = try plan.read(out)
            count = rows
        } else {
            raw = try store.read("mdn.logits") + store.read("mdn.means") + store.read("mdn.diagonal")
            if offDiagonal > 0 { raw += try store.read("mdn.offdiagonal") }
        }
        let pairs = upperPairs
        return (0..<count).map { r in
            let o = raw[(r * outputWidth)..<((r + 1) * outputWidth)].map(Double.init)
            let logits = Array(o[0..<k])
            let top = logits.max()!
            let normalizer = top + Foundation.log(logits.reduce(0) { $0 + Foundation.exp($1 - top) })
            var factors: [[Double]] = []
            for c in 0..<k {
                var u = [Double](repeating: 0, count: d * d)
                for i in 0..<d { u[i * d + i] = Foundation.exp(o[k + k * d + c * d + i]) }
                for (index, (i, j)) in pairs.enumerated() { u[i * d + j] = o[k + 2 * k * d + c * offDiagonal + index] }
                factors.append(u)
            }
            return Mixture(logWeights: logits.map { $0 - normalizer },
                           means: (0..<k).map { c in Array(o[(k + c * d)..<(k + (c + 1) * d)]) },
                           precisionFactors: factors)
        }
    }

    /// Draws `count` standardized samples. Sample s uses Philox words s·W … s·W + W − 1 of `seed`,
    /// W = 1 + 2⌈D/2⌉: the first picks the component (inverse CDF of the weights), the others
    /// give D standard normals by Box–Muller; then y = μ_k + U_k⁻¹z by back substitution.
    public func sampleOnHost(_ count: Int, context: [Float]?, store: ParameterStore, seed: UInt64) throws -> [Float] {
        guard count >= 0 else { throw SBIError.invalidArgument("sample count must be non-negative") }
        guard count > 0 else { return [] }
        let mixture = try mixtures(context: context, rows: 1, store: store)[0]
        let d = features
        let weights = mixture.logWeights.map { Foundation.exp($0) }
        let wordsPerSample = UInt64(1 + 2 * ((d + 1) / 2))
        func unit(_ position: UInt64) -> Double { Double(Philox.unit(Philox.word(at: position, seed: seed))) }
        var out = [Float](repeating: 0, count: count * d)
        var z = [Double](repeating: 0, count: d), x = [Double](repeating: 0, count: d)
        for s in 0..<count {
            let base = UInt64(s) &* wordsPerSample
            // Component: the first k whose cumulative weight exceeds u (the last if rounding leaves none).
            let u = unit(base)
            var c = 0, cumulative = weights[0]
            while c < components - 1 && u >= cumulative {
                c += 1
                cumulative += weights[c]
            }
            for pair in 0..<((d + 1) / 2) {
                let r = (-2 * Foundation.log(unit(base + 1 + 2 * UInt64(pair)))).squareRoot()
                let theta = 2 * Double.pi * unit(base + 2 + 2 * UInt64(pair))
                z[2 * pair] = r * Foundation.cos(theta)
                if 2 * pair + 1 < d { z[2 * pair + 1] = r * Foundation.sin(theta) }
            }
            // Solve U x = z (U upper triangular) from the last row up.
            let factor = mixture.precisionFactors[c], mean = mixture.means[c]
            for i in stride(from: d - 1, through: 0, by: -1) {
                var v = z[i]
                for j in (i + 1)..<max(i + 1, d) { v -= factor[i * d + j] * x[j] }
                x[i] = v / factor[i * d + i]
            }
            for i in 0..<d { out[s * d + i] = Float(mean[i] + x[i]) }
        }
        return out
    }
}

public extension MixtureDensityNetwork.Mixture {
    /// Component k's covariance (U_kᵀU_k)⁻¹ = U_k⁻¹U_k⁻ᵀ, D×D row-major.
    func covariance(_ k: Int) -> [Double] {
        let u = precisionFactors[k], d = means[k].count
        // V = U⁻¹ (upper triangular) by back substitution, column by column.
        var v = [Double](repeating: 0, count: d * d)
        for col in 0..<d {
            for i in stride(from: col, through: 0, by: -1) {
                var s = i == col ? 1.0 : 0.0
                for j in (i + 1)..<max(i + 1, col + 1) { s -= u[i * d + j] * v[j * d + col] }
                v[i * d + col] = s / u[i * d + i]
            }
        }
        var sigma = [Double](repeating: 0, count: d * d)
        for i in 0..<d { for j in 0..<d { for m in 0..<d { sigma[i * d + j] += v[i * d + m] * v[j * d + m] } } }
        return sigma
    }
}
