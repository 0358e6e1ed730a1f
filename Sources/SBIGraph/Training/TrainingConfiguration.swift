import Foundation
import SBIData

/// How the learning rate moves over training.
public enum LearningRateSchedule: Codable, Equatable, Sendable, CustomStringConvertible {
    case constant
    /// Cosine decay from the base rate to `minimumFactor`·base over all planned steps.
    case cosine(minimumFactor: Float)
    /// Multiply the rate by `factor` after `patience` epochs without a better validation loss.
    case stepOnPlateau(factor: Float, patience: Int)

    public var description: String {
        switch self {
        case .constant: return "constant"
        case let .cosine(minimum): return "cosine(min ×\(minimum))"
        case let .stepOnPlateau(factor, patience): return "plateau(×\(factor) after \(patience))"
        }
    }
}

/// Everything that decides a training run besides the model and the data. Two runs with equal
/// configurations, data and backend produce the same parameters.
public struct TrainingConfiguration: Codable, Equatable, Sendable {
    public var epochs = 200
    public var batchSize = 256
    public var learningRate: Float = 1e-3
    /// Decoupled weight decay (AdamW); 0 gives Adam.
    public var weightDecay: Float = 0
    /// Clip the global gradient norm to this; nil disables clipping.
    public var maxGradientNorm: Float? = 5
    public var schedule: LearningRateSchedule = .constant
    /// Share of the rows held out for validation (early stopping, plateau schedule).
    public var validationFraction: Double = 0.1
    /// Stop after this many epochs without a better validation loss.
    public var patience = 20
    public var seed: UInt64 = 0
    /// Longest window, in epochs, of an exponential moving average of the parameters (see
    /// `Trainer.averageDecay`); validation and the trained model use the average, early stopping
    /// the last iterate. nil: no average, the last iterate is validated and kept.
    public var averagingEpochs: Double? = nil

    public init(epochs: Int = 200, batchSize: Int = 256, learningRate: Float = 1e-3, weightDecay: Float = 0,
                maxGradientNorm: Float? = 5, schedule: LearningRateSchedule = .constant,
                validationFraction: Double = 0.1, patience: Int = 20, seed: UInt64 = 0,
                averagingEpochs: Double? = nil) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.weightDecay = weightDecay
        self.maxGradientNorm = maxGradientNorm
        self.schedule = schedule
        self.validationFraction = validationFraction
        self.patience = patience
        self.seed = seed
        self.averagingEpochs = averagingEpochs
    }
}

/// One epoch of the loss history.
public struct EpochRecord: Codable, Equatable, Sendable {
    public let epoch: Int
    public let trainingLoss: Double
    public let validationLoss: Double
    public let learningRate: Float
    public let seconds: Double

    public init(epoch: Int, trainingLoss: Double, validationLoss: Double, learningRate: Float, seconds: Double) {
        self.epoch = epoch
        self.trainingLoss = trainingLoss
        self.validationLoss = validationLoss
        self.learningRate = learningRate
        self.seconds = seconds
    }
}

/// Named columns of equal row count: the data set a model trains on, in memory or mapped from
/// files (see `FloatRows`; the trainer streams it in batches when it does not fit its device
/// budget). Column names match the graph's input names.
public struct TrainingData {
    public struct Column {
        public let name: String
        public let values: FloatRows
        public var cols: Int { values.cols }
        public init(name: String, values: FloatRows) {
            self.name = name
            self.values = values
        }
        public init(name: String, values: [Float], cols: Int) {
            self.init(name: name, values: FloatRows(values, cols: cols))
        }
    }

    public let columns: [Column]
    public let rows: Int

    public init(_ columns: [Column]) throws {
        guard let first = columns.first, first.cols > 0 else {
            throw SBIError.invalidArgument("training data needs at least one non-empty column")
        }
        let rows = first.values.rows
        for c in columns {
            guard c.values.rows == rows else {
                throw SBIError.sizeMismatch("column \(c.name) has \(c.values.count) values; expected \(rows)×\(c.cols) like \(first.name)")
            }
            if let bad = c.values.firstNonFinite() {
                throw SBIError.invalidArgument("column \(c.name) has a non-finite value at row \(bad.row), feature \(bad.column)")
            }
        }
        self.columns = columns
        self.rows = rows
    }

    /// Bytes the columns take.
    public var byteCount: Int { columns.reduce(0) { $0 + $1.values.count * 4 } }
}

import SBIBackend
