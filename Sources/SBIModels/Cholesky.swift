/// The Cholesky factorization that the GMM and the priors share.
public enum Cholesky {
    /// In-place Cholesky factorization of a row-major symmetric n×n matrix (only its lower
    /// triangle is read); leaves L in the lower triangle and zeros above. False when not positive definite.
    public static func factor(_ a: inout [Double], _ n: Int) -> Bool {
        a.withUnsafeMutableBufferPointer { factor($0.baseAddress!, n) }
    }

    public static func factor(_ a: UnsafeMutablePointer<Double>, _ n: Int) -> Bool {
        for j in 0..<n {
            var diagonal = a[j * n + j]
            for p in 0..<j { diagonal -= a[j * n + p] * a[j * n + p] }
            guard diagonal > 0, diagonal.isFinite else { return false }
            let l = diagonal.squareRoot()
            a[j * n + j] = l
            for i in (j + 1)..<n {
                var s = a[i * n + j]
                for p in 0..<j { s -= a[i * n + p] * a[j * n + p] }
                a[i * n + j] = s / l
            }
            for i in 0..<j { a[i * n + j] = 0 }
        }
        return true
    }
}
