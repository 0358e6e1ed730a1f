import SBIBackend

/// The sides of a 2×2 pooling of N×H×W×C images into N×h×w×C, h = ⌊H/2⌋ and w = ⌊W/2⌋.
struct PoolGeometry {
    let images: Int, height: Int, width: Int, channels: Int
    var pooledHeight: Int { height / 2 }
    var pooledWidth: Int { width / 2 }
    var pooledShape: [Int] { [images, pooledHeight, pooledWidth, channels] }

    init(x: [Int], _ what: String) throws {
        guard x.count == 4, x.allSatisfy({ $0 > 0 }), x[1] >= 2, x[2] >= 2 else {
            throw SBIError.sizeMismatch("\(what) needs N×H×W×C images at least 2×2, got \(x)")
        }
        (images, height, width, channels) = (x[0], x[1], x[2], x[3])
    }
}

/// 2×2 max pooling with stride 2 of channels-last images: x (N×H×W×C) → y (N×⌊H/2⌋×⌊W/2⌋×C),
/// y[n, i, j, c] = max over x[n, 2i + a, 2j + b, c] for a, b ∈ {0, 1}; an odd last row or column
/// is dropped, as PyTorch's `MaxPool2d(2)` does. Backward: `MaxPool2DGradient` routes each
/// output's gradient to the first element of its window (row-major) that equals the maximum,
/// so ties have one winner on every backend. Twin: Kernels/SBIGraph/pooling.cl.
public struct MaxPool2D: ShapedPrimitive {
    public init() {}
    public var description: String { "maxPool2×2" }
    static let program = KernelProgram(name: "SBIGraph/pooling", source: EmbeddedKernels.sources["pooling"])


    public func outputTensorShapes(_ inputs: [Tensor]) throws -> [[Int]] {
        [try PoolGeometry(x: inputs[0].shape, description).pooledShape]
    }

    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        let g = try PoolGeometry(x: inputs[0].shape, description)
        let (H, W, C, h, w) = (g.height, g.width, g.channels, g.pooledHeight, g.pooledWidth), count = g.images * h * w * C
        try Check.count(outputs[0].view, count, "max pool output")
        try backend.run(description, cpu: { cpu in
            let x = try cpu.pointer(inputs[0].view), y = try cpu.pointer(outputs[0].view)
            CPUParallel.forEachChunk(count, work: 4 * count) { range in
                for e in range {
                    let c = e % C, q = e / C, j = q % w, i = (q / w) % h, n = q / (w * h)
                    let corner = x + ((n * H + 2 * i) * W + 2 * j) * C + c
                    y[e] = Swift.max(Swift.max(corner[0], corner[C]), Swift.max(corner[W * C], corner[W * C + C]))
                }
            }
        }, openCL: { cl in
            try cl.launch(Self.program, "max_pool2", global: count,
                          [.view(inputs[0].view), .view(outputs[0].view), .int(count), .int(H), .int(W), .int(C)])
        })
    }

    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard let cotangent = cotangents[0] else { return [nil] }
        let g = cotangent.shape == outputs[0].shape ? cotangent : try graph.reshape(cotangent, outputs[0].shape)
        return [try graph.apply1(MaxPool2DGradient(), inputs[0], outputs[0], g)]
    }
}

/// dL/dx of `MaxPool2D` from x, its output y and dL/dy: each input element receives its
/// window's gradient when it is the window's first element equal to the maximum, else 0
/// (and the dropped odd row or column 0). One pass over x, no scatter.
public struct MaxPool2DGradient: ShapedPrimitive {
    public var description: String { "∂maxPool2×2/∂x" }

    public func outputTensorShapes(_ inputs: [Tensor]) throws -> [[Int]] {
        let pooled = try PoolGeometry(x: inputs[0].shape, description).pooledShape
        guard inputs[1].shape == pooled, inputs[2].shape == pooled else {
            throw SBIError.sizeMismatch("\(description): x \(inputs[0]), y \(inputs[1]) and dL/dy \(inputs[2]); y must be \(pooled)")
        }
        return [inputs[0].shape]
    }

    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        let g = try PoolGeometry(x: inputs[0].shape, description)
        let (H, W, C, h, w) = (g.height, g.width, g.channels, g.pooledHeight, g.pooledWidth), count = g.images * H * W * C
        try Check.count(outputs[0].view, count, "max pool gradient")
        try backend.run(description, cpu: { cpu in
            let x = try cpu.pointer(inputs[0].view), y = try cpu.pointer(inputs[1].view)
            let gy = try cpu.pointer(inputs[2].view), gx = try cpu.pointer(outputs[0].view)
            CPUParallel.forEachChunk(count, work: 4 * count) { range in
                for e in range {
                    let c = e % C, q = e / C, col = q % W, row = (q / W) % H, n = q / (W * H)
                    let (i, j) = (row / 2, col / 2)
                    guard i < h, j < w else { gx[e] = 0; continue }
                    let o = ((n * h + i) * w + j) * C + c, m = y[o]
                    // The first element of the window (row-major) equal to the maximum wins.
                    var winner = -1
                    for a in 0..<2 where winner < 0 {
                        for b in 0..<2 where winner < 0 && x[((n * H + 2 * i + a) * W + 2 * j + b) * C + c] == m {
                            winner = a * 2 + b
                        }
                    }
                    gx[e] = winner == (row - 2 * i) * 2 + (col - 2 * j) ? gy[o] : 0
                }
            }
        }, openCL: { cl in
            try cl.launch(MaxPool2D.program, "max_pool2_gradient", global: count,
                          [.view(inputs[0].view), .view(inputs[1].view), .view(inputs[2].view), .view(outputs[0].view),
                           .int(count), .int(H), .int(W), .int(C)])
        })
    }

    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        throw SBIError.invalidArgument("second derivatives are not supported (\(description))")
    }
}

public extension Graph {
    /// 2×2 max pooling with stride 2 of N×H×W×C images (see `MaxPool2D`).
    func maxPool2(_ x: Tensor) throws -> Tensor { try apply1(MaxPool2D(), x) }
}
