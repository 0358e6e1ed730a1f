import Foundation

/// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
/// counter-based generator both backends share: Kernels/SBIBackend/random.cl is its OpenCL twin. Element g of
/// a stream is lane g % 4 of the block for counter g / 4 under key `seed`, so any element can be
/// drawn independently and the two backends agree bit for bit on the raw 32-bit words.
public enum Philox {
    public typealias Block = (UInt32, UInt32, UInt32, UInt32)

    /// Random123's `philox4x32_10` on a full 128-bit counter and 64-bit key: ten rounds, the key
    /// bumped by the Weyl constants between rounds. Checked against Random123's known-answer
    /// vectors (kat_vectors) in RandomTests.
    @inline(__always)
    static func philox4x32_10(counter: Block, key: (UInt32, UInt32)) -> Block {
        var (c0, c1, c2, c3) = counter
        var (k0, k1) = key
        for round in 0..<10 {
            if round > 0 { k0 &+= 0x9E37_79B9; k1 &+= 0xBB67_AE85 }
            let p0 = UInt64(0xD251_1F53) &* UInt64(c0)
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(c2)
            let hi0 = UInt32(truncatingIfNeeded: p0 >> 32), lo0 = UInt32(truncatingIfNeeded: p0)
            let hi1 = UInt32(truncatingIfNeeded: p1 >> 32), lo1 = UInt32(truncatingIfNeeded: p1)
            (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
        }
        return (c0, c1, c2, c3)
    }

    /// The block of the stream for a 64-bit `counter` (counter words 0, 1; words 2, 3 are 0)
    /// under the key `seed` (low word first).
    @inline(__always)
    public static func block(counter: UInt64, seed: UInt64) -> Block {
        philox4x32_10(counter: (UInt32(truncatingIfNeeded: counter), UInt32(truncatingIfNeeded: counter >> 32), 0, 0),
                      key: (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
    }

    /// The raw 32-bit word at stream position `index`.
    public static func word(at index: UInt64, seed: UInt64) -> UInt32 {
        lane(block(counter: index / 4, seed: seed), Int(index % 4))
    }

    @inline(__always)
    static func lane(_ b: Block, _ lane: Int) -> UInt32 {
        switch lane { case 0: return b.0; case 1: return b.1; case 2: return b.2; default: return b.3 }
    }

    /// A word mapped to the open interval (0, 1): the top 23 bits k give (2k + 1)·2⁻²⁴, the centres
    /// of 2²³ equal cells. Every step is exact in single precision (an integer below 2²⁴ times a
    /// power of two), so the value is the same under any rounding or contraction of the device,
    /// and it lies in [2⁻²⁴, 1 − 2⁻²⁴]: 0 and 1 never occur. (An earlier version computed
    /// (w >> 8)·2⁻²⁴ + 2⁻²⁵, which needs 25 bits: the top cell rounded to exactly 1.0.)
    @inline(__always)
    public static func unit(_ word: UInt32) -> Float {
        Float((word >> 9) << 1 | 1) * 0x1p-24
    }

    /// `low + (high − low)·u`, with one fused rounding so that every device gets the same bits
    /// (Kernels/SBIBackend/random.cl calls fma; a separate multiply and add could be contracted there).
    @inline(__always)
    static func uniform(_ word: UInt32, low: Float, width: Float) -> Float {
        low.addingProduct(width, unit(word))
    }

    /// Box–Muller on words (a, b): lane 0 of a pair is r·cos θ, lane 1 is r·sin θ.
    @inline(__always)
    static func normalPair(_ a: UInt32, _ b: UInt32) -> (Float, Float) {
        let r = (-2 * Foundation.log(unit(a))).squareRoot()
        let theta = 6.2831855 * unit(b)
        return (r * Foundation.cos(theta), r * Foundation.sin(theta))
    }

    /// Calls `body(i, block, lane)` for every i in `range`, where element i is stream position
    /// `offset + i`: the block for that position's counter and the lane within it. Each block is
    /// computed once however many of its lanes fall in the range.
    @inline(__always)
    static func forEachElement(in range: Range<Int>, offset: UInt64, seed: UInt64,
                               _ body: (Int, Block, Int) -> Void) {
        var i = range.lowerBound
        while i < range.upperBound {
            let g = offset &+ UInt64(i)
            let b = block(counter: g / 4, seed: seed)
            var lane = Int(g % 4)
            while lane < 4 && i < range.upperBound {
                body(i, b, lane)
                lane += 1
                i += 1
            }
        }
    }
}
