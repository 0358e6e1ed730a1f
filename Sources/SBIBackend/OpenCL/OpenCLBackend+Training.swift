/// Launches of Kernels/SBIBackend/training.cl; the CPU twins are in CPUBackend+Training.swift.
extension OpenCLBackend {
    public func unaryGradient(_ op: UnaryOp, x: BufferView, y: BufferView, gradient gy: BufferView,
                              into gx: BufferView, parameter: Float) throws {
        try Check.same(x, y, "unaryGradient x/y")
        try Check.same(x, gy, "unaryGradient x/gradient")
        try Check.same(x, gx, "unaryGradient x/result")
        try launch("training", "unary_gradient", global: x.count,
                   [.int(Int(op.rawValue)), .view(x), .view(y), .view(gy), .view(gx), .int(x.count), .float(parameter)])
    }

    public func copyColumns(rows: Int, width: Int, from src: BufferView, columns srcColumns: Int, start srcStart: Int,
                            to dst: BufferView, columns dstColumns: Int, start dstStart: Int) throws {
        try Check.columns(rows: rows, width: width, src: src, srcColumns: srcColumns, srcStart: srcStart,
                          dst: dst, dstColumns: dstColumns, dstStart: dstStart)
        try launch("training", "copy_columns", global: width, global1: rows, local: 16, local1: 16,
                   [.int(rows), .int(width), .view(src), .int(srcColumns), .int(srcStart),
                    .view(dst), .int(dstColumns), .int(dstStart)])
    }

    /// The device cannot refuse an index outside the source (the CPU backend throws): the kernel
    /// writes NaN for it rather than read memory that belongs to other tensors.
    public func gatherColumns(_ src: BufferView, rows: Int, columns: Int, indices: BufferView,
                              into dst: BufferView) throws {
        try Check.gatherColumns(src, rows: rows, columns: columns, indices: indices, dst: dst)
        try launch("training", "gather_columns", global: indices.count, global1: rows, local: 16, local1: 16,
                   [.view(src), .int(rows), .int(columns), .view(indices), .int(indices.count), .view(dst)])
    }

    /// Index −1 gives a zero row; other out-of-range indices NaN rows, as in `gatherColumns`.
    public func gatherRows(_ src: BufferView, columns: Int, indices: BufferView, into dst: BufferView) throws {
        let rows = try Check.gatherRows(src, columns: columns, indices: indices, dst: dst)
        try launch("training", "gather_rows", global: columns, global1: indices.count, local: 16, local1: 16,
                   [.view(src), .int(rows), .int(columns), .view(indices), .int(indices.count), .view(dst)])
    }

    public func broadcast(_ b: BufferView, into out: BufferView, rows: Int, cols: Int,
                          broadcast: Broadcast) throws {
        try Check.broadcast(b, out, rows: rows, cols: cols, broadcast: broadcast)
        try launch("training", "broadcast_to", global: rows * cols,
                   [.int(Int(broadcast.rawValue)), .view(b), .view(out), .int(rows), .int(cols)])
    }

    public func sumOfSquares(_ x: BufferView, into out: BufferView) throws {
        try Check.count(out, 1, "sumOfSquares result")
        let wg = reductionGroup
        try launch("training", "sum_of_squares", options: "-DWG=\(wg)", global: wg, local: wg,
                   [.view(x), .int(x.count), .view(out)])
    }
}
