import Foundation
import SBIData
import SBIBackend
import SBIGraph
import SBIModels

/// Density estimation on images: q(x), or q(x | context) with a context vector per image (θ, a
/// class label), by a pixel-space flow (`Estimators.imageNames`). The same policy struct as NPE
/// and NLE, so the CLI and Swift callers train the same model; what differs for images is here.
public extension EstimatorTraining {
    /// Images per step when `batchSize` is nil: Glow's and normflows' 64, fewer for tiny sets.
    static func imageBatchSize(images: Int) -> Int { max(1, min(64, images / 10)) }

    /// Trains `estimator` (an image estimator) on `images` whose pixels are integers below
    /// `levels`. The loss is in nats per image; `BitsPerDimension` turns it into bits/dim.
    func trainDensity(images: ImageRows, context: FloatRows?, levels: Int, backend: Backend,
                      checkpointDirectory: URL? = nil, resume: Bool = false, events: Events = Events()) throws -> Result {
        guard Estimators.imageNames.contains(estimator) else {
            throw SBIError.invalidArgument("density estimation on images needs an image estimator (\(Estimators.imageNames.joined(separator: ", "))), not \(estimator)")
        }
        if let context, context.rows != images.count {
            throw SBIError.sizeMismatch("the context has \(context.rows) rows for \(images.count) images; give one row per image")
        }
        // The pixels' levels are the model's to check (GlowDensity.validate, when fitting).
        var options = self.options
        options.image = (images.height, images.width, images.channels)
        options.levels = levels
        var configuration = configuration(rows: images.count)
        configuration.batchSize = batchSize ?? Self.imageBatchSize(images: images.count)
        let model = try Estimators.make(estimator, features: images.pixels.cols, contextFeatures: context?.cols ?? 0,
                                        backend: backend, options: options)
        (model as? NeuralEstimator)?.dataBudget = dataBudget
        let history = try model.fit(rows: images.pixels, context: context, configuration: configuration,
                                    checkpoint: checkpointDirectory?.appendingPathComponent("checkpoint.safetensors"),
                                    resume: resume, progress: { events.epoch(0, $0) })
        return Result(estimator: model, history: history, configuration: configuration, dropout: 0, dropoutChoice: nil,
                      embedding: nil)
    }
}
