import Foundation

// .npz: a zip archive (PKWARE APPNOTE 6.3) whose members are .npy files named "<name>.npy", as
// np.savez (stored, method 0) and np.savez_compressed (deflate, method 8) write them. numpy always
// forces zip64 local headers; zip64 central-directory fields and end records appear once sizes or
// offsets pass 4 GiB. Reading checks every member's CRC-32; stored members of large (memory-mapped)
// archives are handed out as views of the mapping, without copying.

/// A `.npz` archive opened for reading members on demand.
public struct NumPyArchive: Sendable {
    /// One member as the central directory describes it.
    struct Entry: Sendable {
        var name: String
        var method: UInt16
        var crc: UInt32
        var compressedSize: Int
        var uncompressedSize: Int
        /// Where the member's (possibly compressed) bytes start, past its local header.
        var dataOffset: Int
    }

    /// The file, for error messages.
    public let path: String
    /// Every member's name, in archive order (directories excluded).
    public let memberNames: [String]
    /// The names of the arrays (members ending in ".npy", without that suffix), in archive order,
    /// as np.load(...).files lists them.
    public var names: [String] { memberNames.filter { $0.hasSuffix(".npy") }.map { String($0.dropLast(4)) } }

    private let bytes: NumPyFileBytes
    private let entries: [String: Entry]

    /// Opens the archive at `url` and validates its directory (members are read on demand).
    /// Archives of 1 MiB or more are memory-mapped.
    public init(_ url: URL) throws {
        let origin = NumPyOrigin(path: url.path, archive: true)
        try self.init(bytes: NumPyFileBytes.open(url, origin: origin), path: url.path)
    }

    /// An archive from the bytes of a whole file. `path` only names it in errors.
    public init(data: Data, path: String = "<memory>") throws {
        try self.init(bytes: NumPyFileBytes(copying: data), path: path)
    }

    private init(bytes: NumPyFileBytes, path: String) throws {
        self.bytes = bytes
        self.path = path
        let list = try NumPyZipReader.entries(bytes.buffer, origin: NumPyOrigin(path: path, archive: true))
        var entries: [String: Entry] = [:]
        for entry in list { entries[entry.name] = entry }
        self.entries = entries
        memberNames = list.map(\.name)
    }

    /// Reads every array of the archive at `url`, keyed by name without ".npy".
    public static func read(_ url: URL) throws -> [String: NumPyArray] {
        try NumPyArchive(url).arrays()
    }

    /// Every array, keyed by name without ".npy" (members not ending in ".npy" are skipped).
    public func arrays() throws -> [String: NumPyArray] {
        var out: [String: NumPyArray] = [:]
        for member in memberNames where member.hasSuffix(".npy") {
            out[String(member.dropLast(4))] = try array(member: entries[member]!)
        }
        return out
    }

    /// Whether `name` (with or without ".npy") names a member.
    public func contains(_ name: String) -> Bool { entry(named: name) != nil }

    /// The array stored under `name`, given with or without the ".npy" suffix. A missing name is
    /// refused with an error that lists the available ones.
    public func array(named name: String) throws -> NumPyArray {
        guard let entry = entry(named: name) else {
            let available = names.isEmpty ? "the archive holds no arrays"
                : "available: " + names.map { "'\($0)'" }.joined(separator: ", ")
            throw NumPyError(.missingMember, path: path, archive: true, field: "member",
                             "no array named '\(name)'; \(available)")
        }
        return try array(member: entry)
    }

    public subscript(name: String) -> NumPyArray {
        get throws { try array(named: name) }
    }

    private func entry(named name: String) -> Entry? {
        entries[name] ?? entries[name + ".npy"]
    }

    private func array(member entry: Entry) throws -> NumPyArray {
        let origin = NumPyOrigin(path: path).member(entry.name)
        let file = bytes.buffer
        let range = entry.dataOffset ..< entry.dataOffset + entry.compressedSize
        let compressed = UnsafeRawBufferPointer(rebasing: file[range])
        switch entry.method {
        case 0:
            try NumPyZipReader.checkCRC(compressed, entry: entry, origin: origin)
            return try NumPy.decode(compressed, origin: origin, mapped: bytes.isMapped) { inner in
                bytes.data(in: inner.lowerBound + range.lowerBound ..< inner.upperBound + range.lowerBound)
            }
        default:  // 8, checked when the directory was read
            let inflated: NumPyFileBytes
            do {
                // The header first: the member gets memory only for the size its shape declares,
                // which must be the directory's and must fit this machine.
                let head = try NumPyZlib.inflatePrefix(compressed, count: min(entry.uncompressedSize, 1 << 20))
                let header = try head.withUnsafeBytes { try NumPy.parseHeader($0, origin: origin) }
                let (needed, overflow) = header.dataOffset.addingReportingOverflow(header.dataLength)
                guard !overflow, needed == entry.uncompressedSize else {
                    throw origin.error(.invalidArchive, "data", "the header's shape \(NumPyArray.shapeText(header.shape)) of \(header.dtype.rawValue) needs \(overflow ? "over 2⁶³" : String(needed)) bytes but the archive directory declares \(entry.uncompressedSize)")
                }
                guard needed <= MemoryLimit.bytes else {
                    throw origin.error(.invalidArchive, "data", "inflates to \(needed) bytes, more than half of this machine's \(ProcessInfo.processInfo.physicalMemory) bytes of memory")
                }
                inflated = NumPyFileBytes(allocating: needed)
                try NumPyZlib.inflate(compressed, into: inflated.mutableBuffer)
            } catch let failure as NumPyZlib.InflateFailure {
                let message: String
                switch failure {
                case .corrupt(let text): message = "corrupt deflate data (\(text))"
                case .truncated: message = "deflate stream ends early (truncated or corrupt member)"
                case .tooLong: message = "inflates to more than the \(entry.uncompressedSize) bytes the directory declares"
                case .tooShort(let actual):
                    message = "inflates to \(actual) bytes, expected \(entry.uncompressedSize) as the directory declares"
                }
                throw origin.error(.invalidArchive, "data", message)
            }
            try NumPyZipReader.checkCRC(inflated.buffer, entry: entry, origin: origin)
            return try NumPy.decode(inflated.buffer, origin: origin, mapped: false, payload: inflated.data(in:))
        }
    }

    // MARK: writing

    /// Writes `arrays` as an .npz archive atomically, members in name order (byte-wise), each
    /// named "<name>.npy". `compressed` deflates them as np.savez_compressed does; otherwise they
    /// are stored as np.savez does.
    public static func write(_ arrays: [String: NumPyArray], to url: URL, compressed: Bool = false) throws {
        let ordered = arrays.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }.map { ($0, arrays[$0]!) }
        try write(ordered, to: url, compressed: compressed)
    }

    /// Writes named arrays in the given order; names must be unique and non-empty.
    public static func write(_ arrays: [(name: String, array: NumPyArray)], to url: URL,
                             compressed: Bool = false) throws {
        try write(arrays, to: url, compressed: compressed, forceZip64: false)
    }

    /// `forceZip64` writes zip64 fields and end records even when nothing needs them (as for
    /// archives over 4 GiB), so that tests can exercise those paths on small files.
    static func write(_ arrays: [(name: String, array: NumPyArray)], to url: URL, compressed: Bool,
                      forceZip64: Bool) throws {
        let origin = NumPyOrigin(path: url.path, archive: true)
        let chunks = try NumPyZipWriter.chunks(arrays, compressed: compressed, forceZip64: forceZip64, origin: origin)
        try NumPyAtomicWriter.write(chunks, to: url, origin: origin)
    }

    /// The bytes of an .npz archive holding `arrays` (see `write`).
    public static func encode(_ arrays: [(name: String, array: NumPyArray)], compressed: Bool = false) throws -> Data {
        let chunks = try NumPyZipWriter.chunks(arrays, compressed: compressed, forceZip64: false,
                                               origin: NumPyOrigin(archive: true))
        var out = Data(capacity: chunks.reduce(0) { $0 + $1.count })
        for chunk in chunks { out.append(chunk) }
        return out
    }
}
