import Foundation
import SBIData
import SBIBackend
import SBIGraph

/// Architecture options shared by the neural estimators; unset fields take each estimator's default.
public struct EstimatorOptions: Sendable {
    public var hidden: [Int]? = nil
    public var transforms: Int? = nil
    public var bins: Int? = nil
    public var components: Int? = nil
    public var activation: String? = nil
    /// Flows: widths of a context-embedding MLP (see FlowConfiguration.embedding).
    public var embedding: [Int]? = nil
    /// Flows and MDNs: a CNN embedding of image context (see FlowConfiguration.convolutionalEmbedding).
    public var convolutionalEmbedding: ConvolutionalEmbedding? = nil
    /// Flows: whether a conditional flow starts with a `ConditionalAffine` layer (default yes).
    public var conditionalAffine: Bool? = nil
    /// Flows: dropout rate in the transforms' nets while training (see FlowConfiguration.dropout).
    public var dropout: Float? = nil
    /// Image estimators (glow): each row of y is a height×width×channels image (channels last)
    /// of integer pixel values below `levels`; `transforms` is the steps per scale, the first
    /// `hidden` width the coupling nets' channels.
    public var image: (height: Int, width: Int, channels: Int)? = nil
    public var levels: Int? = nil
    public var scales: Int? = nil
    public var preprocessing: ImagePreprocessing? = nil
    /// glow: the couplings' transform (affine by default); a spline has `bins` bins.
    public var coupling: GlowCouplingTransform? = nil
    public var seed: UInt64 = 0
    public init(hidden: [Int]? = nil, transforms: Int? = nil, bins: Int? = nil, components: Int? = nil,
                activation: String? = nil, embedding: [Int]? = nil, seed: UInt64 = 0) {
        self.embedding = embedding
        self.hidden = hidden
        self.transforms = transforms
        self.bins = bins
        self.components = components
        self.activation = activation
        self.seed = seed
    }
}

/// Density estimators by name, for the inference layer and the CLI.
public enum Estimators {
    public static let names = ["realnvp", "nsf", "maf", "mdn", "gmm", "glow", "realnvp-ms"]
    /// The estimators of images (rows of H·W·C pixels) rather than of vectors.
    public static let imageNames = MultiScaleArchitecture.allCases.map(\.estimatorName)

    public static func make(_ name: String, features: Int, contextFeatures: Int, backend: Backend,
                            options: EstimatorOptions = EstimatorOptions()) throws -> DensityEstimator {
        switch name {
        case "realnvp", "nsf", "maf":
            var configuration = FlowConfiguration(kind: FlowConfiguration.Kind(rawValue: name)!, features: features,
                                                  contextFeatures: contextFeatures)
            if let hidden = options.hidden { configuration.hidden = hidden }
            if let transforms = options.transforms { configuration.transforms = transforms }
            if let bins = options.bins { configuration.bins = bins }
            if let activation = options.activation { configuration.activation = activation }
            configuration.embedding = options.embedding
            configuration.convolutionalEmbedding = options.convolutionalEmbedding
            if let conditionalAffine = options.conditionalAffine { configuration.conditionalAffine = conditionalAffine }
            if let dropout = options.dropout, dropout > 0 { configuration.dropout = dropout }
            configuration.seed = options.seed
            return try makeFlow(configuration, backend: backend)
        case "mdn":
            var configuration = MixtureDensityNetwork.Configuration(features: features, contextFeatures: contextFeatures)
            if let hidden = options.hidden { configuration.hidden = hidden }
            if let components = options.components { configuration.components = components }
            if let activation = options.activation { configuration.activation = activation }
            configuration.convolutionalEmbedding = options.convolutionalEmbedding
            configuration.seed = options.seed
            return try makeMDN(configuration, backend: backend)
        case "gmm":
            return try GaussianMixture(features: features, contextFeatures: contextFeatures,
                                       components: options.components ?? 10)
        case "glow", "realnvp-ms":
            guard let image = options.image, image.height * image.width * image.channels == features else {
                throw SBIError.invalidArgument("\(name) models images: give the image shape (height×width×channels = \(features) features)")
            }
            var configuration = GlowConfiguration(height: image.height, width: image.width, channels: image.channels,
                                                  contextFeatures: contextFeatures, levels: options.levels ?? 256)
            let architecture: MultiScaleArchitecture = name == "glow" ? .glow : .realnvp
            configuration.architecture = architecture
            configuration.steps = options.transforms ?? architecture.defaultSteps
            if let hidden = options.hidden?.first { configuration.hidden = hidden }
            if let scales = options.scales { configuration.scales = scales }
            if let preprocessing = options.preprocessing { configuration.preprocessing = preprocessing }
            if let coupling = options.coupling, coupling != .affine {
                (configuration.coupling, configuration.bins) = (coupling, options.bins)
            }
            configuration.seed = options.seed
            return try makeGlow(configuration, backend: backend)
        default:
            throw SBIError.invalidArgument("unknown estimator '\(name)'; choose one of \(names.joined(separator: ", "))")
        }
    }

    public static func makeFlow(_ configuration: FlowConfiguration, backend: Backend) throws -> NeuralEstimator {
        NeuralEstimator(name: configuration.kind.rawValue, model: try configuration.makeFlow(), backend: backend,
                        architecture: ["flow.configuration": try Checkpoint.json(configuration)])
    }

    public static func makeMDN(_ configuration: MixtureDensityNetwork.Configuration, backend: Backend) throws -> NeuralEstimator {
        NeuralEstimator(name: "mdn", model: try MixtureDensityNetwork(configuration), backend: backend,
                        architecture: ["mdn.configuration": try Checkpoint.json(configuration)])
    }

    public static func makeGlow(_ configuration: GlowConfiguration, backend: Backend) throws -> NeuralEstimator {
        NeuralEstimator(name: configuration.resolvedArchitecture.estimatorName, model: try GlowDensity(configuration), backend: backend,
                        architecture: ["glow.configuration": try Checkpoint.json(configuration)])
    }

    /// Reads an estimator saved by `save(to:)` (or a training checkpoint of one).
    public static func load(from url: URL, backend: Backend) throws -> DensityEstimator {
        let file = try SafetensorsFile.read(from: url)
        guard let name = file.metadata["estimator"] else {
            throw SBIError.invalidArgument("\(url.path): metadata 'estimator' is missing (not an sbi-gpu model?)")
        }
        switch name {
        case "realnvp", "nsf", "maf":
            let configuration = try Checkpoint.decode(FlowConfiguration.self, file.metadata["flow.configuration"],
                                                      key: "flow.configuration", path: url.path)
            let estimator = try makeFlow(configuration, backend: backend)
            try estimator.load(file, path: url.path)
            return estimator
        case "mdn":
            let configuration = try Checkpoint.decode(MixtureDensityNetwork.Configuration.self, file.metadata["mdn.configuration"],
                                                      key: "mdn.configuration", path: url.path)
            let estimator = try makeMDN(configuration, backend: backend)
            try estimator.load(file, path: url.path)
            return estimator
        case "gmm":
            return try GaussianMixture.load(file, path: url.path)
        case "glow", "realnvp-ms":
            let configuration = try Checkpoint.decode(GlowConfiguration.self, file.metadata["glow.configuration"],
                                                      key: "glow.configuration", path: url.path)
            let estimator = try makeGlow(configuration, backend: backend)
            try estimator.load(file, path: url.path)
            return estimator
        default:
            throw SBIError.invalidArgument("\(url.path): unknown estimator '\(name)'")
        }
    }
}
