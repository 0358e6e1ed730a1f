import Foundation
import SBIData
import SBIBackend
import SBIGraph

/// How dequantized pixels in [0, 1) become the flow's input, with the log-det counted so that
/// log-probs (and bits/dim) are those of the discrete data.
public enum ImagePreprocessing: String, Codable, Sendable, CaseIterable {
    /// x − ½, in [−½, ½) (Glow).
    case centered
    /// logit(α + (1 − 2α)·x) (RealNVP), α = `GlowConfiguration.logitAlpha`.
    case logit
}

/// Everything that defines a Glow flow on images (Kingma & Dhariwal 2018): L scales, each a 2×2
/// squeeze, K steps of [ActNorm, invertible 1×1 convolution (LU), affine coupling whose net is
/// conv 3×3 → ReLU → conv 1×1 → ReLU → zero-initialized conv 3×3 with scale sigmoid(raw + 2)],
/// then half the channels factored out to a Gaussian whose mean and scale a zero-initialized
/// 3×3 convolution of the other half gives (the learned per-level prior). A context vector (θ,
/// a class label) enters every coupling net and every prior as extra constant channels, and the
/// top prior through a linear map: q(x | context) in pixel space. Stored in checkpoints.
public struct GlowConfiguration: Codable, Equatable, Sendable {
    public var height: Int
    public var width: Int
    public var channels: Int
    public var contextFeatures = 0
    /// Quantization levels of the data: pixels are integers 0…levels − 1 (256 for uint8).
    public var levels = 256
    /// L; nil: `defaultScales`.
    public var scales: Int? = nil
    /// K, steps per scale.
    public var steps = 8
    /// Channels of the coupling nets' hidden layers.
    public var hidden = 64
    public var preprocessing: ImagePreprocessing = .centered
    public var logitAlpha: Float = 0.05
    public var seed: UInt64 = 0

    public init(height: Int, width: Int, channels: Int, contextFeatures: Int = 0, levels: Int = 256) {
        self.height = height
        self.width = width
        self.channels = channels
        self.contextFeatures = contextFeatures
        self.levels = levels
    }

    public var features: Int { height * width * channels }

    /// As many scales as halve the image to no less than 2×2, at most 3 (28×28 → 2, 32 and 64 → 3).
    public static func defaultScales(height: Int, width: Int) -> Int {
        var scales = 0
        var (h, w) = (height, width)
        while scales < 3, h % 2 == 0, w % 2 == 0, h / 2 >= 2, w / 2 >= 2 {
            scales += 1
            (h, w) = (h / 2, w / 2)
        }
        return scales
    }
    public var resolvedScales: Int { scales ?? Self.defaultScales(height: height, width: width) }

    func check() throws {
        guard height > 0, width > 0, channels > 0, contextFeatures >= 0 else {
            throw SBIError.invalidArgument("glow needs images of positive size, got \(height)×\(width)×\(channels)")
        }
        let L = resolvedScales
        guard L >= 1, height % (1 << L) == 0, width % (1 << L) == 0 else {
            throw SBIError.invalidArgument("glow with \(L) scales needs height and width divisible by \(1 << max(L, 1)); the images are \(height)×\(width)")
        }
        guard steps > 0, hidden > 0 else { throw SBIError.invalidArgument("glow needs steps > 0 and hidden > 0") }
        guard levels >= 2 else { throw SBIError.invalidArgument("glow needs at least 2 pixel levels, got \(levels)") }
        guard logitAlpha > 0, logitAlpha < 0.5 else { throw SBIError.invalidArgument("the logit α must be in (0, ½), got \(logitAlpha)") }
    }
}

/// The Glow density (see `GlowConfiguration`) as graph computations on rows of H·W·C pixel values
/// (row-major H×W×C images, channels last), dequantized with uniform noise while training.
public struct GlowDensity: NeuralDensity {
    public let configuration: GlowConfiguration
    public var features: Int { configuration.features }
    public var contextFeatures: Int { configuration.contextFeatures }
    public var noiseFeatures: Int { configuration.features }
    public var standardizesData: Bool { false }

    public init(_ configuration: GlowConfiguration) throws {
        try configuration.check()
        self.configuration = configuration
    }

    /// (height, width, channels) of each scale after its squeeze.
    public var scaleShapes: [(h: Int, w: Int, c: Int)] {
        var (h, w, c) = (configuration.height, configuration.width, configuration.channels)
        var shapes: [(h: Int, w: Int, c: Int)] = []
        for _ in 0..<configuration.resolvedScales {
            (h, w, c) = (h / 2, w / 2, 4 * c)
            shapes.append((h, w, c))
            c /= 2
        }
        return shapes
    }
    var lastScale: Int { configuration.resolvedScales - 1 }

    public func validate(_ y: FloatRows) throws {
        let top = Float(configuration.levels - 1)
        for start in stride(from: 0, to: y.rows, by: 1024) {
            let values = y.rows(start..<min(y.rows, start + 1024))
            if let bad = values.firstIndex(where: { !($0 >= 0 && $0 <= top) }) {
                throw SBIError.invalidArgument("image \(start + bad / y.cols) has pixel value \(values[bad]) outside 0…\(configuration.levels - 1) (the data's --levels)")
            }
        }
    }

    // MARK: layers

    func perImageSum(_ t: Tensor, images: Int, in g: Graph) throws -> Tensor {
        try g.sumRows(try g.reshape(t, [images, t.count / images]))
    }
    /// A per-image log-det of `pixels`·Σ v for a 1×C parameter row v.
    func pixelLogDet(_ v: Tensor, pixels: Int, images: Int, sign: Float, in g: Graph) throws -> Tensor {
        try g.broadcast(try g.affine(try g.sum(v), scale: sign * Float(pixels), shift: 0), rows: images, cols: 1, mode: .row)
    }

    /// 2×2 space-to-depth: [N, h, w, c] → [N, h/2, w/2, 4c], channel (2·di + dj)·c + k of output
    /// pixel (i, j) being channel k of input pixel (2i + di, 2j + dj). A fixed gather per image.
    static func squeezeIndex(h: Int, w: Int, c: Int) -> [Int32] {
        var index = [Int32](repeating: 0, count: h * w * c)
        for i in 0..<(h / 2) {
            for j in 0..<(w / 2) {
                for di in 0..<2 {
                    for dj in 0..<2 {
                        for k in 0..<c {
                            index[(i * (w / 2) + j) * 4 * c + (di * 2 + dj) * c + k] = Int32(((2 * i + di) * w + 2 * j + dj) * c + k)
                        }
                    }
                }
            }
        }
        return index
    }
    func squeeze(_ x: Tensor, in g: Graph) throws -> Tensor {
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let flat = try g.gatherColumns(try g.reshape(x, [n, h * w * c]), Self.squeezeIndex(h: h, w: w, c: c))
        return try g.reshape(flat, [n, h / 2, w / 2, 4 * c])
    }
    func unsqueeze(_ x: Tensor, in g: Graph) throws -> Tensor {
        let (n, h, w, c) = (x.shape[0], 2 * x.shape[1], 2 * x.shape[2], x.shape[3] / 4)
        let forward = Self.squeezeIndex(h: h, w: w, c: c)
        var inverse = [Int32](repeating: 0, count: forward.count)
        for (o, i) in forward.enumerated() { inverse[Int(i)] = Int32(o) }
        return try g.reshape(try g.gatherColumns(try g.reshape(x, [n, h * w * c]), inverse), [n, h, w, c])
    }

    /// The context as constant channels of every pixel of an [N, h, w, ·] image.
    func contextChannels(_ context: Tensor, like x: Tensor, in g: Graph) throws -> Tensor {
        try contextChannels(context, images: x.shape[0], height: x.shape[1], width: x.shape[2], in: g)
    }
    func contextChannels(_ context: Tensor, images n: Int, height h: Int, width w: Int, in g: Graph) throws -> Tensor {
        let rows = try g.gatherRows(context, (0..<(n * h * w)).map { Int32($0 / (h * w)) })
        return try g.reshape(rows, [n, h, w, context.cols])
    }
    func withContext(_ x: Tensor, _ context: Tensor?, in g: Graph) throws -> Tensor {
        guard let context else { return x }
        return try g.concat([x, try contextChannels(context, like: x, in: g)])
    }

    /// Per-channel ActNorm: y = (x + b)⊙exp(s), log-det h·w·Σs.
    func actNorm(_ name: String, _ x: Tensor, inverse: Bool, in g: Graph) throws -> (Tensor, Tensor) {
        let c = x.cols, pixels = x.shape[1] * x.shape[2]
        let bias = g.parameter(name + ".bias", rows: 1, cols: c, initializer: .zeros)
        let logScale = g.parameter(name + ".logScale", rows: 1, cols: c, initializer: .zeros)
        let y = inverse
            ? try g.subtract(try g.multiply(x, try g.exp(try g.affine(logScale, scale: -1, shift: 0))), bias)
            : try g.multiply(try g.add(x, bias), try g.exp(logScale))
        return (y, try pixelLogDet(logScale, pixels: pixels, images: x.shape[0], sign: inverse ? -1 : 1, in: g))
    }

    /// Invertible 1×1 convolution, W = P·L·(U + diag(exp s)) with P the channel reversal (fixed;
    /// with the couplings' fixed halves it alternates which half is transformed, as RealNVP's
    /// reversals do), L unit lower and U strictly upper triangular, all learned from W = P:
    /// y = W·x at every pixel, log-det h·w·Σs. The inverse is U′⁻¹·L⁻¹·Pᵀ by two triangular inverses.
    func invertibleConvolution(_ name: String, _ x: Tensor, inverse: Bool, in g: Graph) throws -> (Tensor, Tensor) {
        let c = x.cols, pixels = x.shape[1] * x.shape[2]
        let lower = g.parameter(name + ".lower", rows: c, cols: c, initializer: .zeros)
        let upper = g.parameter(name + ".upper", rows: c, cols: c, initializer: .zeros)
        let logScale = g.parameter(name + ".logScale", rows: 1, cols: c, initializer: .zeros)
        let identity = g.constant((0..<(c * c)).map { Float($0 / c == $0 % c ? 1 : 0) }, rows: c, cols: c)
        let strictLower = g.constant((0..<(c * c)).map { Float($0 / c > $0 % c ? 1 : 0) }, rows: c, cols: c)
        let strictUpper = g.constant((0..<(c * c)).map { Float($0 / c < $0 % c ? 1 : 0) }, rows: c, cols: c)
        let l = try g.add(try g.multiply(lower, strictLower), identity)
        let diagonal = try g.multiply(try g.broadcast(try g.exp(logScale), rows: c, cols: c, mode: .row), identity)
        let u = try g.add(try g.multiply(upper, strictUpper), diagonal)
        let permutation = Permutation.reverse(c).order
        let logDet = try pixelLogDet(logScale, pixels: pixels, images: x.shape[0], sign: inverse ? -1 : 1, in: g)
        if inverse {
            let m = try g.matmul(try g.triangularInverse(u, lower: false), try g.triangularInverse(l, lower: true))
            return (try g.matmul(x, try g.gatherColumns(m, permutation), transposeB: true), logDet)
        }
        let w = try g.gatherRows(try g.matmul(l, u), permutation)
        return (try g.matmul(x, w, transposeB: true), logDet)
    }

    /// Affine coupling: the first ⌊c/2⌋ channels xa pass; the others become (xb + t)⊙σ(raw + 2),
    /// [t | raw] = NN(xa ⊕ context), log-det Σ log σ(raw + 2).
    func coupling(_ name: String, _ x: Tensor, context: Tensor?, inverse: Bool, in g: Graph) throws -> (Tensor, Tensor) {
        let c = x.cols, ca = c / 2, cb = c - ca, hidden = configuration.hidden
        let xa = try g.slice(x, start: 0, width: ca), xb = try g.slice(x, start: ca, width: cb)
        let input = try withContext(xa, context, in: g)
        let cin = input.cols
        let w0 = g.parameter(name + ".net.0.weight", shape: [3, 3, cin, hidden], initializer: .kaimingUniform(fanIn: 9 * cin))
        let b0 = g.parameter(name + ".net.0.bias", rows: 1, cols: hidden, initializer: .zeros)
        let w1 = g.parameter(name + ".net.1.weight", shape: [1, 1, hidden, hidden], initializer: .kaimingUniform(fanIn: hidden))
        let b1 = g.parameter(name + ".net.1.bias", rows: 1, cols: hidden, initializer: .zeros)
        let w2 = g.parameter(name + ".net.2.weight", shape: [3, 3, hidden, 2 * cb], initializer: .zeros)
        let b2 = g.parameter(name + ".net.2.bias", rows: 1, cols: 2 * cb, initializer: .zeros)
        let h0 = try g.conv2d(input, weight: w0, bias: b0, activation: .relu)
        let h1 = try g.conv2d(h0, weight: w1, bias: b1, activation: .relu)
        let out = try g.conv2d(h1, weight: w2, bias: b2)
        let shift = try g.slice(out, start: 0, width: cb)
        let raw = try g.affine(try g.slice(out, start: cb, width: cb), scale: 1, shift: 2)
        let scale = try g.unary(.sigmoid, raw)
        // log σ(z) = −softplus(−z), finite where σ(z) underflows.
        let logScale = try g.affine(try g.unary(.softplus, try g.affine(raw, scale: -1, shift: 0)), scale: -1, shift: 0)
        let logDet = try perImageSum(logScale, images: x.shape[0], in: g)
        let yb = inverse ? try g.subtract(try g.divide(xb, scale), shift) : try g.multiply(try g.add(xb, shift), scale)
        return (try g.concat([xa, yb]), inverse ? try g.affine(logDet, scale: -1, shift: 0) : logDet)
    }

    /// Mean and log-std of the factored-out half at scale `level` from the half that stays.
    func splitPrior(_ level: Int, _ kept: Tensor, context: Tensor?, in g: Graph) throws -> (Tensor, Tensor) {
        let input = try withContext(kept, context, in: g)
        let out = kept.cols  // the factored half has as many channels as the kept one
        let w = g.parameter("glow.\(level).prior.weight", shape: [3, 3, input.cols, 2 * out], initializer: .zeros)
        let b = g.parameter("glow.\(level).prior.bias", rows: 1, cols: 2 * out, initializer: .zeros)
        let h = try g.conv2d(input, weight: w, bias: b)
        return (try g.slice(h, start: 0, width: out), try g.slice(h, start: out, width: out))
    }

    /// The top prior's mean and log-std for [N, h, w, c] latents: a linear map of the context
    /// (zero at the start), or N(0, I) (nil) without one.
    func topPrior(_ shape: [Int], context: Tensor?, in g: Graph) throws -> (Tensor, Tensor)? {
        guard let context else { return nil }
        let c = shape[3]
        let w = g.parameter("glow.top.weight", rows: context.cols, cols: 2 * c, initializer: .zeros)
        let b = g.parameter("glow.top.bias", rows: 1, cols: 2 * c, initializer: .zeros)
        // The same linear map at every pixel of the context's channels (gathering the map's output
        // instead would repeat rows, whose gradient a gather cannot sum).
        let channels = try contextChannels(context, images: shape[0], height: shape[1], width: shape[2], in: g)
        let perPixel = try g.linear(channels, weight: w, bias: b)
        return (try g.slice(perPixel, start: 0, width: c), try g.slice(perPixel, start: c, width: c))
    }

    func gaussian(_ z: Tensor, _ prior: (Tensor, Tensor)?, in g: Graph) throws -> Tensor {
        let n = z.shape[0], flat = [n, z.count / n]
        let zf = try g.reshape(z, flat)
        guard let (mean, logStd) = prior else { return try g.standardNormalLogDensity(zf) }
        return try g.gaussianLogDensity(zf, mean: try g.reshape(mean, flat), logStd: try g.reshape(logStd, flat))
    }

    func stepName(_ level: Int, _ step: Int) -> String { "glow.\(level).\(step)" }
    var actNormCount: Int { configuration.resolvedScales * configuration.steps }

    // MARK: directions

    /// The data's log q and the standard-normal noise that `sample` maps back to the data (in
    /// `noiseLayout` order), or, with `probe`, only the input of ActNorm number `probe` (scale-major).
    func encode(_ y: Tensor, context: Tensor?, in g: Graph, probe: Int? = nil) throws
        -> (logProb: Tensor?, noise: Tensor?, probe: Tensor?) {
        let n = y.rows, D = features, levels = Float(configuration.levels)
        // Dequantize: (y + u)/levels in [0, 1), log-det −D·log levels.
        let unit = try g.affine(try g.add(y, g.uniformNoise(shape: [n, D])), scale: 1 / levels, shift: 0)
        var logDet = try g.fill(rows: n, cols: 1, value: -Float(D) * Foundation.log(levels))
        var x: Tensor
        switch configuration.preprocessing {
        case .centered:
            x = try g.affine(unit, scale: 1, shift: -0.5)
        case .logit:
            let alpha = configuration.logitAlpha
            let p = try g.affine(unit, scale: 1 - 2 * alpha, shift: alpha)
            let logP = try g.log(p), logQ = try g.log(try g.affine(p, scale: -1, shift: 1))
            x = try g.subtract(logP, logQ)
            // d logit(p)/dx = (1 − 2α)/(p(1 − p)).
            logDet = try g.add(logDet, try g.affine(try g.sumRows(try g.add(logP, logQ)), scale: -1,
                                                    shift: Float(D) * Foundation.log(1 - 2 * alpha)))
        }
        var h = try g.reshape(x, [n, configuration.height, configuration.width, configuration.channels])
        var latentLogProb: Tensor?
        var noise: [Tensor] = []
        /// Adds the latent's log density under its prior and records its standardized noise.
        func addLatent(_ z: Tensor, _ prior: (Tensor, Tensor)?) throws {
            let t = try gaussian(z, prior, in: g)
            latentLogProb = try latentLogProb.map { try g.add($0, t) } ?? t
            let epsilon = try prior.map { mean, logStd in
                try g.multiply(try g.subtract(z, mean), try g.exp(try g.affine(logStd, scale: -1, shift: 0)))
            } ?? z
            noise.append(try g.reshape(epsilon, [n, z.count / n]))
        }
        var index = 0
        for level in 0...lastScale {
            h = try squeeze(h, in: g)
            for step in 0..<configuration.steps {
                if index == probe { return (nil, nil, h) }
                index += 1
                let name = stepName(level, step)
                let (a, d0) = try actNorm(name + ".actnorm", h, inverse: false, in: g)
                let (b, d1) = try invertibleConvolution(name + ".invconv", a, inverse: false, in: g)
                let (c, d2) = try coupling(name + ".coupling", b, context: context, inverse: false, in: g)
                h = c
                logDet = try g.add(try g.add(try g.add(logDet, d0), d1), d2)
            }
            if level < lastScale {
                let half = h.cols / 2
                let kept = try g.slice(h, start: 0, width: half), factored = try g.slice(h, start: half, width: half)
                try addLatent(factored, try splitPrior(level, kept, context: context, in: g))
                h = kept
            }
        }
        try addLatent(h, try topPrior(h.shape, context: context, in: g))
        return (try g.add(latentLogProb!, logDet), noise.count == 1 ? noise[0] : try g.concat(noise), nil)
    }

    public func logProb(_ y: Tensor, context: Tensor?, in graph: Graph) throws -> Tensor {
        try encode(y, context: context, in: graph).logProb!
    }

    /// Where each scale's factored-out latents sit in a row of noise (scale order), and the top's.
    var noiseLayout: (factored: [Range<Int>], top: Range<Int>) {
        var ranges: [Range<Int>] = [], start = 0
        for (level, shape) in scaleShapes.enumerated() where level < lastScale {
            let size = shape.h * shape.w * shape.c / 2
            ranges.append(start..<(start + size))
            start += size
        }
        return (ranges, start..<features)
    }

    public func sample(noise: Tensor, context: Tensor?, in g: Graph) throws -> (samples: Tensor, logProb: Tensor) {
        let n = noise.rows, shapes = scaleShapes, layout = noiseLayout
        func latent(_ range: Range<Int>, _ shape: [Int]) throws -> Tensor {
            try g.reshape(try g.slice(noise, start: range.lowerBound, width: range.count), shape)
        }
        /// μ + exp(log σ)⊙ε for a prior, ε itself for N(0, I).
        func draw(_ epsilon: Tensor, _ prior: (Tensor, Tensor)?) throws -> Tensor {
            guard let (mean, logStd) = prior else { return epsilon }
            return try g.add(mean, try g.multiply(try g.exp(logStd), epsilon))
        }
        let top = shapes[lastScale]
        let topShape = [n, top.h, top.w, top.c]
        let topPrior = try topPrior(topShape, context: context, in: g)
        var h = try draw(try latent(layout.top, topShape), topPrior)
        var logProb = try gaussian(h, topPrior, in: g)
        var inverseLogDet: Tensor?
        func addInverse(_ t: Tensor) throws { inverseLogDet = try inverseLogDet.map { try g.add($0, t) } ?? t }
        for level in stride(from: lastScale, through: 0, by: -1) {
            if level < lastScale {
                let prior = try splitPrior(level, h, context: context, in: g)
                let factored = try draw(try latent(layout.factored[level], h.shape), prior)
                logProb = try g.add(logProb, try gaussian(factored, prior, in: g))
                h = try g.concat([h, factored])
            }
            for step in stride(from: configuration.steps - 1, through: 0, by: -1) {
                let name = stepName(level, step)
                let (c, d2) = try coupling(name + ".coupling", h, context: context, inverse: true, in: g)
                let (b, d1) = try invertibleConvolution(name + ".invconv", c, inverse: true, in: g)
                let (a, d0) = try actNorm(name + ".actnorm", b, inverse: true, in: g)
                h = a
                try addInverse(try g.add(try g.add(d2, d1), d0))
            }
            h = try unsqueeze(h, in: g)
        }
        let D = features, levels = Float(configuration.levels)
        var x = try g.reshape(h, [n, D])
        switch configuration.preprocessing {
        case .centered:
            x = try g.affine(x, scale: 1, shift: 0.5)
        case .logit:
            let alpha = configuration.logitAlpha
            // x = (σ(h) − α)/(1 − 2α); log dx/dh = log σ(h) + log σ(−h) − log(1 − 2α).
            let logP = try g.affine(try g.unary(.softplus, try g.affine(x, scale: -1, shift: 0)), scale: -1, shift: 0)
            let logQ = try g.affine(try g.unary(.softplus, x), scale: -1, shift: 0)
            try addInverse(try g.affine(try g.sumRows(try g.add(logP, logQ)), scale: 1,
                                        shift: -Float(D) * Foundation.log(1 - 2 * alpha)))
            x = try g.affine(try g.unary(.sigmoid, x), scale: 1 / (1 - 2 * alpha), shift: -alpha / (1 - 2 * alpha))
        }
        try addInverse(try g.fill(rows: n, cols: 1, value: Float(D) * Foundation.log(levels)))
        let pixels = try g.affine(x, scale: levels, shift: 0)
        return (pixels, try g.subtract(logProb, inverseLogDet!))
    }

    /// ActNorm's data-dependent initialization: each ActNorm, in order, gets the per-channel bias
    /// and scale that standardize what reaches it from (up to 512 images of) the data.
    public func initialize(store: ParameterStore, data: InitializationData) throws {
        let rows = min(512, data.rows)
        let y = data.y(0..<rows), context = data.context(0..<rows)
        for (index, (level, step)) in (0...lastScale).flatMap({ l in (0..<configuration.steps).map { (l, $0) } }).enumerated() {
            let g = Graph()
            let input = g.input("y", rows: rows, cols: features)
            let c = contextFeatures > 0 ? g.input("context", rows: rows, cols: contextFeatures) : nil
            let probe = try encode(input, context: c, in: g, probe: index).probe!
            let plan = try Plan(graph: g, backend: store.backend, outputs: [probe], parameters: store)
            try plan.feed(input, y)
            if let c, let context { try plan.feed(c, context) }
            try plan.fillNoise(seed: configuration.seed ^ 0x494E_4954, offset: 0)  // "INIT"
            try plan.run()
            let statistics = Standardize.fit(try plan.read(probe), cols: probe.cols)
            let name = stepName(level, step) + ".actnorm"
            try store.write(name + ".bias", statistics.mean.map { -$0 })
            try store.write(name + ".logScale", statistics.std.map { -Foundation.log($0) })
        }
    }
}

/// Bits per dimension, the papers' unit for image densities: −log₂ p(x)/D of the discrete data.
/// With log q in pixel units (a density over [0, levels)ᴰ, as `GlowDensity` reports), that is
/// (−log p(x/levels) + D·ln levels)/(D·ln 2) of the [0, 1)ᴰ density: the level count is inside.
public enum BitsPerDimension {
    public static func from(logProb: Double, dimensions: Int) -> Double {
        -logProb / (Double(dimensions) * Foundation.log(2.0))
    }
}
