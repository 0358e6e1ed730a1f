/// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
/// counter-based generator both backends share: Kernels/random.cl is its OpenCL twin. Element g of
/// a stream is lane g % 4 of the block for counter g / 4 under key `seed`, so any element can be
/// drawn independently and the two backends agree bit for bit on the raw 32-bit words.
public enum Philox {
    public static func block(counter: UInt64, seed: UInt64) -> (UInt32, UInt32, UInt32, UInt32) {
        var c0 = UInt32(truncatingIfNeeded: counter), c1 = UInt32(truncatingIfNeeded: counter >> 32)
        var c2: UInt32 = 0, c3: UInt32 = 0
        var k0 = UInt32(truncatingIfNeeded: seed), k1 = UInt32(truncatingIfNeeded: seed >> 32)
        for round in 0..<10 {
            if round > 0 { k0 &+= 0x9E37_79B9; k1 &+= 0xBB67_AE85 }
            let p0 = UInt64(0xD251_1F53) * UInt64(c0)
            let p1 = UInt64(0xCD9E_8D57) * UInt64(c2)
            let hi0 = UInt32(p0 >> 32), lo0 = UInt32(truncatingIfNeeded: p0)
            let hi1 = UInt32(p1 >> 32), lo1 = UInt32(truncatingIfNeeded: p1)
            (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
        }
        return (c0, c1, c2, c3)
    }

    /// The raw 32-bit word at stream position `index`.
    public static func word(at index: UInt64, seed: UInt64) -> UInt32 {
        let b = block(counter: index / 4, seed: seed)
        switch index % 4 { case 0: return b.0; case 1: return b.1; case 2: return b.2; default: return b.3 }
    }

    /// A word mapped to (0, 1): the top 24 bits, centred in their interval, so 0 and 1 never occur.
    @inline(__always)
    public static func unit(_ word: UInt32) -> Float {
        Float(word >> 8) * 5.9604645e-08 + 2.9802322e-08
    }

    /// Box–Muller on words (a, b): lane 0 of a pair is r·cos θ, lane 1 is r·sin θ.
    @inline(__always)
    static func normalPair(_ a: UInt32, _ b: UInt32) -> (Float, Float) {
        let r = (-2 * Foundation.log(unit(a))).squareRoot()
        let theta = 6.2831855 * unit(b)
        return (r * Foundation.cos(theta), r * Foundation.sin(theta))
    }
}

import Foundation
