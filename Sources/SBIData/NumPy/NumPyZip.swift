import Foundation

// The zip structures of .npz archives: reading the end record (zip64 included), the central
// directory and local headers; writing them for stored or deflated members.

private let endSignature: UInt32 = 0x0605_4b50
private let zip64EndSignature: UInt32 = 0x0606_4b50
private let zip64LocatorSignature: UInt32 = 0x0706_4b50
private let centralSignature: UInt32 = 0x0201_4b50
private let localSignature: UInt32 = 0x0403_4b50
private let zip64ExtraID: UInt16 = 0x0001

/// Little-endian field access with bounds already checked by the caller.
private extension UnsafeRawBufferPointer {
    func u16(_ offset: Int) -> UInt16 { UInt16(self[offset]) | UInt16(self[offset + 1]) << 8 }
    func u32(_ offset: Int) -> UInt32 { (0 ..< 4).reduce(UInt32(0)) { $0 | UInt32(self[offset + $1]) << (8 * $1) } }
    func u64(_ offset: Int) -> UInt64 { (0 ..< 8).reduce(UInt64(0)) { $0 | UInt64(self[offset + $1]) << (8 * $1) } }
}

enum NumPyZipReader {
    /// The members listed by the central directory, each with its local header checked.
    static func entries(_ file: UnsafeRawBufferPointer, origin: NumPyOrigin) throws -> [NumPyArchive.Entry] {
        func fail(_ field: String, _ message: String) -> NumPyError { origin.error(.invalidArchive, field, message) }
        let count = file.count

        // End of central directory: 22 bytes plus a comment of up to 65535, at the very end.
        var endOffset: Int?
        if count >= 22 {
            var candidate = count - 22
            let lowest = max(0, count - 22 - 0xFFFF)
            while candidate >= lowest {
                if file.u32(candidate) == endSignature && candidate + 22 + Int(file.u16(candidate + 20)) == count {
                    endOffset = candidate
                    break
                }
                candidate -= 1
            }
        }
        guard let end = endOffset else {
            if file.starts(with: NumPy.magic) {
                throw origin.error(.badMagic, "zip", "this is a .npy file, not an .npz zip archive: use NumPy.read")
            }
            if count < 4 || file.u32(0) != localSignature && file.u32(0) != endSignature {
                throw origin.error(.badMagic, "zip", "not a zip archive (expected \"PK\\x03\\x04\" at the start, "
                                   + "as np.savez writes)")
            }
            throw fail("end of central directory", "no end-of-central-directory record at the end of the file; "
                       + "expected a complete zip archive (truncated file?)")
        }
        guard file.u16(end + 4) == 0, file.u16(end + 6) == 0 else {
            throw fail("end of central directory", "multi-disk (split) archives are not supported; expected one file")
        }
        var entryCount = Int(file.u16(end + 10))
        var directorySize = Int(file.u32(end + 12))
        var directoryOffset = Int(file.u32(end + 16))
        var directoryLimit = end

        // A zip64 locator right before the end record points to the zip64 end record.
        if end >= 20 && file.u32(end - 20) == zip64LocatorSignature {
            let recordOffset = file.u64(end - 20 + 8)
            guard end >= 20 + 56, recordOffset <= UInt64(end - 20 - 56), file.u32(Int(recordOffset)) == zip64EndSignature else {
                throw fail("zip64 end of central directory", "the zip64 locator points to offset \(recordOffset), "
                           + "where there is no zip64 end record")
            }
            let record = Int(recordOffset)
            guard file.u32(record + 16) == 0, file.u32(record + 20) == 0 else {
                throw fail("zip64 end of central directory", "multi-disk (split) archives are not supported; expected one file")
            }
            let entries64 = file.u64(record + 32), size64 = file.u64(record + 40), offset64 = file.u64(record + 48)
            guard entries64 <= UInt64(count), size64 <= UInt64(count), offset64 <= UInt64(count) else {
                throw fail("zip64 end of central directory", "entry count \(entries64), directory size \(size64) "
                           + "or offset \(offset64) exceeds the \(count)-byte file")
            }
            entryCount = Int(entries64)
            directorySize = Int(size64)
            directoryOffset = Int(offset64)
            directoryLimit = record
        } else if entryCount == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            throw fail("zip64 end of central directory", "the end record defers to zip64 fields but there is no zip64 "
                       + "locator before it (corrupt file?)")
        }
        guard directoryOffset <= directoryLimit, directorySize <= directoryLimit - directoryOffset else {
            throw fail("central directory", "directory at offset \(directoryOffset) of \(directorySize) bytes runs past "
                       + "the end record at \(directoryLimit) (truncated or corrupt file?)")
        }

        var entries: [NumPyArchive.Entry] = []
        var seen = Set<String>()
        var position = directoryOffset
        let directoryEnd = directoryOffset + directorySize
        for index in 0 ..< entryCount {
            guard position + 46 <= directoryEnd, file.u32(position) == centralSignature else {
                throw fail("central directory", "entry \(index) of \(entryCount) at offset \(position) is not a "
                           + "central directory header (corrupt file?)")
            }
            let flags = file.u16(position + 8)
            let method = file.u16(position + 10)
            let crc = file.u32(position + 16)
            var compressedSize = UInt64(file.u32(position + 20))
            var uncompressedSize = UInt64(file.u32(position + 24))
            let nameLength = Int(file.u16(position + 28))
            let extraLength = Int(file.u16(position + 30))
            let commentLength = Int(file.u16(position + 32))
            let diskStart = file.u16(position + 34)
            var localOffset = UInt64(file.u32(position + 42))
            let next = position + 46 + nameLength + extraLength + commentLength
            guard next <= directoryEnd else {
                throw fail("central directory", "entry \(index) runs past the end of the directory (corrupt file?)")
            }
            let nameBytes = UnsafeRawBufferPointer(rebasing: file[position + 46 ..< position + 46 + nameLength])
            let name = flags & 0x800 != 0 || nameBytes.allSatisfy({ $0 < 0x80 })
                ? String(decoding: nameBytes, as: UTF8.self)
                : String(String.UnicodeScalarView(nameBytes.map { Unicode.Scalar($0) }))
            let memberOrigin = origin.member(name)
            func memberFail(_ field: String, _ message: String) -> NumPyError {
                memberOrigin.error(.invalidArchive, field, message)
            }

            // The zip64 extra field holds, in this order, whichever of the uncompressed size,
            // compressed size and local header offset are 0xFFFFFFFF in the fixed fields.
            let needs = (uncompressed: uncompressedSize == 0xFFFF_FFFF, compressed: compressedSize == 0xFFFF_FFFF,
                         offset: localOffset == 0xFFFF_FFFF)
            if needs.uncompressed || needs.compressed || needs.offset {
                guard let extra = zip64Extra(file, from: position + 46 + nameLength, length: extraLength) else {
                    throw memberFail("zip64 extra", "sizes or offset are 0xFFFFFFFF but the central directory entry "
                                     + "has no zip64 extra field")
                }
                var cursor = 0
                func take(_ what: String) throws -> UInt64 {
                    guard cursor + 8 <= extra.count else {
                        throw memberFail("zip64 extra", "the zip64 extra field is \(extra.count) bytes, too short "
                                         + "for the \(what)")
                    }
                    defer { cursor += 8 }
                    return UnsafeRawBufferPointer(rebasing: extra).u64(cursor)
                }
                if needs.uncompressed { uncompressedSize = try take("uncompressed size") }
                if needs.compressed { compressedSize = try take("compressed size") }
                if needs.offset { localOffset = try take("local header offset") }
            }
            position = next

            if name.hasSuffix("/") && uncompressedSize == 0 { continue }  // a directory
            guard !seen.contains(name) else {
                throw memberFail("central directory", "the member name appears twice; expected unique names")
            }
            seen.insert(name)
            guard diskStart == 0 || diskStart == 0xFFFF else {
                throw memberFail("central directory", "member on disk \(diskStart); split archives are not supported")
            }
            guard flags & 0x1 == 0 else {
                throw memberFail("flags", "the member is encrypted; expected an unencrypted archive")
            }
            guard method == 0 || method == 8 else {
                let known: [UInt16: String] = [12: "bzip2", 14: "lzma", 93: "zstandard", 95: "xz", 9: "deflate64"]
                throw origin.member(name).error(.invalidArchive, "compression method",
                    "compression method \(method)\(known[method].map { " (\($0))" } ?? "") is not supported; "
                    + "expected 0 (stored) or 8 (deflate)")
            }
            if method == 0 && compressedSize != uncompressedSize {
                throw memberFail("central directory", "stored member has compressed size \(compressedSize) but "
                                 + "uncompressed size \(uncompressedSize); expected them equal")
            }
            guard compressedSize <= UInt64(count), localOffset <= UInt64(count) else {
                throw memberFail("central directory", "sizes or offset exceed the \(count)-byte file (corrupt file?)")
            }
            // Deflate expands at most about 1032:1; a larger claim is corruption, not a reason to
            // allocate terabytes.
            guard uncompressedSize <= compressedSize * 1100 + 1024 else {
                throw memberFail("central directory", "declares \(uncompressedSize) bytes uncompressed from "
                                 + "\(compressedSize) compressed, more than deflate can produce (corrupt file?)")
            }

            // Local header: its own name and extra field (numpy's carries zip64 sizes; we use the
            // central directory's).
            let local = Int(localOffset)
            guard local + 30 <= directoryOffset, file.u32(local) == localSignature else {
                throw memberFail("local header", "no local file header at offset \(local) (corrupt file?)")
            }
            let localNameLength = Int(file.u16(local + 26))
            let localExtraLength = Int(file.u16(local + 28))
            let dataOffset = local + 30 + localNameLength + localExtraLength
            guard dataOffset <= directoryOffset,
                  Array(file[local + 30 ..< local + 30 + localNameLength]) == Array(nameBytes) else {
                throw memberFail("local header", "the local header at offset \(local) names a different member "
                                 + "(corrupt file?)")
            }
            guard Int(compressedSize) <= directoryOffset - dataOffset else {
                throw origin.member(name).error(.truncated, "data",
                    "member data of \(compressedSize) bytes at offset \(dataOffset) runs past the central directory "
                    + "at \(directoryOffset) (truncated or corrupt file?)")
            }
            entries.append(NumPyArchive.Entry(name: name, method: method, crc: crc,
                                              compressedSize: Int(compressedSize),
                                              uncompressedSize: Int(uncompressedSize), dataOffset: dataOffset))
        }
        return entries
    }

    /// The data of the zip64 extra field (ID 1) among the extra fields at `from`.
    private static func zip64Extra(_ file: UnsafeRawBufferPointer, from: Int, length: Int) -> Slice<UnsafeRawBufferPointer>? {
        var cursor = from
        let end = from + length
        while cursor + 4 <= end {
            let id = file.u16(cursor), size = Int(file.u16(cursor + 2))
            guard cursor + 4 + size <= end else { return nil }
            if id == zip64ExtraID { return file[cursor + 4 ..< cursor + 4 + size] }
            cursor += 4 + size
        }
        return nil
    }

    static func checkCRC(_ bytes: UnsafeRawBufferPointer, entry: NumPyArchive.Entry, origin: NumPyOrigin) throws {
        let computed = NumPyZlib.crc32(bytes)
        guard computed == entry.crc else {
            throw origin.error(.checksumMismatch, "crc32", String(format: "CRC-32 of the member's %d bytes is 0x%08x, "
                               + "expected 0x%08x as the directory records (corrupt archive)",
                               bytes.count, computed, entry.crc))
        }
    }
}

enum NumPyZipWriter {
    private static func append16(_ data: inout Data, _ value: Int) {
        data.append(UInt8(truncatingIfNeeded: value))
        data.append(UInt8(truncatingIfNeeded: value >> 8))
    }
    private static func append32(_ data: inout Data, _ value: Int) {
        for i in 0 ..< 4 { data.append(UInt8(truncatingIfNeeded: value >> (8 * i))) }
    }
    private static func append32(_ data: inout Data, _ value: UInt32) { append32(&data, Int(value)) }
    private static func append64(_ data: inout Data, _ value: Int) {
        for i in 0 ..< 8 { data.append(UInt8(truncatingIfNeeded: value >> (8 * i))) }
    }

    /// The archive as a list of chunks (headers, and array data shared rather than copied).
    static func chunks(_ arrays: [(name: String, array: NumPyArray)], compressed: Bool, forceZip64: Bool,
                       origin: NumPyOrigin) throws -> [Data] {
        let limit32 = 0xFFFF_FFFF
        // DOS time and date of 1980-01-01 00:00:00: fixed, so the same arrays give the same bytes.
        let dosTime = 0, dosDate = (0 << 9) | (1 << 5) | 1
        let method = compressed ? 8 : 0
        var chunks: [Data] = []
        var directory = Data()
        var offset = 0
        var seen = Set<String>()

        for (name, array) in arrays {
            guard !name.isEmpty else {
                throw origin.error(.invalidArray, "member", "array names must not be empty")
            }
            guard !name.unicodeScalars.contains(where: { $0.value == 0 }) else {
                throw origin.error(.invalidArray, "member", "array name '\(name)' contains a NUL character")
            }
            let member = name + ".npy"
            guard seen.insert(member).inserted else {
                throw origin.error(.invalidArray, "member", "array name '\(name)' appears twice; expected unique names")
            }
            let nameBytes = Data(member.utf8)
            guard nameBytes.count <= 0xFFFF else {
                throw origin.error(.invalidArray, "member", "array name of \(nameBytes.count) bytes is too long for zip")
            }
            let memberOrigin = origin.member(member)
            let preamble = try NumPy.preamble(for: array, origin: memberOrigin)
            let uncompressedSize = preamble.count + array.data.count
            let crc = NumPyZlib.crc32(array.data, continuing: NumPyZlib.crc32(preamble))
            var payload: [Data]
            if compressed {
                do {
                    payload = [try NumPyZlib.deflate([preamble, array.data])]
                } catch {
                    throw memberOrigin.error(.io, "data", "cannot deflate: \(error)")
                }
            } else {
                payload = [preamble, array.data]
            }
            let compressedSize = payload.reduce(0) { $0 + $1.count }

            let zip64Sizes = forceZip64 || uncompressedSize >= limit32 || compressedSize >= limit32
            let zip64Offset = forceZip64 || offset >= limit32
            let version = zip64Sizes || zip64Offset ? 45 : 20
            let flags = member.utf8.allSatisfy { $0 < 0x80 } ? 0 : 0x800

            var local = Data()
            append32(&local, Int(localSignature))
            append16(&local, version)
            append16(&local, flags)
            append16(&local, method)
            append16(&local, dosTime)
            append16(&local, dosDate)
            append32(&local, crc)
            append32(&local, zip64Sizes ? limit32 : compressedSize)
            append32(&local, zip64Sizes ? limit32 : uncompressedSize)
            append16(&local, nameBytes.count)
            append16(&local, zip64Sizes ? 20 : 0)
            local.append(nameBytes)
            if zip64Sizes {
                append16(&local, Int(zip64ExtraID))
                append16(&local, 16)
                append64(&local, uncompressedSize)
                append64(&local, compressedSize)
            }

            var extra = Data()
            if zip64Sizes || zip64Offset {
                var fields = Data()
                if zip64Sizes {
                    append64(&fields, uncompressedSize)
                    append64(&fields, compressedSize)
                }
                if zip64Offset { append64(&fields, offset) }
                append16(&extra, Int(zip64ExtraID))
                append16(&extra, fields.count)
                extra.append(fields)
            }
            append32(&directory, Int(centralSignature))
            append16(&directory, (3 << 8) | version)  // made by: Unix
            append16(&directory, version)
            append16(&directory, flags)
            append16(&directory, method)
            append16(&directory, dosTime)
            append16(&directory, dosDate)
            append32(&directory, crc)
            append32(&directory, zip64Sizes ? limit32 : compressedSize)
            append32(&directory, zip64Sizes ? limit32 : uncompressedSize)
            append16(&directory, nameBytes.count)
            append16(&directory, extra.count)
            append16(&directory, 0)  // comment
            append16(&directory, 0)  // disk
            append16(&directory, 0)  // internal attributes
            append32(&directory, 0o100644 << 16)  // external: regular file, rw-r--r--
            append32(&directory, zip64Offset ? limit32 : offset)
            directory.append(nameBytes)
            directory.append(extra)

            chunks.append(local)
            chunks.append(contentsOf: payload)
            offset += local.count + compressedSize
        }

        let directoryOffset = offset
        let entryCount = seen.count
        var end = directory
        let zip64End = forceZip64 || entryCount >= 0xFFFF || directory.count >= limit32 || directoryOffset >= limit32
        if zip64End {
            let recordOffset = directoryOffset + directory.count
            append32(&end, Int(zip64EndSignature))
            append64(&end, 44)  // size of the rest of the record
            append16(&end, (3 << 8) | 45)
            append16(&end, 45)
            append32(&end, 0)
            append32(&end, 0)
            append64(&end, entryCount)
            append64(&end, entryCount)
            append64(&end, directory.count)
            append64(&end, directoryOffset)
            append32(&end, Int(zip64LocatorSignature))
            append32(&end, 0)
            append64(&end, recordOffset)
            append32(&end, 1)
        }
        append32(&end, Int(endSignature))
        append16(&end, 0)
        append16(&end, 0)
        append16(&end, zip64End ? 0xFFFF : entryCount)
        append16(&end, zip64End ? 0xFFFF : entryCount)
        append32(&end, zip64End ? limit32 : directory.count)
        append32(&end, zip64End ? limit32 : directoryOffset)
        append16(&end, 0)  // comment
        chunks.append(end)
        return chunks
    }
}
