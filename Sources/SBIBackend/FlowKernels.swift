/// Fused kernels of normalizing-flow layers. A family of its own, so that a backend can lack it
/// and the graph scheduler then runs those layers on the CPU backend.
public protocol FlowKernels: Backend {
    /// Affine coupling (see Kernels/coupling.cl): y and the per-row log-det from x (rows×D), the
    /// coupling net's output st = [raw s | t] (rows×2D) and the mask (D; 1 = passed through).
    /// `inverse` runs the inverse map and returns its log-det. `bound` > 0 soft-clamps
    /// s = bound·tanh(raw/bound); 0 uses raw s.
    func affineCoupling(inverse: Bool, x: BufferView, st: BufferView, mask: BufferView, y: BufferView,
                        logDeterminant: BufferView, rows: Int, features: Int, bound: Float) throws
    /// Gradients of the forward affine coupling w.r.t. x and st, given those of y and the log-det.
    func affineCouplingBackward(x: BufferView, st: BufferView, mask: BufferView, gradientY: BufferView,
                                gradientLogDeterminant: BufferView, gradientX: BufferView, gradientST: BufferView,
                                rows: Int, features: Int, bound: Float) throws
}

extension Check {
    static func coupling(x: BufferView, st: BufferView, mask: BufferView, y: BufferView, logdet: BufferView,
                         rows: Int, features: Int) throws {
        try count(x, rows * features, "coupling x")
        try count(st, rows * 2 * features, "coupling [s|t]")
        try count(mask, features, "coupling mask")
        try count(y, rows * features, "coupling output")
        try count(logdet, rows, "coupling log-det")
    }
}
