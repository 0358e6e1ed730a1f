import Foundation

/// The scalar definitions of the element-wise functions; the CPU backend applies them and the
/// OpenCL kernels (Kernels/elementwise.cl) implement the same formulas.
extension UnaryOp {
    @inline(__always)
    func apply(_ x: Float, _ slope: Float) -> Float {
        switch self {
        case .identity: return x
        case .exp: return Foundation.exp(x)
        case .log: return Foundation.log(x)
        case .tanh: return Foundation.tanh(x)
        case .relu: return x > 0 ? x : 0
        case .leakyRelu: return x > 0 ? x : slope * x
        case .sigmoid: return 1 / (1 + Foundation.exp(-x))
        // max(x, 0) + log1p(exp(-|x|)) never overflows.
        case .softplus: return Swift.max(x, 0) + Foundation.log1p(Foundation.exp(-Swift.abs(x)))
        case .square: return x * x
        case .negate: return -x
        case .abs: return Swift.abs(x)
        case .sqrt: return x.squareRoot()
        }
    }
}

extension BinaryOp {
    @inline(__always)
    func apply(_ a: Float, _ b: Float) -> Float {
        switch self {
        case .add: return a + b
        case .subtract: return a - b
        case .multiply: return a * b
        case .divide: return a / b
        }
    }
}
