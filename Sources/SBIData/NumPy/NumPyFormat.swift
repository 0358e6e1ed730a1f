import Foundation

/// Reading and writing single arrays in NumPy's `.npy` format.
public enum NumPy {
    /// "\x93NUMPY", the first six bytes of every .npy file.
    public static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]

    /// Data starts at a multiple of this many bytes in files that numpy (and `write`) produce.
    public static let alignment = 64

    /// np.save leaves room in the header for the first dimension to grow to this many digits.
    static let growthAxisDigits = 21

    // MARK: reading

    /// Reads and validates a `.npy` file. Files of 1 MiB or more are memory-mapped (privately)
    /// rather than copied, and the array's data is a view of the mapping unless it had to be
    /// byte-swapped. Every malformation is refused with a `NumPyError`.
    public static func read(_ url: URL) throws -> NumPyArray {
        let origin = NumPyOrigin(path: url.path)
        let file = try NumPyFileBytes.open(url, origin: origin)
        return try decode(file.buffer, origin: origin, mapped: file.isMapped, payload: file.data(in:))
    }

    /// Parses the bytes of a whole `.npy` file. `path` only names it in errors.
    public static func decode(_ data: Data, path: String = "<memory>") throws -> NumPyArray {
        try data.withUnsafeBytes { raw in
            try decode(raw, origin: NumPyOrigin(path: path), mapped: false,
                       payload: { Data(UnsafeRawBufferPointer(rebasing: raw[$0])) })
        }
    }

    /// The parsed header of a .npy file.
    struct Header {
        var dtype: NumPyDType
        var bigEndian: Bool
        var shape: [Int]
        var version: (major: UInt8, minor: UInt8)
        /// Where the data starts.
        var dataOffset: Int
        /// The bytes the data must have.
        var dataLength: Int
    }

    /// Parses `bytes`; `payload` turns the data's byte range into Data (a copy, or a view of a
    /// mapping when `mapped`).
    static func decode(_ bytes: UnsafeRawBufferPointer, origin: NumPyOrigin, mapped: Bool,
                       payload: (Range<Int>) -> Data) throws -> NumPyArray {
        let header = try parseHeader(bytes, origin: origin)
        let available = bytes.count - header.dataOffset
        let needed = header.dataLength
        let what = "shape \(NumPyArray.shapeText(header.shape)) of \(header.dtype.rawValue) needs \(needed) bytes"
        guard available >= needed else {
            throw origin.error(.truncated, "data", "\(what) but only \(available) follow the header (truncated file?)")
        }
        guard available == needed else {
            throw origin.error(.sizeMismatch, "data", "\(what) but \(available) follow the header "
                               + "(\(available - needed) trailing bytes: wrong shape or corrupt file?)")
        }
        let range = header.dataOffset ..< header.dataOffset + needed
        let swap = header.bigEndian && header.dtype.itemSize > 1
        var data: Data
        if swap {
            data = Data(count: needed)
            data.withUnsafeMutableBytes { out in
                byteSwap(from: UnsafeRawBufferPointer(rebasing: bytes[range]), to: out, itemSize: header.dtype.itemSize)
            }
        } else {
            data = payload(range)
        }
        var array = NumPyArray(unchecked: header.dtype, shape: header.shape, data: data)
        array.isMemoryMapped = mapped && !swap && !data.isEmpty
        return array
    }

    /// Validates the preamble and header dict; the data itself is not looked at.
    static func parseHeader(_ bytes: UnsafeRawBufferPointer, origin: NumPyOrigin) throws -> Header {
        func fail(_ kind: NumPyError.Kind, _ field: String, _ message: String) -> NumPyError {
            origin.error(kind, field, message)
        }
        let count = bytes.count
        let prefix = Array(bytes.prefix(magic.count))
        guard prefix == Array(magic.prefix(prefix.count)) else {
            var hint = ""
            if prefix.starts(with: [0x50, 0x4B]) {
                hint = " (this is a zip archive, probably .npz: use NumPyArchive)"
            }
            throw fail(.badMagic, "magic", "expected the file to start with \\x93NUMPY, found "
                       + describeBytes(bytes.prefix(8)) + hint)
        }
        guard count >= 8 else {
            throw fail(.truncated, "magic", "file is \(count) bytes, too short for the 10-byte .npy preamble")
        }
        let version = (major: bytes[6], minor: bytes[7])
        guard [1, 2, 3].contains(version.major), version.minor == 0 else {
            throw fail(.unsupportedVersion, "version",
                       "format version \(version.major).\(version.minor) is not supported; expected 1.0, 2.0 or 3.0")
        }
        let lengthSize = version.major == 1 ? 2 : 4
        let preamble = 8 + lengthSize
        guard count >= preamble else {
            throw fail(.truncated, "header length",
                       "file is \(count) bytes, too short for the \(preamble)-byte version \(version.major).0 preamble")
        }
        var headerLength = 0
        for i in (0 ..< lengthSize).reversed() { headerLength = headerLength << 8 | Int(bytes[8 + i]) }
        guard headerLength <= count - preamble else {
            throw fail(.truncated, "header", "header length is \(headerLength) bytes but only \(count - preamble) "
                       + "follow the preamble (truncated file?)")
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[preamble ..< preamble + headerLength])
        let text: String
        if version.major == 3 {
            guard let utf8 = String(validating: headerBytes, as: UTF8.self) else {
                throw fail(.invalidHeader, "header", "version 3.0 header is not valid UTF-8")
            }
            text = utf8
        } else {
            text = String(String.UnicodeScalarView(headerBytes.map { Unicode.Scalar($0) }))  // latin-1
        }

        let parsed: NumPyHeaderValue
        do {
            parsed = try NumPyHeaderParser.parse(text)
        } catch let failure as NumPyHeaderParser.Failure {
            throw fail(.invalidHeader, "header", "not a Python dict literal: \(failure.message); "
                       + "expected e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }")
        }
        guard case .dict(let pairs) = parsed else {
            throw fail(.invalidHeader, "header", "expected a dict with keys 'descr', 'fortran_order' and 'shape', "
                       + "found \(parsed.kindName)")
        }
        var fields: [String: NumPyHeaderValue] = [:]
        let expectedKeys = "expected exactly 'descr', 'fortran_order' and 'shape'"
        for (key, value) in pairs {
            guard case .string(let name) = key, ["descr", "fortran_order", "shape"].contains(name) else {
                throw fail(.invalidHeader, "header", "unexpected key \(key.repr) in the header dict; \(expectedKeys)")
            }
            guard fields[name] == nil else {
                throw fail(.invalidHeader, "header", "key '\(name)' appears twice in the header dict; \(expectedKeys)")
            }
            fields[name] = value
        }
        for name in ["descr", "fortran_order", "shape"] where fields[name] == nil {
            throw fail(.invalidHeader, "header", "the header dict lacks key '\(name)'; \(expectedKeys)")
        }

        let (dtype, bigEndian) = try parseDescr(fields["descr"]!, origin: origin)

        guard case .boolean(let fortran) = fields["fortran_order"]! else {
            throw fail(.invalidHeader, "fortran_order", "expected True or False, found \(fields["fortran_order"]!.repr)")
        }

        let shapeValue = fields["shape"]!
        let shapeExpectation = "expected a tuple of non-negative integers such as (3, 4), (5,) or ()"
        guard case .tuple(let items) = shapeValue else {
            throw fail(.invalidHeader, "shape", "\(shapeExpectation), found \(shapeValue.repr)")
        }
        var shape: [Int] = []
        for item in items {
            guard case .integer(let dimension) = item else {
                throw fail(.invalidHeader, "shape", "\(shapeExpectation), found \(shapeValue.repr)")
            }
            guard dimension >= 0 else {
                throw fail(.invalidHeader, "shape", "shape \(shapeValue.repr) has a negative dimension; \(shapeExpectation)")
            }
            shape.append(dimension)
        }
        guard !fortran else {
            throw fail(.fortranOrder, "fortran_order", "Fortran-order (column-major) arrays are not supported; "
                       + "expected fortran_order False (C order): save np.ascontiguousarray(a) instead")
        }
        let dataLength = try NumPyArray.byteCount(dtype: dtype, shape: shape) { _, field, message in
            fail(.invalidHeader, field, message)
        }
        return Header(dtype: dtype, bigEndian: bigEndian, shape: shape, version: version,
                      dataOffset: preamble + headerLength, dataLength: dataLength)
    }

    /// The dtype and byte order of a 'descr' value.
    static func parseDescr(_ value: NumPyHeaderValue, origin: NumPyOrigin) throws -> (NumPyDType, bigEndian: Bool) {
        let supported = "expected \(NumPyDType.supportedList)"
        let descr: String
        switch value {
        case .string(let text): descr = text
        case .list:
            throw origin.error(.unsupportedDType, "descr",
                               "structured dtypes are not supported (descr is a list of fields); \(supported)")
        default:
            throw origin.error(.invalidHeader, "descr", "expected a dtype string such as '<f4', found \(value.repr)")
        }
        var order: Character = "="
        var code = Substring(descr)
        if let first = code.first, "<>|=".contains(first) {
            order = first
            code = code.dropFirst()
        }
        let dtype: NumPyDType
        switch code {
        case "f4": dtype = .float32
        case "f8": dtype = .float64
        case "u1", "B": dtype = .uint8
        case "i4": dtype = .int32
        case "i8": dtype = .int64
        case "b1", "?": dtype = .bool
        case "O", "O4", "O8":
            throw origin.error(.unsupportedDType, "descr",
                               "object arrays (dtype \(descr)) are not supported: they hold pickled Python objects; \(supported)")
        default:
            throw origin.error(.unsupportedDType, "descr", "dtype \(descr) is not supported; \(supported)")
        }
        if dtype.itemSize > 1 && order == "|" {
            throw origin.error(.unsupportedDType, "descr",
                               "dtype \(descr) gives no byte order for a \(dtype.itemSize)-byte type; expected '<' or '>'")
        }
        return (dtype, order == ">")
    }

    static func byteSwap(from source: UnsafeRawBufferPointer, to destination: UnsafeMutableRawBufferPointer, itemSize: Int) {
        let count = source.count / itemSize
        switch itemSize {
        case 2:
            for i in 0 ..< count {
                destination.storeBytes(of: source.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self).byteSwapped,
                                       toByteOffset: i * 2, as: UInt16.self)
            }
        case 4:
            for i in 0 ..< count {
                destination.storeBytes(of: source.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self).byteSwapped,
                                       toByteOffset: i * 4, as: UInt32.self)
            }
        case 8:
            for i in 0 ..< count {
                destination.storeBytes(of: source.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self).byteSwapped,
                                       toByteOffset: i * 8, as: UInt64.self)
            }
        default:
            for i in 0 ..< count {
                for j in 0 ..< itemSize { destination[i * itemSize + j] = source[i * itemSize + itemSize - 1 - j] }
            }
        }
    }

    private static func describeBytes(_ bytes: UnsafeRawBufferPointer.SubSequence) -> String {
        guard !bytes.isEmpty else { return "an empty file" }
        var out = ""
        for byte in bytes {
            if byte >= 0x20 && byte < 0x7f && byte != UInt8(ascii: "\\") {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += String(format: "\\x%02x", byte)
            }
        }
        return "\"\(out)\""
    }

    // MARK: writing

    /// The whole .npy file's bytes, exactly as np.save writes them.
    public static func encode(_ array: NumPyArray) throws -> Data {
        var out = try preamble(for: array, origin: NumPyOrigin())
        out.append(array.data)
        return out
    }

    /// Writes a .npy file atomically (temporary file in the same directory, then rename): version
    /// 1.0, or 2.0 when the header is too long for 1.0; the data starts at a multiple of 64 bytes.
    public static func write(_ array: NumPyArray, to url: URL) throws {
        let origin = NumPyOrigin(path: url.path)
        let preamble = try preamble(for: array, origin: origin)
        try NumPyAtomicWriter.write([preamble, array.data], to: url, origin: origin)
    }

    /// Magic, version, header length and padded header, as numpy's _write_array_header builds them.
    static func preamble(for array: NumPyArray, origin: NumPyOrigin) throws -> Data {
        let bytes = try NumPyArray.byteCount(dtype: array.dtype, shape: array.shape) { kind, field, message in
            origin.error(kind, field, message)
        }
        guard array.data.count == bytes else {
            throw origin.error(.sizeMismatch, "data", "shape \(NumPyArray.shapeText(array.shape)) of "
                               + "\(array.dtype.rawValue) needs \(bytes) bytes, data has \(array.data.count)")
        }
        var header = "{'descr': '\(array.dtype.descr)', 'fortran_order': False, 'shape': "
            + NumPyArray.shapeText(array.shape) + ", }"
        if let first = array.shape.first {
            header += String(repeating: " ", count: max(0, growthAxisDigits - String(first).count))
        }
        let text = Array(header.utf8)
        let length = text.count + 1  // with the final newline
        for (major, lengthSize, limit) in [(UInt8(1), 2, Int(UInt16.max)), (2, 4, Int(UInt32.max))] {
            let padding = alignment - (magic.count + 2 + lengthSize + length) % alignment
            let total = length + padding
            guard total <= limit else { continue }
            var out = Data(magic)
            out.append(contentsOf: [major, 0])
            for i in 0 ..< lengthSize { out.append(UInt8(truncatingIfNeeded: total >> (8 * i))) }
            out.append(contentsOf: text)
            out.append(contentsOf: [UInt8](repeating: UInt8(ascii: " "), count: padding))
            out.append(UInt8(ascii: "\n"))
            return out
        }
        throw origin.error(.invalidArray, "header", "header of \(length) bytes is too long even for format version 2.0")
    }
}
