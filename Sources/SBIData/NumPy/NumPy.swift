import Foundation

// NumPy's array file formats.
//
// `.npy` (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):
//
//     [6 bytes]   magic "\x93NUMPY"
//     [2 bytes]   format version, major and minor: 1.0, 2.0 or 3.0
//     [2 or 4]    header length H, unsigned little-endian (2 bytes in 1.0, 4 in 2.0 and 3.0)
//     [H bytes]   a Python dict literal, latin-1 (1.0, 2.0) or UTF-8 (3.0), padded with spaces and
//                 ended by '\n' so that the data starts at a multiple of 64 bytes:
//                 {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
//     [rest]      the elements, in the byte order of 'descr', C (row-major) order
//
// `.npz` is a zip archive of `.npy` members named "<array name>.npy" (NumPyArchive.swift).
//
// Reading is strict: the header must be a dict with exactly the keys 'descr', 'fortran_order' and
// 'shape', the dtype one of the six below (either byte order), the order C, and the data exactly as
// long as the shape says. Arrays are kept in memory little-endian, whatever the file's byte order.
// Writing follows np.save byte for byte (same header text, padding and version choice).

#if _endian(big)
#error("NumPy I/O assumes a little-endian host")
#endif

/// The element types this reader and writer support.
public enum NumPyDType: String, CaseIterable, Sendable {
    case float32
    case float64
    case uint8
    case int32
    case int64
    case bool

    /// Bytes per element.
    public var itemSize: Int {
        switch self {
        case .uint8, .bool: return 1
        case .float32, .int32: return 4
        case .float64, .int64: return 8
        }
    }

    /// The 'descr' that np.save writes for this dtype (little-endian; '|' for one-byte types).
    public var descr: String {
        switch self {
        case .float32: return "<f4"
        case .float64: return "<f8"
        case .uint8: return "|u1"
        case .int32: return "<i4"
        case .int64: return "<i8"
        case .bool: return "|b1"
        }
    }

    var isFloatingPoint: Bool { self == .float32 || self == .float64 }

    /// "float32, float64, uint8, int32, int64 or bool", for error messages.
    static let supportedList = "float32, float64, uint8, int32, int64 or bool"
}

/// Why a `.npy` or `.npz` file (or an array) was refused. `description` is one line naming the file,
/// the archive member if any, the field, and what was expected.
public struct NumPyError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The file could not be opened, read, written or renamed.
        case io
        /// The file does not start with "\x93NUMPY" (or, for .npz, is not a zip archive).
        case badMagic
        /// A format version other than 1.0, 2.0 or 3.0.
        case unsupportedVersion
        /// The header is not a Python dict literal with the keys and value types numpy writes.
        case invalidHeader
        /// A dtype other than float32, float64, uint8, int32, int64 or bool (either byte order):
        /// object arrays and structured dtypes included.
        case unsupportedDType
        /// The array is stored in Fortran (column-major) order.
        case fortranOrder
        /// Shorter than the preamble, header or shape says.
        case truncated
        /// More data than the shape needs, or an array whose data does not match its shape.
        case sizeMismatch
        /// A malformed zip structure (end record, central directory, local header, deflate stream).
        case invalidArchive
        /// A zip member's CRC-32 disagrees with its contents.
        case checksumMismatch
        /// No archive member of the requested name.
        case missingMember
        /// An array or name that cannot be written (negative dimension, bad name, too large).
        case invalidArray
        /// A typed accessor asked for a conversion the values do not allow.
        case typeMismatch
    }

    public let kind: Kind
    /// The file concerned, or nil for errors about an array in memory.
    public let path: String?
    /// Whether the file is an `.npz` archive.
    public let isArchive: Bool
    /// The `.npz` member concerned, if any.
    public let member: String?
    /// The part of the format at fault: "magic", "version", "header", "descr", "fortran_order",
    /// "shape", "data", "zip", "crc32", "member", ...
    public let field: String
    public let message: String

    public init(_ kind: Kind, path: String?, archive: Bool = false, member: String? = nil, field: String,
                _ message: String) {
        self.kind = kind
        self.path = path
        self.isArchive = archive || member != nil
        self.member = member
        self.field = field
        self.message = message
    }

    public var description: String {
        var text: String
        if let path {
            text = (isArchive ? "npz file " : "npy file ") + path
        } else {
            text = "numpy"
        }
        if let member { text += ", member '\(member)'" }
        return "\(text): \(field): \(message)".escapingControlCharacters
    }
}

/// One array: shape, dtype and its elements as raw little-endian bytes in C order.
public struct NumPyArray: Equatable, Sendable {
    public var shape: [Int]
    public var dtype: NumPyDType
    /// `elementCount * dtype.itemSize` bytes, little-endian, row-major. Arrays read from large
    /// files are views of a private memory mapping (mutating them never touches the file).
    public var data: Data
    /// Whether `data` is a view of a memory-mapped file rather than a copy (not part of equality).
    public internal(set) var isMemoryMapped = false

    /// An array over raw little-endian bytes; throws when `data` does not hold exactly `shape`'s
    /// elements.
    public init(dtype: NumPyDType, shape: [Int], data: Data) throws {
        let bytes = try NumPyArray.byteCount(dtype: dtype, shape: shape, error: { kind, field, message in
            NumPyError(kind, path: nil, field: field, message)
        })
        guard data.count == bytes else {
            throw NumPyError(.sizeMismatch, path: nil, field: "data",
                             "shape \(NumPyArray.shapeText(shape)) of \(dtype.rawValue) needs \(bytes) bytes, "
                             + "data has \(data.count)")
        }
        self.dtype = dtype
        self.shape = shape
        self.data = data.startIndex == 0 ? data : Data(data)
    }

    /// Without validation: the caller guarantees `data.count` matches `shape` (and startIndex 0).
    init(unchecked dtype: NumPyDType, shape: [Int], data: Data) {
        self.dtype = dtype
        self.shape = shape
        self.data = data
    }

    /// `shape` nil means one dimension of `values.count`.
    public init(floats values: [Float], shape: [Int]? = nil) throws {
        try self.init(dtype: .float32, shape: shape ?? [values.count], data: Self.bytes(of: values))
    }
    public init(doubles values: [Double], shape: [Int]? = nil) throws {
        try self.init(dtype: .float64, shape: shape ?? [values.count], data: Self.bytes(of: values))
    }
    public init(uint8s values: [UInt8], shape: [Int]? = nil) throws {
        try self.init(dtype: .uint8, shape: shape ?? [values.count], data: Data(values))
    }
    public init(int32s values: [Int32], shape: [Int]? = nil) throws {
        try self.init(dtype: .int32, shape: shape ?? [values.count], data: Self.bytes(of: values))
    }
    public init(int64s values: [Int64], shape: [Int]? = nil) throws {
        try self.init(dtype: .int64, shape: shape ?? [values.count], data: Self.bytes(of: values))
    }
    public init(bools values: [Bool], shape: [Int]? = nil) throws {
        try self.init(dtype: .bool, shape: shape ?? [values.count], data: Data(values.map { $0 ? 1 : 0 }))
    }

    public init(_ values: [Float], shape: [Int]) throws { try self.init(floats: values, shape: shape) }
    public init(_ values: [Double], shape: [Int]) throws { try self.init(doubles: values, shape: shape) }
    public init(_ values: [UInt8], shape: [Int]) throws { try self.init(uint8s: values, shape: shape) }
    public init(_ values: [Int32], shape: [Int]) throws { try self.init(int32s: values, shape: shape) }
    public init(_ values: [Int64], shape: [Int]) throws { try self.init(int64s: values, shape: shape) }
    public init(_ values: [Bool], shape: [Int]) throws { try self.init(bools: values, shape: shape) }

    public static func == (a: NumPyArray, b: NumPyArray) -> Bool {
        a.dtype == b.dtype && a.shape == b.shape && a.data == b.data
    }

    /// The product of the dimensions (1 for a scalar of shape ()).
    public var elementCount: Int { shape.reduce(1, *) }

    /// The raw little-endian bytes (the same as `data`).
    public var bytes: Data { data }

    // MARK: typed accessors

    /// The elements as Float, from any dtype: float32 exactly (NaN payloads kept), float64 and
    /// 64-bit or large 32-bit integers rounded to nearest, bool as 0 or 1.
    public func floats() throws -> [Float] {
        switch dtype {
        case .float32: return elements(Float.self)
        case .float64: return elements(Double.self).map(Float.init)
        case .uint8: return data.map(Float.init)
        case .int32: return elements(Int32.self).map(Float.init)
        case .int64: return elements(Int64.self).map(Float.init)
        case .bool: return data.map { $0 != 0 ? 1 : 0 }
        }
    }

    /// The elements as Double, from any dtype: exact except int64 beyond ±2⁵³ (rounded).
    public func doubles() throws -> [Double] {
        switch dtype {
        case .float32: return elements(Float.self).map(Double.init)
        case .float64: return elements(Double.self)
        case .uint8: return data.map(Double.init)
        case .int32: return elements(Int32.self).map(Double.init)
        case .int64: return elements(Int64.self).map(Double.init)
        case .bool: return data.map { $0 != 0 ? 1 : 0 }
        }
    }

    /// The elements as Int32: exact from int32, uint8 and bool; from int64 and the float dtypes
    /// only when every value is an integer in Int32's range (otherwise throws, naming the value).
    public func int32s() throws -> [Int32] {
        if dtype == .int32 { return elements(Int32.self) }
        return try integers(Int32.self)
    }

    /// The elements as Int64: exact from the integer dtypes and bool; from the float dtypes only
    /// when every value is an integer in Int64's range.
    public func int64s() throws -> [Int64] {
        if dtype == .int64 { return elements(Int64.self) }
        return try integers(Int64.self)
    }

    /// The elements as UInt8: exact from uint8 and bool; from other dtypes only when every value is
    /// an integer in 0...255.
    public func uint8s() throws -> [UInt8] {
        if dtype == .uint8 || dtype == .bool { return [UInt8](data) }
        return try integers(UInt8.self)
    }

    /// The elements of a bool array (any non-zero byte is true).
    public func bools() throws -> [Bool] {
        guard dtype == .bool else {
            throw NumPyError(.typeMismatch, path: nil, field: "dtype",
                             "a \(dtype.rawValue) array cannot be read as Bool; expected dtype bool")
        }
        return data.map { $0 != 0 }
    }

    /// Calls `body` with the raw little-endian bytes, without copying.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try data.withUnsafeBytes(body)
    }

    // MARK: helpers

    private func integers<T: FixedWidthInteger>(_ type: T.Type) throws -> [T] {
        func fail(_ index: Int, _ value: String) -> NumPyError {
            NumPyError(.typeMismatch, path: nil, field: "data",
                       "\(dtype.rawValue) value \(value) at flat index \(index) cannot be read as \(T.self); "
                       + "expected integers in \(T.min)...\(T.max)")
        }
        // `exactly` is T(exactly:), whose integer and floating-point overloads are resolved at
        // each call.
        func convert<S>(_ values: [S], _ exactly: (S) -> T?) throws -> [T] {
            var out = [T]()
            out.reserveCapacity(values.count)
            for (index, value) in values.enumerated() {
                guard let converted = exactly(value) else { throw fail(index, "\(value)") }
                out.append(converted)
            }
            return out
        }
        switch dtype {
        case .float32: return try convert(elements(Float.self), T.init(exactly:))
        case .float64: return try convert(elements(Double.self), T.init(exactly:))
        case .uint8, .bool: return try convert([UInt8](data), T.init(exactly:))
        case .int32: return try convert(elements(Int32.self), T.init(exactly:))
        case .int64: return try convert(elements(Int64.self), T.init(exactly:))
        }
    }

    /// The bytes reinterpreted as `T` (little-endian host), copied out; unaligned data is fine.
    private func elements<T: BitwiseCopyable>(_ type: T.Type) -> [T] {
        let count = data.count / MemoryLayout<T>.stride
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 {
                data.withUnsafeBytes { raw in
                    UnsafeMutableRawPointer(buffer.baseAddress!)
                        .copyMemory(from: raw.baseAddress!, byteCount: count * MemoryLayout<T>.stride)
                }
            }
            initialized = count
        }
    }

    static func bytes<T: BitwiseCopyable>(of values: [T]) -> Data {
        values.withUnsafeBytes { Data($0) }
    }

    /// Bytes needed by `shape` of `dtype`, with negative dimensions and overflow refused.
    static func byteCount(dtype: NumPyDType, shape: [Int],
                          error: (NumPyError.Kind, String, String) -> NumPyError) throws -> Int {
        var count = 1
        for dimension in shape {
            guard dimension >= 0 else {
                throw error(.invalidArray, "shape", "shape \(shapeText(shape)) has a negative dimension")
            }
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else {
                throw error(.invalidArray, "shape", "shape \(shapeText(shape)) has too many elements")
            }
            count = product
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.itemSize)
        guard !overflow else {
            throw error(.invalidArray, "shape", "shape \(shapeText(shape)) of \(dtype.rawValue) has too many bytes")
        }
        return bytes
    }

    /// A shape as Python writes a tuple: (), (3,), (2, 3).
    static func shapeText(_ shape: [Int]) -> String {
        shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    }
}
