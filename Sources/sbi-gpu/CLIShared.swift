import ArgumentParser
import Foundation
import SBIData
import SBIBackend
import SBIGraph
import SBIInference

/// A row-major matrix read from a .npy file (images are flattened: rows × pixels). A large
/// float32 file stays memory-mapped (`data`), so training can stream it.
struct Matrix {
    var data: FloatRows
    var rows: Int
    var cols: Int
    var shape: [Int]
    /// The values as an array (a copy when the file is mapped).
    var values: [Float] { data.array }

    init(values: [Float], rows: Int, cols: Int, shape: [Int]) {
        data = FloatRows(values, cols: max(cols, 1))
        (self.rows, self.cols, self.shape) = (rows, cols, shape)
    }

    init(data: FloatRows, shape: [Int]) {
        self.data = data
        (rows, cols, self.shape) = (data.rows, data.cols, shape)
    }

    /// Reads `path` (a .npy file, or NAME from a .npz as `file.npz:NAME`) as `rows × cols`.
    static func load(_ path: String, option: String) throws -> Matrix {
        try requireInputFile(path, option: option)
        let array: NumPyArray
        do {
            if let colon = path.range(of: ".npz:") {
                let file = String(path[..<colon.lowerBound]) + ".npz"
                array = try NumPyArchive(URL(fileURLWithPath: file)).array(named: String(path[colon.upperBound...]))
            } else {
                array = try NumPy.read(URL(fileURLWithPath: path))
            }
        } catch {
            throw DataError("\(option) \(path): \(error)")
        }
        let shape = array.shape
        guard let rows = shape.first, rows > 0 else {
            throw DataError("\(option) \(path): expected an array with at least one row, got shape \(shape)")
        }
        let data: FloatRows
        if let floats = FloatRows(array) {  // float32: the file's bytes (mapped when large), not a copy
            data = floats
        } else {
            let values: [Float]
            do { values = try array.floats() } catch { throw DataError("\(option) \(path): \(error)") }
            guard !values.isEmpty else {
                throw DataError("\(option) \(path): expected an array with at least one value per row, got shape \(shape)")
            }
            data = FloatRows(values, cols: values.count / rows)
        }
        if let bad = data.firstNonFinite() {
            throw DataError("\(option) \(path): row \(bad.row) holds a non-finite value (NaN or inf); remove or impute such rows")
        }
        return Matrix(data: data, shape: shape)
    }

    /// `load` for data that is one vector per row (θ, a context, samples to plot): an array of
    /// more than two axes is refused rather than flattened into wider rows.
    static func loadVectors(_ path: String, option: String) throws -> Matrix {
        let matrix = try load(path, option: option)
        guard matrix.shape.count <= 2 else {
            throw DataError("\(option) \(path): expected one vector per row (N×D), got shape \(matrix.shape.map(String.init).joined(separator: "×")); select one slice, such as one observation's samples, first")
        }
        return matrix
    }

    /// `load` for observations of `shape` each: R×shape (R observations), or one observation
    /// of exactly `shape` (a single H×W image is one observation, not H rows).
    static func loadObservations(_ path: String, option: String, shape: [Int]) throws -> Matrix {
        let matrix = try load(path, option: option)
        let size = shape.reduce(1, *)
        if matrix.shape == shape && matrix.shape.count > 1 {
            return Matrix(data: FloatRows(matrix.values, cols: size), shape: [1] + shape)
        }
        guard matrix.cols == size else {
            throw DataError("\(option) \(path): rows have \(matrix.cols) values (shape \(matrix.shape.map(String.init).joined(separator: "×"))); expected observations of shape \(shape.map(String.init).joined(separator: "×")), one or R of them")
        }
        return matrix
    }

    func write(to path: String) throws {
        try Matrix.write(values, rows: rows, cols: cols, to: path)
    }

    static func write(_ values: [Float], rows: Int, cols: Int, to path: String) throws {
        try NumPy.write(try NumPyArray(floats: values, shape: [rows, cols]), to: URL(fileURLWithPath: path))
    }
}

/// Refuses, before any work, an output that a flag sizes beyond what this machine can hold:
/// `elements` float32 values (the product taken without overflow) against half the physical
/// memory, so that an absurd count is a one-line error naming the flag, not an allocation abort.
func requireMemory(for factors: [Int], flag: String, what: String) throws {
    var elements = 1
    for f in factors {
        let (product, overflow) = elements.multipliedReportingOverflow(by: max(f, 0))
        guard !overflow else { elements = .max; break }
        elements = product
    }
    let (bytes, overflow) = elements.multipliedReportingOverflow(by: 4)
    guard !overflow, bytes <= MemoryLimit.bytes else {
        throw ValidationError(String(format: "%@ asks for %@ of %@, more than half of this machine's %.1f GB of memory",
                                     flag, overflow ? "over 9 EB" : String(format: "%.1f GB", Double(bytes) / 1e9), what,
                                     Double(ProcessInfo.processInfo.physicalMemory) / 1e9))
    }
}

/// The options every training command shares.
struct TrainingOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Maximum passes over the training data.") var epochs = 300
    @Option(parsing: .unconditional, help: "Rows per gradient step.") var batchSize: Int?
    @Option(parsing: .unconditional, help: "Adam's learning rate.") var learningRate: Float = 1e-3
    @Option(parsing: .unconditional, help: "Decoupled weight decay (AdamW: each step shrinks weights by learning rate × this); 0 is plain Adam.") var weightDecay: Float = 0
    @Option(help: ArgumentHelp("Learning-rate schedule: constant, cosine (to 1% over --epochs), or plateau: halve the rate after --patience/2 epochs (plateau:EPOCHS: after EPOCHS) without a better validation loss.",
                               valueName: "constant|cosine|plateau[:EPOCHS]"))
    var schedule = "constant"
    @Option(parsing: .unconditional, help: "Average the parameters over the latest steps: an exponential moving average whose window grows with training (about a tenth of the steps so far) up to this many epochs. The saved model is the average with the best validation loss; early stopping watches the last step's parameters. 0: no averaging.")
    var averaging: Double = 2
    @Option(parsing: .unconditional, help: "Share of the rows held out for validation and early stopping.") var validationFraction = 0.1
    @Option(parsing: .unconditional, help: "Stop after this many epochs without a better validation loss.") var patience = 20
    @Option(parsing: .unconditional, help: "Seed of every random choice (initialization, split, shuffling, simulations).") var seed: UInt64 = 0
    @Flag(help: "Continue from RUN/checkpoint.safetensors if a killed run left one.") var resume = false
    @Flag(help: "No progress output.") var quiet = false

    func validate() throws {
        guard epochs > 0 else { throw ValidationError("--epochs must be positive") }
        if let batchSize, batchSize <= 0 { throw ValidationError("--batch-size must be positive") }
        guard learningRate > 0, learningRate.isFinite else { throw ValidationError("--learning-rate must be positive") }
        guard weightDecay >= 0, weightDecay.isFinite else { throw ValidationError("--weight-decay must be zero or positive") }
        _ = try learningRateSchedule()
        guard averaging >= 0, averaging.isFinite else { throw ValidationError("--averaging must be zero or positive") }
        guard validationFraction >= 0, validationFraction < 1 else { throw ValidationError("--validation-fraction must be in [0, 1)") }
        guard patience > 0 else { throw ValidationError("--patience must be positive") }
    }

    func learningRateSchedule() throws -> LearningRateSchedule {
        switch schedule {
        case "constant": return .constant
        case "cosine": return .cosine(minimumFactor: 0.01)
        case "plateau": return .stepOnPlateau(factor: 0.5, patience: max(1, patience / 2))
        default:
            if schedule.hasPrefix("plateau:"), let epochs = Int(schedule.dropFirst("plateau:".count)), epochs > 0 {
                return .stepOnPlateau(factor: 0.5, patience: epochs)
            }
            throw ValidationError("--schedule \(schedule): expected constant, cosine, plateau or plateau:EPOCHS")
        }
    }

    /// Sets the training fields of `policy` from these flags (the batch size stays the library's
    /// rule unless --batch-size is given).
    func apply(to policy: inout EstimatorTraining) throws {
        policy.epochs = epochs
        policy.batchSize = batchSize
        policy.learningRate = learningRate
        policy.weightDecay = weightDecay
        policy.schedule = try learningRateSchedule()
        policy.averagingEpochs = averaging
        policy.validationFraction = validationFraction
        policy.patience = patience
        policy.seed = seed
    }
}

/// A one-line progress bar on stderr: epoch, losses, elapsed time and ETA.
final class ProgressBar {
    let total: Int
    let quiet: Bool
    let interactive = isatty(STDERR_FILENO) != 0
    let started = Date()

    /// Losses are shown times `scale` in `unit` (bits/dim for images); with `itemsPerEpoch`, the
    /// throughput in `itemName`/s too.
    let unit: String, scale: Double, itemsPerEpoch: Int, itemName: String

    init(total: Int, quiet: Bool, unit: String = "loss", scale: Double = 1, itemsPerEpoch: Int = 0, itemName: String = "") {
        self.total = total
        self.quiet = quiet
        (self.unit, self.scale, self.itemsPerEpoch, self.itemName) = (unit, scale, itemsPerEpoch, itemName)
    }

    func update(_ record: EpochRecord) {
        guard !quiet else { return }
        let elapsed = Date().timeIntervalSince(started)
        let eta = elapsed / Double(record.epoch) * Double(total - record.epoch)
        let width = 24, filled = min(width, width * record.epoch / max(total, 1))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let line = String(format: "epoch %4d/%d ", record.epoch, total) + bar
            + String(format: " %@ %.4f  val %.4f  %.0fs elapsed, ≤%.0fs left", unit,
                     record.trainingLoss * scale, record.validationLoss * scale, elapsed, eta)
            + (itemsPerEpoch > 0 ? String(format: "  %.0f %@/s", Double(itemsPerEpoch * record.epoch) / max(elapsed, 1e-9), itemName) : "")
        if interactive {
            FileHandle.standardError.write(Data(("\r" + line).utf8))
        } else if record.epoch % 10 == 0 || record.epoch == 1 {
            printError(line)
        }
    }

    func finish(_ message: String) {
        guard !quiet else { return }
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
        printError(message)
    }
}

/// Refuses a missing input file (`FILE.npz:NAME` names a member of FILE.npz) with exit 66.
func requireInputFile(_ path: String, option: String) throws {
    let file = path.range(of: ".npz:").map { String(path[..<$0.lowerBound]) + ".npz" } ?? path
    guard FileManager.default.fileExists(atPath: file) else {
        throw MissingInput("\(option) \(path): \(file) does not exist")
    }
}

/// Refuses, before any work, an output file that could not be written or would silently replace
/// one: a directory in its place, a parent directory that is missing or not writable, or an
/// existing file without `--force`.
func checkOutputFile(_ path: String, flag: String = "--out", force: Bool) throws {
    let url = URL(fileURLWithPath: path)
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) {
        if isDirectory.boolValue { throw ValidationError("\(flag) \(path): is a directory; give the name of a file to write") }
        if !force { throw ValidationError("\(flag) \(path): exists; pass --force to replace it") }
    }
    try checkWritableDirectory(url.deletingLastPathComponent(), for: path, flag: flag)
}

/// Refuses a run directory that cannot be written (a file in its place, an unwritable nearest
/// existing ancestor) or that holds a trained model, unless `--resume` continues it or `--force`
/// replaces it.
func checkRunDirectory(_ path: String, force: Bool, resume: Bool) throws {
    let url = URL(fileURLWithPath: path, isDirectory: true)
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) {
        guard isDirectory.boolValue else { throw ValidationError("--out \(path): exists and is not a directory") }
        if !force && !resume && FileManager.default.fileExists(atPath: url.appendingPathComponent("model.safetensors").path) {
            throw ValidationError("--out \(path): holds a trained model (model.safetensors); pass --resume to continue its training or --force to replace it")
        }
        try checkWritableDirectory(url, for: path, flag: "--out")
        return
    }
    // Created later: the nearest existing ancestor must be a writable directory.
    var ancestor = url.deletingLastPathComponent()
    while !FileManager.default.fileExists(atPath: ancestor.path) && ancestor.path != "/" { ancestor = ancestor.deletingLastPathComponent() }
    try checkWritableDirectory(ancestor, for: path, flag: "--out")
}

func checkWritableDirectory(_ directory: URL, for path: String, flag: String) throws {
    var isDirectory: ObjCBool = false
    let dir = directory.path.isEmpty ? "." : directory.path
    guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw ValidationError("\(flag) \(path): the directory \(dir) does not exist")
    }
    guard FileManager.default.isWritableFile(atPath: dir) else {
        throw ValidationError("\(flag) \(path): the directory \(dir) is not writable")
    }
}

/// Creates a run directory (and parents); refuses a path that is a file.
func makeDirectory(_ path: String) throws -> URL {
    let url = URL(fileURLWithPath: path, isDirectory: true)
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue {
        throw ValidationError("--out \(path): exists and is not a directory")
    }
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

func writeJSON<T: Encodable>(_ value: T, to url: URL) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    try atomicWrite(try encoder.encode(value), to: url)
}
