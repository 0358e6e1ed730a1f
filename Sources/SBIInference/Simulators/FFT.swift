import Foundation

/// An in-place iterative radix-2 Cooley–Tukey FFT in double precision, for power-of-two sizes.
/// Conventions are NumPy's: the forward transform is unnormalized,
/// X_k = Σ_n x_n e^{−2πi kn/N}, and the inverse carries the 1/N, so inverse(forward(x)) = x.
public struct RadixTwoFFT: Sendable {
    public let size: Int
    private let cosines: [Double]
    private let sines: [Double]
    private let reversed: [Int]

    public init(size: Int) {
        precondition(size >= 1 && size & (size - 1) == 0, "FFT size \(size) is not a power of two")
        self.size = size
        cosines = (0..<max(1, size / 2)).map { Foundation.cos(2 * Double.pi * Double($0) / Double(size)) }
        sines = (0..<max(1, size / 2)).map { Foundation.sin(2 * Double.pi * Double($0) / Double(size)) }
        var bits = 0
        while 1 << bits < size { bits += 1 }
        reversed = (0..<size).map { i in
            var r = 0
            for b in 0..<bits where i & (1 << b) != 0 { r |= 1 << (bits - 1 - b) }
            return r
        }
    }

    /// Transforms the `size` complex values at re[offset + k·stride], im[offset + k·stride].
    public func transform(_ re: UnsafeMutablePointer<Double>, _ im: UnsafeMutablePointer<Double>,
                          offset: Int = 0, stride: Int = 1, inverse: Bool = false) {
        let n = size
        @inline(__always) func at(_ k: Int) -> Int { offset + k * stride }
        for i in 0..<n {
            let j = reversed[i]
            if j > i {
                (re[at(i)], re[at(j)]) = (re[at(j)], re[at(i)])
                (im[at(i)], im[at(j)]) = (im[at(j)], im[at(i)])
            }
        }
        let sign: Double = inverse ? 1 : -1
        var length = 2
        while length <= n {
            let half = length / 2, step = n / length
            var start = 0
            while start < n {
                for k in 0..<half {
                    let wr = cosines[k * step], wi = sign * sines[k * step]
                    let p = at(start + k), q = at(start + k + half)
                    let tr = re[q] * wr - im[q] * wi
                    let ti = re[q] * wi + im[q] * wr
                    re[q] = re[p] - tr
                    im[q] = im[p] - ti
                    re[p] += tr
                    im[p] += ti
                }
                start += length
            }
            length *= 2
        }
        if inverse {
            let scale = 1 / Double(n)
            for i in 0..<n {
                re[at(i)] *= scale
                im[at(i)] *= scale
            }
        }
    }

    /// The 2-D transform of a size×size array stored row-major: every row, then every column.
    public func transform2D(_ re: UnsafeMutablePointer<Double>, _ im: UnsafeMutablePointer<Double>, inverse: Bool = false) {
        for row in 0..<size { transform(re, im, offset: row * size, stride: 1, inverse: inverse) }
        for column in 0..<size { transform(re, im, offset: column, stride: size, inverse: inverse) }
    }

    /// Array form of `transform2D`.
    public func transform2D(re: inout [Double], im: inout [Double], inverse: Bool = false) {
        precondition(re.count == size * size && im.count == size * size, "2-D FFT needs \(size)×\(size) values")
        re.withUnsafeMutableBufferPointer { r in
            im.withUnsafeMutableBufferPointer { i in transform2D(r.baseAddress!, i.baseAddress!, inverse: inverse) }
        }
    }
}
