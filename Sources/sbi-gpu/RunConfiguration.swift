import Foundation
import SBIBackend
import SBIInference
import SBIModels

/// RUN/config.json: what `train` did, so that `sample`, `log-prob` and `diagnose` know the
/// method, the prior and the shapes without being told again.
struct RunConfiguration: Codable {
    var method: String
    var estimator: String
    var task: String?
    var thetaFile: String?
    var xFile: String?
    var simulations: Int
    var parameterNames: [String]
    var thetaDimension: Int
    var observationShape: [Int]
    /// The prior of θ (nil for a density model, which has none).
    var prior: Prior?
    var priorSource: String
    var device: String
    var epochs: Int
    var batchSize: Int
    var learningRate: Float
    var validationFraction: Double
    var patience: Int
    var seed: UInt64
    var hidden: [Int]
    var transforms: Int
    var weightDecay: Float?
    var schedule: String?
    /// `--averaging` epochs; nil or 0: no averaging.
    var averaging: Double?
    /// Flows: `--dropout` and whether the conditional affine layer was used.
    var dropout: Float?
    /// How `--dropout auto` chose, when it trained twice.
    var dropoutChoice: String?
    var conditionalAffine: Bool?
    /// Flows: the embedding of the conditioning data that `--embedding` chose.
    var embedding: String?
    var trainingSeconds: Double?
    var epochsRun: Int?
    var bestValidationLoss: Double?
    /// Density models of images: the pixel levels, and the best validation loss in bits/dim.
    var levels: Int?
    var bestValidationBitsPerDimension: Double?

    /// The prior, refusing a density model (which has none) for commands that need one.
    func requirePrior(_ command: String) throws -> Prior {
        guard let prior else {
            throw ValidationError("\(command): this run is a \(method) model of images, not a posterior; use `sbi-gpu sample --model RUN --num N` or `sbi-gpu log-prob --model RUN --data IMAGES.npy`")
        }
        return prior
    }

    /// RUN/model.safetensors, checked against this configuration: the estimator and the widths of
    /// its θ and x must be those config.json records, or the run directory is inconsistent (an
    /// edited or mixed-up file) and every later shape check would trust the wrong one.
    func loadEstimator(from directory: URL, backend: Backend) throws -> DensityEstimator {
        let url = directory.appendingPathComponent("model.safetensors")
        let estimator = try Estimators.load(from: url, backend: backend)
        let config = directory.appendingPathComponent("config.json").path
        guard estimator.name == self.estimator else {
            throw DataError("\(config): field 'estimator' is '\(self.estimator)' but \(url.path) holds a \(estimator.name) model; the run directory is inconsistent")
        }
        let x = observationShape.reduce(1, *)
        // NPE models θ given x; NLE and density models model x (the images) given θ (or nothing).
        let (modelled, given) = method == "npe" ? (("thetaDimension", thetaDimension), ("observationShape", x))
            : (("observationShape", x), ("thetaDimension", thetaDimension))
        for (field, recorded, actual) in [(modelled.0, modelled.1, estimator.features), (given.0, given.1, estimator.contextFeatures)]
        where recorded != actual {
            let value = field == "observationShape" ? "\(observationShape) (\(x) values)" : "\(recorded)"
            throw DataError("\(config): field '\(field)' is \(value) but \(url.path) holds a model of \(actual) values there; the run directory is inconsistent")
        }
        return estimator
    }

    static func load(run: String) throws -> (RunConfiguration, URL) {
        let directory = URL(fileURLWithPath: run, isDirectory: true)
        let url = directory.appendingPathComponent("config.json")
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw MissingInput("--model \(run): \(url.path) is missing; point --model at a directory written by `sbi-gpu train`")
        }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let configuration: RunConfiguration
        do { configuration = try decoder.decode(RunConfiguration.self, from: data) } catch {
            throw DataError("--model \(run): \(url.path) is not a valid run configuration: \(describe(error))")
        }
        guard ["npe", "nle", "density"].contains(configuration.method) else {
            throw DataError("--model \(run): \(url.path) field 'method' is '\(configuration.method)'; expected npe, nle or density")
        }
        return (configuration, directory)
    }
}

import ArgumentParser

/// A decoding failure in words, naming the JSON field (Swift's own text is a multi-line dump).
func describe(_ error: Error) -> String {
    func field(_ path: [CodingKey], _ key: CodingKey? = nil) -> String {
        let keys = (path + (key.map { [$0] } ?? [])).map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
        return keys.isEmpty ? "the top level" : "field '\(keys.joined(separator: "."))'"
    }
    guard let error = error as? DecodingError else { return "\(error)" }
    switch error {
    case let .keyNotFound(key, context): return "\(field(context.codingPath, key)) is missing"
    case let .typeMismatch(type, context): return "\(field(context.codingPath)) should hold a \(type)"
    case let .valueNotFound(type, context): return "\(field(context.codingPath)) should hold a \(type), not null"
    case let .dataCorrupted(context):
        return context.codingPath.isEmpty ? "not valid JSON" : "\(field(context.codingPath)): \(context.debugDescription)"
    @unknown default: return "\(error)"
    }
}
