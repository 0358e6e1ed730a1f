import Foundation
import SBIBackend

/// The sizes of a stride-1, zero-"same"-padded K×K convolution of channels-last images
/// x (N×H×W×Cin) with weights (K×K×Cin×Cout, so that as a matrix they are K·K·Cin × Cout).
/// Each output pixel is one row of an (N·H·W)×Cout matrix: the convolution is a GEMM of the
/// im2col matrix of x (one row of K·K·Cin taps per pixel) with the weights, done over blocks of
/// pixels so that the im2col rows stay within a fixed workspace.
public struct ConvolutionGeometry: Equatable, Sendable {
    public let images: Int, height: Int, width: Int, channels: Int, kernel: Int
    /// Elements the im2col workspace may take.
    public let workspaceLimit: Int

    public init(x: [Int], kernel: Int, workspaceLimit: Int = ConvolutionGeometry.workspaceBudget) throws {
        guard x.count == 4, x.allSatisfy({ $0 > 0 }) else {
            throw SBIError.sizeMismatch("a convolution needs N×H×W×C images, got \(x)")
        }
        guard kernel > 0, kernel % 2 == 1 else {
            throw SBIError.invalidArgument("a 'same' convolution needs an odd kernel size, got \(kernel)")
        }
        (images, height, width, channels, self.kernel) = (x[0], x[1], x[2], x[3], kernel)
        self.workspaceLimit = workspaceLimit
    }

    public var pixels: Int { images * height * width }
    /// Taps of one output pixel: the im2col row width and the weights' rows.
    public var columns: Int { kernel * kernel * channels }
    /// A 1×1 convolution reads x itself as its im2col matrix.
    var needsColumns: Bool { kernel > 1 }

    /// Elements of the im2col workspace: 2²² floats (16 MiB) of rows at most, so that a
    /// convolution's extra memory does not grow with the batch or the image.
    public static let workspaceBudget = 1 << 22
    var blockRows: Int { max(1, min(pixels, workspaceLimit / columns)) }
    var workspaceCount: Int { needsColumns ? blockRows * columns : 1 }

    /// Rows per block on `backend`: the CPU takes blocks that stay in cache (the GEMM of a few
    /// hundred rows already runs at full speed); a device takes the whole workspace per launch.
    func rowsPerBlock(on backend: Backend) -> Int {
        backend is CPUBackend ? max(1, min(blockRows, (1 << 18) / columns)) : blockRows
    }
}

/// The im2col kernel and its CPU twin (Kernels/SBIGraph/convolution.cl).
enum Im2Col {
    static let program = KernelProgram(name: "SBIGraph/convolution", source: EmbeddedKernels.sources["convolution"])

    /// col (rows × K·K·C) = the taps of output pixels first..<first+rows.
    static func run(on backend: Backend, x: BufferView, into col: BufferView, first: Int, rows: Int,
                    _ g: ConvolutionGeometry) throws {
        try Check.count(x, g.pixels * g.channels, "im2col input")
        guard col.count >= rows * g.columns, first >= 0, first + rows <= g.pixels else {
            throw SBIError.sizeMismatch("im2col of pixels \(first)..<\(first + rows) into \(col.count) elements")
        }
        try backend.run("im2col", cpu: { cpu in
            let px = try cpu.pointer(x), pc = try cpu.pointer(col)
            let (H, W, C, K) = (g.height, g.width, g.channels, g.kernel), pad = K / 2
            CPUParallel.forEachChunk(rows, work: rows * g.columns) { range in
                for r in range {
                    let p = first + r, w = p % W, h = (p / W) % H, n = p / (W * H)
                    var out = pc + r * g.columns
                    for i in 0..<K {
                        let hh = h + i - pad
                        for j in 0..<K {
                            let ww = w + j - pad
                            if hh >= 0 && hh < H && ww >= 0 && ww < W {
                                out.update(from: px + ((n * H + hh) * W + ww) * C, count: C)
                            } else {
                                out.update(repeating: 0, count: C)
                            }
                            out += C
                        }
                    }
                }
            }
        }, openCL: { cl in
            try cl.launch(program, "im2col", global: rows * g.columns,
                          [.view(x), .view(col), .int(first), .int(rows), .int(g.height), .int(g.width),
                           .int(g.channels), .int(g.kernel)])
        })
    }
}

/// y = act(conv(x, W) + b): a stride-1, zero-"same"-padded convolution of channels-last images
/// x (N×H×W×Cin) with W (K×K×Cin×Cout) and an optional bias (1×Cout), activation fused into the
/// GEMM epilogue as in `Linear`. Outputs: y (N×H×W×Cout) and the im2col workspace, a scratch
/// tensor nothing reads (the planner reuses its space right after the launch). Backward: the
/// data gradient is this convolution of the output gradient with the weights flipped and
/// transposed; the weight gradient is `Conv2DWeightGradient`.
public struct Conv2D: ShapedPrimitive {
    public let kernel: Int
    public let activation: UnaryOp
    public let slope: Float
    /// Elements of the im2col workspace (tests make it small to run several blocks).
    public let workspaceLimit: Int
    public init(kernel: Int, activation: UnaryOp = .identity, slope: Float = 0.01,
                workspaceLimit: Int = ConvolutionGeometry.workspaceBudget) {
        precondition(Linear.fusable(activation), "\(activation) cannot be fused into a convolution")
        self.kernel = kernel
        self.activation = activation
        self.slope = slope
        self.workspaceLimit = workspaceLimit
    }
    public var description: String { "conv\(kernel)×\(kernel)+\(activation)" }

    func geometry(_ inputs: [Tensor]) throws -> (ConvolutionGeometry, outputs: Int) {
        let g = try ConvolutionGeometry(x: inputs[0].shape, kernel: kernel, workspaceLimit: workspaceLimit)
        let w = inputs[1]
        guard w.shape.count == 4, w.shape[0] == kernel, w.shape[1] == kernel, w.shape[2] == g.channels else {
            throw SBIError.sizeMismatch("\(description): weights \(w) for \(g.channels) input channels; expected \(kernel)×\(kernel)×\(g.channels)×Cout")
        }
        if inputs.count > 2, inputs[2].count != w.cols {
            throw SBIError.sizeMismatch("\(description): bias \(inputs[2]) for \(w.cols) output channels")
        }
        return (g, w.cols)
    }

    public func outputTensorShapes(_ inputs: [Tensor]) throws -> [[Int]] {
        let (g, cout) = try geometry(inputs)
        return [[g.images, g.height, g.width, cout], [1, g.workspaceCount]]
    }

    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        let g = try ConvolutionGeometry(x: inputs[0].shape, kernel: kernel, workspaceLimit: workspaceLimit)
        let cout = inputs[1].cols
        let epilogue = Epilogue(bias: inputs.count > 2 ? inputs[2].view : nil, activation: activation, slope: slope)
        guard g.needsColumns else {
            return try backend.gemm(transposeA: false, transposeB: false, m: g.pixels, n: cout, k: g.columns, alpha: 1,
                                    a: inputs[0].view, b: inputs[1].view, beta: 0, c: outputs[0].view, epilogue: epilogue)
        }
        let block = g.rowsPerBlock(on: backend), y = outputs[0].view, workspace = outputs[1].view
        for first in stride(from: 0, to: g.pixels, by: block) {
            let rows = min(block, g.pixels - first)
            let col = BufferView(buffer: workspace.buffer, offset: workspace.offset, count: rows * g.columns)
            try Im2Col.run(on: backend, x: inputs[0].view, into: col, first: first, rows: rows, g)
            try backend.gemm(transposeA: false, transposeB: false, m: rows, n: cout, k: g.columns, alpha: 1, a: col,
                             b: inputs[1].view, beta: 0,
                             c: BufferView(buffer: y.buffer, offset: y.offset + first * cout, count: rows * cout),
                             epilogue: epilogue)
        }
    }

    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard let cotangent = cotangents[0] else { return inputs.map { _ in nil } }
        let x = inputs[0], w = inputs[1], y = outputs[0]
        // Cotangents may arrive as (N·H·W)×C matrices; the backward convolutions need the images.
        let g = cotangent.shape == y.shape ? cotangent : try graph.reshape(cotangent, y.shape)
        let gz = activation == .identity ? g : try graph.apply1(UnaryGradient(op: activation, parameter: slope), y, y, g)
        let gx = try graph.conv2d(gz, weight: try graph.flipTransposed(w), bias: nil, workspaceLimit: workspaceLimit)
        let gw = try graph.apply(Conv2DWeightGradient(kernel: kernel, weightShape: w.shape, workspaceLimit: workspaceLimit),
                                 [x, gz])[0]
        var result: [Tensor?] = [gx, gw]
        if inputs.count > 2 { result.append(try graph.reshape(try graph.sumColumns(gz), inputs[2].shape)) }
        return result
    }
}

/// dL/dW of `Conv2D` from x (N×H×W×Cin) and the gradient of its pre-activation output
/// (N×H×W×Cout): Σ over pixel blocks of im2col(x)ᵀ·gz, accumulated in the output (K×K×Cin×Cout).
/// Second output: the im2col workspace.
public struct Conv2DWeightGradient: ShapedPrimitive {
    public let kernel: Int
    public let weightShape: [Int]
    public let workspaceLimit: Int
    public var description: String { "∂conv\(kernel)×\(kernel)/∂W" }

    public func outputTensorShapes(_ inputs: [Tensor]) throws -> [[Int]] {
        let g = try ConvolutionGeometry(x: inputs[0].shape, kernel: kernel, workspaceLimit: workspaceLimit)
        guard inputs[1].rows == g.pixels, weightShape.count == 4, weightShape.dropLast().reduce(1, *) == g.columns,
              weightShape[3] == inputs[1].cols else {
            throw SBIError.sizeMismatch("\(description): x \(inputs[0]), output gradient \(inputs[1]), weights \(weightShape)")
        }
        return [weightShape, [1, g.workspaceCount]]
    }

    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        let g = try ConvolutionGeometry(x: inputs[0].shape, kernel: kernel, workspaceLimit: workspaceLimit)
        let cout = inputs[1].cols, gz = inputs[1].view, gw = outputs[0].view
        guard g.needsColumns else {
            return try backend.gemm(transposeA: true, transposeB: false, m: g.columns, n: cout, k: g.pixels, alpha: 1,
                                    a: inputs[0].view, b: gz, beta: 0, c: gw, epilogue: .none)
        }
        let block = g.rowsPerBlock(on: backend), workspace = outputs[1].view
        for first in stride(from: 0, to: g.pixels, by: block) {
            let rows = min(block, g.pixels - first)
            let col = BufferView(buffer: workspace.buffer, offset: workspace.offset, count: rows * g.columns)
            try Im2Col.run(on: backend, x: inputs[0].view, into: col, first: first, rows: rows, g)
            try backend.gemm(transposeA: true, transposeB: false, m: g.columns, n: cout, k: rows, alpha: 1, a: col,
                             b: BufferView(buffer: gz.buffer, offset: gz.offset + first * cout, count: rows * cout),
                             beta: first == 0 ? 0 : 1, c: gw, epilogue: .none)
        }
    }

    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        throw SBIError.invalidArgument("second derivatives are not supported (\(description))")
    }
}

/// y = bias + Σ_t z[p + offset(t), t·C + o]: the output side of a convolution whose products
/// z = x·W′ (N×H×W×K²C, W′ the weights as Cin × K²·Cout) were taken before the shifts; see
/// `Graph.conv2d`. Inputs z and an optional bias (1×C). Backward: `ShiftedTaps` of the gradient.
public struct TapSum: ShapedPrimitive {
    public let kernel: Int
    public var description: String { "tapSum\(kernel)×\(kernel)" }
    static let program = Im2Col.program

    public func outputTensorShapes(_ inputs: [Tensor]) throws -> [[Int]] {
        let z = inputs[0], taps = kernel * kernel
        guard z.shape.count == 4, z.cols % taps == 0 else {
            throw SBIError.sizeMismatch("\(description): z \(z) must be N×H×W×(K²·C)")
        }
        if inputs.count > 1, inputs[1].count != z.cols / taps {
            throw SBIError.sizeMismatch("\(description): bias \(inputs[1]) for \(z.cols / taps) channels")
        }
        return [Array(z.shape.dropLast()) + [z.cols / taps]]
    }
    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        let s = inputs[0].shape, (H, W, K) = (s[1], s[2], kernel), C = s[3] / (kernel * kernel)
        let pixels = s[0] * H * W, bias = inputs.count > 1 ? inputs[1].view : nil
        try Check.count(outputs[0].view, pixels * C, "tap sum output")
        try backend.run(description, cpu: { cpu in
            let z = try cpu.pointer(inputs[0].view), y = try cpu.pointer(outputs[0].view)
            let b = try bias.map { try cpu.pointer($0) }
            CPUParallel.forEachChunk(pixels, work: pixels * C * K * K) { range in
                for p in range {
                    let w = p % W, h = (p / W) % H, n = p / (W * H)
                    let out = y + p * C
                    for o in 0..<C { out[o] = b?[o] ?? 0 }
                    for i in 0..<K {
                        let hh = h + i - K / 2
                        guard hh >= 0 && hh < H else { continue }
                        for j in 0..<K {
                            let ww = w + j - K / 2
                            guard ww >= 0 && ww < W else { continue }
                            let source = z + ((n * H + hh) * W + ww) * K * K * C + (i * K + j) * C
                            for o in 0..<C { out[o] += source[o] }
                        }
                    }
                }
            }
        }, openCL: { cl in
            try cl.launch(Self.program, "tap_sum", global: pixels * C,
                          [.view(inputs[0].view), .view(bias ?? inputs[0].view), .int(bias == nil ? 0 : 1),
                           .view(outputs[0].view), .int(pixels), .int(H), .int(W), .int(C), .int(K)])
        })
    }
    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard let cotangent = cotangents[0] else { return inputs.map { _ in nil } }
        let g = cotangent.shape == outputs[0].shape ? cotangent : try graph.reshape(cotangent, outputs[0].shape)
        var result: [Tensor?] = [try graph.apply1(ShiftedTaps(kernel: kernel), g)]
        if inputs.count > 1 { result.append(try graph.reshape(try graph.sumColumns(g), inputs[1].shape)) }
        return result
    }
}

/// g′[q, t·C + c] = g[q − offset(t), c]: the adjoint of `TapSum` (the im2col of g with flipped
/// taps), N×H×W×C → N×H×W×K²C. Its own adjoint is `TapSum`.
public struct ShiftedTaps: ShapedPrimitive {
    public let kernel: Int
    public var description: String { "shiftedTaps\(kernel)×\(kernel)" }

    public func outputTensorShapes(_ inputs: [Tensor]) throws -> [[Int]] {
        let g = inputs[0]
        guard g.shape.count == 4 else { throw SBIError.sizeMismatch("\(description): \(g) must be N×H×W×C") }
        return [Array(g.shape.dropLast()) + [kernel * kernel * g.cols]]
    }
    public func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws {
        let s = inputs[0].shape, (H, W, C, K) = (s[1], s[2], s[3], kernel)
        let pixels = s[0] * H * W, cols = K * K * C
        try Check.count(outputs[0].view, pixels * cols, "shifted taps output")
        try backend.run(description, cpu: { cpu in
            let g = try cpu.pointer(inputs[0].view), out = try cpu.pointer(outputs[0].view)
            CPUParallel.forEachChunk(pixels, work: pixels * cols) { range in
                for q in range {
                    let w = q % W, h = (q / W) % H, n = q / (W * H)
                    var target = out + q * cols
                    for i in 0..<K {
                        let hh = h - i + K / 2
                        for j in 0..<K {
                            let ww = w - j + K / 2
                            if hh >= 0 && hh < H && ww >= 0 && ww < W {
                                target.update(from: g + ((n * H + hh) * W + ww) * C, count: C)
                            } else {
                                target.update(repeating: 0, count: C)
                            }
                            target += C
                        }
                    }
                }
            }
        }, openCL: { cl in
            try cl.launch(Im2Col.program, "shifted_taps", global: pixels * cols,
                          [.view(inputs[0].view), .view(outputs[0].view), .int(pixels), .int(H), .int(W), .int(C), .int(K)])
        })
    }
    public func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?] {
        guard let cotangent = cotangents[0] else { return [nil] }
        let g = cotangent.shape == outputs[0].shape ? cotangent : try graph.reshape(cotangent, outputs[0].shape)
        return [try graph.apply1(TapSum(kernel: kernel), g)]
    }
}

public extension Graph {
    /// act(conv(x, W) + b) for channels-last x (N×H×W×Cin) and W (K×K×Cin×Cout), stride 1,
    /// zero padding that keeps H×W. A layer with fewer output than input channels (a coupling
    /// net's last, the data gradient of its first) takes the products output-side: one GEMM of x
    /// with the weights as Cin × K²·Cout, then `TapSum`, moving K²·Cout values per pixel where
    /// im2col (`Conv2D`) moves K²·Cin; the others run as blocked im2col + GEMM.
    func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: UnaryOp = .identity,
                slope: Float = 0.01, workspaceLimit: Int = ConvolutionGeometry.workspaceBudget) throws -> Tensor {
        guard weight.shape.count == 4, weight.shape[0] == weight.shape[1] else {
            throw SBIError.sizeMismatch("convolution weights must be K×K×Cin×Cout, got \(weight)")
        }
        let (K, cin, cout) = (weight.shape[0], weight.shape[2], weight.shape[3])
        if K > 1, cout < cin, x.shape.count == 4, x.cols == cin {
            var index = [Int32](repeating: 0, count: weight.count)  // W′[c, t·Cout + o] = W[t, c, o]
            for t in 0..<(K * K) {
                for c in 0..<cin {
                    for o in 0..<cout { index[(c * K * K + t) * cout + o] = Int32((t * cin + c) * cout + o) }
                }
            }
            let reordered = try reshape(try gatherColumns(try reshape(weight, [1, weight.count]), index), [cin, K * K * cout])
            let z = try reshape(try matmul(x, reordered), Array(x.shape.dropLast()) + [K * K * cout])
            let y = try apply(TapSum(kernel: K), bias.map { [z, $0] } ?? [z])[0]
            return activation == .identity ? y : try unary(activation, y, parameter: slope)
        }
        let fused = Linear.fusable(activation) ? activation : .identity
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        let y = try apply(Conv2D(kernel: weight.shape[0], activation: fused, slope: slope, workspaceLimit: workspaceLimit), inputs)[0]
        return fused == activation ? y : try unary(activation, y, parameter: slope)
    }

    /// W′[i, j, o, c] = W[K−1−i, K−1−j, c, o]: the weights whose convolution is the adjoint of W's
    /// (a fixed permutation of the elements, so a gather).
    func flipTransposed(_ w: Tensor) throws -> Tensor {
        let (K, cin, cout) = (w.shape[0], w.shape[2], w.shape[3])
        var index = [Int32](repeating: 0, count: w.count)
        for i in 0..<K {
            for j in 0..<K {
                for o in 0..<cout {
                    for c in 0..<cin {
                        index[((i * K + j) * cout + o) * cin + c] = Int32((((K - 1 - i) * K + (K - 1 - j)) * cin + c) * cout + o)
                    }
                }
            }
        }
        let flat = try gatherColumns(try reshape(w, [1, w.count]), index)
        return try reshape(flat, [K, K, cout, cin])
    }
}
