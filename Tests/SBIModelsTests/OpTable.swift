import Foundation
import SBIBackend
import SBITestSupport
@testable import SBIGraph
@testable import SBIModels

/// One row of the op table: a small graph around an op, on inputs of the given shapes, and the
/// same function in double precision. `OpTableTests` runs every row on every backend.
struct OpCase {
    let name: String
    let shapes: [[Int]]
    /// Inputs in [0.2, 1.2] instead of ±[0.2, 1.2] (logarithms, square roots, divisors).
    var positive = false
    /// Forward tolerance, relative to 1 + |reference| (see `OpTableTests`).
    var tolerance = 1e-5
    let build: (Graph, [Tensor]) throws -> Tensor
    /// The output, row-major, from the inputs in double precision.
    let reference: ([[Double]]) -> [Double]
}

/// Double-precision references of the ops, loop for loop.
enum Reference {
    static func unary(_ op: UnaryOp, _ x: Double, _ p: Double) -> Double { DoubleReference.unary(op, x, p) }
    static func binary(_ op: BinaryOp, _ a: Double, _ b: Double) -> Double { DoubleReference.binary(op, a, b) }

    /// op(A)·op(B) for A stored ar×ac, B stored br×bc.
    static func matmul(_ a: [Double], _ ar: Int, _ ac: Int, _ b: [Double], _ br: Int, _ bc: Int,
                       ta: Bool = false, tb: Bool = false) -> [Double] {
        let m = ta ? ac : ar, k = ta ? ar : ac, n = tb ? br : bc
        var c = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                for l in 0..<k {
                    c[i * n + j] += (ta ? a[l * ac + i] : a[i * ac + l]) * (tb ? b[j * bc + l] : b[l * bc + j])
                }
            }
        }
        return c
    }

    static func sumRows(_ x: [Double], cols: Int) -> [Double] {
        stride(from: 0, to: x.count, by: cols).map { x[$0..<($0 + cols)].reduce(0, +) }
    }

    static func sumColumns(_ x: [Double], cols: Int) -> [Double] {
        (0..<cols).map { c in stride(from: c, to: x.count, by: cols).reduce(0) { $0 + x[$1] } }
    }

    /// Columns `index` of a rows×cols x; −1 gives 0.
    static func gatherColumns(_ x: [Double], cols: Int, _ index: [Int]) -> [Double] {
        (0..<(x.count / cols)).flatMap { r in index.map { $0 < 0 ? 0 : x[r * cols + $0] } }
    }

    static func concatColumns(_ parts: [([Double], Int)]) -> [Double] {
        let rows = parts[0].0.count / parts[0].1
        return (0..<rows).flatMap { r in parts.flatMap { p, c in p[(r * c)..<((r + 1) * c)] } }
    }

    static let halfLog2Pi = 0.5 * Foundation.log(2 * Double.pi)

    /// Stride-1 zero-"same" convolution of x (N×H×W×C, channels last) with w (K×K×C×O), loop for loop.
    static func conv2d(_ x: [Double], _ s: [Int], _ w: [Double], kernel K: Int, outputs O: Int, bias: [Double]? = nil) -> [Double] {
        let (N, H, W, C) = (s[0], s[1], s[2], s[3]), pad = K / 2
        var y = [Double](repeating: 0, count: N * H * W * O)
        for n in 0..<N { for h in 0..<H { for v in 0..<W { for o in 0..<O {
            var sum = bias?[o] ?? 0
            for i in 0..<K { for j in 0..<K {
                let hh = h + i - pad, vv = v + j - pad
                guard hh >= 0, hh < H, vv >= 0, vv < W else { continue }
                for c in 0..<C { sum += x[((n * H + hh) * W + vv) * C + c] * w[((i * K + j) * C + c) * O + o] }
            } }
            y[((n * H + h) * W + v) * O + o] = sum
        } } } }
        return y
    }

    /// 2×2 stride-2 max pooling of x (N×H×W×C), odd last rows and columns dropped.
    static func maxPool2(_ x: [Double], _ s: [Int]) -> [Double] {
        let (N, H, W, C) = (s[0], s[1], s[2], s[3])
        var y: [Double] = []
        for n in 0..<N { for i in 0..<(H / 2) { for j in 0..<(W / 2) { for c in 0..<C {
            y.append([(0, 0), (0, 1), (1, 0), (1, 1)].map { a, b in x[((n * H + 2 * i + a) * W + 2 * j + b) * C + c] }.max()!)
        } } } }
        return y
    }

    /// The inverse of the lower (or upper) triangle of a C×C matrix, by substitution in double.
    static func triangularInverse(_ a: [Double], _ C: Int, lower: Bool) -> [Double] {
        var x = [Double](repeating: 0, count: C * C)
        for j in 0..<C {
            for i in (lower ? Array(j..<C) : Array((0...j).reversed())) {
                var sum: Double = i == j ? 1 : 0
                for k in (lower ? j..<i : (i + 1)..<(j + 1)) { sum -= a[i * C + k] * x[k * C + j] }
                x[i * C + j] = sum / a[i * C + i]
            }
        }
        return x
    }
}

extension OpCase {
    /// Every op, with the compositions that the models build from them.
    static let table: [OpCase] = {
        typealias R = Reference
        var cases: [OpCase] = []
        for ta in [false, true] {
            for tb in [false, true] {
                cases.append(OpCase(name: "matmul ta=\(ta) tb=\(tb)", shapes: [ta ? [4, 3] : [3, 4], tb ? [5, 4] : [4, 5]],
                                    build: { g, p in try g.matmul(p[0], p[1], transposeA: ta, transposeB: tb) },
                                    reference: { v in R.matmul(v[0], ta ? 4 : 3, ta ? 3 : 4, v[1], tb ? 5 : 4, tb ? 4 : 5,
                                                               ta: ta, tb: tb) }))
            }
        }
        for act in [UnaryOp.identity, .relu, .leakyRelu, .tanh, .sigmoid, .softplus] {
            cases.append(OpCase(name: "linear+\(act)", shapes: [[3, 4], [4, 5], [1, 5]],
                                build: { g, p in try g.linear(p[0], weight: p[1], bias: p[2], activation: act, slope: 0.1) },
                                reference: { v in
                                    R.matmul(v[0], 3, 4, v[1], 4, 5).enumerated().map { i, z in
                                        R.unary(act, z + v[2][i % 5], 0.1)
                                    }
                                }))
        }
        for op in UnaryOp.allCases {
            cases.append(OpCase(name: "unary \(op)", shapes: [[3, 5]], positive: op == .log || op == .sqrt,
                                build: { g, p in try g.unary(op, p[0], parameter: 0.1) },
                                reference: { v in v[0].map { R.unary(op, $0, 0.1) } }))
        }
        cases.append(OpCase(name: "affine", shapes: [[2, 3]],
                            build: { g, p in try g.affine(p[0], scale: -1.5, shift: 0.25) },
                            reference: { v in v[0].map { -1.5 * $0 + 0.25 } }))
        for op in BinaryOp.allCases {
            for shape in [[3, 4], [1, 4], [3, 1]] {
                cases.append(OpCase(name: "binary \(op) b=\(shape)", shapes: [[3, 4], shape], positive: op == .divide,
                                    build: { g, p in try g.binary(op, p[0], p[1]) },
                                    reference: { v in
                                        (0..<12).map { i in
                                            let b = shape == [3, 4] ? v[1][i] : shape == [1, 4] ? v[1][i % 4] : v[1][i / 4]
                                            return R.binary(op, v[0][i], b)
                                        }
                                    }))
            }
        }
        cases += [
            OpCase(name: "sumRows", shapes: [[3, 4]], build: { g, p in try g.sumRows(p[0]) },
                   reference: { v in R.sumRows(v[0], cols: 4) }),
            OpCase(name: "sumColumns", shapes: [[3, 4]], build: { g, p in try g.sumColumns(p[0]) },
                   reference: { v in R.sumColumns(v[0], cols: 4) }),
            OpCase(name: "sum", shapes: [[3, 4]], build: { g, p in try g.sum(p[0]) },
                   reference: { v in [v[0].reduce(0, +)] }),
            OpCase(name: "mean", shapes: [[3, 4]], build: { g, p in try g.mean(p[0]) },
                   reference: { v in [v[0].reduce(0, +) / 12] }),
            OpCase(name: "logSumExpRows", shapes: [[3, 4]], build: { g, p in try g.logSumExpRows(p[0]) },
                   reference: { v in R.sumRows(v[0].map(Foundation.exp), cols: 4).map(Foundation.log) }),
            OpCase(name: "broadcast row", shapes: [[1, 4]],
                   build: { g, p in try g.broadcast(p[0], rows: 3, cols: 4, mode: .row) },
                   reference: { v in (0..<12).map { v[0][$0 % 4] } }),
            OpCase(name: "broadcast column", shapes: [[3, 1]],
                   build: { g, p in try g.broadcast(p[0], rows: 3, cols: 4, mode: .column) },
                   reference: { v in (0..<12).map { v[0][$0 / 4] } }),
            OpCase(name: "slice", shapes: [[3, 6]], build: { g, p in try g.slice(p[0], start: 2, width: 3) },
                   reference: { v in R.gatherColumns(v[0], cols: 6, [2, 3, 4]) }),
            OpCase(name: "pad", shapes: [[3, 2]],
                   build: { g, p in try g.apply1(PadColumns(start: 3, columns: 6), p[0]) },
                   reference: { v in R.gatherColumns(v[0], cols: 2, [-1, -1, -1, 0, 1, -1]) }),
            OpCase(name: "concat", shapes: [[3, 2], [3, 3]], build: { g, p in try g.concat([p[0], p[1]]) },
                   reference: { v in R.concatColumns([(v[0], 2), (v[1], 3)]) }),
            OpCase(name: "gather permutation", shapes: [[3, 5]],
                   build: { g, p in try g.gatherColumns(p[0], [3, 0, 4, 1, 2]) },
                   reference: { v in R.gatherColumns(v[0], cols: 5, [3, 0, 4, 1, 2]) }),
            OpCase(name: "gather subset with zero columns", shapes: [[3, 5]],
                   build: { g, p in try g.gatherColumns(p[0], [3, -1, 0, 4, -1]) },
                   reference: { v in R.gatherColumns(v[0], cols: 5, [3, -1, 0, 4, -1]) }),
            OpCase(name: "gather rows with zero rows", shapes: [[4, 3]],
                   build: { g, p in try g.gatherRows(p[0], [2, -1, 0]) },
                   reference: { v in [2, -1, 0].flatMap { r in (0..<3).map { r < 0 ? 0 : v[0][r * 3 + $0] } } }),
            OpCase(name: "reshape to 3-D and back", shapes: [[3, 4]],
                   build: { g, p in try g.exp(try g.reshape(try g.reshape(p[0], [2, 3, 2]), rows: 2, cols: 6)) },
                   reference: { v in v[0].map(Foundation.exp) }),
            OpCase(name: "mask", shapes: [[3, 4]], build: { g, p in try g.mask(p[0], [1, 0, 1, 0]) },
                   reference: { v in v[0].enumerated().map { $0.offset % 2 == 0 ? $0.element : 0 } }),
            OpCase(name: "copy", shapes: [[3, 4]], build: { g, p in try g.copy(p[0]) }, reference: { v in v[0] }),
            OpCase(name: "standard normal log density", shapes: [[3, 4]],
                   build: { g, p in try g.standardNormalLogDensity(p[0]) },
                   reference: { v in R.sumRows(v[0].map { -0.5 * $0 * $0 - R.halfLog2Pi }, cols: 4) }),
            OpCase(name: "gaussian log density", shapes: [[3, 4], [3, 4], [1, 4]],
                   build: { g, p in try g.gaussianLogDensity(p[0], mean: p[1], logStd: p[2]) },
                   reference: { v in
                       R.sumRows((0..<12).map { i in
                           let z = (v[0][i] - v[1][i]) * Foundation.exp(-v[2][i % 4])
                           return -0.5 * z * z - R.halfLog2Pi - v[2][i % 4]
                       }, cols: 4)
                   }),
            // A tensor feeding several nodes accumulates their cotangents.
            OpCase(name: "fan-out", shapes: [[3, 4], [4, 4]],
                   build: { g, p in
                       let h = try g.tanh(try g.matmul(p[0], p[1]))
                       return try g.add(try g.multiply(h, h), try g.matmul(h, p[1]))
                   },
                   reference: { v in
                       let h = R.matmul(v[0], 3, 4, v[1], 4, 4).map(Foundation.tanh)
                       return zip(h.map { $0 * $0 }, R.matmul(h, 3, 4, v[1], 4, 4)).map(+)
                   }),
        ]
        // Convolutions: im2col (Cout ≥ Cin) 3×3 with bias in one block and in several (a workspace
        // of 40 elements splits the 2×4×5 pixels into blocks of 2, crossing images), 1×1 with a
        // fused tanh, 5×5 wider than the image's height; output-side taps (Cout < Cin) with bias
        // and with an unfused activation. Each row's data gradient is the other kind.
        for (name, x, w, activation, limit) in [
            ("conv2d 3×3+bias", [2, 4, 5, 2], [3, 3, 2, 3], UnaryOp.identity, ConvolutionGeometry.workspaceBudget),
            ("conv2d 3×3+bias in blocks", [2, 4, 5, 2], [3, 3, 2, 3], UnaryOp.identity, 40),
            ("conv2d 3×3 taps+bias", [2, 4, 5, 3], [3, 3, 3, 2], UnaryOp.identity, ConvolutionGeometry.workspaceBudget),
            ("conv2d 3×3 taps+softplus", [1, 3, 4, 4], [3, 3, 4, 1], UnaryOp.softplus, ConvolutionGeometry.workspaceBudget),
            ("conv2d 1×1+tanh", [2, 3, 3, 3], [1, 1, 3, 4], UnaryOp.tanh, ConvolutionGeometry.workspaceBudget),
            ("conv2d 5×5+sigmoid", [1, 3, 4, 2], [5, 5, 2, 3], UnaryOp.sigmoid, 120),
        ] {
            cases.append(OpCase(name: name, shapes: [x, w, [1, w[3]]],
                                build: { g, p in try g.conv2d(p[0], weight: p[1], bias: p[2], activation: activation,
                                                              workspaceLimit: limit) },
                                reference: { v in
                                    R.conv2d(v[0], x, v[1], kernel: w[0], outputs: w[3], bias: v[2]).map { R.unary(activation, $0, 0) }
                                }))
        }
        // 2×2 max pooling, an even image and an odd one (its last row is dropped). Offsets of
        // 3·((position + window) mod 4), wider than the inputs' spread of 2.4, make every window's
        // maximum lead by at least 0.6, so no central difference crosses a kink, and let every
        // position of the window win somewhere. Ties: `testMaxPoolTiesGoToTheFirst`.
        for shape in [[2, 4, 4, 3], [1, 5, 4, 2]] {
            let offsets = OpCase.poolOffsets(shape)
            cases.append(OpCase(name: "max pool 2×2 \(shape)", shapes: [shape],
                                build: { g, p in
                                    let shifted = try g.add(try g.reshape(p[0], [1, offsets.count]),
                                                            g.constant(offsets.map(Float.init), rows: 1, cols: offsets.count))
                                    return try g.maxPool2(try g.reshape(shifted, shape))
                                },
                                reference: { v in R.maxPool2(zip(v[0], offsets).map(+), shape) }))
        }
        // Triangular inverses of a diagonally dominant matrix (p + 3·I); the other triangle is ignored.
        let identity3 = (0..<16).map { Float($0 / 4 == $0 % 4 ? 3 : 0) }
        for lower in [true, false] {
            cases.append(OpCase(name: "triangular inverse lower=\(lower)", shapes: [[4, 4]],
                                build: { g, p in try g.triangularInverse(try g.add(p[0], g.constant(identity3, rows: 4, cols: 4)),
                                                                         lower: lower) },
                                reference: { v in
                                    R.triangularInverse(v[0].enumerated().map { $1 + Double(identity3[$0]) }, 4, lower: lower)
                                }))
        }
        let couplingMask: [Double] = [1, 0, 1, 0, 0]
        for bound: Double in [0, 2] {
            cases.append(OpCase(name: "affine coupling bound=\(bound)", shapes: [[3, 5], [3, 10]],
                                build: { g, p in
                                    let out = try g.apply(AffineCouplingOp(inverse: false, bound: Float(bound)),
                                                          [p[0], p[1], g.constant(couplingMask.map(Float.init), rows: 1, cols: 5)])
                                    // Both outputs feed the loss: y and the log-det.
                                    return try g.concat([out[0], out[1]])
                                },
                                reference: { v in
                                    (0..<3).flatMap { r -> [Double] in
                                        var y: [Double] = [], logdet = 0.0
                                        for j in 0..<5 {
                                            let x = v[0][r * 5 + j]
                                            guard couplingMask[j] == 0 else { y.append(x); continue }
                                            let raw = v[1][r * 10 + j], t = v[1][r * 10 + 5 + j]
                                            let s = bound > 0 ? bound * Foundation.tanh(raw / bound) : raw
                                            y.append(x * Foundation.exp(s) + t)
                                            logdet += s
                                        }
                                        return y + [logdet]
                                    }
                                }))
        }
        // Raw parameters in ±[0.2, 1.2]; x = scale·p + shift puts inputs inside and outside the
        // tail bound. K = 4 keeps the number of perturbations small. `testSplineCasesAvoidKnots`
        // checks that no finite difference straddles a knot or ±B.
        let bins = 4, count = RationalQuadraticSpline.parameterCount(bins: bins)
        for (bound, scale, shift) in splineConfigurations {
            cases.append(OpCase(name: "rq spline B=\(bound)", shapes: [[3, 4], [3, 4 * count]],
                                build: { g, p in
                                    let out = try g.apply(RQSplineOp(inverse: false, bins: bins, tailBound: bound),
                                                          [g.affine(p[0], scale: scale, shift: shift), p[1],
                                                           g.constant(splineMask, rows: 1, cols: 4)])
                                    return try g.concat([out[0], out[1]])
                                },
                                reference: { v in
                                    (0..<3).flatMap { r -> [Double] in
                                        var y: [Double] = [], logdet = 0.0
                                        for j in 0..<4 {
                                            let x = Double(scale) * v[0][r * 4 + j] + Double(shift)
                                            guard splineMask[j] == 0, abs(x) <= Double(bound) else { y.append(x); continue }
                                            let raw = Array(v[1][((r * 4 + j) * count)..<((r * 4 + j + 1) * count)])
                                            let (out, ld) = SplineTests.reference(inverse: false, x, raw, bins: bins,
                                                                                  bound: Double(bound))
                                            y.append(out)
                                            logdet += ld
                                        }
                                        return y + [logdet]
                                    }
                                }))
        }
        return cases
    }()

    /// The offsets of the max-pool rows: 3·((position in the window + window index) mod 4).
    static func poolOffsets(_ s: [Int]) -> [Double] {
        let (H, W, C) = (s[1], s[2], s[3])
        return (0..<s.reduce(1, *)).map { e in
            let col = (e / C) % W, row = (e / (C * W)) % H, n = e / (C * W * H)
            let window = (n * (H / 2) + row / 2) * (W / 2) + col / 2
            return 3 * Double(((row % 2) * 2 + col % 2 + window) % 4)
        }
    }

    static let splineMask: [Float] = [0, 1, 0, 0]
    /// (tail bound, scale, shift) of the spline rows.
    static let splineConfigurations: [(Float, Float, Float)] = [(3, 3, 0.5), (1.5, 1.5, -0.1)]
}
