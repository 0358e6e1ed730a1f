import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// The safetensors checkpoint format (https://github.com/huggingface/safetensors):
//
//     [8 bytes]  N, the header length, unsigned little-endian
//     [N bytes]  a JSON object, UTF-8, padded with spaces so that 8 + N is a multiple of 8:
//                {"__metadata__": {"key": "value", ...},
//                 "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
//     [rest]     the tensors' bytes, little-endian, row-major; offsets are relative to the
//                start of this region
//
// Writing follows the reference implementation byte for byte where it is deterministic: compact
// JSON in serde_json's style, "__metadata__" first, tensors laid out and listed in name order
// (byte-wise UTF-8), header padded with spaces. Reading is as strict as the reference: the
// tensors must cover the data region exactly, in some order, without gaps or overlaps.

/// The element types of the format. Raw values are the names used in the header.
public enum SafetensorsDType: String, CaseIterable, Sendable {
    case bool = "BOOL"
    case u8 = "U8"
    case i8 = "I8"
    case u16 = "U16"
    case i16 = "I16"
    case f16 = "F16"
    case bf16 = "BF16"
    case u32 = "U32"
    case i32 = "I32"
    case f32 = "F32"
    case u64 = "U64"
    case i64 = "I64"
    case f64 = "F64"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .bool, .u8, .i8: return 1
        case .u16, .i16, .f16, .bf16: return 2
        case .u32, .i32, .f32: return 4
        case .u64, .i64, .f64: return 8
        }
    }

    var isInteger: Bool {
        switch self {
        case .bool, .u8, .i8, .u16, .i16, .u32, .i32, .u64, .i64: return true
        case .f16, .bf16, .f32, .f64: return false
        }
    }
}

/// Why a safetensors file (or a tensor) was refused. `description` is one line naming the file,
/// the tensor or field, and what was expected.
public struct SafetensorsError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The file could not be opened, read, written or renamed.
        case io
        /// Shorter than its own header says.
        case truncated
        /// The header length exceeds the reference implementation's 100 MB limit.
        case headerTooLarge
        /// The header is not UTF-8 JSON of the expected structure (missing or mistyped fields).
        case invalidHeader
        case unknownDType
        /// A shape's element count disagrees with its data length.
        case shapeMismatch
        /// Offsets out of range, overlapping, leaving gaps, or not [begin, end] with begin ≤ end.
        case invalidOffsets
        /// A tensor that cannot be written (reserved name, negative dimension, wrong data length).
        case invalidTensor
        /// A typed accessor asked for a conversion the dtype does not allow.
        case typeMismatch
    }

    public let kind: Kind
    /// The file concerned, or nil for errors about a tensor value in memory.
    public let path: String?
    public let message: String

    public init(_ kind: Kind, path: String?, _ message: String) {
        self.kind = kind
        self.path = path
        self.message = message
    }

    public var description: String {
        (path.map { "safetensors file \($0): \(message)" } ?? "safetensors: \(message)").escapingControlCharacters
    }
}

/// One tensor: dtype, shape and the raw little-endian bytes (row-major).
public struct SafetensorsTensor: Equatable, Sendable {
    public var dtype: SafetensorsDType
    public var shape: [Int]
    /// Exactly `elementCount * dtype.byteSize` bytes, little-endian.
    public var data: Data

    /// A tensor over raw bytes; throws when `data` does not hold exactly `shape`'s elements.
    public init(dtype: SafetensorsDType, shape: [Int], data: Data) throws {
        let bytes = try Self.byteCount(dtype: dtype, shape: shape, path: nil, name: nil)
        guard data.count == bytes else {
            throw SafetensorsError(.shapeMismatch, path: nil,
                                   "shape \(shape) of \(dtype.rawValue) needs \(bytes) bytes, data has \(data.count)")
        }
        self.dtype = dtype
        self.shape = shape
        self.data = data
    }

    public init(floats: [Float], shape: [Int]) throws {
        try self.init(dtype: .f32, shape: shape, data: Self.pack(floats.map { $0.bitPattern }))
    }
    public init(doubles: [Double], shape: [Int]) throws {
        try self.init(dtype: .f64, shape: shape, data: Self.pack(doubles.map { $0.bitPattern }))
    }
    public init(int32s: [Int32], shape: [Int]) throws {
        try self.init(dtype: .i32, shape: shape, data: Self.pack(int32s))
    }
    public init(int64s: [Int64], shape: [Int]) throws {
        try self.init(dtype: .i64, shape: shape, data: Self.pack(int64s))
    }
    public init(uint8s: [UInt8], shape: [Int]) throws {
        try self.init(dtype: .u8, shape: shape, data: Data(uint8s))
    }

    /// The product of the dimensions (1 for a scalar of shape []).
    public var elementCount: Int { shape.reduce(1, *) }

    /// The elements as Float: F32 exactly (NaN payloads kept), F16 and BF16 exactly, F64 rounded.
    /// Integer dtypes throw rather than convert silently.
    public var floats: [Float] {
        get throws {
            switch dtype {
            case .f32: return Self.unpack(data, as: UInt32.self).map(Float.init(bitPattern:))
            case .f64: return Self.unpack(data, as: UInt64.self).map { Float(Double(bitPattern: $0)) }
            case .f16: return Self.unpack(data, as: UInt16.self).map(Self.halfToFloat)
            case .bf16: return Self.unpack(data, as: UInt16.self).map { Float(bitPattern: UInt32($0) << 16) }
            default: throw conversionError("Float", "F32, F64, F16 or BF16")
            }
        }
    }

    /// The elements as Double, from any floating-point dtype (exact).
    public var doubles: [Double] {
        get throws {
            switch dtype {
            case .f64: return Self.unpack(data, as: UInt64.self).map(Double.init(bitPattern:))
            case .f32, .f16, .bf16: return try floats.map(Double.init)
            default: throw conversionError("Double", "F64, F32, F16 or BF16")
            }
        }
    }

    /// The elements as Int32, from I32 or a narrower integer dtype (exact).
    public var int32s: [Int32] {
        get throws {
            switch dtype {
            case .i32: return Self.unpack(data, as: Int32.self)
            case .i16: return Self.unpack(data, as: Int16.self).map(Int32.init)
            case .u16: return Self.unpack(data, as: UInt16.self).map(Int32.init)
            case .i8: return data.map { Int32(Int8(bitPattern: $0)) }
            case .u8, .bool: return data.map(Int32.init)
            default: throw conversionError("Int32", "I32, I16, U16, I8, U8 or BOOL")
            }
        }
    }

    /// The elements as Int64, from any integer dtype; U64 values above Int64.max throw.
    public var int64s: [Int64] {
        get throws {
            switch dtype {
            case .i64: return Self.unpack(data, as: Int64.self)
            case .u64:
                let values = Self.unpack(data, as: UInt64.self)
                guard let big = values.first(where: { $0 > UInt64(Int64.max) }) else { return values.map(Int64.init) }
                throw SafetensorsError(.typeMismatch, path: nil, "U64 value \(big) does not fit in Int64")
            case .u32: return Self.unpack(data, as: UInt32.self).map(Int64.init)
            case .i32, .i16, .u16, .i8, .u8, .bool: return try int32s.map(Int64.init)
            default: throw conversionError("Int64", "an integer dtype")
            }
        }
    }

    /// The raw bytes of a U8 or BOOL tensor.
    public var uint8s: [UInt8] {
        get throws {
            guard dtype == .u8 || dtype == .bool else { throw conversionError("UInt8", "U8 or BOOL") }
            return [UInt8](data)
        }
    }

    private func conversionError(_ type: String, _ allowed: String) -> SafetensorsError {
        SafetensorsError(.typeMismatch, path: nil, "a \(dtype.rawValue) tensor cannot be read as \(type); expected \(allowed)")
    }

    // MARK: helpers

    static func byteCount(dtype: SafetensorsDType, shape: [Int], path: String?, name: String?) throws -> Int {
        let prefix = name.map { "tensor '\($0)': " } ?? ""
        var count = 1
        for dimension in shape {
            guard dimension >= 0 else {
                throw SafetensorsError(.invalidTensor, path: path, "\(prefix)shape \(shape) has a negative dimension")
            }
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else {
                throw SafetensorsError(.invalidTensor, path: path, "\(prefix)shape \(shape) has too many elements")
            }
            count = product
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else {
            throw SafetensorsError(.invalidTensor, path: path, "\(prefix)shape \(shape) has too many bytes")
        }
        return bytes
    }

    static func pack<T: FixedWidthInteger>(_ values: [T]) -> Data {
        let littleEndian = values.map(\.littleEndian)
        return littleEndian.withUnsafeBytes { Data($0) }
    }

    static func unpack<T: FixedWidthInteger>(_ data: Data, as type: T.Type) -> [T] {
        let count = data.count / MemoryLayout<T>.size
        var values = [T](repeating: 0, count: count)
        values.withUnsafeMutableBytes { out in
            _ = data.copyBytes(to: out.bindMemory(to: UInt8.self), count: count * MemoryLayout<T>.size)
        }
        return values.map { T(littleEndian: $0) }
    }

    /// IEEE binary16 to binary32, exactly (subnormals, infinities and NaN payloads included).
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign: UInt32 = UInt32(h >> 15) << 31
        let exponent = UInt32((h >> 10) & 0x1f), mantissa = UInt32(h & 0x3ff)
        if exponent == 0 {
            let magnitude = Float(mantissa) * 0x1p-24
            return sign == 0 ? magnitude : -magnitude
        }
        if exponent == 0x1f { return Float(bitPattern: sign | 0x7f80_0000 | (mantissa << 13)) }
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }
}

/// A safetensors file in memory: named tensors and string metadata.
public struct SafetensorsFile: Equatable, Sendable {
    public var tensors: [String: SafetensorsTensor]
    /// The "__metadata__" object; omitted from the file when empty.
    public var metadata: [String: String]

    /// The reference implementation's limit on the header length.
    public static let maximumHeaderLength = 100_000_000

    public init() {
        tensors = [:]
        metadata = [:]
    }

    public init(tensors: [String: SafetensorsTensor], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    public subscript(name: String) -> SafetensorsTensor? {
        get { tensors[name] }
        set { tensors[name] = newValue }
    }

    // MARK: reading

    /// Reads and validates a file; every malformation is refused with a `SafetensorsError`.
    public static func read(from url: URL) throws -> SafetensorsFile {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw SafetensorsError(.io, path: url.path, "cannot read: \(oneLine(error))")
        }
        return try decode(data, path: url.path)
    }

    /// Parses the bytes of a whole file. `path` only names it in errors.
    public static func decode(_ bytes: Data, path: String = "<memory>") throws -> SafetensorsFile {
        func fail(_ kind: SafetensorsError.Kind, _ message: String) -> SafetensorsError {
            SafetensorsError(kind, path: path, message)
        }
        let bytes = bytes.startIndex == 0 ? bytes : Data(bytes)
        guard bytes.count >= 8 else {
            throw fail(.truncated, "truncated: \(bytes.count) bytes, expected at least 8 for the header length")
        }
        let declared = bytes.prefix(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard declared <= UInt64(maximumHeaderLength) else {
            throw fail(.headerTooLarge,
                       "header length \(declared) exceeds the limit of \(maximumHeaderLength) bytes (corrupt file?)")
        }
        let headerLength = Int(declared)
        guard headerLength <= bytes.count - 8 else {
            throw fail(.truncated, "truncated: header length is \(headerLength) bytes but only \(bytes.count - 8) follow the length field")
        }
        let headerBytes = bytes.subdata(in: 8 ..< 8 + headerLength)
        guard String(data: headerBytes, encoding: .utf8) != nil else {
            throw fail(.invalidHeader, "header is not valid UTF-8")
        }
        guard headerBytes.first == UInt8(ascii: "{") else {
            throw fail(.invalidHeader, "header must be a JSON object starting with '{', found \(describeStart(headerBytes))")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerBytes, options: [])
        } catch {
            throw fail(.invalidHeader, "header is not valid JSON: \(jsonErrorText(error))")
        }
        guard let object = json as? [String: Any] else {
            throw fail(.invalidHeader, "header must be a JSON object of tensors, found \(jsonTypeName(json))")
        }

        let dataStart = 8 + headerLength
        let dataLength = bytes.count - dataStart
        var file = SafetensorsFile()
        var extents: [(name: String, begin: Int, end: Int)] = []

        // Names in byte order, so that a file with several faults always reports the same one.
        for name in object.keys.sorted(by: utf8Order) {
            let value = object[name]!
            if name == "__metadata__" {
                guard let entries = value as? [String: Any] else {
                    throw fail(.invalidHeader, "'__metadata__' must be an object of strings, found \(jsonTypeName(value))")
                }
                for (key, entry) in entries {
                    guard let string = entry as? String else {
                        throw fail(.invalidHeader, "'__metadata__' entry '\(key)' must be a string, found \(jsonTypeName(entry))")
                    }
                    file.metadata[key] = string
                }
                continue
            }
            func field(_ message: String) -> SafetensorsError { fail(.invalidHeader, "tensor '\(name)': \(message)") }
            guard let info = value as? [String: Any] else {
                throw field("expected an object with dtype, shape and data_offsets, found \(jsonTypeName(value))")
            }
            guard let dtypeValue = info["dtype"] else { throw field("missing field 'dtype'") }
            guard let dtypeName = dtypeValue as? String else {
                throw field("field 'dtype' must be a string, found \(jsonTypeName(dtypeValue))")
            }
            guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
                throw fail(.unknownDType, "tensor '\(name)': unknown dtype '\(dtypeName)'; expected one of "
                           + SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", "))
            }
            guard let shapeValue = info["shape"] else { throw field("missing field 'shape'") }
            guard let shape = nonNegativeIntegers(shapeValue) else {
                throw field("field 'shape' must be an array of non-negative integers, found \(jsonText(shapeValue))")
            }
            guard let offsetsValue = info["data_offsets"] else { throw field("missing field 'data_offsets'") }
            guard let offsets = nonNegativeIntegers(offsetsValue), offsets.count == 2, offsets[0] <= offsets[1] else {
                throw fail(.invalidOffsets, "tensor '\(name)': field 'data_offsets' must be [begin, end] with "
                           + "0 ≤ begin ≤ end, found \(jsonText(offsetsValue))")
            }
            let (begin, end) = (offsets[0], offsets[1])
            let needed = try SafetensorsTensor.byteCount(dtype: dtype, shape: shape, path: path, name: name)
            guard end - begin == needed else {
                throw fail(.shapeMismatch, "tensor '\(name)': shape \(shape) of \(dtype.rawValue) needs \(needed) bytes "
                           + "but data_offsets [\(begin), \(end)] span \(end - begin)")
            }
            guard end <= dataLength else {
                throw fail(.invalidOffsets, "tensor '\(name)': data_offsets [\(begin), \(end)] reach past the end of the "
                           + "\(dataLength)-byte data region (truncated file?)")
            }
            extents.append((name, begin, end))
            let data = bytes.subdata(in: dataStart + begin ..< dataStart + end)
            file.tensors[name] = try SafetensorsTensor(dtype: dtype, shape: shape, data: data)
        }

        // The tensors must tile the data region: sorted by offset, each starts where the last ended.
        extents.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }  // stable: names stay in byte order
        var covered = 0
        var previous: (name: String, begin: Int, end: Int)?
        for extent in extents {
            if extent.begin < covered, let previous {
                throw fail(.invalidOffsets, "tensor '\(extent.name)': data_offsets [\(extent.begin), \(extent.end)] overlap "
                           + "tensor '\(previous.name)' at [\(previous.begin), \(previous.end)]")
            }
            if extent.begin > covered {
                throw fail(.invalidOffsets, "data bytes \(covered)..<\(extent.begin) belong to no tensor "
                           + "(tensor '\(extent.name)' starts at \(extent.begin), expected \(covered))")
            }
            covered = extent.end
            previous = extent
        }
        guard covered == dataLength else {
            throw fail(.invalidOffsets, "data bytes \(covered)..<\(dataLength) belong to no tensor "
                       + "(expected the tensors to end the file at data offset \(dataLength))")
        }
        return file
    }

    // MARK: writing

    /// The whole file's bytes (deterministic: the same contents always give the same bytes).
    public func encoded() throws -> Data {
        let (header, order) = try layout(path: nil)
        var out = header
        for name in order { out.append(tensors[name]!.data) }
        return out
    }

    /// Writes atomically: the bytes go to a temporary file in the same directory, which is flushed
    /// to disk and then renamed over `url`. A reader never sees a partly written file.
    public func write(to url: URL) throws {
        let (header, order) = try layout(path: url.path)
        do {
            try AtomicFile.write([header] + order.map { tensors[$0]!.data }, to: url)
        } catch let failure as AtomicFile.Failure {
            throw SafetensorsError(.io, path: url.path, failure.message)
        }
    }

    /// The padded header (with its length prefix) and the tensor names in data order.
    private func layout(path: String?) throws -> (Data, [String]) {
        let order = tensors.keys.sorted(by: utf8Order)
        var json = "{"
        var first = true
        if !metadata.isEmpty {
            json += "\"__metadata__\":{"
            let keys = metadata.keys.sorted(by: utf8Order)
            json += keys.map { Self.jsonString($0) + ":" + Self.jsonString(metadata[$0]!) }.joined(separator: ",")
            json += "}"
            first = false
        }
        var offset = 0
        for name in order {
            let tensor = tensors[name]!
            guard name != "__metadata__" else {
                throw SafetensorsError(.invalidTensor, path: path, "'__metadata__' is reserved and cannot name a tensor")
            }
            let bytes = try SafetensorsTensor.byteCount(dtype: tensor.dtype, shape: tensor.shape, path: path, name: name)
            guard tensor.data.count == bytes else {
                throw SafetensorsError(.shapeMismatch, path: path, "tensor '\(name)': shape \(tensor.shape) of "
                                       + "\(tensor.dtype.rawValue) needs \(bytes) bytes, data has \(tensor.data.count)")
            }
            if !first { json += "," }
            first = false
            json += Self.jsonString(name) + ":{\"dtype\":\"\(tensor.dtype.rawValue)\",\"shape\":["
                + tensor.shape.map(String.init).joined(separator: ",") + "],\"data_offsets\":[\(offset),\(offset + bytes)]}"
            offset += bytes
        }
        json += "}"
        var header = Data(json.utf8)
        header.append(contentsOf: [UInt8](repeating: UInt8(ascii: " "), count: (8 - header.count % 8) % 8))
        guard header.count <= Self.maximumHeaderLength else {
            throw SafetensorsError(.headerTooLarge, path: path,
                                   "header of \(header.count) bytes exceeds the limit of \(Self.maximumHeaderLength)")
        }
        var out = Data(capacity: 8 + header.count)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(header)
        return (out, order)
    }

    /// A JSON string literal escaped as serde_json does (so headers match the reference writer).
    static func jsonString(_ string: String) -> String {
        var out = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    // MARK: header parsing helpers

    /// The array's elements when every one is a JSON integer ≥ 0 (not a float, not a boolean).
    private static func nonNegativeIntegers(_ value: Any) -> [Int]? {
        guard let array = value as? [Any] else { return nil }
        var result: [Int] = []
        result.reserveCapacity(array.count)
        for element in array {
            guard let number = element as? NSNumber, !(number is NSDecimalNumber) else { return nil }
            let type = String(cString: number.objCType)
            // "c"/"B" are booleans, "f"/"d" floating point: JSON 2.0 or true is not a dimension.
            guard !["c", "B", "f", "d"].contains(type), let int = element as? Int, int >= 0 else { return nil }
            result.append(int)
        }
        return result
    }

    private static func jsonTypeName(_ value: Any) -> String {
        switch value {
        case is String: return "a string"
        case is [Any]: return "an array"
        case is [String: Any]: return "an object"
        case is NSNull: return "null"
        case let number as NSNumber:
            return ["c", "B"].contains(String(cString: number.objCType)) ? "a boolean" : "a number"
        default: return "\(type(of: value))"
        }
    }

    private static func jsonText(_ value: Any) -> String {
        if JSONSerialization.isValidJSONObject([value]),
           let data = try? JSONSerialization.data(withJSONObject: [value], options: [.fragmentsAllowed]),
           let text = String(data: data, encoding: .utf8) {
            return String(text.dropFirst().dropLast())
        }
        return jsonTypeName(value)
    }

    private static func describeStart(_ data: Data) -> String {
        guard let byte = data.first else { return "an empty header" }
        if byte >= 0x20 && byte < 0x7f { return "'\(Character(Unicode.Scalar(byte)))'" }
        return String(format: "byte 0x%02x", byte)
    }

    private static func jsonErrorText(_ error: Error) -> String {
        let ns = error as NSError
        if let detail = ns.userInfo["NSDebugDescription"] as? String { return oneLine(detail) }
        return oneLine(error)
    }

    static func oneLine(_ value: Any) -> String {
        let text = (value as? NSError)?.localizedDescription ?? "\(value)"
        return text.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}

/// Byte-wise UTF-8 order, as Rust sorts strings (Swift's `<` compares canonical equivalents).
private func utf8Order(_ a: String, _ b: String) -> Bool {
    a.utf8.lexicographicallyPrecedes(b.utf8)
}

