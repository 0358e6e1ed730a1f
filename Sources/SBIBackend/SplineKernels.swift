import Foundation

/// Fused kernels of rational-quadratic spline couplings (Neural Spline Flows). A family of its
/// own, like `FlowKernels`, so that a backend can lack it and the graph scheduler then runs the
/// spline layers on the CPU backend.
public protocol SplineKernels: Backend {
    /// Rational-quadratic spline with linear tails (see Kernels/spline.cl): y and the per-row
    /// log-det from x (rows×D), the raw spline parameters (rows × D·(3K−1); feature j's values at
    /// [j·(3K−1), (j+1)·(3K−1)): K widths, K heights, K−1 interior derivatives) and the mask (D;
    /// 1 = passed through). `bins` is K, `bound` the tail bound B: the spline maps [−B, B] onto
    /// itself and is the identity outside. `inverse` runs the inverse map and returns its log-det.
    func rationalQuadraticSpline(inverse: Bool, x: BufferView, parameters: BufferView, mask: BufferView,
                                 y: BufferView, logDeterminant: BufferView, rows: Int, features: Int,
                                 bins: Int, bound: Float) throws
    /// Gradients of the forward spline w.r.t. x and the raw parameters, given those of y and the log-det.
    func rationalQuadraticSplineBackward(x: BufferView, parameters: BufferView, mask: BufferView,
                                         gradientY: BufferView, gradientLogDeterminant: BufferView,
                                         gradientX: BufferView, gradientParameters: BufferView,
                                         rows: Int, features: Int, bins: Int, bound: Float) throws
}

/// The constants of the spline parametrization, shared by both backends (Kernels/spline.cl
/// defines the same values as MIN_W, MIN_H, MIN_D).
public enum RationalQuadraticSpline {
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
}

extension Check {
    static func spline(x: BufferView, parameters: BufferView, mask: BufferView, y: BufferView, logdet: BufferView,
                       rows: Int, features: Int, bins: Int, bound: Float) throws {
        guard RationalQuadraticSpline.binRange.contains(bins) else {
            throw SBIError.invalidArgument("spline bins \(bins) outside \(RationalQuadraticSpline.binRange)")
        }
        guard bound > 0, bound.isFinite else {
            throw SBIError.invalidArgument("spline tail bound \(bound) must be positive and finite")
        }
        try count(x, rows * features, "spline x")
        try count(parameters, rows * features * RationalQuadraticSpline.parameterCount(bins: bins), "spline parameters")
        try count(mask, features, "spline mask")
        try count(y, rows * features, "spline output")
        try count(logdet, rows, "spline log-det")
    }
}
