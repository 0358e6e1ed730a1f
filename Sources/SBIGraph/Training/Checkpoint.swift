import Foundation
import SBIData
import SBIBackend

/// Checkpoints are safetensors files that Python's `safetensors` reads: one F32 tensor per
/// parameter (its own name, its shape as declared in the graph), optionally the optimizer's moments
/// (`optimizer.m.NAME`, `optimizer.v.NAME`) and the best parameters so far (`best.NAME`), and
/// string metadata (`__metadata__`): the model configuration, the training configuration and
/// the training state as JSON.
public enum Checkpoint {
    public static let formatKey = "format"
    public static let formatValue = "sbi-gpu-checkpoint-1"

    public static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }()
    public static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }()

    public static func json<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try encoder.encode(value), as: UTF8.self)
    }
    public static func decode<T: Decodable>(_ type: T.Type, _ text: String?, key: String, path: String) throws -> T {
        guard let text else { throw SBIError.invalidArgument("\(path): checkpoint metadata lacks '\(key)'") }
        do { return try decoder.decode(type, from: Data(text.utf8)) } catch {
            throw SBIError.invalidArgument("\(path): checkpoint metadata '\(key)' is not valid: \(error)")
        }
    }
}

public extension ParameterStore {
    /// The parameters (and, from `extra`, other buffers laid out like them under a name prefix)
    /// as safetensors tensors.
    func safetensors(extra: [(prefix: String, buffer: Buffer)] = []) throws -> [String: SafetensorsTensor] {
        var tensors: [String: SafetensorsTensor] = [:]
        for (prefix, buffer) in [("", values)] + extra {
            for e in entries {
                tensors[prefix + e.name] = try SafetensorsTensor(floats: try read(e.name, from: buffer), shape: e.shape)
            }
        }
        return tensors
    }

    /// Loads every parameter (and `extra` buffers) from a file, checking names, shapes, dtypes
    /// and finiteness.
    func load(_ file: SafetensorsFile, path: String, extra: [(prefix: String, buffer: Buffer)] = []) throws {
        for (prefix, buffer) in [("", values)] + extra {
            for e in entries {
                guard let tensor = file[prefix + e.name] else {
                    throw SBIError.invalidArgument("\(path): tensor '\(prefix + e.name)' is missing")
                }
                guard tensor.shape == e.shape || tensor.elementCount == e.count && tensor.shape.count <= 1 else {
                    throw SBIError.sizeMismatch("\(path): tensor '\(prefix + e.name)' has shape \(tensor.shape), the model expects \(e.shape)")
                }
                let values: [Float]
                do { values = try tensor.floats } catch {
                    throw SBIError.invalidArgument("\(path): tensor '\(prefix + e.name)': \(error)")
                }
                // A damaged file's NaN or inf weights would compute silently wrong values.
                if let bad = values.firstIndex(where: { !$0.isFinite }) {
                    throw SBIError.invalidArgument("\(path): tensor '\(prefix + e.name)' holds a non-finite value (\(values[bad])) at element \(bad); the model file is damaged")
                }
                try write(e.name, values, to: buffer)
            }
        }
    }

    /// Writes the parameters and `metadata` atomically (temporary file, then rename).
    func save(to url: URL, metadata: [String: String] = [:]) throws {
        var meta = metadata
        meta[Checkpoint.formatKey] = Checkpoint.formatValue
        try SafetensorsFile(tensors: try safetensors(), metadata: meta).write(to: url)
    }
}

extension Trainer {
    /// Writes the full training state: parameters, moments, best parameters, configuration, state.
    func save(to url: URL) throws {
        var metadata = modelMetadata
        metadata[Checkpoint.formatKey] = Checkpoint.formatValue
        metadata["training.configuration"] = try Checkpoint.json(configuration)
        metadata["training.state"] = try Checkpoint.json(state)
        let tensors = try store.safetensors(extra: optimizerState)
        try SafetensorsFile(tensors: tensors, metadata: metadata).write(to: url)
    }

    /// The buffers besides the parameters that a resumed run needs, by tensor-name prefix.
    var optimizerState: [(String, Buffer)] {
        [("optimizer.m.", store.firstMoment), ("optimizer.v.", store.secondMoment), ("best.", bestValues)]
            + (averageValues.map { [("average.", $0)] } ?? [])
    }

    /// Restores a checkpoint written by `save`; refuses one from a different configuration.
    func restore(from url: URL) throws {
        let file = try SafetensorsFile.read(from: url)
        let path = url.path
        guard file.metadata[Checkpoint.formatKey] == Checkpoint.formatValue else {
            throw SBIError.invalidArgument("\(path): not an sbi-gpu checkpoint (metadata '\(Checkpoint.formatKey)' should be '\(Checkpoint.formatValue)')")
        }
        // The model first: another estimator or architecture would otherwise surface as a
        // missing or misshapen tensor.
        if let want = modelMetadata["estimator"], let have = file.metadata["estimator"], want != have {
            throw SBIError.invalidArgument("\(path): the checkpoint is a \(have) model and this run asks for \(want); resume with the same estimator, or train into another directory")
        }
        for (key, value) in modelMetadata.sorted(by: { $0.key < $1.key }) where key.hasSuffix(".configuration") && file.metadata[key] != value {
            throw SBIError.invalidArgument("\(path): the checkpoint's architecture ('\(key)') differs from this run's; resume with the same architecture options, or train into another directory")
        }
        let saved = try Checkpoint.decode(TrainingConfiguration.self, file.metadata["training.configuration"],
                                          key: "training.configuration", path: path)
        var comparable = saved
        comparable.epochs = configuration.epochs  // a resumed run may train for longer
        guard comparable == configuration else {
            throw SBIError.invalidArgument("\(path): checkpoint was trained with a different configuration (\(saved)); resume with the same options")
        }
        let restored = try Checkpoint.decode(State.self, file.metadata["training.state"], key: "training.state", path: path)
        try store.load(file, path: path, extra: optimizerState)
        state = restored
        if state.epoch < configuration.epochs && configuration.epochs > saved.epochs { state.stoppedEarly = false }
    }
}
