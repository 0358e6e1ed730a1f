import Foundation
import SBIBackend
import SBIGraph

/// The rational-quadratic spline with linear tails as one fused op (Kernels/SBIModels/spline.cl;
/// `SplineKnots` below is its CPU twin, formula for formula): y and the per-row log-det from x
/// (rows×D), the raw spline parameters (rows × D·(3K−1); feature j's values at
/// [j·(3K−1), (j+1)·(3K−1)): K widths, K heights, K−1 interior derivatives) and the mask (D;
/// 1 = passed through). `bins` is K, `bound` the tail bound B: the spline maps [−B, B] onto itself
/// and is the identity outside. `inverse` runs the inverse map and returns its log-det.
/// The constants below are the kernel's too: launches pass them as MIN_W, MIN_H and MIN_D.
public enum RationalQuadraticSpline {
    static let program = KernelProgram(name: "SBIModels/spline", source: EmbeddedKernels.sources["spline"])

    public static let minimumBinWidth: Float = 1e-3
    public static let minimumBinHeight: Float = 1e-3
    public static let minimumDerivative: Float = 1e-3
    /// Bins a kernel accepts (its per-item arrays are sized by K).
    public static let binRange = 1...64
    /// Raw parameters per transformed element: K widths, K heights, K−1 interior derivatives.
    public static func parameterCount(bins: Int) -> Int { 3 * bins - 1 }
    /// The raw derivative whose derivative min_d + softplus(raw) is 1: log(exp(1 − min_d) − 1),
    /// nflows' padding constant for the boundary knots.
    public static var unitDerivativeRaw: Float {
        Float(Foundation.log(Foundation.expm1(1 - Double(minimumDerivative))))
    }

    public static func forward(on backend: Backend, inverse: Bool, x: BufferView, parameters: BufferView,
                               mask: BufferView, y: BufferView, logDeterminant: BufferView, rows: Int,
                               features d: Int, bins: Int, bound: Float) throws {
        try check(x: x, parameters: parameters, mask: mask, y: y, logdet: logDeterminant,
                  rows: rows, features: d, bins: bins, bound: bound)
        try backend.run("rational-quadratic spline", cpu: { cpu in
            let px = try cpu.pointer(x), pp = try cpu.pointer(parameters), pm = try cpu.pointer(mask), py = try cpu.pointer(y)
            let pl = try cpu.pointer(logDeterminant)
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
        }, openCL: { cl in
            let wg = workGroup(features: d, device: cl)
            try cl.launch(program, "rq_spline", options: "-DWG=\(wg) " + defines(bins: bins), global: rows * wg, local: wg,
                          [.int(inverse ? 1 : 0), .view(x), .view(parameters), .view(mask), .view(y), .view(logDeterminant),
                          .int(rows), .int(d), .float(bound)])
        })
    }

    /// Gradients of the forward spline w.r.t. x and the raw parameters, given those of y and the log-det.
    public static func backward(on backend: Backend, x: BufferView, parameters: BufferView, mask: BufferView,
                                gradientY: BufferView, gradientLogDeterminant: BufferView,
                                gradientX: BufferView, gradientParameters: BufferView,
                                rows: Int, features d: Int, bins: Int, bound: Float) throws {
        try check(x: x, parameters: parameters, mask: mask, y: gradientY, logdet: gradientLogDeterminant,
                  rows: rows, features: d, bins: bins, bound: bound)
        let count = parameterCount(bins: bins)
        try Check.count(gradientX, rows * d, "spline x gradient")
        try Check.count(gradientParameters, rows * d * count, "spline parameter gradient")
        try backend.run("rational-quadratic spline backward", cpu: { cpu in
            let px = try cpu.pointer(x), pp = try cpu.pointer(parameters), pm = try cpu.pointer(mask)
            let gy = try cpu.pointer(gradientY), gl = try cpu.pointer(gradientLogDeterminant)
            let gx = try cpu.pointer(gradientX), gpar = try cpu.pointer(gradientParameters)
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
        }, openCL: { cl in
            try cl.launch(program, "rq_spline_backward", options: defines(bins: bins), global: d, global1: rows,
                          local: 16, local1: 16,
                          [.view(x), .view(parameters), .view(mask), .view(gradientY), .view(gradientLogDeterminant),
                          .view(gradientX), .view(gradientParameters), .int(rows), .int(d), .float(bound)])
        })
    }

    /// The kernel's -D defines: the bin count (each item's knot arrays have a static size, so a
    /// program is built per K) and the minimum bin sizes and derivative.
    static func defines(bins: Int) -> String {
        "-DBINS=\(bins) -DMIN_W=\(minimumBinWidth)f -DMIN_H=\(minimumBinHeight)f -DMIN_D=\(minimumDerivative)f"
    }

    /// The work-group of the forward kernel: a power of two covering the features (each item does
    /// O(K) work per feature), from 32 (one warp; also bounds the program variants to 32, 64 and
    /// 128) to 128, and at most what the device accepts.
    static func workGroup(features: Int, device: OpenCLBackend) -> Int {
        var wg = 32
        while wg < features && wg < 128 { wg *= 2 }
        return min(wg, device.reductionGroup)
    }

    static func check(x: BufferView, parameters: BufferView, mask: BufferView, y: BufferView, logdet: BufferView,
                      rows: Int, features: Int, bins: Int, bound: Float) throws {
        guard binRange.contains(bins) else {
            throw SBIError.invalidArgument("spline bins \(bins) outside \(binRange)")
        }
        guard bound > 0, bound.isFinite else {
            throw SBIError.invalidArgument("spline tail bound \(bound) must be positive and finite")
        }
        try Check.count(x, rows * features, "spline x")
        try Check.count(parameters, rows * features * parameterCount(bins: bins), "spline parameters")
        try Check.count(mask, features, "spline mask")
        try Check.count(y, rows * features, "spline output")
        try Check.count(logdet, rows, "spline log-det")
    }
}

/// The fused rational-quadratic spline kernel as a graph primitive: inputs x (rows×D), raw
/// parameters (rows × D·(3K−1)), mask (1×D); outputs y (rows×D) and log-det (rows×1).
/// Its backward is one more fused kernel.
public struct RQSplineOp: Primitive {
    public let inverse: Bool
    public let bins: Int
    public let tailBound: Float
    public var description: String { inverse ? "rqSpline⁻¹" : "rqSpline" }

    public init(inverse: Bool, bins: Int = 8, tailBound: Float = 3) {
        self.inverse = inverse
        self.bins = bins
        self.tailBound = tailBound
    }

    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] {
        let x = inputs[0], params = inputs[1], mask = inputs[2]
        guard RationalQuadraticSpline.binRange.contains(bins), tailBound > 0 else {
            throw SBIError.invalidArgument("\(description): bins \(bins), tail bound \(tailBound)")
        }
        guard params.rows == x.rows, params.cols == x.cols * RationalQuadraticSpline.parameterCount(bins: bins),
              mask.count == x.cols else {
            throw SBIError.sizeMismatch("\(description) (K = \(bins)): x \(x), parameters \(params), mask \(mask)")
        }
        return [(x.rows, x.cols), (x.rows, 1)]
    }

    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try RationalQuadraticSpline.forward(
            on: backend, inverse: inverse, x: inputs[0].view, parameters: inputs[1].view, mask: inputs[2].view,
            y: outputs[0].view, logDeterminant: outputs[1].view, rows: inputs[0].rows, features: inputs[0].cols,
            bins: bins, bound: tailBound)
    }

    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard !inverse else { throw SBIError.invalidArgument("the inverse spline is not differentiable") }
        let x = inputs[0]
        let gy = try cotangents[0] ?? graph.zeros(rows: x.rows, cols: x.cols)
        let gl = try cotangents[1] ?? graph.zeros(rows: x.rows, cols: 1)
        let grads = try graph.apply(RQSplineBackwardOp(bins: bins, tailBound: tailBound),
                                    [x, inputs[1], inputs[2], gy, gl])
        return [grads[0], grads[1], nil]
    }
}

/// Gradients of the forward `RQSplineOp` w.r.t. x and the raw parameters, from those of y and the log-det.
public struct RQSplineBackwardOp: Primitive {
    public let bins: Int
    public let tailBound: Float
    public var description: String { "∂rqSpline" }
    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] {
        [(inputs[0].rows, inputs[0].cols), (inputs[1].rows, inputs[1].cols)]
    }
    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try RationalQuadraticSpline.backward(
            on: backend, x: inputs[0].view, parameters: inputs[1].view, mask: inputs[2].view, gradientY: inputs[3].view,
            gradientLogDeterminant: inputs[4].view, gradientX: outputs[0].view, gradientParameters: outputs[1].view,
            rows: inputs[0].rows, features: inputs[0].cols, bins: bins, bound: tailBound)
    }
    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        throw SBIError.invalidArgument("second derivatives are not supported (\(description))")
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
