/// Launches of Kernels/coupling.cl.
extension OpenCLBackend: FlowKernels {
    public func affineCoupling(inverse: Bool, x: BufferView, st: BufferView, mask: BufferView, y: BufferView,
                               logDeterminant: BufferView, rows: Int, features: Int, bound: Float) throws {
        try Check.coupling(x: x, st: st, mask: mask, y: y, logdet: logDeterminant, rows: rows, features: features)
        let wg = min(reductionGroup, 128)
        try launch("coupling", "affine_coupling", options: "-DWG=\(wg)", global: rows * wg, local: wg,
                   [.int(inverse ? 1 : 0), .view(x), .view(st), .view(mask), .view(y), .view(logDeterminant),
                    .int(rows), .int(features), .float(bound)])
    }

    public func affineCouplingBackward(x: BufferView, st: BufferView, mask: BufferView, gradientY: BufferView,
                                       gradientLogDeterminant: BufferView, gradientX: BufferView,
                                       gradientST: BufferView, rows: Int, features: Int, bound: Float) throws {
        try Check.coupling(x: x, st: st, mask: mask, y: gradientY, logdet: gradientLogDeterminant, rows: rows, features: features)
        try Check.count(gradientX, rows * features, "coupling x gradient")
        try Check.count(gradientST, rows * 2 * features, "coupling [s|t] gradient")
        try launch("coupling", "affine_coupling_backward", global: features, global1: rows, local: 16, local1: 16,
                   [.view(x), .view(st), .view(mask), .view(gradientY), .view(gradientLogDeterminant),
                    .view(gradientX), .view(gradientST), .int(rows), .int(features), .float(bound)])
    }
}
