import Foundation
import SBIData
import SBIBackend
import SBIGraph

/// What the inference layer and the CLI need of any density estimator q(y | context):
/// fit it, evaluate it, draw from it, save and load it. Arrays are row-major, rows×features.
public protocol DensityEstimator: AnyObject {
    /// The registry name: "realnvp", "nsf", "maf", "mdn" or "gmm".
    var name: String { get }
    var features: Int { get }
    /// Context features (0 for an unconditional estimator).
    var contextFeatures: Int { get }

    /// Fits to rows of y (features wide) with matching rows of context (contextFeatures wide, or
    /// nil when unconditional). Returns the loss history (mean negative log-likelihood).
    @discardableResult
    func fit(_ y: [Float], context: [Float]?, configuration: TrainingConfiguration,
             checkpoint: URL?, resume: Bool, progress: ((EpochRecord) -> Void)?) throws -> [EpochRecord]

    /// The same from rows that may be memory-mapped (see `FloatRows`); neural estimators stream
    /// a data set larger than `dataBudget` through the device instead of uploading it whole.
    @discardableResult
    func fit(rows y: FloatRows, context: FloatRows?, configuration: TrainingConfiguration,
             checkpoint: URL?, resume: Bool, progress: ((EpochRecord) -> Void)?) throws -> [EpochRecord]

    /// log q(y | context) for each row; context has the same rows (or one row used for all).
    func logProb(_ y: [Float], context: [Float]?) throws -> [Float]

    /// `count` samples for each row of context (one group of `count` rows per context row, in
    /// order), or `count` unconditional samples. The same seed gives the same samples.
    func sample(_ count: Int, context: [Float]?, seed: UInt64) throws -> [Float]

    /// Writes the estimator (parameters and configuration) as a safetensors file, atomically.
    func save(to url: URL) throws
}

/// A density model expressed as graph computations; `NeuralEstimator` trains and runs it.
/// Both directions see standardized y and context (NeuralEstimator z-scores them).
public protocol NeuralDensity {
    var features: Int { get }
    var contextFeatures: Int { get }
    /// Standard-normal noise columns one sample consumes.
    var noiseFeatures: Int { get }
    /// log q(y | context), rows×1.
    func logProb(_ y: Tensor, context: Tensor?, in graph: Graph) throws -> Tensor
    /// Samples from noise (rows×noiseFeatures, i.i.d. N(0,1)) and their log q, rows×features and rows×1.
    func sample(noise: Tensor, context: Tensor?, in graph: Graph) throws -> (samples: Tensor, logProb: Tensor)
    /// Data-dependent initialization (ActNorm, say) from the standardized training rows; the
    /// default does nothing.
    func initialize(store: ParameterStore, data: InitializationData) throws
    /// Whether `NeuralEstimator` z-scores y with the training data's statistics (default yes);
    /// a density with preprocessing of its own (pixel levels, say) sees y as given.
    var standardizesData: Bool { get }
    /// Refuses training rows the density cannot model (pixels outside its levels, say), naming
    /// the first offending row; the default accepts any finite rows.
    func validate(_ y: FloatRows) throws
}

public extension NeuralDensity {
    func initialize(store: ParameterStore, data: InitializationData) throws {}
    var standardizesData: Bool { true }
    func validate(_ y: FloatRows) throws {}
}

public extension DensityEstimator {
    /// Estimators that keep their data in memory anyway read the rows as arrays.
    @discardableResult
    func fit(rows y: FloatRows, context: FloatRows?, configuration: TrainingConfiguration,
             checkpoint: URL?, resume: Bool, progress: ((EpochRecord) -> Void)?) throws -> [EpochRecord] {
        try fit(y.array, context: context?.array, configuration: configuration, checkpoint: checkpoint,
                resume: resume, progress: progress)
    }
}

/// The training rows, z-scored as the model sees them, row range by row range: a data set may be
/// larger than memory, so nothing standardizes it whole.
public struct InitializationData {
    public let rows: Int
    let y: FloatRows
    let context: FloatRows?
    let yScaler: Standardize
    let contextScaler: Standardize?

    /// Standardized y of rows `range`, row-major.
    public func y(_ range: Range<Int>) -> [Float] { yScaler.standardize(y.rows(range)) }
    /// Standardized context of rows `range`, or nil for an unconditional model.
    public func context(_ range: Range<Int>) -> [Float]? {
        guard let context, let contextScaler else { return nil }
        return contextScaler.standardize(context.rows(range))
    }
}

/// A neural density whose sampler is not a graph (an MDN picks a component per sample): it
/// draws samples on the host from the trained parameters. y and context are standardized.
public protocol HostSampledDensity: NeuralDensity {
    /// `count` standardized samples for one standardized context row (nil if unconditional).
    func sampleOnHost(_ count: Int, context: [Float]?, store: ParameterStore, seed: UInt64) throws -> [Float]
}

public extension HostSampledDensity {
    var noiseFeatures: Int { features }
    func sample(noise: Tensor, context: Tensor?, in graph: Graph) throws -> (samples: Tensor, logProb: Tensor) {
        throw SBIError.invalidArgument("this density samples on the host; use NeuralEstimator.sample")
    }
}
