import Foundation
import SBIData
import SBIBackend
import SBIGraph
import SBIModels

/// NPE learns q(θ | x); NLE learns q(x | θ).
public enum InferenceMethod: String, Sendable, CaseIterable {
    case npe, nle
}

/// The policy by which an estimator is built and trained from simulated pairs: the defaults
/// that hold for any task (batch size by data size, parameter averaging, the embedding rule,
/// automatic dropout), in one place, so that a Swift caller of `NPE.train` or `NLE.train` gets
/// exactly the model that `sbi-gpu train` writes.
public struct EstimatorTraining: Sendable {
    public var method: InferenceMethod = .npe
    /// A name of `Estimators.names`.
    public var estimator = "nsf"
    /// The architecture. `embedding` here is ignored: `embedding` below decides it.
    public var options = EstimatorOptions()
    public var embedding = Embedding.automatic
    /// A fixed dropout rate for flows, or nil for the automatic rule (`automaticDropout`).
    public var dropout: Float?
    /// The training configuration; nil fields of it come from `configuration(rows:)`.
    public var epochs = 300
    public var batchSize: Int?
    public var learningRate: Float = 1e-3
    public var weightDecay: Float = 0
    public var schedule = LearningRateSchedule.constant
    /// Parameter averaging's longest window in epochs (0: none).
    public var averagingEpochs = 2.0
    public var validationFraction = 0.1
    public var patience = 20
    public var seed: UInt64 = 0
    /// Bytes of device memory the training data may take; a larger set streams from the host
    /// (memory-mapped files stay on disk). nil: half the backend's memory.
    public var dataBudget: Int?

    public init() {}

    /// How the conditioning data is embedded before a flow's transforms.
    public enum Embedding: Sendable, Equatable {
        /// A CNN (`cnn`) when each row of the conditioning data is an image, else an MLP of
        /// `automaticEmbedding` widths when it has 100 or more features (long series), else none.
        case automatic
        case none
        /// An MLP of these widths, the last being the embedded size.
        case widths([Int])
        /// An MLP of `automaticEmbedding` widths.
        case mlp
        /// `ConvolutionalEmbedding.automatic` for the image shape; the data must be images.
        case cnn
        /// The same blocks, each with a residual unit (a small ResNet); the data must be images.
        case resnet
    }

    /// The widths `.automatic` gives data of 100 or more features.
    public static let automaticEmbedding = [256, 64]
    /// The rate the automatic dropout rule tries: sbi's flows offer dropout, nflows' nets take a
    /// rate; 0.2 was the better of 0.1 and 0.2 on the one overfitting case screened
    /// (Benchmarks/README.md).
    public static let automaticDropout: Float = 0.2

    /// The image a row of this shape holds, (height, width, channels): H×W or H×W×C (channels
    /// last, at most 4) with both sides at least 8; nil for vectors and other arrays.
    public static func image(rowShape: [Int]) -> (height: Int, width: Int, channels: Int)? {
        guard rowShape.count == 2 || (rowShape.count == 3 && (1...4).contains(rowShape[2])),
              rowShape[0] >= 8, rowShape[1] >= 8 else { return nil }
        return (rowShape[0], rowShape[1], rowShape.count == 3 ? rowShape[2] : 1)
    }

    /// The embedding of conditioning data whose rows have `rowShape` ([features] for vectors):
    /// an MLP's widths or a CNN, or neither.
    public func contextEmbedding(rowShape: [Int]) throws -> (widths: [Int]?, cnn: ConvolutionalEmbedding?) {
        let features = rowShape.reduce(1, *), image = Self.image(rowShape: rowShape)
        func cnn(residual: Bool = false) throws -> ConvolutionalEmbedding {
            guard let image else {
                throw SBIError.invalidArgument("a CNN embedding needs images (rows of H×W or H×W×C with sides of at least 8); the conditioning data's rows are \(rowShape.map(String.init).joined(separator: "×"))")
            }
            return .automatic(height: image.height, width: image.width, channels: image.channels, residual: residual)
        }
        switch embedding {
        case .automatic:
            if image != nil { return (nil, try cnn()) }
            return (features >= 100 ? Self.automaticEmbedding : nil, nil)
        case .none: return (nil, nil)
        case let .widths(widths): return (widths, nil)
        case .mlp: return (Self.automaticEmbedding, nil)
        case .cnn: return (nil, try cnn())
        case .resnet: return (nil, try cnn(residual: true))
        }
    }

    /// The embedding `options` give `estimator` (flows take an MLP or a CNN, MDNs a CNN), in words.
    static func embeddingDescription(_ options: EstimatorOptions, estimator: String) -> String? {
        let isFlow = FlowConfiguration.Kind(rawValue: estimator) != nil
        guard isFlow || estimator == "mdn" else { return nil }
        func list(_ values: [Int]) -> String { values.map(String.init).joined(separator: ",") }
        if let cnn = options.convolutionalEmbedding { return cnn.summary }
        if isFlow, let widths = options.embedding { return "mlp: \(list(widths))" }
        return "none"
    }

    /// Large data sets get larger batches: the device stays busy and an epoch costs fewer steps.
    public static func batchSize(rows: Int) -> Int {
        rows >= 50_000 ? 512 : (rows >= 2_000 ? 256 : max(16, rows / 10))
    }

    public func configuration(rows: Int) -> TrainingConfiguration {
        TrainingConfiguration(epochs: epochs, batchSize: batchSize ?? Self.batchSize(rows: rows), learningRate: learningRate,
                              weightDecay: weightDecay, maxGradientNorm: 5, schedule: schedule,
                              validationFraction: validationFraction, patience: patience, seed: seed,
                              averagingEpochs: averagingEpochs > 0 ? averagingEpochs : nil)
    }

    /// Whether a run that early stopping ended overfitted: its best epoch (patience epochs before
    /// the last) came within the first `patience` epochs, so it spent as long getting worse as better.
    public static func overfitted(_ history: [EpochRecord], _ configuration: TrainingConfiguration) -> Bool {
        history.count < configuration.epochs && history.count <= 2 * configuration.patience
    }

    /// What a training produced.
    public struct Result {
        public let estimator: DensityEstimator
        public let history: [EpochRecord]
        public let configuration: TrainingConfiguration
        /// Flows: the dropout rate of the model kept.
        public let dropout: Float
        /// Flows with automatic dropout that overfitted: which model was kept, and why.
        public let dropoutChoice: String?
        /// What embedded the conditioning data, as config.json records it: "cnn: channels
        /// 8,16,32, head 128,64", "mlp: 256,64" or "none"; nil for estimators that take none.
        public let embedding: String?
    }

    /// What training tells its caller as it goes.
    public struct Events {
        /// Each epoch of attempt 0 (without dropout) or 1 (again with dropout).
        public var epoch: (_ attempt: Int, EpochRecord) -> Void = { _, _ in }
        /// Why a second attempt starts, and which model was kept after it.
        public var notice: (String) -> Void = { _ in }
        public init() {}
    }

    /// Builds the estimator and trains it on rows of θ (`thetaDimension` each) and x
    /// (`xDimension` each); `xShape`, when given, is the shape of one row of x (H×W for images). With `checkpointDirectory`, each epoch is checkpointed there
    /// (checkpoint.safetensors, and checkpoint-dropout.safetensors for the second attempt) and
    /// `resume` continues a killed run.
    public func train(theta: [Float], thetaDimension: Int, x: [Float], xDimension: Int, xShape: [Int]? = nil,
                      backend: Backend, checkpointDirectory: URL? = nil, resume: Bool = false,
                      events: Events = Events()) throws -> Result {
        guard thetaDimension > 0, xDimension > 0, theta.count % thetaDimension == 0, x.count % xDimension == 0,
              theta.count / thetaDimension == x.count / xDimension else {
            throw SBIError.sizeMismatch("θ (\(theta.count) values of \(thetaDimension)) and x (\(x.count) values of \(xDimension)) must have as many rows")
        }
        return try train(theta: FloatRows(theta, cols: thetaDimension), x: FloatRows(x, cols: xDimension),
                         xShape: xShape, backend: backend, checkpointDirectory: checkpointDirectory, resume: resume, events: events)
    }

    /// The same from rows that may be memory-mapped files (`FloatRows(NumPyArray)`).
    public func train(theta: FloatRows, x: FloatRows, xShape: [Int]? = nil, backend: Backend,
                      checkpointDirectory: URL? = nil, resume: Bool = false, events: Events = Events()) throws -> Result {
        guard theta.rows == x.rows else {
            throw SBIError.sizeMismatch("θ has \(theta.rows) rows and x \(x.rows); each row of θ must pair with a row of x")
        }
        let xShape = xShape ?? [x.cols]
        guard xShape.reduce(1, *) == x.cols else {
            throw SBIError.sizeMismatch("x rows of shape \(xShape) hold \(xShape.reduce(1, *)) values, but x has \(x.cols) per row")
        }
        let rows = theta.rows, thetaDimension = theta.cols, xDimension = x.cols
        let (features, context) = method == .npe ? (thetaDimension, xDimension) : (xDimension, thetaDimension)
        let (y, c) = method == .npe ? (theta, x) : (x, theta)
        var options = self.options
        (options.embedding, options.convolutionalEmbedding) = try contextEmbedding(rowShape: method == .npe ? xShape : [thetaDimension])
        options.dropout = dropout ?? 0
        let configuration = configuration(rows: rows)
        func attempt(_ index: Int, _ options: EstimatorOptions, _ file: String) throws -> (DensityEstimator, [EpochRecord]) {
            let model = try Estimators.make(estimator, features: features, contextFeatures: context, backend: backend,
                                            options: options)
            (model as? NeuralEstimator)?.dataBudget = dataBudget
            let history = try model.fit(rows: y, context: c, configuration: configuration,
                                        checkpoint: checkpointDirectory?.appendingPathComponent(file), resume: resume,
                                        progress: { events.epoch(index, $0) })
            return (model, history)
        }
        var (model, history) = try attempt(0, options, "checkpoint.safetensors")
        var dropoutUsed = options.dropout ?? 0, dropoutChoice: String?
        let isFlow = FlowConfiguration.Kind(rawValue: estimator) != nil
        if isFlow && dropout == nil && Self.overfitted(history, configuration) {
            let withoutLoss = history.map(\.validationLoss).min() ?? .infinity
            events.notice(String(format: "the validation loss was best at epoch %d of %d: training again with dropout %.1f",
                                 history.count - configuration.patience, history.count, Self.automaticDropout))
            options.dropout = Self.automaticDropout
            let (second, secondHistory) = try attempt(1, options, "checkpoint-dropout.safetensors")
            let withLoss = secondHistory.map(\.validationLoss).min() ?? .infinity
            let kept = withLoss < withoutLoss
            dropoutChoice = String(format: "auto: %@ (best validation loss %.4f with dropout %.1f, %.4f without)",
                                   kept ? "dropout" : "none", withLoss, Self.automaticDropout, withoutLoss)
            if kept { (model, history, dropoutUsed) = (second, secondHistory, Self.automaticDropout) }
            events.notice("kept the model \(kept ? "with" : "without") dropout")
        }
        return Result(estimator: model, history: history, configuration: configuration, dropout: dropoutUsed,
                      dropoutChoice: dropoutChoice, embedding: Self.embeddingDescription(options, estimator: estimator))
    }
}

extension EstimatorTraining {
    /// This policy's training with `method` set (what `NPE.train` and `NLE.train` run).
    func train(_ method: InferenceMethod, theta: [Float], thetaDimension: Int, x: [Float], xDimension: Int,
               xShape: [Int]?, backend: Backend, checkpointDirectory: URL?, resume: Bool, events: Events) throws -> Result {
        var training = self
        training.method = method
        return try training.train(theta: theta, thetaDimension: thetaDimension, x: x, xDimension: xDimension,
                                  xShape: xShape, backend: backend, checkpointDirectory: checkpointDirectory, resume: resume, events: events)
    }
}

public extension NPE {
    /// Builds and trains q(θ | x) as `sbi-gpu train --method npe` does (same defaults, same
    /// model bytes for the same data and seed); `training.method` is set to `.npe`.
    static func train(theta: [Float], thetaDimension: Int, x: [Float], xDimension: Int, xShape: [Int]? = nil,
                      prior: ParameterPrior?,
                      training: EstimatorTraining = EstimatorTraining(), backend: Backend,
                      checkpointDirectory: URL? = nil, resume: Bool = false,
                      events: EstimatorTraining.Events = .init()) throws -> (NPE, EstimatorTraining.Result) {
        let result = try training.train(.npe, theta: theta, thetaDimension: thetaDimension, x: x, xDimension: xDimension,
                                        xShape: xShape, backend: backend, checkpointDirectory: checkpointDirectory, resume: resume, events: events)
        return (NPE(estimator: result.estimator, prior: prior), result)
    }
}

public extension NLE {
    /// Builds and trains q(x | θ) as `sbi-gpu train --method nle` does; `training.method` is set to `.nle`.
    static func train(theta: [Float], thetaDimension: Int, x: [Float], xDimension: Int, xShape: [Int]? = nil,
                      prior: ParameterPrior,
                      training: EstimatorTraining = EstimatorTraining(), backend: Backend,
                      checkpointDirectory: URL? = nil, resume: Bool = false,
                      events: EstimatorTraining.Events = .init()) throws -> (NLE, EstimatorTraining.Result) {
        let result = try training.train(.nle, theta: theta, thetaDimension: thetaDimension, x: x, xDimension: xDimension,
                                        xShape: xShape, backend: backend, checkpointDirectory: checkpointDirectory, resume: resume, events: events)
        return (NLE(estimator: result.estimator, prior: prior), result)
    }
}
