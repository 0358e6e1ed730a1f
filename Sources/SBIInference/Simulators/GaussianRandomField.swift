import Foundation
import SBIBackend

/// A size×size (32×32) periodic Gaussian random field with power spectrum P(k) = A·k^(−n),
/// θ = (A, n), prior A ~ U[0.5, 2], n ~ U[1, 4].
///
/// Construction, per row, in double precision on the host: white noise w (standard normals at
/// stream positions r·N² … r·N² + N² − 1, N² = size², in row-major pixel order); W = FFT₂(w);
/// multiply each mode by √P(k); δ = Re IFFT₂. The wavenumber of mode (k_x, k_y), each folded to
/// [−N/2, N/2), is k = √(k_x² + k_y²) in units of the stamp's fundamental frequency (k = 1 is one
/// cycle across the field: 2π/N radians per pixel); the k = 0 mode is set to 0, so every
/// realization has zero mean.
///
/// Normalization: with the unnormalized forward DFT (NumPy's fft2), ⟨|W_k|²⟩ = N², so
/// ⟨|FFT₂(δ)_k|²⟩ / N² = P(k) — the power spectrum is what an estimator |FFT₂(δ)|²/N² measures —
/// and the pixel variance is Var δ = Σ_{k≠0} P(k) / N² (Parseval). Because w is real, W is
/// Hermitian and √P(k) is even in k, so the inverse transform is real up to rounding (the
/// imaginary part, ~1e-16, is dropped); the Nyquist modes keep their full power.
public struct GaussianRandomField: Simulator {
    public let name = "grf"
    public let summary = "32×32 Gaussian random field with P(k) = A·k^(−n): θ = (A, n) ∈ U[0.5,2]×U[1,4]"
    public let parameterNames = ["amplitude", "slope"]
    public let size: Int
    public var observationShape: [Int] { [size, size] }
    public let prior = Prior.uniform(low: [0.5, 1], high: [2, 4])

    public init(size: Int = 32) {
        precondition(size >= 2 && size & (size - 1) == 0, "GRF size \(size) is not a power of two ≥ 2")
        self.size = size
    }

    /// k = √(k_x² + k_y²) of every mode in FFT order (row = k_y index).
    public var wavenumbers: [Double] {
        let n = size
        func fold(_ i: Int) -> Double { Double(i < n / 2 ? i : i - n) }
        return (0..<(n * n)).map { i in (fold(i / n) * fold(i / n) + fold(i % n) * fold(i % n)).squareRoot() }
    }

    public func simulate(theta: [Float], rows: Int, seed: UInt64, backend: Backend?) throws -> [Float] {
        try checkTheta(theta, rows: rows)
        for r in 0..<rows where !(theta[2 * r] >= 0) {
            throw SBIError.invalidArgument("grf: row \(r) has amplitude \(theta[2 * r]); P(k) = A·k^(−n) needs A ≥ 0")
        }
        let n = size, pixels = n * n
        let fft = RadixTwoFFT(size: n)
        let logK = wavenumbers.map { $0 > 0 ? Foundation.log($0) : 0 }
        var x = [Float](repeating: 0, count: rows * pixels)
        x.withUnsafeMutableBufferPointer { out in
            parallelRows(rows, workPerRow: pixels * 40) { range in
                var re = [Double](repeating: 0, count: pixels), im = [Double](repeating: 0, count: pixels)
                for r in range {
                    let amplitude = Double(theta[2 * r]), slope = Double(theta[2 * r + 1])
                    re.withUnsafeMutableBufferPointer {
                        PhiloxDraws.normals(into: $0, offset: UInt64(r) * UInt64(pixels), seed: seed)
                    }
                    for i in 0..<pixels { im[i] = 0 }
                    fft.transform2D(re: &re, im: &im)
                    re[0] = 0
                    im[0] = 0
                    for i in 1..<pixels {
                        // √(A·k^(−n)) = √A·exp(−n·ln k / 2)
                        let root = amplitude.squareRoot() * Foundation.exp(-0.5 * slope * logK[i])
                        re[i] *= root
                        im[i] *= root
                    }
                    fft.transform2D(re: &re, im: &im, inverse: true)
                    for i in 0..<pixels { out[r * pixels + i] = Float(re[i]) }
                }
            }
        }
        return x
    }
}
