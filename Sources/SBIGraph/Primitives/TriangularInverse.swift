import SBIBackend

/// A⁻¹ of a triangular C×C matrix, reading only its lower (or upper) triangle and diagonal: the
/// inverse of a Glow 1×1 convolution's LU factors for sampling. Backward: d(A⁻¹) = −A⁻¹·dA·A⁻¹,
/// so dA = −(A⁻ᵀ·G·A⁻ᵀ) restricted to the triangle. OpenCL: Kernels/SBIGraph/triangular.cl; the
/// CPU twin below substitutes in the same order, in float as the kernel does.
public struct TriangularInverse: Primitive {
    public let lower: Bool
    public init(lower: Bool) { self.lower = lower }
    public var description: String { lower ? "inverse(lower)" : "inverse(upper)" }
    static let program = KernelProgram(name: "SBIGraph/triangular", source: EmbeddedKernels.sources["triangular"])

    public func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] {
        guard inputs[0].rows == inputs[0].cols else { throw SBIError.sizeMismatch("\(description) of non-square \(inputs[0])") }
        return [(inputs[0].rows, inputs[0].cols)]
    }

    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        let C = inputs[0].cols, lower = lower
        try Check.count(outputs[0].view, C * C, "triangular inverse output")
        try backend.run(description, cpu: { cpu in
            let a = try cpu.pointer(inputs[0].view), x = try cpu.pointer(outputs[0].view)
            for j in 0..<C {
                for step in 0..<C {
                    let i = lower ? step : C - 1 - step
                    var value: Float = 0
                    if lower ? i >= j : i <= j {
                        var sum: Float = i == j ? 1 : 0
                        for k in (lower ? j..<i : (i + 1)..<(j + 1)) { sum -= a[i * C + k] * x[k * C + j] }
                        value = sum / a[i * C + i]
                    }
                    x[i * C + j] = value
                }
            }
        }, openCL: { cl in
            try cl.launch(Self.program, "triangular_inverse", global: C, local: 1,
                          [.view(inputs[0].view), .view(outputs[0].view), .int(C), .int(lower ? 1 : 0)])
        })
    }

    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard let g = cotangents[0] else { return [nil] }
        let inverse = outputs[0], C = inputs[0].cols
        let full = try graph.matmul(try graph.matmul(inverse, g, transposeA: true), inverse, transposeB: true)
        let triangle = (0..<(C * C)).map { e -> Float in (lower ? e / C >= e % C : e / C <= e % C) ? -1 : 0 }
        return [try graph.multiply(full, graph.constant(triangle, rows: C, cols: C))]
    }
}

public extension Graph {
    /// The inverse of the lower (or upper) triangle of a square matrix.
    func triangularInverse(_ a: Tensor, lower: Bool) throws -> Tensor {
        try apply1(TriangularInverse(lower: lower), a)
    }
}
