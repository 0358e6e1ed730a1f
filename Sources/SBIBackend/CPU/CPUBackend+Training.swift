import Foundation

/// The CPU twins of Kernels/training.cl: backward element-wise maps, layout copies, Adam.
extension CPUBackend {
    public func unaryGradient(_ op: UnaryOp, x: BufferView, y: BufferView, gradient gy: BufferView,
                              into gx: BufferView, parameter: Float) throws {
        try Check.same(x, y, "unaryGradient x/y")
        try Check.same(x, gy, "unaryGradient x/gradient")
        try Check.same(x, gx, "unaryGradient x/result")
        let px = try pointer(x), py = try pointer(y), pg = try pointer(gy), po = try pointer(gx)
        for i in 0..<x.count { po[i] = pg[i] * op.derivative(px[i], py[i], parameter) }
    }

    public func copyColumns(rows: Int, width: Int, from src: BufferView, columns srcColumns: Int, start srcStart: Int,
                            to dst: BufferView, columns dstColumns: Int, start dstStart: Int) throws {
        try Check.columns(rows: rows, width: width, src: src, srcColumns: srcColumns, srcStart: srcStart,
                          dst: dst, dstColumns: dstColumns, dstStart: dstStart)
        let ps = try pointer(src), pd = try pointer(dst)
        for r in 0..<rows {
            (pd + r * dstColumns + dstStart).update(from: ps + r * srcColumns + srcStart, count: width)
        }
    }

    public func gatherColumns(_ src: BufferView, rows: Int, columns: Int, indices: BufferView,
                              into dst: BufferView) throws {
        try Check.count(src, rows * columns, "gatherColumns source")
        try Check.count(dst, rows * indices.count, "gatherColumns result")
        let ps = try pointer(src), pd = try pointer(dst)
        let index = UnsafeRawPointer(try pointer(indices)).assumingMemoryBound(to: Int32.self)
        let width = indices.count
        for c in 0..<width where !(0..<columns).contains(Int(index[c])) {
            throw SBIError.invalidArgument("gatherColumns: index \(index[c]) outside 0..<\(columns)")
        }
        for r in 0..<rows {
            for c in 0..<width { pd[r * width + c] = ps[r * columns + Int(index[c])] }
        }
    }

    public func gatherRows(_ src: BufferView, columns: Int, indices: BufferView, into dst: BufferView) throws {
        try Check.count(dst, indices.count * columns, "gatherRows result")
        let rows = columns == 0 ? 0 : src.count / columns
        let ps = try pointer(src), pd = try pointer(dst)
        let index = UnaryPointers.int32(try pointer(indices))
        for r in 0..<indices.count {
            let s = Int(index[r])
            guard (0..<rows).contains(s) else {
                throw SBIError.invalidArgument("gatherRows: index \(s) outside 0..<\(rows)")
            }
            (pd + r * columns).update(from: ps + s * columns, count: columns)
        }
    }

    public func broadcast(_ b: BufferView, into out: BufferView, rows: Int, cols: Int,
                          broadcast: Broadcast) throws {
        try Check.count(out, rows * cols, "broadcast result")
        let pb = try pointer(b), po = try pointer(out)
        switch broadcast {
        case .none:
            try Check.count(b, rows * cols, "broadcast source")
            po.update(from: pb, count: rows * cols)
        case .row:
            try Check.count(b, cols, "row-broadcast source")
            for r in 0..<rows { (po + r * cols).update(from: pb, count: cols) }
        case .column:
            try Check.count(b, rows, "column-broadcast source")
            for r in 0..<rows { (po + r * cols).update(repeating: pb[r], count: cols) }
        }
    }

    public func sumOfSquares(_ x: BufferView, into out: BufferView) throws {
        try Check.count(out, 1, "sumOfSquares result")
        let px = try pointer(x)
        var s: Float = 0
        for i in 0..<x.count { s += px[i] * px[i] }
        try pointer(out)[0] = s
    }

    public func adamStep(parameters: BufferView, gradients: BufferView, firstMoment: BufferView,
                         secondMoment: BufferView, hyper: AdamHyperparameters,
                         gradientSquaredNorm: BufferView?, maxGradientNorm: Float) throws {
        try Check.same(parameters, gradients, "adam parameters/gradients")
        try Check.same(parameters, firstMoment, "adam parameters/first moment")
        try Check.same(parameters, secondMoment, "adam parameters/second moment")
        let p = try pointer(parameters), g = try pointer(gradients)
        let m = try pointer(firstMoment), v = try pointer(secondMoment)
        let clip = try gradientSquaredNorm.map { AdamMath.clipScale(try pointer($0)[0], maxGradientNorm) } ?? 1
        let (c1, c2) = hyper.biasCorrections
        for i in 0..<parameters.count {
            AdamMath.update(&p[i], g[i] * clip, &m[i], &v[i], hyper, c1, c2)
        }
    }
}

enum UnaryPointers {
    static func int32(_ p: UnsafeMutablePointer<Float>) -> UnsafePointer<Int32> {
        UnsafeRawPointer(p).assumingMemoryBound(to: Int32.self)
    }
}

/// Adam's scalar update, shared formula for formula with Kernels/training.cl.
enum AdamMath {
    @inline(__always)
    static func clipScale(_ squaredNorm: Float, _ maxNorm: Float) -> Float {
        let norm = squaredNorm.squareRoot()
        return norm > maxNorm ? maxNorm / (norm + 1e-6) : 1
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

extension UnaryOp {
    /// f'(x), given y = f(x).
    @inline(__always)
    func derivative(_ x: Float, _ y: Float, _ slope: Float) -> Float {
        switch self {
        case .identity: return 1
        case .exp: return y
        case .log: return 1 / x
        case .tanh: return 1 - y * y
        case .relu: return x > 0 ? 1 : 0
        case .leakyRelu: return x > 0 ? 1 : slope
        case .sigmoid: return y * (1 - y)
        case .softplus: return 1 / (1 + Foundation.exp(-x))
        case .square: return 2 * x
        case .negate: return -1
        case .abs: return x > 0 ? 1 : (x < 0 ? -1 : 0)
        case .sqrt: return 0.5 / y
        }
    }
}

extension Check {
    static func columns(rows: Int, width: Int, src: BufferView, srcColumns: Int, srcStart: Int,
                        dst: BufferView, dstColumns: Int, dstStart: Int) throws {
        guard srcStart >= 0, dstStart >= 0, srcStart + width <= srcColumns, dstStart + width <= dstColumns else {
            throw SBIError.invalidArgument(
                "copyColumns: columns \(srcStart)..<\(srcStart + width) of \(srcColumns) into \(dstStart)..<\(dstStart + width) of \(dstColumns)")
        }
        try count(src, rows * srcColumns, "copyColumns source")
        try count(dst, rows * dstColumns, "copyColumns destination")
    }
}
