import Foundation

/// The CPU twins of Kernels/SBIBackend/training.cl: backward element-wise maps, layout copies, reductions.
extension CPUBackend {
    public func unaryGradient(_ op: UnaryOp, x: BufferView, y: BufferView, gradient gy: BufferView,
                              into gx: BufferView, parameter: Float) throws {
        try Check.same(x, y, "unaryGradient x/y")
        try Check.same(x, gy, "unaryGradient x/gradient")
        try Check.same(x, gx, "unaryGradient x/result")
        let px = try pointer(x), py = try pointer(y), pg = try pointer(gy), po = try pointer(gx)
        // The switch is hoisted out of the loop so that each common case compiles to its own
        // vectorizable loop; the formulas are those of `UnaryOp.derivative`.
        @inline(__always) func loop(_ derivative: (Float, Float) -> Float) {
            CPUParallel.forEachChunk(x.count) { range in
                for i in range { po[i] = pg[i] * derivative(px[i], py[i]) }
            }
        }
        switch op {
        case .identity: loop { _, _ in 1 }
        case .exp: loop { _, y in y }
        case .tanh: loop { _, y in 1 - y * y }
        case .relu: loop { x, _ in x > 0 ? 1 : 0 }
        case .leakyRelu: loop { x, _ in x > 0 ? 1 : parameter }
        case .sigmoid: loop { _, y in y * (1 - y) }
        default: loop { x, y in op.derivative(x, y, parameter) }
        }
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
        try Check.gatherColumns(src, rows: rows, columns: columns, indices: indices, dst: dst)
        let ps = try pointer(src), pd = try pointer(dst)
        let index = UnsafeRawPointer(try pointer(indices)).assumingMemoryBound(to: Int32.self)
        let width = indices.count
        for c in 0..<width where !(-1..<columns).contains(Int(index[c])) {
            throw SBIError.invalidArgument("gatherColumns: index \(index[c]) outside -1..<\(columns)")
        }
        for r in 0..<rows {
            for c in 0..<width {
                let k = Int(index[c])
                pd[r * width + c] = k < 0 ? 0 : ps[r * columns + k]
            }
        }
    }

    public func gatherRows(_ src: BufferView, columns: Int, indices: BufferView, into dst: BufferView) throws {
        let rows = try Check.gatherRows(src, columns: columns, indices: indices, dst: dst)
        guard columns > 0 else { return }
        let ps = try pointer(src), pd = try pointer(dst)
        let index = UnaryPointers.int32(try pointer(indices))
        // Every index is checked before anything is written.
        for r in 0..<indices.count where !(-1..<rows).contains(Int(index[r])) {
            throw SBIError.invalidArgument("gatherRows: index \(index[r]) outside -1..<\(rows)")
        }
        for r in 0..<indices.count {
            let k = Int(index[r])
            if k < 0 { (pd + r * columns).update(repeating: 0, count: columns) }
            else { (pd + r * columns).update(from: ps + k * columns, count: columns) }
        }
    }

    public func broadcast(_ b: BufferView, into out: BufferView, rows: Int, cols: Int,
                          broadcast: Broadcast) throws {
        try Check.broadcast(b, out, rows: rows, cols: cols, broadcast: broadcast)
        let pb = try pointer(b), po = try pointer(out)
        switch broadcast {
        case .none:
            po.update(from: pb, count: rows * cols)
        case .row:
            for r in 0..<rows { (po + r * cols).update(from: pb, count: cols) }
        case .column:
            for r in 0..<rows { (po + r * cols).update(repeating: pb[r], count: cols) }
        }
    }

    public func sumOfSquares(_ x: BufferView, into out: BufferView) throws {
        try Check.count(out, 1, "sumOfSquares result")
        let px = try pointer(x)
        // Accumulated in double: a running float sum drifts by ~1e-5 relative over 1e5 terms,
        // while the OpenCL kernel's 256-way partial sums stay within a few ulps.
        var s: Double = 0
        for i in 0..<x.count { let v = Double(px[i]); s += v * v }
        try pointer(out)[0] = Float(s)
    }
}

enum UnaryPointers {
    static func int32(_ p: UnsafeMutablePointer<Float>) -> UnsafePointer<Int32> {
        UnsafeRawPointer(p).assumingMemoryBound(to: Int32.self)
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

/// Checks of the training operations, shared by both backends so that they refuse alike.
extension Check {
    static func nonNegative(_ what: String, _ sizes: KeyValuePairs<String, Int>) throws {
        for (name, value) in sizes where value < 0 {
            throw SBIError.invalidArgument("\(what): negative \(name) \(value)")
        }
    }

    static func columns(rows: Int, width: Int, src: BufferView, srcColumns: Int, srcStart: Int,
                        dst: BufferView, dstColumns: Int, dstStart: Int) throws {
        try nonNegative("copyColumns", ["rows": rows, "width": width])
        guard srcStart >= 0, dstStart >= 0, srcStart + width <= srcColumns, dstStart + width <= dstColumns else {
            throw SBIError.invalidArgument(
                "copyColumns: columns \(srcStart)..<\(srcStart + width) of \(srcColumns) into \(dstStart)..<\(dstStart + width) of \(dstColumns)")
        }
        try count(src, rows * srcColumns, "copyColumns source")
        try count(dst, rows * dstColumns, "copyColumns destination")
    }
}

extension Check {
    static func gatherColumns(_ src: BufferView, rows: Int, columns: Int, indices: BufferView, dst: BufferView) throws {
        try nonNegative("gatherColumns", ["rows": rows, "columns": columns])
        try count(src, rows * columns, "gatherColumns source")
        try count(dst, rows * indices.count, "gatherColumns result")
    }

    /// The number of source rows.
    static func gatherRows(_ src: BufferView, columns: Int, indices: BufferView, dst: BufferView) throws -> Int {
        try nonNegative("gatherRows", ["columns": columns])
        guard columns == 0 || src.count % columns == 0 else {
            throw SBIError.sizeMismatch("gatherRows source has \(src.count) elements, not a whole number of \(columns)-element rows")
        }
        try count(dst, indices.count * columns, "gatherRows result")
        return columns == 0 ? 0 : src.count / columns
    }

    static func broadcast(_ b: BufferView, _ out: BufferView, rows: Int, cols: Int, broadcast: Broadcast) throws {
        try nonNegative("broadcast", ["rows": rows, "cols": cols])
        try count(out, rows * cols, "broadcast result")
        switch broadcast {
        case .none: try count(b, rows * cols, "broadcast source")
        case .row: try count(b, cols, "row-broadcast source")
        case .column: try count(b, rows, "column-broadcast source")
        }
    }
}
