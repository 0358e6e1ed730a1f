import CZlib
import Foundation

// PNG writer: 8-bit RGBA (colour type 6), no interlace. Each scanline gets the filter (None, Sub,
// Up, Average or Paeth) with the smallest sum of absolute byte values, the usual heuristic; the
// filtered lines are deflated by zlib into one IDAT chunk (zlib wrapper, as PNG requires), and
// every chunk carries the CRC-32 of its type and data.

enum PlotPNG {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    static func encode(_ image: PlotImage) -> Data {
        var out = Data(signature)
        var header = Data()
        header.appendBigEndian(UInt32(image.width))
        header.appendBigEndian(UInt32(image.height))
        header.append(contentsOf: [8, 6, 0, 0, 0]) // bit depth, RGBA, deflate, adaptive filters, no interlace
        appendChunk("IHDR", header, to: &out)
        appendChunk("IDAT", deflate(filtered(image)), to: &out)
        appendChunk("IEND", Data(), to: &out)
        return out
    }

    static func appendChunk(_ type: String, _ data: Data, to out: inout Data) {
        let typeBytes = Data(type.utf8)
        precondition(typeBytes.count == 4)
        out.appendBigEndian(UInt32(data.count))
        out.append(typeBytes)
        out.append(data)
        out.appendBigEndian(crc32(typeBytes + data))
    }

    /// CRC-32 (ISO-HDLC, as PNG uses).
    static func crc32(_ data: Data) -> UInt32 {
        data.withUnsafeBytes { raw -> UInt32 in
            guard let base = raw.baseAddress, raw.count > 0 else { return 0 }
            return UInt32(truncatingIfNeeded: CZlib.crc32(0, base.assumingMemoryBound(to: Bytef.self), uInt(raw.count)))
        }
    }

    /// The scanlines, each led by its filter type byte.
    static func filtered(_ image: PlotImage) -> [UInt8] {
        let stride = image.width * 4
        var out = [UInt8](repeating: 0, count: (stride + 1) * image.height)
        var candidate = [UInt8](repeating: 0, count: stride)
        var best = [UInt8](repeating: 0, count: stride)
        image.rgba.withUnsafeBufferPointer { pixels in
            for y in 0..<image.height {
                let row = y * stride, previous = (y - 1) * stride
                var bestType: UInt8 = 0, bestScore = Int.max
                for type in UInt8(0)...4 {
                    var score = 0
                    for i in 0..<stride {
                        let x = pixels[row + i]
                        let a: UInt8 = i >= 4 ? pixels[row + i - 4] : 0
                        let b: UInt8 = y > 0 ? pixels[previous + i] : 0
                        let c: UInt8 = (i >= 4 && y > 0) ? pixels[previous + i - 4] : 0
                        let predicted: UInt8
                        switch type {
                        case 0: predicted = 0
                        case 1: predicted = a
                        case 2: predicted = b
                        case 3: predicted = UInt8((Int(a) + Int(b)) / 2)
                        default: predicted = paeth(a, b, c)
                        }
                        let v = x &- predicted
                        candidate[i] = v
                        score += v < 128 ? Int(v) : 256 - Int(v)
                    }
                    if score < bestScore {
                        bestScore = score
                        bestType = type
                        swap(&best, &candidate)
                    }
                }
                let start = y * (stride + 1)
                out[start] = bestType
                for i in 0..<stride { out[start + 1 + i] = best[i] }
            }
        }
        return out
    }

    static func paeth(_ a: UInt8, _ b: UInt8, _ c: UInt8) -> UInt8 {
        let p = Int(a) + Int(b) - Int(c)
        let pa = abs(p - Int(a)), pb = abs(p - Int(b)), pc = abs(p - Int(c))
        if pa <= pb && pa <= pc { return a }
        return pb <= pc ? b : c
    }

    /// A zlib stream (header, deflate, Adler-32) of `bytes`.
    static func deflate(_ bytes: [UInt8]) -> Data {
        var stream = z_stream()
        guard deflateInit_(&stream, Z_DEFAULT_COMPRESSION, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            fatalError("zlib deflateInit failed")
        }
        defer { deflateEnd(&stream) }
        var out = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        bytes.withUnsafeBufferPointer { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
            stream.avail_in = uInt(input.count)
            var status: Int32 = Z_OK
            repeat {
                buffer.withUnsafeMutableBufferPointer { space in
                    stream.next_out = space.baseAddress
                    stream.avail_out = uInt(space.count)
                    status = CZlib.deflate(&stream, Z_FINISH)
                    out.append(space.baseAddress!, count: space.count - Int(stream.avail_out))
                }
            } while status == Z_OK
            precondition(status == Z_STREAM_END, "zlib deflate failed (\(status))")
        }
        return out
    }
}

fileprivate extension Data {
    mutating func appendBigEndian(_ value: UInt32) {
        append(contentsOf: [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)])
    }
}
