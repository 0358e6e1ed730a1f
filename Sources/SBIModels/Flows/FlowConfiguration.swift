import SBIBackend
import SBIGraph

/// Everything that defines a flow's architecture; stored in checkpoints so a saved flow can be
/// rebuilt. Defaults are near the `sbi` package's (5 transforms, linear spline tails at ±3); where
/// sbi's nets are residual blocks of 50 units and its splines have 10 bins, these are MLPs of two
/// layers of 64 and splines of 8 bins.
public struct FlowConfiguration: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case realnvp, nsf, maf
    }

    public var kind: Kind
    public var features: Int
    public var contextFeatures: Int
    /// Number of coupling / autoregressive transforms.
    public var transforms = 5
    public var hidden = [64, 64]
    /// "relu", "tanh", "leakyRelu", "sigmoid" or "softplus".
    public var activation = "relu"
    public var mask: CouplingMask = .halves
    /// Image width for a 2-D checkerboard mask (0: features are a vector).
    public var imageSide = 0
    /// "reverse", "random" or "none": the permutation between transforms.
    public var permutation = "reverse"
    public var actNorm = true
    /// Soft-clamp bound of affine coupling scales (0: none).
    public var scaleBound: Float = 3
    /// Spline bins and tail bound (nsf).
    public var bins = 8
    public var tailBound: Float = 3
    public var seed: UInt64 = 0
    /// Widths of an MLP that embeds the (standardized) context before every transform sees it,
    /// the last being the embedded size: for high-dimensional context such as images. nil or
    /// empty: the transforms see the context itself.
    public var embedding: [Int]? = nil
    /// A CNN that embeds image context instead (rows of height×width×channels pixels); when set,
    /// `embedding` is unused.
    public var convolutionalEmbedding: ConvolutionalEmbedding? = nil
    /// Start a conditional flow with a `ConditionalAffine` layer (location and scale linear in
    /// the context). nil, as in checkpoints written before the layer existed, means without.
    public var conditionalAffine: Bool? = true
    /// Dropout rate after every hidden layer of the transforms' nets while training (nil: none).
    /// A regularizer for when the validation loss turns up early; it costs capacity, so it can
    /// hurt where the data would support a sharper fit.
    public var dropout: Float? = nil

    public init(kind: Kind, features: Int, contextFeatures: Int = 0) {
        self.kind = kind
        self.features = features
        self.contextFeatures = contextFeatures
    }

    /// The context width the transforms see: the embedding's output, or the context itself.
    var conditioningFeatures: Int {
        contextFeatures > 0 ? (convolutionalEmbedding?.outputFeatures ?? embedding?.last ?? contextFeatures) : 0
    }

    public var unaryActivation: UnaryOp { .activation(named: activation) ?? .relu }

    /// The bijector stack: for a conditional flow the `ConditionalAffine` layer, then for each
    /// transform ActNorm (optional), the transform, and a permutation between transforms.
    public func makeFlow() throws -> Flow {
        guard features > 0, contextFeatures >= 0, transforms > 0 else {
            throw SBIError.invalidArgument("a flow needs features > 0 and transforms > 0")
        }
        guard (0..<1).contains(dropout ?? 0) else {
            throw SBIError.invalidArgument("dropout must be in [0, 1), got \(dropout!)")
        }
        guard embedding?.allSatisfy({ $0 > 0 }) ?? true else {
            throw SBIError.invalidArgument("embedding widths must be positive, got \(embedding!)")
        }
        if let convolutionalEmbedding {
            try convolutionalEmbedding.validate()
            guard convolutionalEmbedding.inputFeatures == contextFeatures else {
                throw SBIError.invalidArgument("the CNN embedding takes \(convolutionalEmbedding.height)×\(convolutionalEmbedding.width)×\(convolutionalEmbedding.channels) images, but the context has \(contextFeatures) features")
            }
        }
        var bijectors: [Bijector] = []
        if conditionalAffine == true && conditioningFeatures > 0 {
            bijectors.append(ConditionalAffine(name: "flow.affine", features: features,
                                               contextFeatures: conditioningFeatures, bound: scaleBound))
        }
        for t in 0..<transforms {
            if actNorm { bijectors.append(ActNorm(name: "flow.\(t).actnorm", features: features)) }
            let name = "flow.\(t)"
            // With a permutation between transforms the permutation alternates which features
            // pass through; alternating the mask as well would undo it (reverse + flipped halves
            // transforms the same half every time), so fixed masks then, alternating ones without.
            let alternate = permutation == "none" || mask == .random
            let layerMask = mask.values(layer: alternate ? t : 0, features: features, side: imageSide,
                                        seed: seed &+ UInt64(t))
            switch kind {
            case .realnvp:
                bijectors.append(AffineCoupling(name: name, mask: layerMask, contextFeatures: conditioningFeatures,
                                                hidden: hidden, activation: unaryActivation, bound: scaleBound,
                                                dropout: dropout ?? 0))
            case .nsf:
                bijectors.append(try makeSplineCoupling(name: name, mask: layerMask))
            case .maf:
                bijectors.append(MaskedAutoregressive(name: name, features: features, contextFeatures: conditioningFeatures,
                                                      hidden: hidden, activation: unaryActivation, dropout: dropout ?? 0))
            }
            if t < transforms - 1 && features > 1 {
                switch permutation {
                case "random": bijectors.append(Permutation.random(features, seed: seed &+ UInt64(t)))
                case "none": break
                default: bijectors.append(Permutation.reverse(features))
                }
            }
        }
        var embeddingNet: (any ContextEmbedding)?
        if contextFeatures > 0 {
            if let convolutionalEmbedding {
                embeddingNet = convolutionalEmbedding
            } else if let embedding, !embedding.isEmpty {
                embeddingNet = MLP(name: "embedding", widths: [contextFeatures] + embedding, activation: unaryActivation)
            }
        }
        return Flow(bijectors: bijectors, features: features, contextFeatures: contextFeatures, embedding: embeddingNet)
    }

    /// The pixel-space benchmark flow of `sbi-gpu bench flows --spec mlp` (and of
    /// Benchmarks/reference/realnvp_mlp.py): RealNVP on side² pixels, `layers` affine couplings
    /// with alternating checkerboard masks, nets D → hidden → hidden → 2D with ReLU,
    /// s = tanh(raw s), no ActNorm, no permutations.
    public static func benchmarkRealNVP(side: Int, layers: Int = 8, hidden: Int = 1024) -> FlowConfiguration {
        var configuration = FlowConfiguration(kind: .realnvp, features: side * side)
        configuration.transforms = layers
        configuration.hidden = [hidden, hidden]
        configuration.mask = .checkerboard
        configuration.imageSide = side
        configuration.permutation = "none"
        configuration.actNorm = false
        configuration.scaleBound = 1
        return configuration
    }
}
