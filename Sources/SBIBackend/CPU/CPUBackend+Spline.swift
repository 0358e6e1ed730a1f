import Foundation

/// CPU twins of Kernels/spline.cl, formula for formula (see the kernel file's header).
extension CPUBackend: SplineKernels {
    public func rationalQuadraticSpline(inverse: Bool, x: BufferView, parameters: BufferView, mask: BufferView,
                                        y: BufferView, logDeterminant: BufferView, rows: Int, features d: Int,
                                        bins: Int, bound: Float) throws {
        try Check.spline(x: x, parameters: parameters, mask: mask, y: y, logdet: logDeterminant,
                         rows: rows, features: d, bins: bins, bound: bound)
        let px = try pointer(x), pp = try pointer(parameters), pm = try pointer(mask), py = try pointer(y)
        let pl = try pointer(logDeterminant)
        let count = RationalQuadraticSpline.parameterCount(bins: bins)
        SplineKnots.withScratch(bins: bins) { spline in
            for r in 0..<rows {
                var sum: Float = 0
                for j in 0..<d {
                    let v = px[r * d + j]
                    guard pm[j] == 0, v >= -bound, v <= bound else { py[r * d + j] = v; continue }
                    let (out, ld) = spline.element(inverse: inverse, v, pp + (r * d + j) * count, bound: bound)
                    py[r * d + j] = out
                    sum += ld
                }
                pl[r] = sum
            }
        }
    }

    public func rationalQuadraticSplineBackward(x: BufferView, parameters: BufferView, mask: BufferView,
                                                gradientY: BufferView, gradientLogDeterminant: BufferView,
                                                gradientX: BufferView, gradientParameters: BufferView,
                                                rows: Int, features d: Int, bins: Int, bound: Float) throws {
        try Check.spline(x: x, parameters: parameters, mask: mask, y: gradientY, logdet: gradientLogDeterminant,
                         rows: rows, features: d, bins: bins, bound: bound)
        let count = RationalQuadraticSpline.parameterCount(bins: bins)
        try Check.count(gradientX, rows * d, "spline x gradient")
        try Check.count(gradientParameters, rows * d * count, "spline parameter gradient")
        let px = try pointer(x), pp = try pointer(parameters), pm = try pointer(mask)
        let gy = try pointer(gradientY), gl = try pointer(gradientLogDeterminant)
        let gx = try pointer(gradientX), gpar = try pointer(gradientParameters)
        SplineKnots.withScratch(bins: bins) { spline in
            for r in 0..<rows {
                for j in 0..<d {
                    let v = px[r * d + j], g = gy[r * d + j]
                    let p = pp + (r * d + j) * count, gp = gpar + (r * d + j) * count
                    guard pm[j] == 0, v >= -bound, v <= bound else {
                        gx[r * d + j] = g
                        gp.update(repeating: 0, count: count)
                        continue
                    }
                    gx[r * d + j] = spline.backward(v, p, bound: bound, gradientY: g, gradientLogDeterminant: gl[r],
                                                    gradientParameters: gp)
                }
            }
        }
    }
}

/// The knots and derivatives of one element's spline, in stack scratch reused across the
/// elements of one thread's rows (no heap allocation in a training step).
private struct SplineKnots {
    let bins: Int
    let xk: UnsafeMutablePointer<Float>, yk: UnsafeMutablePointer<Float>
    let dk: UnsafeMutablePointer<Float>, size: UnsafeMutablePointer<Float>

    static func withScratch(bins: Int, _ body: (SplineKnots) -> Void) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * bins + 3) { scratch in
            let base = scratch.baseAddress!
            let knots = SplineKnots(bins: bins, xk: base, yk: base + bins + 1, dk: base + 2 * (bins + 1),
                                    size: base + 3 * (bins + 1))
            body(knots)
        }
    }

    static func softplus(_ x: Float) -> Float { max(x, 0) + Foundation.log1p(Foundation.exp(-abs(x))) }

    /// Normalized bin sizes: minimum + (1 − minimum·K)·softmax(raw).
    func normalize(_ raw: UnsafeMutablePointer<Float>, minimum: Float) {
        var mx = raw[0]
        for i in 1..<bins { mx = max(mx, raw[i]) }
        var total: Float = 0
        for i in 0..<bins { size[i] = Foundation.exp(raw[i] - mx); total += size[i] }
        for i in 0..<bins { size[i] = minimum + (1 - minimum * Float(bins)) * (size[i] / total) }
    }

    /// Knots −B, −B + 2B·cumsum(size)…, B.
    static func knots(_ size: UnsafeMutablePointer<Float>, _ knot: UnsafeMutablePointer<Float>, bins: Int, bound: Float) {
        var acc: Float = 0
        knot[0] = -bound
        for i in 1..<bins { acc += size[i - 1]; knot[i] = 2 * bound * acc - bound }
        knot[bins] = bound
    }

    func setup(_ p: UnsafeMutablePointer<Float>, bound: Float) {
        normalize(p, minimum: RationalQuadraticSpline.minimumBinWidth)
        Self.knots(size, xk, bins: bins, bound: bound)
        normalize(p + bins, minimum: RationalQuadraticSpline.minimumBinHeight)
        Self.knots(size, yk, bins: bins, bound: bound)
        dk[0] = 1
        dk[bins] = 1
        for i in 1..<bins {
            dk[i] = RationalQuadraticSpline.minimumDerivative + Self.softplus(p[2 * bins + i - 1])
        }
    }

    /// nflows' searchsorted as a linear scan; v is inside [−B, B].
    func bin(_ knot: UnsafeMutablePointer<Float>, _ v: Float) -> Int {
        var k = 0
        for i in 1..<bins where v >= knot[i] { k = i }
        return k
    }

    func element(inverse: Bool, _ v: Float, _ p: UnsafeMutablePointer<Float>, bound: Float) -> (Float, Float) {
        setup(p, bound: bound)
        let k = bin(inverse ? yk : xk, v)
        let w = xk[k + 1] - xk[k], h = yk[k + 1] - yk[k]
        let s = h / w, d0 = dk[k], d1 = dk[k + 1]
        let sum = d0 + d1 - 2 * s
        let theta: Float
        var out: Float = 0
        if inverse {
            let dy = v - yk[k]
            let a = dy * sum + h * (s - d0)
            let b = h * d0 - dy * sum
            let c = -s * dy
            let disc = max(b * b - 4 * a * c, 0)
            theta = (2 * c) / (-b - disc.squareRoot())
            out = theta * w + xk[k]
        } else {
            theta = (v - xk[k]) / w
        }
        let t = theta * (1 - theta)
        let den = s + sum * t
        if !inverse { out = yk[k] + h * (s * theta * theta + d0 * t) / den }
        let one = 1 - theta
        let m = d1 * theta * theta + 2 * s * t + d0 * one * one
        let ld = Foundation.log(s * s * m) - 2 * Foundation.log(den)
        return (out, inverse ? -ld : ld)
    }

    /// Gradient w.r.t. K raw values of softmax-normalized, cumsum'd knots, given the gradients of
    /// the two knots (k, k+1) the element touched; knots 0 and K are constants.
    func binsBackward(_ raw: UnsafeMutablePointer<Float>, minimum: Float, bound: Float, k: Int, _ ga: Float, _ gb: Float,
                      _ graw: UnsafeMutablePointer<Float>) {
        var mx = raw[0]
        for i in 1..<bins { mx = max(mx, raw[i]) }
        var total: Float = 0
        for i in 0..<bins { graw[i] = Foundation.exp(raw[i] - mx); total += graw[i] }
        let scale = 2 * bound * (1 - minimum * Float(bins))
        let ca: Float = k > 0 ? ga : 0, cb: Float = k + 1 < bins ? gb : 0
        var dot: Float = 0
        for i in 0..<bins {
            graw[i] = graw[i] / total
            let gp = (i < k ? ca : 0) + (i <= k ? cb : 0)
            dot += graw[i] * gp
        }
        for i in 0..<bins {
            let gp = (i < k ? ca : 0) + (i <= k ? cb : 0)
            graw[i] = scale * graw[i] * (gp - dot)
        }
    }

    /// Gradients of the forward map of one element inside [−B, B]: writes those of its raw
    /// parameters and returns that of x.
    func backward(_ v: Float, _ p: UnsafeMutablePointer<Float>, bound: Float, gradientY g: Float,
                           gradientLogDeterminant gld: Float, gradientParameters gp: UnsafeMutablePointer<Float>) -> Float {
        setup(p, bound: bound)
        let k = bin(xk, v)
        let w = xk[k + 1] - xk[k], h = yk[k + 1] - yk[k]
        let s = h / w, d0 = dk[k], d1 = dk[k + 1]
        let sum = d0 + d1 - 2 * s
        let theta = (v - xk[k]) / w
        let one = 1 - theta
        let t = theta * one, dt = 1 - 2 * theta
        let num = s * theta * theta + d0 * t
        let den = s + sum * t
        let m = d1 * theta * theta + 2 * s * t + d0 * one * one
        let q = num / den
        // y = y_k + H·num/den.
        let hy = g * h / den
        var gTheta = hy * ((2 * s * theta + d0 * dt) - q * sum * dt)
        var gS = hy * (theta * theta - q * (1 - 2 * t))
        var gD0 = hy * (t - q * t)
        var gD1 = hy * (-q * t)
        var gH = g * q
        // log-det = 2 log s + log m − 2 log den.
        let im = 1 / m, iden = 2 / den
        gTheta += gld * ((2 * d1 * theta + 2 * s * dt - 2 * d0 * one) * im - iden * sum * dt)
        gS += gld * (2 / s + 2 * t * im - iden * (1 - 2 * t))
        gD0 += gld * (one * one * im - iden * t)
        gD1 += gld * (theta * theta * im - iden * t)
        // s = H/W, θ = (x − x_k)/W, W = x_{k+1} − x_k, H = y_{k+1} − y_k.
        gH += gS / w
        let gW = -(gS * s + gTheta * theta) / w
        let gXa = -gTheta / w - gW, gXb = gW
        let gYa = g - gH, gYb = gH
        binsBackward(p, minimum: RationalQuadraticSpline.minimumBinWidth, bound: bound, k: k, gXa, gXb, gp)
        binsBackward(p + bins, minimum: RationalQuadraticSpline.minimumBinHeight, bound: bound, k: k, gYa, gYb, gp + bins)
        for i in 1..<bins {
            let gd: Float = i == k ? gD0 : (i == k + 1 ? gD1 : 0)
            gp[2 * bins + i - 1] = gd / (1 + Foundation.exp(-p[2 * bins + i - 1]))
        }
        return gTheta / w
    }
}
