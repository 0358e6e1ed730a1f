import Foundation

/// CPU twins of Kernels/coupling.cl.
extension CPUBackend: FlowKernels {
    public func affineCoupling(inverse: Bool, x: BufferView, st: BufferView, mask: BufferView, y: BufferView,
                               logDeterminant: BufferView, rows: Int, features d: Int, bound: Float) throws {
        try Check.coupling(x: x, st: st, mask: mask, y: y, logdet: logDeterminant, rows: rows, features: d)
        let px = try pointer(x), ps = try pointer(st), pm = try pointer(mask), py = try pointer(y)
        let pl = try pointer(logDeterminant)
        for r in 0..<rows {
            var sum: Float = 0
            for j in 0..<d {
                let v = px[r * d + j]
                if pm[j] != 0 { py[r * d + j] = v; continue }
                let raw = ps[r * 2 * d + j], t = ps[r * 2 * d + d + j]
                let s = bound > 0 ? bound * Foundation.tanh(raw / bound) : raw
                py[r * d + j] = inverse ? (v - t) * Foundation.exp(-s) : v * Foundation.exp(s) + t
                sum += s
            }
            pl[r] = inverse ? -sum : sum
        }
    }

    public func affineCouplingBackward(x: BufferView, st: BufferView, mask: BufferView, gradientY: BufferView,
                                       gradientLogDeterminant: BufferView, gradientX: BufferView,
                                       gradientST: BufferView, rows: Int, features d: Int, bound: Float) throws {
        try Check.coupling(x: x, st: st, mask: mask, y: gradientY, logdet: gradientLogDeterminant, rows: rows, features: d)
        try Check.count(gradientX, rows * d, "coupling x gradient")
        try Check.count(gradientST, rows * 2 * d, "coupling [s|t] gradient")
        let px = try pointer(x), ps = try pointer(st), pm = try pointer(mask)
        let gy = try pointer(gradientY), gl = try pointer(gradientLogDeterminant)
        let gx = try pointer(gradientX), gst = try pointer(gradientST)
        for r in 0..<rows {
            for j in 0..<d {
                let g = gy[r * d + j]
                if pm[j] != 0 {
                    gx[r * d + j] = g
                    gst[r * 2 * d + j] = 0
                    gst[r * 2 * d + d + j] = 0
                    continue
                }
                let raw = ps[r * 2 * d + j]
                let th = bound > 0 ? Foundation.tanh(raw / bound) : 0
                let s = bound > 0 ? bound * th : raw
                let ds: Float = bound > 0 ? 1 - th * th : 1
                let e = Foundation.exp(s)
                gx[r * d + j] = g * e
                gst[r * 2 * d + j] = (g * px[r * d + j] * e + gl[r]) * ds
                gst[r * 2 * d + d + j] = g
            }
        }
    }
}
