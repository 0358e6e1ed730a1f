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
    /// glow, or Dinh et al.'s multi-scale RealNVP (nil: glow, as checkpoints before it say).
    public var architecture: MultiScaleArchitecture? = nil
    public var preprocessing: ImagePreprocessing = .centered
    public var logitAlpha: Float = 0.05
    /// Glow's coupling transform (nil: affine, as checkpoints before splines say).
    public var coupling: GlowCouplingTransform? = nil
    /// Spline couplings: bins K (nil: 8).
    public var bins: Int? = nil
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
    public var resolvedArchitecture: MultiScaleArchitecture { architecture ?? .glow }
    public var resolvedCoupling: GlowCouplingTransform { coupling ?? .affine }
    public var resolvedBins: Int { bins ?? 8 }
    /// Glow squeezes at every scale; the multi-scale RealNVP's last scale works at the resolution
    /// the others leave, so it has one scale more for the same image (28×28: 2 and 3).
    public var resolvedScales: Int {
        scales ?? Self.defaultScales(height: height, width: width) + (resolvedArchitecture == .realnvp ? 1 : 0)
    }
    /// 2×2 squeezes the flow makes.
    var squeezes: Int { resolvedArchitecture == .glow ? resolvedScales : resolvedScales - 1 }

    func check() throws {
        guard height > 0, width > 0, channels > 0, contextFeatures >= 0 else {
            throw SBIError.invalidArgument("glow needs images of positive size, got \(height)×\(width)×\(channels)")
        }
        let L = resolvedScales, squeezes = max(0, squeezes)
        guard L >= 1, height % (1 << squeezes) == 0, width % (1 << squeezes) == 0 else {
            throw SBIError.invalidArgument("\(resolvedArchitecture.estimatorName) with \(L) scales needs height and width divisible by \(1 << squeezes); the images are \(height)×\(width)")
        }
        guard steps > 0, hidden > 0 else { throw SBIError.invalidArgument("glow needs steps > 0 and hidden > 0") }
        guard levels >= 2 else { throw SBIError.invalidArgument("glow needs at least 2 pixel levels, got \(levels)") }
        guard logitAlpha > 0, logitAlpha < 0.5 else { throw SBIError.invalidArgument("the logit α must be in (0, ½), got \(logitAlpha)") }
        guard resolvedCoupling == .affine || resolvedArchitecture == .glow else {
            throw SBIError.invalidArgument("spline couplings are Glow's; realnvp-ms couplings are affine")
        }
        guard RationalQuadraticSpline.binRange.contains(resolvedBins) else {
            throw SBIError.invalidArgument("glow's spline couplings need \(RationalQuadraticSpline.binRange) bins, got \(resolvedBins)")
        }
    }
}

/// The transform of Glow's couplings, given the net's output for the passing half.
public enum GlowCouplingTransform: String, Codable, Sendable, CaseIterable {
    /// (x_b + t)⊙σ(raw + 2).
    case affine
    /// A rational-quadratic spline per element (Durkan et al.), K bins on [−3, 3] with linear
    /// tails, by the fused `RQSplineOp`.
    case spline
}

/// The multi-scale flows on images.
public enum MultiScaleArchitecture: String, Codable, Sendable, CaseIterable {
    /// Kingma & Dhariwal's Glow (see `GlowConfiguration`).
    case glow
    /// Dinh et al.'s multi-scale RealNVP: at each scale but the last, K affine couplings with
    /// alternating checkerboard masks, a squeeze, K with alternating channel halves, then half
    /// the channels factored out; the last scale K + 1 checkerboard couplings. Each coupling
    /// y = x⊙exp(s) + t, s = 2·tanh(raw/2), after a per-channel ActNorm; the nets as Glow's.
    case realnvp

    /// The `--estimator` name.
    public var estimatorName: String { self == .glow ? "glow" : "realnvp-ms" }
    /// Steps per scale when not given.
    public var defaultSteps: Int { self == .glow ? 8 : 3 }
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
        let (inputs, output) = programShapes
        return inputs.indices.filter { if case .squeeze = inputs[$0].step { return true } else { return false } }
            .map { $0 + 1 < inputs.count ? inputs[$0 + 1].shape : output }
    }
    var lastScale: Int { configuration.resolvedScales - 1 }

    /// The pixels must be integers 0…levels − 1: the dequantization, and so every log-prob and
    /// bits/dim, assume the discrete data (`ImageRows.checkLevels`, the one check of that).
    public func validate(_ y: FloatRows) throws {
        try ImageRows(pixels: y, height: configuration.height, width: configuration.width, channels: configuration.channels)
            .checkLevels(configuration.levels)
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
        let c = x.cols, ca = c / 2, cb = c - ca
        let xa = try g.slice(x, start: 0, width: ca), xb = try g.slice(x, start: ca, width: cb)
        if configuration.resolvedCoupling == .spline {
            return try splineCoupling(name, xa, xb, context: context, inverse: inverse, in: g)
        }
        let out = try couplingNet(name, try withContext(xa, context, in: g), outputs: 2 * cb, in: g)
        let shift = try g.slice(out, start: 0, width: cb)
        let raw = try g.affine(try g.slice(out, start: cb, width: cb), scale: 1, shift: 2)
        let scale = try g.unary(.sigmoid, raw)
        // log σ(z) = −softplus(−z), finite where σ(z) underflows.
        let logScale = try g.affine(try g.unary(.softplus, try g.affine(raw, scale: -1, shift: 0)), scale: -1, shift: 0)
        let logDet = try perImageSum(logScale, images: x.shape[0], in: g)
        let yb = inverse ? try g.subtract(try g.divide(xb, scale), shift) : try g.multiply(try g.add(xb, shift), scale)
        return (try g.concat([xa, yb]), inverse ? try g.affine(logDet, scale: -1, shift: 0) : logDet)
    }

    /// Glow's coupling with a spline: every element of xb goes through its own rational-quadratic
    /// spline, whose 3K − 1 raw parameters the net gives from xa ⊕ context at that pixel; the
    /// pixels are the op's rows and the cb channels its features. The derivatives' raw values are
    /// offset so that the zero-initialized net starts at the identity (as the affine coupling does).
    func splineCoupling(_ name: String, _ xa: Tensor, _ xb: Tensor, context: Tensor?, inverse: Bool,
                        in g: Graph) throws -> (Tensor, Tensor) {
        let K = configuration.resolvedBins, P = RationalQuadraticSpline.parameterCount(bins: K)
        let (n, cb) = (xb.shape[0], xb.cols), pixels = xb.count / cb
        let out = try couplingNet(name, try withContext(xa, context, in: g), outputs: cb * P, in: g)
        let offset = (0..<(cb * P)).map { $0 % P >= 2 * K ? RationalQuadraticSpline.unitDerivativeRaw : 0 }
        let parameters = try g.add(try g.reshape(out, [pixels, cb * P]), g.constant(offset, rows: 1, cols: cb * P))
        let result = try g.apply(RQSplineOp(inverse: inverse, bins: K, tailBound: Self.splineTailBound),
                                 [try g.reshape(xb, [pixels, cb]), parameters, g.constant([Float](repeating: 0, count: cb), rows: 1, cols: cb)])
        return (try g.concat([xa, try g.reshape(result[0], xb.shape)]), try perImageSum(result[1], images: n, in: g))
    }

    /// Spline couplings map [−3, 3] (ActNorm's standardized range) and are linear outside.
    static let splineTailBound: Float = 3

    /// A coupling net: conv 3×3 → ReLU → conv 1×1 → ReLU → zero-initialized conv 3×3 (so that
    /// every coupling starts as the identity), `configuration.hidden` channels.
    func couplingNet(_ name: String, _ input: Tensor, outputs: Int, in g: Graph) throws -> Tensor {
        let cin = input.cols, hidden = configuration.hidden
        let w0 = g.parameter(name + ".net.0.weight", shape: [3, 3, cin, hidden], initializer: .kaimingUniform(fanIn: 9 * cin))
        let b0 = g.parameter(name + ".net.0.bias", rows: 1, cols: hidden, initializer: .zeros)
        let w1 = g.parameter(name + ".net.1.weight", shape: [1, 1, hidden, hidden], initializer: .kaimingUniform(fanIn: hidden))
        let b1 = g.parameter(name + ".net.1.bias", rows: 1, cols: hidden, initializer: .zeros)
        let w2 = g.parameter(name + ".net.2.weight", shape: [3, 3, hidden, outputs], initializer: .zeros)
        let b2 = g.parameter(name + ".net.2.bias", rows: 1, cols: outputs, initializer: .zeros)
        let h0 = try g.conv2d(input, weight: w0, bias: b0, activation: .relu)
        let h1 = try g.conv2d(h0, weight: w1, bias: b1, activation: .relu)
        return try g.conv2d(h1, weight: w2, bias: b2)
    }

    /// RealNVP's scale stabilizer: s = 2·tanh(raw/2).
    static let realNVPScaleBound: Float = 2

    /// RealNVP's checkerboard coupling on [N, h, w, c]: the pixels with (i + j) % 2 = parity pass
    /// (all their channels); the others become x⊙exp(s) + t with [s | t] = NN(x⊙m ⊕ context), by
    /// the fused `AffineCouplingOp` on each image's h·w·c values.
    func checkerboardCoupling(_ name: String, _ x: Tensor, parity: Int, context: Tensor?, inverse: Bool,
                              in g: Graph) throws -> (Tensor, Tensor) {
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]), D = h * w * c
        let mask = (0..<D).map { k -> Float in let p = k / c; return (p / w + p % w) % 2 == parity ? 1 : 0 }
        let maskRow = g.constant(mask, rows: 1, cols: D)
        let flat = try g.reshape(x, [n, D])
        let masked = try g.reshape(try g.multiply(flat, maskRow), x.shape)
        let out = try couplingNet(name, try withContext(masked, context, in: g), outputs: 2 * c, in: g)
        // Per pixel the net gives [s | t] of its channels; the op wants every s, then every t.
        var order = [Int32](repeating: 0, count: 2 * D)
        for k in 0..<D {
            order[k] = Int32((k / c) * 2 * c + k % c)
            order[D + k] = Int32((k / c) * 2 * c + c + k % c)
        }
        let st = try g.gatherColumns(try g.reshape(out, [n, 2 * D]), order)
        let result = try g.apply(AffineCouplingOp(inverse: inverse, bound: Self.realNVPScaleBound), [flat, st, maskRow])
        return (try g.reshape(result[0], x.shape), result[1])
    }

    /// RealNVP's channel coupling: the first half of the channels passes (the second with
    /// `flip`), the other half becomes x⊙exp(s) + t with [s | t] = NN(passing half ⊕ context).
    func channelCoupling(_ name: String, _ x: Tensor, flip: Bool, context: Tensor?, inverse: Bool,
                         in g: Graph) throws -> (Tensor, Tensor) {
        let (n, c) = (x.shape[0], x.cols), half = c / 2
        let passing = flip ? (half, c - half) : (0, half)
        let mask = (0..<c).map { j -> Float in j >= passing.0 && j < passing.0 + passing.1 ? 1 : 0 }
        let input = try withContext(try g.slice(x, start: passing.0, width: passing.1), context, in: g)
        let st = try couplingNet(name, input, outputs: 2 * c, in: g)
        let result = try g.apply(AffineCouplingOp(inverse: inverse, bound: Self.realNVPScaleBound),
                                 [x, st, g.constant(mask, rows: 1, cols: c)])
        return (result[0], try g.sumRows(try g.reshape(result[1], [n, x.count / (n * c)])))
    }

    /// Mean and log-std of the factored-out half at scale `level` from the half that stays.
    func splitPrior(_ level: Int, _ kept: Tensor, context: Tensor?, in g: Graph) throws -> (Tensor, Tensor) {
        let input = try withContext(kept, context, in: g)
        let out = kept.cols  // the factored half has as many channels as the kept one
        let w = g.parameter("\(prefix).\(level).prior.weight", shape: [3, 3, input.cols, 2 * out], initializer: .zeros)
        let b = g.parameter("\(prefix).\(level).prior.bias", rows: 1, cols: 2 * out, initializer: .zeros)
        let h = try g.conv2d(input, weight: w, bias: b)
        return (try g.slice(h, start: 0, width: out), try g.slice(h, start: out, width: out))
    }

    /// The top prior's mean and log-std for [N, h, w, c] latents: a linear map of the context
    /// (zero at the start), or N(0, I) (nil) without one.
    func topPrior(_ shape: [Int], context: Tensor?, in g: Graph) throws -> (Tensor, Tensor)? {
        guard let context else { return nil }
        let c = shape[3]
        let w = g.parameter("\(prefix).top.weight", rows: context.cols, cols: 2 * c, initializer: .zeros)
        let b = g.parameter("\(prefix).top.bias", rows: 1, cols: 2 * c, initializer: .zeros)
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

    /// The parameters' name prefix: "glow" or "realnvp".
    var prefix: String { configuration.resolvedArchitecture.rawValue }

    /// One layer of the flow, in the data → latent order.
    enum Step {
        case squeeze
        case actNorm(String)
        case invertibleConvolution(String)
        case glowCoupling(String)
        case checkerboard(String, parity: Int)
        case channels(String, flip: Bool)
        /// Half the channels factored out to scale `level`'s prior.
        case split(level: Int)
    }

    /// The layers, data to latent.
    var program: [Step] {
        var steps: [Step] = []
        let K = configuration.steps
        for level in 0...lastScale {
            func name(_ k: Int) -> String { "\(prefix).\(level).\(k)" }
            switch configuration.resolvedArchitecture {
            case .glow:
                steps.append(.squeeze)
                for k in 0..<K {
                    steps += [.actNorm(name(k) + ".actnorm"), .invertibleConvolution(name(k) + ".invconv"),
                              .glowCoupling(name(k) + ".coupling")]
                }
            case .realnvp:
                let checkerboards = level < lastScale ? K : K + 1
                for k in 0..<checkerboards {
                    steps += [.actNorm(name(k) + ".actnorm"), .checkerboard(name(k) + ".coupling", parity: k % 2)]
                }
                if level < lastScale {
                    steps.append(.squeeze)
                    for k in K..<(2 * K) {
                        steps += [.actNorm(name(k) + ".actnorm"), .channels(name(k) + ".coupling", flip: (k - K) % 2 == 1)]
                    }
                }
            }
            if level < lastScale { steps.append(.split(level: level)) }
        }
        return steps
    }

    /// The shape (h, w, c) of one image that each step of the program takes, and that of the top
    /// latent after the last step: squeezes and splits are the steps that change it.
    var programShapes: (inputs: [(step: Step, shape: (h: Int, w: Int, c: Int))], output: (h: Int, w: Int, c: Int)) {
        var shape = (h: configuration.height, w: configuration.width, c: configuration.channels)
        var inputs: [(step: Step, shape: (h: Int, w: Int, c: Int))] = []
        for step in program {
            inputs.append((step, shape))
            switch step {
            case .squeeze: shape = (shape.h / 2, shape.w / 2, 4 * shape.c)
            case .split: shape.c /= 2
            default: break
            }
        }
        return (inputs, shape)
    }

    /// The shapes (h, w, c) of each scale's factored-out latents and of the top latent.
    var latentShapes: (factored: [[Int]], top: [Int]) {
        let (inputs, top) = programShapes
        let factored = inputs.compactMap { step, shape -> [Int]? in
            if case .split = step { return [shape.h, shape.w, shape.c - shape.c / 2] } else { return nil }
        }
        return (factored, [top.h, top.w, top.c])
    }

    /// An invertible layer of the program in either direction, with its per-image log-det.
    /// Squeezes and splits change the latents' layout, so each direction handles them itself.
    func layer(_ step: Step, _ h: Tensor, context: Tensor?, inverse: Bool, in g: Graph) throws -> (Tensor, Tensor) {
        switch step {
        case let .actNorm(name): return try actNorm(name, h, inverse: inverse, in: g)
        case let .invertibleConvolution(name): return try invertibleConvolution(name, h, inverse: inverse, in: g)
        case let .glowCoupling(name): return try coupling(name, h, context: context, inverse: inverse, in: g)
        case let .checkerboard(name, parity):
            return try checkerboardCoupling(name, h, parity: parity, context: context, inverse: inverse, in: g)
        case let .channels(name, flip): return try channelCoupling(name, h, flip: flip, context: context, inverse: inverse, in: g)
        case .squeeze, .split: throw SBIError.invalidArgument("\(step) is not a layer of its own")
        }
    }

    // MARK: directions

    /// The data's log q and the standard-normal noise that `sample` maps back to the data (in
    /// `noiseLayout` order), or, with `probe`, only the input of ActNorm number `probe` (in order).
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
        var actNorms = 0
        for step in program {
            switch step {
            case .squeeze:
                h = try squeeze(h, in: g)
            case let .split(level):
                let half = h.cols / 2
                let kept = try g.slice(h, start: 0, width: half), factored = try g.slice(h, start: half, width: h.cols - half)
                try addLatent(factored, try splitPrior(level, kept, context: context, in: g))
                h = kept
            default:
                if case .actNorm = step {
                    if actNorms == probe { return (nil, nil, h) }
                    actNorms += 1
                }
                let (output, layerLogDet) = try layer(step, h, context: context, inverse: false, in: g)
                h = output
                logDet = try g.add(logDet, layerLogDet)
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
        for shape in latentShapes.factored {
            let size = shape.reduce(1, *)
            ranges.append(start..<(start + size))
            start += size
        }
        return (ranges, start..<features)
    }

    public func sample(noise: Tensor, context: Tensor?, in g: Graph) throws -> (samples: Tensor, logProb: Tensor) {
        let n = noise.rows, layout = noiseLayout, shapes = latentShapes
        func latent(_ range: Range<Int>, _ shape: [Int]) throws -> Tensor {
            try g.reshape(try g.slice(noise, start: range.lowerBound, width: range.count), [n] + shape)
        }
        /// μ + exp(log σ)⊙ε for a prior, ε itself for N(0, I).
        func draw(_ epsilon: Tensor, _ prior: (Tensor, Tensor)?) throws -> Tensor {
            guard let (mean, logStd) = prior else { return epsilon }
            return try g.add(mean, try g.multiply(try g.exp(logStd), epsilon))
        }
        let topPrior = try topPrior([n] + shapes.top, context: context, in: g)
        var h = try draw(try latent(layout.top, shapes.top), topPrior)
        var logProb = try gaussian(h, topPrior, in: g)
        var inverseLogDet: Tensor?
        func addInverse(_ t: Tensor) throws { inverseLogDet = try inverseLogDet.map { try g.add($0, t) } ?? t }
        for step in program.reversed() {
            switch step {
            case .squeeze:
                h = try unsqueeze(h, in: g)
            case let .split(level):
                let prior = try splitPrior(level, h, context: context, in: g)
                let factored = try draw(try latent(layout.factored[level], shapes.factored[level]), prior)
                logProb = try g.add(logProb, try gaussian(factored, prior, in: g))
                h = try g.concat([h, factored])
            default:
                let (output, layerLogDet) = try layer(step, h, context: context, inverse: true, in: g)
                h = output
                try addInverse(layerLogDet)
            }
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
        let names = program.compactMap { step -> String? in if case let .actNorm(name) = step { return name }; return nil }
        for (index, name) in names.enumerated() {
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
