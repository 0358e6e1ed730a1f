import Foundation
import SBIBackend
import SBIGraph

/// RealNVP's affine coupling as one fused op: y = m⊙x + (1−m)⊙(x⊙exp(s) + t) and the per-row
/// log-det Σ(1−m)⊙s from x (rows×D), the coupling net's output st = [raw s | t] (rows×2D) and the
/// mask (D; 1 = passed through). `inverse` runs the inverse map and returns its log-det. `bound`
/// > 0 soft-clamps s = bound·tanh(raw/bound); 0 uses raw s. OpenCL: Kernels/SBIModels/coupling.cl;
/// the CPU twin below computes the same formulas in the same order.
public enum AffineCouplingKernel {
    static let program = KernelProgram(name: "SBIModels/coupling", source: EmbeddedKernels.sources["coupling"])

    public static func forward(on backend: Backend, inverse: Bool, x: BufferView, st: BufferView, mask: BufferView,
                               y: BufferView, logDeterminant: BufferView, rows: Int, features d: Int,
                               bound: Float) throws {
        try check(x: x, st: st, mask: mask, y: y, logdet: logDeterminant, rows: rows, features: d)
        try backend.run("affine coupling", cpu: { cpu in
            let px = try cpu.pointer(x), ps = try cpu.pointer(st), pm = try cpu.pointer(mask), py = try cpu.pointer(y)
            let pl = try cpu.pointer(logDeterminant)
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
        }, openCL: { cl in
            let wg = min(cl.reductionGroup, 128)
            try cl.launch(program, "affine_coupling", options: "-DWG=\(wg)", global: rows * wg, local: wg,
                          [.int(inverse ? 1 : 0), .view(x), .view(st), .view(mask), .view(y), .view(logDeterminant),
                          .int(rows), .int(d), .float(bound)])
        })
    }

    /// Gradients of the forward coupling w.r.t. x and st, given those of y and the log-det.
    public static func backward(on backend: Backend, x: BufferView, st: BufferView, mask: BufferView,
                                gradientY: BufferView, gradientLogDeterminant: BufferView, gradientX: BufferView,
                                gradientST: BufferView, rows: Int, features d: Int, bound: Float) throws {
        try check(x: x, st: st, mask: mask, y: gradientY, logdet: gradientLogDeterminant, rows: rows, features: d)
        try Check.count(gradientX, rows * d, "coupling x gradient")
        try Check.count(gradientST, rows * 2 * d, "coupling [s|t] gradient")
        try backend.run("affine coupling backward", cpu: { cpu in
            let px = try cpu.pointer(x), ps = try cpu.pointer(st), pm = try cpu.pointer(mask)
            let gy = try cpu.pointer(gradientY), gl = try cpu.pointer(gradientLogDeterminant)
            let gx = try cpu.pointer(gradientX), gst = try cpu.pointer(gradientST)
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
        }, openCL: { cl in
            try cl.launch(program, "affine_coupling_backward", global: d, global1: rows, local: 16, local1: 16,
                          [.view(x), .view(st), .view(mask), .view(gradientY), .view(gradientLogDeterminant),
                          .view(gradientX), .view(gradientST), .int(rows), .int(d), .float(bound)])
        })
    }

    static func check(x: BufferView, st: BufferView, mask: BufferView, y: BufferView, logdet: BufferView,
                      rows: Int, features: Int) throws {
        try Check.count(x, rows * features, "coupling x")
        try Check.count(st, rows * 2 * features, "coupling [s|t]")
        try Check.count(mask, features, "coupling mask")
        try Check.count(y, rows * features, "coupling output")
        try Check.count(logdet, rows, "coupling log-det")
    }
}

/// The fused affine coupling kernel as a graph primitive: inputs x (rows×D), st (rows×2D),
/// mask (1×D); outputs y (rows×D) and log-det (rows×1). Its backward is one more fused kernel.
public struct AffineCouplingOp: Primitive {
    public let inverse: Bool
    public let bound: Float
    public var description: String { inverse ? "affineCoupling⁻¹" : "affineCoupling" }

    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] {
        let x = inputs[0], st = inputs[1], mask = inputs[2]
        guard st.rows == x.rows, st.cols == 2 * x.cols, mask.count == x.cols else {
            throw SBIError.sizeMismatch("\(description): x \(x), [s|t] \(st), mask \(mask)")
        }
        return [(x.rows, x.cols), (x.rows, 1)]
    }

    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try AffineCouplingKernel.forward(
            on: backend, inverse: inverse, x: inputs[0].view, st: inputs[1].view, mask: inputs[2].view, y: outputs[0].view,
            logDeterminant: outputs[1].view, rows: inputs[0].rows, features: inputs[0].cols, bound: bound)
    }

    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard !inverse else { throw SBIError.invalidArgument("the inverse coupling is not differentiable") }
        let x = inputs[0]
        let gy = try cotangents[0] ?? graph.zeros(rows: x.rows, cols: x.cols)
        let gl = try cotangents[1] ?? graph.zeros(rows: x.rows, cols: 1)
        let grads = try graph.apply(AffineCouplingBackwardOp(bound: bound), [x, inputs[1], inputs[2], gy, gl])
        return [grads[0], grads[1], nil]
    }
}

/// Gradients of `AffineCouplingOp` w.r.t. x and st, from those of y and the log-det.
public struct AffineCouplingBackwardOp: Primitive {
    public let bound: Float
    public var description: String { "∂affineCoupling" }
    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] {
        [(inputs[0].rows, inputs[0].cols), (inputs[1].rows, inputs[1].cols)]
    }
    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        try AffineCouplingKernel.backward(
            on: backend, x: inputs[0].view, st: inputs[1].view, mask: inputs[2].view, gradientY: inputs[3].view,
            gradientLogDeterminant: inputs[4].view, gradientX: outputs[0].view, gradientST: outputs[1].view,
            rows: inputs[0].rows, features: inputs[0].cols, bound: bound)
    }
    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        throw SBIError.invalidArgument("second derivatives are not supported (\(description))")
    }
}

