import CZlib
import Foundation

// zlib for .npz members: CRC-32, and raw deflate (no zlib or gzip wrapper, windowBits -15) as zip
// method 8 stores it. zlib's counters are 32-bit, so large buffers go through in chunks.

enum NumPyZlib {
    /// The largest chunk handed to zlib at once (its lengths are 32-bit).
    private static let chunk = 1 << 30

    /// CRC-32 (ISO-HDLC, as zip uses) of `bytes`, continuing from `crc`.
    static func crc32(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        var value = uLong(crc)
        var offset = 0
        while offset < bytes.count {
            let n = min(chunk, bytes.count - offset)
            value = CZlib.crc32(value, bytes.baseAddress!.advanced(by: offset).assumingMemoryBound(to: Bytef.self), uInt(n))
            offset += n
        }
        return UInt32(truncatingIfNeeded: value)
    }

    static func crc32(_ data: Data, continuing crc: UInt32 = 0) -> UInt32 {
        data.withUnsafeBytes { crc32($0, continuing: crc) }
    }

    enum InflateFailure: Error {
        /// The stream is corrupt; zlib's message.
        case corrupt(String)
        /// The input ended before the end of the stream.
        case truncated
        /// The stream inflates to more than `expected` bytes.
        case tooLong
        /// The stream ended after `actual` bytes, fewer than expected.
        case tooShort(actual: Int)
    }

    /// The first `count` bytes that raw deflate data inflates to (fewer if the stream ends
    /// sooner), without inflating the rest: a member's .npy header, read before the whole member
    /// is given memory.
    static func inflatePrefix(_ input: UnsafeRawBufferPointer, count: Int) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: count)
        do {
            try output.withUnsafeMutableBytes { try inflate(input, into: $0) }
        } catch InflateFailure.tooLong {
            // The stream goes on past the prefix: what is wanted.
        } catch let InflateFailure.tooShort(actual) {
            output.removeLast(count - actual)
        }
        return output
    }

    /// Inflates raw deflate data that must expand to exactly `output.count` bytes, into `output`.
    static func inflate(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws {
        var stream = z_stream()
        guard inflateInit2_(&stream, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw InflateFailure.corrupt("inflateInit2 failed")
        }
        defer { inflateEnd(&stream) }
        // Once `output` is full, a one-byte scratch buffer shows whether the stream goes on.
        var scratch: UInt8 = 0
        var produced = 0
        var consumed = 0
        var overflow = false
        while true {
            if stream.avail_in == 0 && consumed < input.count {
                let n = min(chunk, input.count - consumed)
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.advanced(by: consumed)
                    .assumingMemoryBound(to: Bytef.self))
                stream.avail_in = uInt(n)
                consumed += n
            }
            let status: Int32 = withUnsafeMutablePointer(to: &scratch) { scratchPointer in
                let room = min(chunk, output.count - produced)
                if room > 0 {
                    stream.next_out = output.baseAddress!.advanced(by: produced).assumingMemoryBound(to: Bytef.self)
                    stream.avail_out = uInt(room)
                } else {
                    stream.next_out = scratchPointer
                    stream.avail_out = 1
                }
                let status = CZlib.inflate(&stream, Z_NO_FLUSH)
                if room > 0 {
                    produced += room - Int(stream.avail_out)
                } else if stream.avail_out == 0 {
                    overflow = true
                }
                return status
            }
            if overflow { throw InflateFailure.tooLong }
            switch status {
            case Z_STREAM_END:
                guard produced == output.count else { throw InflateFailure.tooShort(actual: produced) }
                return
            case Z_OK:
                continue
            case Z_BUF_ERROR:
                // No progress was possible: the input ran out before the end of the stream.
                throw InflateFailure.truncated
            default:
                let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                throw InflateFailure.corrupt(message)
            }
        }
    }

    /// Raw-deflates the concatenation of `inputs` at zlib's default level (as Python's zipfile).
    static func deflate(_ inputs: [Data]) throws -> Data {
        var stream = z_stream()
        guard deflateInit2_(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY,
                            zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw InflateFailure.corrupt("deflateInit2 failed")
        }
        defer { deflateEnd(&stream) }
        let total = inputs.reduce(0) { $0 + $1.count }
        var output = Data(count: Int(deflateBound(&stream, uLong(total))) + 64)
        var produced = 0

        func run(_ input: UnsafeRawBufferPointer, finish: Bool) throws {
            var consumed = 0
            while true {
                if stream.avail_in == 0 && consumed < input.count {
                    let n = min(chunk, input.count - consumed)
                    stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.advanced(by: consumed)
                        .assumingMemoryBound(to: Bytef.self))
                    stream.avail_in = uInt(n)
                    consumed += n
                }
                let lastInput = consumed == input.count
                if !finish && lastInput && stream.avail_in == 0 { return }
                if produced == output.count { output.count += max(1 << 16, output.count / 2) }
                let status: Int32 = output.withUnsafeMutableBytes { out in
                    let n = min(chunk, out.count - produced)
                    stream.next_out = out.baseAddress!.advanced(by: produced).assumingMemoryBound(to: Bytef.self)
                    stream.avail_out = uInt(n)
                    let status = CZlib.deflate(&stream, finish && lastInput ? Z_FINISH : Z_NO_FLUSH)
                    produced += n - Int(stream.avail_out)
                    return status
                }
                if status == Z_STREAM_END { return }
                guard status == Z_OK || status == Z_BUF_ERROR else {
                    throw InflateFailure.corrupt("deflate failed with zlib status \(status)")
                }
            }
        }
        for (index, input) in inputs.enumerated() {
            try input.withUnsafeBytes { try run($0, finish: index == inputs.count - 1) }
        }
        if inputs.isEmpty { try run(UnsafeRawBufferPointer(start: nil, count: 0), finish: true) }
        output.count = produced
        return output
    }
}
