import Foundation
import SBIBackend
import SBIData
import SBIInference

/// The parsers that read untrusted bytes, each with the properties a fuzzer checks on any input:
/// the parser either refuses the bytes with its own one-line error naming the input, or returns a
/// value that is self-consistent and survives a write and a re-read unchanged. A crash, a trap,
/// an allocation the input dictates (libFuzzer's -malloc_limit_mb) or a broken property is a
/// finding. `sbi-fuzz TARGET` drives one with libFuzzer (or replays files); the seed corpus is
/// Tests/FuzzCorpus/TARGET.
public enum FuzzTarget: String, CaseIterable, Sendable {
    case npy, npz, safetensors, prior

    /// The name errors must carry: the stand-in for a file's path.
    static let inputName = "fuzz-input"

    /// What is wrong with how the parser handled `bytes`, or nil when nothing is.
    public func violation(_ bytes: Data) -> String? { evaluate(bytes).violation }

    /// Whether the parser accepts `bytes` (whatever the properties say).
    public func accepts(_ bytes: Data) -> Bool { evaluate(bytes).accepted }

    private func evaluate(_ bytes: Data) -> (accepted: Bool, violation: String?) {
        switch self {
        case .npy:
            return check({ try NumPy.decode(bytes, path: Self.inputName) }) { try checkArray($0, name: "the array") }
        case .npz:
            return check({ () -> (NumPyArchive, [(name: String, array: NumPyArray)]) in
                let archive = try NumPyArchive(data: bytes, path: Self.inputName)
                return (archive, try archive.names.map { ($0, try archive.array(named: $0)) })
            }, checkArchive)
        case .safetensors:
            return check({ try SafetensorsFile.decode(bytes, path: Self.inputName) }, checkSafetensors)
        case .prior:
            // The first byte is the dimension (0: not given, else byte mod 17, so that 0 is
            // tried and the covariance checks stay cheap); the rest is one spec a line.
            guard let first = bytes.first else { return (false, nil) }
            let dimension = first == 0 ? nil : Int(first % 17)
            let text = String(decoding: bytes.dropFirst(), as: UTF8.self)
            let specs = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            return check({ try Prior.parse(specs, dimension: dimension, loadArray: Self.numbers) }) {
                try checkPrior($0, dimension: dimension)
            }
        }
    }

    /// Parsing may refuse the input; what it accepts must then have every property, and checking
    /// them must not fail.
    private func check<Value>(_ parse: () throws -> Value,
                              _ properties: (Value) throws -> String?) -> (accepted: Bool, violation: String?) {
        let value: Value
        do { value = try parse() } catch { return (false, checkRefusal(error)) }
        do { return (true, try properties(value)) } catch { return (true, "accepted, then failed: \(error)") }
    }

    /// A refusal must be the parser's own error, one line, naming the input (or the option).
    private func checkRefusal(_ error: Error) -> String? {
        let text = "\(error)"
        let expectedType: Bool
        switch self {
        case .npy, .npz: expectedType = error is NumPyError
        case .safetensors: expectedType = error is SafetensorsError
        case .prior: expectedType = error is SBIError
        }
        if !expectedType { return "refused with a \(type(of: error)), not the parser's error type: \(text)" }
        if text.isEmpty || text.contains(where: \.isNewline) { return "the error is not one line: \(text.debugDescription)" }
        let culprit = self == .prior ? "--prior" : Self.inputName
        if !text.contains(culprit) { return "the error does not name '\(culprit)': \(text)" }
        return nil
    }

    // MARK: NumPy

    private func checkArray(_ array: NumPyArray, name: String) throws -> String? {
        if array.shape.contains(where: { $0 < 0 }) { return "\(name) has a negative axis: \(array.shape)" }
        if array.data.count != array.elementCount * array.dtype.itemSize {
            return "\(name) holds \(array.data.count) bytes for shape \(array.shape) of \(array.dtype)"
        }
        if try array.floats().count != array.elementCount || array.doubles().count != array.elementCount {
            return "\(name)'s values do not number \(array.elementCount)"
        }
        let again = try NumPy.decode(NumPy.encode(array), path: Self.inputName)
        if again != array { return "\(name) changed when written and read back" }
        return nil
    }

    private func checkArchive(_ archive: NumPyArchive, _ arrays: [(name: String, array: NumPyArray)]) throws -> String? {
        if Set(archive.memberNames).count != archive.memberNames.count { return "member names repeat" }
        for (name, array) in arrays {
            if let problem = try checkArray(array, name: "member '\(name)'") { return problem }
        }
        for compressed in [false, true] {
            let again = try NumPyArchive(data: NumPyArchive.encode(arrays, compressed: compressed), path: Self.inputName)
            if again.names.sorted() != archive.names.sorted() { return "the member names changed when written and read back" }
            for (name, array) in arrays where try again.array(named: name) != array {
                return "member '\(name)' changed when written \(compressed ? "compressed" : "stored") and read back"
            }
        }
        return nil
    }

    // MARK: safetensors

    private func checkSafetensors(_ file: SafetensorsFile) throws -> String? {
        for (name, tensor) in file.tensors {
            if tensor.shape.contains(where: { $0 < 0 }) { return "tensor '\(name)' has a negative axis: \(tensor.shape)" }
            if tensor.data.count != tensor.elementCount * tensor.dtype.byteSize {
                return "tensor '\(name)' holds \(tensor.data.count) bytes for shape \(tensor.shape) of \(tensor.dtype)"
            }
        }
        let again = try SafetensorsFile.decode(file.encoded(), path: Self.inputName)
        if again != file { return "the file changed when written and read back" }
        return nil
    }

    // MARK: prior specs

    /// An mvn spec's two "files", read as ;-separated numbers, so that the fuzzer reaches the
    /// covariance checks without touching the disk.
    private static func numbers(_ file: String) throws -> [Double] {
        try file.split(separator: ";", omittingEmptySubsequences: false).map {
            guard let value = Double($0) else { throw SBIError.invalidArgument("not a number: \($0)") }
            return value
        }
    }

    private func checkPrior(_ prior: Prior, dimension: Int?) throws -> String? {
        if prior.dimension < 1 || (dimension != nil && prior.dimension != dimension) {
            return "the prior has \(prior.dimension) dimensions for \(dimension.map(String.init) ?? "any")"
        }
        try prior.validate()
        let d = prior.dimension, count = 8
        let draws = prior.sample(count, seed: 1)
        if draws.count != count * d { return "\(draws.count) draws for \(count) of dimension \(d)" }
        for i in 0..<count {
            let row = draws[i * d ..< (i + 1) * d]
            if !row.allSatisfy(\.isFinite) { return "a draw is not finite: \(Array(row))" }
            if !prior.contains(row) { return "a draw lies outside the prior: \(Array(row))" }
            if !prior.logDensity(row).isFinite { return "the log density of a draw is not finite: \(Array(row))" }
        }
        return nil
    }
}
