import Foundation
import SBIBackend

/// The scalars of one Adam step. `step` counts from 1 (it sets the bias corrections).
public struct AdamHyperparameters: Sendable, Equatable {
    public var learningRate: Float
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    /// Decoupled weight decay (AdamW); 0 gives plain Adam.
    public var weightDecay: Float = 0
    public var step: Int = 1
    /// The parameter average's decay, when `AdamStep.run` is given an average.
    public var averageDecay: Float = 0

    public init(learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
                weightDecay: Float = 0, step: Int = 1, averageDecay: Float = 0) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.step = step
        self.averageDecay = averageDecay
    }

    /// 1 − β₁ᵗ and 1 − β₂ᵗ, computed in double so that late steps stay exact.
    public var biasCorrections: (Float, Float) {
        (Float(1 - Foundation.pow(Double(beta1), Double(step))), Float(1 - Foundation.pow(Double(beta2), Double(step))))
    }
}

/// The optimizer's update as one fused op (Kernels/SBIGraph/adam.cl; `AdamMath` below is its CPU
/// twin, formula for formula): one Adam (or AdamW, when weightDecay > 0) step over flat parameter, gradient and moment
/// arrays, with PyTorch's formulas. When `gradientSquaredNorm` is given (a 1-element view
/// holding Σg²), gradients are first scaled by min(1, maxGradientNorm / ‖g‖). When `average`
/// is given, it moves toward the updated parameters: a += (1 − hyper.averageDecay)·(p − a),
/// in the same pass (an exponential moving average of the iterates costs no extra launch).
public enum AdamStep {
    static let program = KernelProgram(name: "SBIGraph/adam", source: EmbeddedKernels.sources["adam"])

    public static func run(on backend: Backend, parameters: BufferView, gradients: BufferView,
                           firstMoment: BufferView, secondMoment: BufferView, hyper: AdamHyperparameters,
                           gradientSquaredNorm: BufferView?, maxGradientNorm: Float, average: BufferView? = nil) throws {
        try check(parameters: parameters, gradients: gradients, firstMoment: firstMoment,
                  secondMoment: secondMoment, hyper: hyper, gradientSquaredNorm: gradientSquaredNorm,
                  maxGradientNorm: maxGradientNorm, average: average)
        try backend.run("Adam", cpu: { cpu in
            let p = try cpu.pointer(parameters), g = try cpu.pointer(gradients)
            let m = try cpu.pointer(firstMoment), v = try cpu.pointer(secondMoment)
            let a = try average.map { try cpu.pointer($0) }
            let clip = try gradientSquaredNorm.map { AdamMath.clipScale(try cpu.pointer($0)[0], maxGradientNorm) } ?? 1
            let (c1, c2) = hyper.biasCorrections
            // Memory-bound over every parameter (four streams in, three out): split across the
            // cores and vectorized by hand, since the compiler cannot prove that p, g, m, v don't alias.
            let count = parameters.count, width = AdamMath.Vector.scalarCount
            CPUParallel.forEachChunk(count / width, work: count) { range in
                for block in range {
                    AdamMath.update(p, g, m, v, a, at: block * width, clip, hyper, c1, c2)
                }
            }
            for i in (count / width * width)..<count {
                AdamMath.update(&p[i], g[i] * clip, &m[i], &v[i], hyper, c1, c2)
                if let a { a[i] = a[i] + (1 - hyper.averageDecay) * (p[i] - a[i]) }
            }
        }, openCL: { cl in
            let (c1, c2) = hyper.biasCorrections
            let norm = gradientSquaredNorm ?? gradients.buffer.view(offset: 0, count: 0)
            let averaged = average ?? parameters  // unread when there is no average
            try cl.launch(program, "adam_step", global: parameters.count,
                          [.view(parameters), .view(gradients), .view(firstMoment), .view(secondMoment),
                           .int(parameters.count), .float(hyper.learningRate), .float(hyper.beta1), .float(hyper.beta2),
                           .float(hyper.epsilon), .float(hyper.weightDecay), .float(c1), .float(c2),
                           .int(gradientSquaredNorm == nil ? 0 : 1), .view(norm), .float(maxGradientNorm),
                           .int(average == nil ? 0 : 1), .view(averaged), .float(hyper.averageDecay)])
        })
    }

    static func check(parameters: BufferView, gradients: BufferView, firstMoment: BufferView, secondMoment: BufferView,
                      hyper: AdamHyperparameters, gradientSquaredNorm: BufferView?, maxGradientNorm: Float,
                      average: BufferView?) throws {
        try Check.same(parameters, gradients, "adam parameters/gradients")
        if let average {
            try Check.same(parameters, average, "adam parameters/average")
            guard hyper.averageDecay >= 0, hyper.averageDecay <= 1 else {
                throw SBIError.invalidArgument("adam: averageDecay \(hyper.averageDecay) must be in [0, 1]")
            }
        }
        try Check.same(parameters, firstMoment, "adam parameters/first moment")
        try Check.same(parameters, secondMoment, "adam parameters/second moment")
        guard hyper.step >= 1 else {
            throw SBIError.invalidArgument("adam: step \(hyper.step); steps count from 1")
        }
        if let norm = gradientSquaredNorm {
            try Check.count(norm, 1, "adam gradient squared norm")
            guard maxGradientNorm >= 0 else {
                throw SBIError.invalidArgument("adam: maxGradientNorm \(maxGradientNorm) must be ≥ 0")
            }
        }
    }
}

/// Adam's scalar update, shared formula for formula with Kernels/SBIGraph/adam.cl.
enum AdamMath {
    /// torch.nn.utils.clip_grad_norm_: min(1, maxNorm / (‖g‖ + 1e-6)); a NaN norm leaves g as is.
    @inline(__always)
    static func clipScale(_ squaredNorm: Float, _ maxNorm: Float) -> Float {
        let coefficient = maxNorm / (squaredNorm.squareRoot() + 1e-6)
        return coefficient < 1 ? coefficient : 1
    }

    typealias Vector = SIMD8<Float>

    /// The same formula on `Vector.scalarCount` consecutive parameters from `i`; element by
    /// element the roundings are those of the scalar form.
    @inline(__always)
    static func update(_ p: UnsafeMutablePointer<Float>, _ g: UnsafeMutablePointer<Float>,
                       _ m: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>,
                       _ a: UnsafeMutablePointer<Float>?, at i: Int,
                       _ clip: Float, _ h: AdamHyperparameters, _ c1: Float, _ c2: Float) {
        func load(_ x: UnsafeMutablePointer<Float>) -> Vector { UnsafeRawPointer(x + i).loadUnaligned(as: Vector.self) }
        func store(_ value: Vector, _ x: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(x + i).storeBytes(of: value, as: Vector.self) }
        var pv = load(p), mv = load(m), vv = load(v)
        let gv = load(g) * clip
        if h.weightDecay > 0 { pv = pv - (h.learningRate * h.weightDecay) * pv }
        mv = h.beta1 * mv + (1 - h.beta1) * gv
        vv = h.beta2 * vv + (1 - h.beta2) * (gv * gv)
        let mHat = mv / c1
        let vHat = vv / c2
        pv = pv - (h.learningRate * mHat) / (vHat.squareRoot() + h.epsilon)
        store(pv, p); store(mv, m); store(vv, v)
        if let a {
            let av = load(a)
            store(av + (1 - h.averageDecay) * (pv - av), a)
        }
    }

    @inline(__always)
    static func update(_ p: inout Float, _ g: Float, _ m: inout Float, _ v: inout Float,
                       _ h: AdamHyperparameters, _ c1: Float, _ c2: Float) {
        if h.weightDecay > 0 { p = p - h.learningRate * h.weightDecay * p }
        m = h.beta1 * m + (1 - h.beta1) * g
        v = h.beta2 * v + (1 - h.beta2) * (g * g)
        let mHat = m / c1
        let vHat = v / c2
        p = p - h.learningRate * mHat / (vHat.squareRoot() + h.epsilon)
    }
}
