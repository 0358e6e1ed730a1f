/// Launches of Kernels/spline.cl. The program is built per bin count K (-DBINS), so that each
/// item's knot arrays have a static size.
extension OpenCLBackend: SplineKernels {
    public func rationalQuadraticSpline(inverse: Bool, x: BufferView, parameters: BufferView, mask: BufferView,
                                        y: BufferView, logDeterminant: BufferView, rows: Int, features: Int,
                                        bins: Int, bound: Float) throws {
        try Check.spline(x: x, parameters: parameters, mask: mask, y: y, logdet: logDeterminant,
                         rows: rows, features: features, bins: bins, bound: bound)
        let wg = splineGroup(features: features)
        try launch("spline", "rq_spline", options: "-DWG=\(wg) -DBINS=\(bins)", global: rows * wg, local: wg,
                   [.int(inverse ? 1 : 0), .view(x), .view(parameters), .view(mask), .view(y), .view(logDeterminant),
                    .int(rows), .int(features), .float(bound)])
    }

    public func rationalQuadraticSplineBackward(x: BufferView, parameters: BufferView, mask: BufferView,
                                                gradientY: BufferView, gradientLogDeterminant: BufferView,
                                                gradientX: BufferView, gradientParameters: BufferView,
                                                rows: Int, features: Int, bins: Int, bound: Float) throws {
        try Check.spline(x: x, parameters: parameters, mask: mask, y: gradientY, logdet: gradientLogDeterminant,
                         rows: rows, features: features, bins: bins, bound: bound)
        try Check.count(gradientX, rows * features, "spline x gradient")
        try Check.count(gradientParameters, rows * features * RationalQuadraticSpline.parameterCount(bins: bins),
                        "spline parameter gradient")
        try launch("spline", "rq_spline_backward", options: "-DBINS=\(bins)", global: features, global1: rows,
                   local: 16, local1: 16,
                   [.view(x), .view(parameters), .view(mask), .view(gradientY), .view(gradientLogDeterminant),
                    .view(gradientX), .view(gradientParameters), .int(rows), .int(features), .float(bound)])
    }

    /// The work-group of the forward kernel: a power of two covering the features (each item does
    /// O(K) work per feature), from 32 (one warp; also bounds the program variants to 32, 64 and
    /// 128) to 128, and at most what the device accepts.
    private func splineGroup(features: Int) -> Int {
        var wg = 32
        while wg < features && wg < 128 { wg *= 2 }
        return min(wg, reductionGroup)
    }
}
