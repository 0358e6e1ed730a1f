import Foundation
import SBIBackend

/// Host-side draws from the Philox-4x32-10 streams of `SBIBackend.Philox`, in double precision,
/// for the priors and the simulators that run on the host. They follow the backends' element
/// conventions, so a position of a stream means the same thing here as in `fillUniform` and
/// `fillNormal`:
///  - a uniform at position g is `unit(word g)` (exact in single precision, inside (0, 1));
///  - a normal at position g comes from Box–Muller on the word pair (g & ~1, g | 1) of g's block:
///    r·cos(2πu) for an even g, r·sin(2πu) for an odd one, with r = √(−2 ln u₀).
/// The same words give the backends' single-precision values to within their rounding.
public enum PhiloxDraws {
    /// The uniform in (0, 1) at stream position `position`.
    @inline(__always)
    public static func uniform(at position: UInt64, seed: UInt64) -> Double {
        Double(Philox.unit(Philox.word(at: position, seed: seed)))
    }

    /// The standard normal at stream position `position`.
    @inline(__always)
    public static func normal(at position: UInt64, seed: UInt64) -> Double {
        let b = Philox.block(counter: position / 4, seed: seed)
        let lane = Int(position % 4)
        let (w0, w1) = lane < 2 ? (b.0, b.1) : (b.2, b.3)
        let (c, s) = boxMuller(w0, w1)
        return lane % 2 == 0 ? c : s
    }

    /// Box–Muller on two words: (r·cos 2πu₁, r·sin 2πu₁), r = √(−2 ln u₀).
    @inline(__always)
    static func boxMuller(_ a: UInt32, _ b: UInt32) -> (Double, Double) {
        let r = (-2 * Foundation.log(Double(Philox.unit(a)))).squareRoot()
        let angle = 2 * Double.pi * Double(Philox.unit(b))
        return (r * Foundation.cos(angle), r * Foundation.sin(angle))
    }

    /// Writes the standard normals at positions offset ..< offset + count into `out`, computing
    /// each Philox block once.
    public static func normals(into out: UnsafeMutableBufferPointer<Double>, offset: UInt64, seed: UInt64) {
        var i = 0
        let count = out.count
        while i < count {
            let g = offset &+ UInt64(i)
            let b = Philox.block(counter: g / 4, seed: seed)
            let first = Int(g % 4), last = Swift.min(4, first + (count - i))
            let z01 = first < 2 ? boxMuller(b.0, b.1) : (0, 0)
            let z23 = last > 2 ? boxMuller(b.2, b.3) : (0, 0)
            for lane in first..<last {
                out[i + lane - first] = lane == 0 ? z01.0 : (lane == 1 ? z01.1 : (lane == 2 ? z23.0 : z23.1))
            }
            i += last - first
        }
    }

    /// The standard normals at positions offset ..< offset + count.
    public static func normals(count: Int, offset: UInt64, seed: UInt64) -> [Double] {
        [Double](unsafeUninitializedCapacity: count) { buffer, initialized in
            normals(into: buffer, offset: offset, seed: seed)
            initialized = count
        }
    }

    /// The uniforms in (0, 1) at positions offset ..< offset + count.
    public static func uniforms(count: Int, offset: UInt64, seed: UInt64) -> [Double] {
        var out = [Double](repeating: 0, count: count)
        var i = 0
        while i < count {
            let g = offset &+ UInt64(i)
            let b = Philox.block(counter: g / 4, seed: seed)
            let first = Int(g % 4), last = Swift.min(4, first + (count - i))
            for lane in first..<last {
                let w = lane == 0 ? b.0 : (lane == 1 ? b.1 : (lane == 2 ? b.2 : b.3))
                out[i + lane - first] = Double(Philox.unit(w))
            }
            i += last - first
        }
        return out
    }

    /// An independent seed derived from `seed` and a stream label (SplitMix64 finalizer), so
    /// that, say, the θ draws and the simulator noise of one seed do not share a stream.
    public static func derivedSeed(_ seed: UInt64, stream: UInt64) -> UInt64 {
        var z = seed &+ 0x9E37_79B9_7F4A_7C15 &* (stream &+ 1)
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Runs `body` over contiguous row ranges covering 0..<rows, on all cores when the batch is big
/// enough (`work` is a rough count of the operations per row) to outweigh the dispatch.
func parallelRows(_ rows: Int, workPerRow: Int, _ body: (Range<Int>) -> Void) {
    let cores = Swift.max(1, ProcessInfo.processInfo.activeProcessorCount)
    let total = rows * Swift.max(1, workPerRow)
    let chunks = total < (1 << 16) ? 1 : Swift.min(cores, rows)
    if chunks <= 1 {
        if rows > 0 { body(0..<rows) }
        return
    }
    DispatchQueue.concurrentPerform(iterations: chunks) { k in
        body((rows * k / chunks)..<(rows * (k + 1) / chunks))
    }
}
