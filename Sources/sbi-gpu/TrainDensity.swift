import ArgumentParser
import Foundation
import SBIData
import SBIPlots
import SBIBackend
import SBIGraph
import SBIInference
import SBIModels

/// Reads images for `train --method density` and `log-prob`: a .npy (or FILE.npz:NAME) of
/// N×H×W, N×H×W×C or (channels first) N×C×H×W, and its pixel levels.
func loadImages(_ path: String, option: String, channelsFirst: Bool, levels: Int?) throws -> (ImageRows, levels: Int) {
    try requireInputFile(path, option: option)
    let array: NumPyArray
    do {
        if let colon = path.range(of: ".npz:") {
            array = try NumPyArchive(URL(fileURLWithPath: String(path[..<colon.lowerBound]) + ".npz"))
                .array(named: String(path[colon.upperBound...]))
        } else {
            array = try NumPy.read(URL(fileURLWithPath: path))
        }
    } catch {
        throw DataError("\(option) \(path): \(error)")
    }
    guard let levels = levels ?? ImageRows.defaultLevels(array.dtype) else {
        throw DataError("\(option) \(path): \(array.dtype) pixels need --levels (the count of integer values 0…levels−1 they take); uint8 images default to 256")
    }
    do {
        let images = try ImageRows(array, channelsFirst: channelsFirst)
        try images.checkLevels(levels)
        return (images, levels)
    } catch {
        throw DataError("\(option) \(path): \(error)")
    }
}

extension Train {
    /// `train --method density`: a pixel-space flow on the images of --data.
    func runDensity(backend: Backend, started: Date) throws {
        let (images, levels) = try loadImages(data!, option: "--data", channelsFirst: channelsFirst, levels: self.levels)
        var contextRows: FloatRows?
        if let context {
            let matrix = try Matrix.loadVectors(context, option: "--context")
            guard matrix.rows == images.count else {
                throw DataError("--context \(context) has \(matrix.rows) rows for the \(images.count) images of --data; give one per image")
            }
            contextRows = matrix.data
        }
        var policy = EstimatorTraining()
        policy.estimator = resolvedEstimator
        policy.options = EstimatorOptions(hidden: try hiddenWidths(), transforms: transforms, bins: bins, seed: training.seed)
        policy.options.coupling = GlowCouplingTransform(rawValue: coupling)
        policy.options.scales = scales
        policy.options.preprocessing = ImagePreprocessing(rawValue: preprocessing)
        policy.dataBudget = try deviceMemoryBudget()
        try training.apply(to: &policy)
        let directory = try makeDirectory(out)
        let dimensions = images.pixels.cols
        let bitsPerNat = 1 / (Double(dimensions) * log(2.0))
        let configuration = policy.configuration(rows: images.count)
        let batch = policy.batchSize ?? EstimatorTraining.imageBatchSize(images: images.count)
        let trainingImages = images.count - Int((Double(images.count) * configuration.validationFraction).rounded())
        let progress = ProgressBar(total: configuration.epochs, quiet: training.quiet, unit: "bits/dim", scale: bitsPerNat,
                                   itemsPerEpoch: trainingImages / batch * batch, itemName: "images")
        if !training.quiet {
            printError("training \(resolvedEstimator) on \(backend.kind) (\(backend.deviceName)): \(images.count) images of \(images.height)×\(images.width)×\(images.channels), \(levels) levels"
                       + (contextRows.map { ", context \($0.cols)-d" } ?? "") + ", batch \(batch)")
        }
        var events = EstimatorTraining.Events()
        events.epoch = { _, record in progress.update(record) }
        let trainingStarted = Date()
        let result = try policy.trainDensity(images: images, context: contextRows, levels: levels, backend: backend,
                                             checkpointDirectory: directory, resume: training.resume, events: events)
        let trainingSeconds = Date().timeIntervalSince(trainingStarted)
        try result.estimator.save(to: directory.appendingPathComponent("model.safetensors"))
        let history = result.history, best = history.map(\.validationLoss).min()
        var run = RunConfiguration(
            method: method, estimator: resolvedEstimator, task: nil, thetaFile: context, xFile: data,
            simulations: images.count, parameterNames: [], thetaDimension: contextRows?.cols ?? 0,
            observationShape: images.shape, prior: nil, priorSource: "none (density model)",
            device: "\(backend.kind): \(backend.deviceName)", epochs: configuration.epochs, batchSize: batch,
            learningRate: configuration.learningRate, validationFraction: configuration.validationFraction,
            patience: configuration.patience, seed: configuration.seed, hidden: try hiddenWidths(),
            transforms: transforms ?? GlowConfiguration(height: 1, width: 1, channels: 1).steps)
        run.weightDecay = configuration.weightDecay
        run.schedule = training.schedule
        run.averaging = configuration.averagingEpochs ?? 0
        run.trainingSeconds = trainingSeconds
        run.epochsRun = history.count
        run.bestValidationLoss = best
        run.levels = levels
        run.bestValidationBitsPerDimension = best.map { $0 * bitsPerNat }
        try writeJSON(run, to: directory.appendingPathComponent("config.json"))
        try writeHistory(history, to: directory, scale: bitsPerNat, unit: "bits/dim")
        progress.finish(String(format: "trained %d epochs in %.1f s (%.1f s total); best validation %.4f bits/dim; wrote ",
                               history.count, trainingSeconds, Date().timeIntervalSince(started), (best ?? .nan) * bitsPerNat)
                        + directory.path)
    }
}
