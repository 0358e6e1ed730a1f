import XCTest
import SBITestSupport
import Foundation
import SBIBackend
@testable import SBIGraph
@testable import SBIModels

/// The rational-quadratic spline kernels (Kernels/SBIModels/spline.cl and their CPU twin) against a
/// double-precision reimplementation of nflows' `unconstrained_rational_quadratic_spline`, brute-force
/// Jacobians, each other and (where python3 has torch and nflows) nflows itself; and the
/// `SplineCoupling` bijector built on them. Gradients are checked in the op table (OpTableTests).
final class SplineTests: XCTestCase {
    static let bins = 8
    static let bound: Float = 3
    static var perFeature: Int { RationalQuadraticSpline.parameterCount(bins: bins) }

    // MARK: fixtures

    /// Uniform values in [lo, hi) from the Philox stream.
    static func uniform(_ count: Int, seed: UInt64, _ lo: Float, _ hi: Float) -> [Float] {
        (0..<count).map { lo + (hi - lo) * Philox.unit(Philox.word(at: UInt64($0), seed: seed)) }
    }

    /// Inputs in ±4.5 (a third of them outside the tail bound 3), with the bound itself, its
    /// neighbours and 0 at the start.
    static func inputs(_ count: Int, seed: UInt64) -> [Float] {
        var x = uniform(count, seed: seed, -4.5, 4.5)
        let special: [Float] = [-3, 3, 0, -3.0001, 3.0001, -2.9999, 2.9999, 1e-4]
        for (i, v) in special.enumerated() where i < count { x[i] = v }
        return x
    }

    /// Raw parameters in ±`spread` for every element.
    static func parameters(rows: Int, features: Int, seed: UInt64, spread: Float = 2.5) -> [Float] {
        uniform(rows * features * perFeature, seed: seed, -spread, spread)
    }

    static let mask: [Float] = [0, 1, 0, 0]

    func openCL() throws -> OpenCLBackend { try TestBackends.openCL() }
    func splineBackends() throws -> [Backend] { try TestBackends.all() }

    /// The op run on a backend directly (no graph): y and the per-row log-det.
    func spline(_ backend: Backend, inverse: Bool, x: [Float], parameters: [Float], mask: [Float],
                bins: Int = SplineTests.bins, bound: Float = SplineTests.bound) throws -> (y: [Float], logdet: [Float]) {
        let d = mask.count, rows = x.count / d
        let bx = try backend.makeBuffer(x), bp = try backend.makeBuffer(parameters), bm = try backend.makeBuffer(mask)
        let by = try backend.makeBuffer(count: x.count), bl = try backend.makeBuffer(count: rows)
        try RationalQuadraticSpline.forward(on: backend, inverse: inverse, x: bx.view, parameters: bp.view, mask: bm.view,
                                            y: by.view, logDeterminant: bl.view, rows: rows, features: d,
                                            bins: bins, bound: bound)
        return (try backend.download(by.view), try backend.download(bl.view))
    }

    func splineBackward(_ backend: Backend, x: [Float], parameters: [Float], mask: [Float], gy: [Float],
                        gl: [Float]) throws -> (gx: [Float], gp: [Float]) {
        let d = mask.count, rows = x.count / d
        let bx = try backend.makeBuffer(x), bp = try backend.makeBuffer(parameters), bm = try backend.makeBuffer(mask)
        let bgy = try backend.makeBuffer(gy), bgl = try backend.makeBuffer(gl)
        let bgx = try backend.makeBuffer(count: x.count), bgp = try backend.makeBuffer(count: parameters.count)
        try RationalQuadraticSpline.backward(on: backend, x: bx.view, parameters: bp.view, mask: bm.view, gradientY: bgy.view,
                                                    gradientLogDeterminant: bgl.view, gradientX: bgx.view,
                                                    gradientParameters: bgp.view, rows: rows, features: d,
                                                    bins: Self.bins, bound: Self.bound)
        return (try backend.download(bgx.view), try backend.download(bgp.view))
    }

    // MARK: double-precision reference (nflows' formulas, step by step)

    /// nflows' `unconstrained_rational_quadratic_spline` with linear tails for one element: raw holds
    /// K widths, K heights and K−1 interior derivatives.
    static func reference(inverse: Bool, _ v: Double, _ raw: ArraySlice<Float>, bins k: Int = bins,
                          bound: Double = Double(bound)) -> (out: Double, logdet: Double) {
        reference(inverse: inverse, v, raw.map(Double.init), bins: k, bound: bound)
    }

    static func reference(inverse: Bool, _ v: Double, _ r: [Double], bins k: Int = bins,
                          bound: Double = Double(bound)) -> (out: Double, logdet: Double) {
        guard v >= -bound, v <= bound else { return (v, 0) }
        let minimum = 1e-3
        func knots(_ u: ArraySlice<Double>) -> [Double] {
            let mx = u.max()!
            let e = u.map { Foundation.exp($0 - mx) }
            let total = e.reduce(0, +)
            var cum = [0.0]
            for i in 0..<k { cum.append(cum[i] + minimum + (1 - minimum * Double(k)) * e[i] / total) }
            var knot = cum.map { 2 * bound * $0 - bound }
            knot[0] = -bound
            knot[k] = bound
            return knot
        }
        let cw = knots(r[0..<k]), ch = knots(r[k..<(2 * k)])
        let constant = Foundation.log(Foundation.exp(1 - minimum) - 1)
        let rawD = [constant] + Array(r[(2 * k)...]) + [constant]
        let derivative = rawD.map { minimum + Foundation.log1p(Foundation.exp($0)) }
        // searchsorted: Σ(v ≥ location) − 1 with the last location nudged up by 1e-6.
        var locations = inverse ? ch : cw
        locations[k] += 1e-6
        let b = locations.filter { v >= $0 }.count - 1
        let w = cw[b + 1] - cw[b], h = ch[b + 1] - ch[b], s = h / w
        let d0 = derivative[b], d1 = derivative[b + 1]
        let theta: Double, out: Double
        if inverse {
            let a = (v - ch[b]) * (d0 + d1 - 2 * s) + h * (s - d0)
            let bq = h * d0 - (v - ch[b]) * (d0 + d1 - 2 * s)
            let c = -s * (v - ch[b])
            let disc = bq * bq - 4 * a * c
            theta = 2 * c / (-bq - disc.squareRoot())
            out = theta * w + cw[b]
        } else {
            theta = (v - cw[b]) / w
            out = ch[b] + h * (s * theta * theta + d0 * theta * (1 - theta)) / (s + (d0 + d1 - 2 * s) * theta * (1 - theta))
        }
        let t = theta * (1 - theta)
        let denominator = s + (d0 + d1 - 2 * s) * t
        let numerator = s * s * (d1 * theta * theta + 2 * s * t + d0 * (1 - theta) * (1 - theta))
        let logdet = Foundation.log(numerator) - 2 * Foundation.log(denominator)
        return (out, inverse ? -logdet : logdet)
    }

    static func referenceRows(inverse: Bool, x: [Float], parameters: [Float], mask: [Float]) -> (y: [Double], logdet: [Double]) {
        let d = mask.count, p = perFeature
        var y = [Double](repeating: 0, count: x.count), logdet = [Double](repeating: 0, count: x.count / d)
        for i in 0..<x.count {
            if mask[i % d] != 0 { y[i] = Double(x[i]); continue }
            let (out, ld) = reference(inverse: inverse, Double(x[i]), parameters[(i * p)..<((i + 1) * p)])
            y[i] = out
            logdet[i / d] += ld
        }
        return (y, logdet)
    }

    // MARK: round trip

    /// Raw values in ±1.5 (bins from 1/3 to 3× the mean, slopes above ~e⁻⁴): there the inverse's
    /// error, y's rounding over the slope, stays well under 1e-4. Steeper splines are round-tripped
    /// with a slope-scaled tolerance in testMonotone and testExtremeParametersAndBinCounts.
    func roundTrip(on backend: Backend) throws {
        let rows = 200, d = Self.mask.count
        let x = Self.inputs(rows * d, seed: 1)
        let params = Self.parameters(rows: rows, features: d, seed: 2, spread: 1.5)
        let forward = try spline(backend, inverse: false, x: x, parameters: params, mask: Self.mask)
        let inverse = try spline(backend, inverse: true, x: forward.y, parameters: params, mask: Self.mask)
        var worst: Float = 0
        for i in 0..<x.count {
            worst = max(worst, abs(inverse.y[i] - x[i]))
            if Self.mask[i % d] != 0 || abs(x[i]) > Self.bound {
                XCTAssertEqual(forward.y[i], x[i], "identity at \(i) (x = \(x[i])) on \(backend.kind)")
            }
        }
        XCTAssertLessThanOrEqual(worst, 1e-4, "round trip on \(backend.kind)")
        for r in 0..<rows {
            XCTAssertEqual(forward.logdet[r], -inverse.logdet[r], accuracy: 1e-4 + 1e-5 * abs(forward.logdet[r]),
                           "forward log-det = −inverse log-det, row \(r) on \(backend.kind)")
        }
        // Some rows lie wholly outside [−B, B] or on masked features: their log-det is exactly 0.
        XCTAssertTrue(forward.logdet.contains { $0 != 0 })
    }

    func testRoundTripCPU() throws { try roundTrip(on: CPUBackend()) }
    func testRoundTripOpenCL() throws { try roundTrip(on: try openCL()) }

    // MARK: against the double reference and its brute-force Jacobian

    /// Outputs and log-dets against the double reimplementation of nflows; that reference's
    /// log-det against the log-det of the Jacobian by central differences (h = 1e-6, in double:
    /// truncation h²·f'''/6 and rounding 1e-16/h are both < 1e-8). Given the raw parameters the map
    /// acts on each feature alone, so the Jacobian of a row is diagonal and its log |det| the sum of
    /// the log slopes; the off-diagonal entries are checked to vanish for one row. The spline is
    /// only C¹ at the knots and at ±B, so a difference straddling one is off by up to h·|Δf''|/4
    /// (≈ 6e-4 at x = −B exactly, where f'' jumps by ~2e3 next to a narrow first bin): points
    /// within 1e-5 of ±B are left out of the difference check (their log-det, 0, is still checked
    /// against the reference).
    ///
    /// Float tolerance: the knots are float positions in [−B, B], off by up to ~K·B·ε ≈ 1e-6, and
    /// with raw values in ±2.5 a bin can be as narrow as 6·(1e-3 + 0.992·e⁻⁵/7) ≈ 1.2e-2, so θ and
    /// the slope s = H/W carry relative errors up to ~1e-4, and the log-det (∂/∂log s ≈ 2, plus the
    /// θ term) up to ~3e-4 per element; y to ~1e-6.
    func logDeterminant(on backend: Backend) throws {
        let rows = 64, d = Self.mask.count, p = Self.perFeature
        let x = Self.inputs(rows * d, seed: 3)
        let params = Self.parameters(rows: rows, features: d, seed: 4)
        let got = try spline(backend, inverse: false, x: x, parameters: params, mask: Self.mask)
        let reference = Self.referenceRows(inverse: false, x: x, parameters: params, mask: Self.mask)
        let h = 1e-6, transformed = Self.mask.filter { $0 == 0 }.count
        for r in 0..<rows {
            var bruteForce = 0.0
            for j in 0..<d {
                let i = r * d + j
                XCTAssertEqual(Double(got.y[i]), reference.y[i], accuracy: 1e-5 * max(1, abs(reference.y[i])),
                               "y[\(r), \(j)] on \(backend.kind)")
                guard Self.mask[j] == 0, abs(abs(x[i]) - Self.bound) > 1e-5 else { continue }
                let slice = params[(i * p)..<((i + 1) * p)]
                let plus = Self.reference(inverse: false, Double(x[i]) + h, slice).out
                let minus = Self.reference(inverse: false, Double(x[i]) - h, slice).out
                bruteForce += Foundation.log((plus - minus) / (2 * h))
            }
            XCTAssertEqual(reference.logdet[r], bruteForce, accuracy: 1e-6, "reference log-det, row \(r)")
            XCTAssertEqual(Double(got.logdet[r]), reference.logdet[r], accuracy: 3e-4 * Double(transformed),
                           "log-det row \(r) on \(backend.kind)")
        }
        // Row 0's full Jacobian (through the backend, in float, h = 1e-2): off-diagonal entries are 0.
        for j in 0..<d {
            var xp = Array(x[0..<d]), xm = xp
            xp[j] += 1e-2
            xm[j] -= 1e-2
            let yp = try spline(backend, inverse: false, x: xp, parameters: Array(params[0..<(d * p)]), mask: Self.mask).y
            let ym = try spline(backend, inverse: false, x: xm, parameters: Array(params[0..<(d * p)]), mask: Self.mask).y
            for i in 0..<d where i != j { XCTAssertEqual(yp[i], ym[i], "∂y\(i)/∂x\(j) on \(backend.kind)") }
        }
    }

    func testLogDeterminantAgainstJacobianCPU() throws { try logDeterminant(on: CPUBackend()) }
    func testLogDeterminantAgainstJacobianOpenCL() throws { try logDeterminant(on: try openCL()) }

    /// The inverse against the reference inverse, including the log-det sign.
    func testInverseAgainstReference() throws {
        for backend in try splineBackends() {
            let rows = 64, d = Self.mask.count
            let y = Self.inputs(rows * d, seed: 5)
            let params = Self.parameters(rows: rows, features: d, seed: 6)
            let got = try spline(backend, inverse: true, x: y, parameters: params, mask: Self.mask)
            let reference = Self.referenceRows(inverse: true, x: y, parameters: params, mask: Self.mask)
            for i in 0..<y.count {
                XCTAssertEqual(Double(got.y[i]), reference.y[i], accuracy: 1e-4, "x[\(i)] on \(backend.kind)")
            }
            for r in 0..<rows {
                XCTAssertEqual(Double(got.logdet[r]), reference.logdet[r], accuracy: 1e-4 * max(1, abs(reference.logdet[r])),
                               "inverse log-det row \(r) on \(backend.kind)")
            }
        }
    }

    // MARK: backends agree

    func testBackendsAgree() throws {
        let gpu = try openCL(), cpu = CPUBackend()
        let rows = 300, d = Self.mask.count   // several work-groups, and the row loop of the backward
        let x = Self.inputs(rows * d, seed: 7)
        let params = Self.parameters(rows: rows, features: d, seed: 8)
        for inverse in [false, true] {
            let a = try spline(cpu, inverse: inverse, x: x, parameters: params, mask: Self.mask)
            let b = try spline(gpu, inverse: inverse, x: x, parameters: params, mask: Self.mask)
            for i in 0..<x.count {
                XCTAssertEqual(a.y[i], b.y[i], accuracy: 1e-5 * max(1, abs(a.y[i])), "y[\(i)] inverse=\(inverse)")
            }
            for r in 0..<rows {
                XCTAssertEqual(a.logdet[r], b.logdet[r], accuracy: 1e-4 * max(1, abs(a.logdet[r])), "log-det[\(r)] inverse=\(inverse)")
            }
        }
        let gy = Self.uniform(rows * d, seed: 9, -1, 1), gl = Self.uniform(rows, seed: 10, -1, 1)
        let a = try splineBackward(cpu, x: x, parameters: params, mask: Self.mask, gy: gy, gl: gl)
        let b = try splineBackward(gpu, x: x, parameters: params, mask: Self.mask, gy: gy, gl: gl)
        for i in 0..<a.gx.count { XCTAssertEqual(a.gx[i], b.gx[i], accuracy: 1e-4 * max(1, abs(a.gx[i])), "gx[\(i)]") }
        for i in 0..<a.gp.count { XCTAssertEqual(a.gp[i], b.gp[i], accuracy: 1e-4 * max(1, abs(a.gp[i])), "gp[\(i)]") }
    }

    // MARK: monotonicity

    /// A fine grid over [−4, 4] through several splines (one feature, the same parameters on every
    /// row) is strictly increasing, continuous at ±B (values ±B there) and inverts back.
    func testMonotone() throws {
        for backend in try splineBackends() {
            let n = 1601
            let grid = (0..<n).map { -4 + 8 * Float($0) / Float(n - 1) }
            for seed: UInt64 in [11, 12, 13] {
                let one = Self.parameters(rows: 1, features: 1, seed: seed, spread: 3)
                let params = (0..<n).flatMap { _ in one }
                let out = try spline(backend, inverse: false, x: grid, parameters: params, mask: [0])
                for i in 1..<n {
                    XCTAssertGreaterThan(out.y[i], out.y[i - 1], "at x = \(grid[i]) (seed \(seed), \(backend.kind))")
                }
                for (i, v) in grid.enumerated() where abs(v) == Self.bound {
                    XCTAssertEqual(out.y[i], v, accuracy: 1e-5, "y(±B) = ±B")
                }
                XCTAssertTrue(out.logdet.allSatisfy { $0.isFinite })
                // The inverse multiplies y's rounding (~1e-6 with the knots') by 1/slope, and raw
                // derivatives down to −3 with steep neighbours give slopes ~1e-2 inside some bins.
                let back = try spline(backend, inverse: true, x: out.y, parameters: params, mask: [0])
                for i in 0..<n {
                    XCTAssertEqual(back.y[i], grid[i], accuracy: 1e-4 + 3e-6 * Foundation.exp(-out.logdet[i]),
                                   "inverse at \(grid[i]) (seed \(seed), \(backend.kind))")
                }
            }
        }
    }

    /// Extreme raw values (bins at the minimum width/height, derivatives near min_d) stay finite,
    /// monotone and invertible; several bin counts, including one bin.
    func testExtremeParametersAndBinCounts() throws {
        let cpu = CPUBackend()
        for bins in [1, 2, 5, 16] {
            let p = RationalQuadraticSpline.parameterCount(bins: bins)
            let n = 400
            let grid = (0..<n).map { -3.2 + 6.4 * Float($0) / Float(n - 1) }
            let one = Self.uniform(p, seed: UInt64(20 + bins), -8, 8)
            let params = (0..<n).flatMap { _ in one }
            let out = try spline(cpu, inverse: false, x: grid, parameters: params, mask: [0], bins: bins)
            for i in 1..<n { XCTAssertGreaterThanOrEqual(out.y[i], out.y[i - 1], "K = \(bins) at \(grid[i])") }
            XCTAssertTrue(out.y.allSatisfy { $0.isFinite } && out.logdet.allSatisfy { $0.isFinite }, "K = \(bins)")
            let back = try spline(cpu, inverse: true, x: out.y, parameters: params, mask: [0], bins: bins)
            let inverseOfGrid = try spline(cpu, inverse: true, x: grid, parameters: params, mask: [0], bins: bins)
            XCTAssertTrue(inverseOfGrid.y.allSatisfy { $0.isFinite } && inverseOfGrid.logdet.allSatisfy { $0.isFinite })
            for i in 0..<n where abs(grid[i]) < Self.bound {
                // Where the slope is tiny the inverse is ill-conditioned: y's error over the slope.
                XCTAssertEqual(back.y[i], grid[i], accuracy: 1e-4 + 3e-6 * Foundation.exp(-out.logdet[i]),
                               "K = \(bins) inverse at \(grid[i])")
            }
            if bins == 1 {   // one bin with unit boundary derivatives is the identity
                for i in 0..<n { XCTAssertEqual(out.y[i], grid[i], accuracy: 1e-5) }
            }
        }
        // Bad shapes and arguments are refused on every backend.
        for backend in try splineBackends() {
            XCTAssertThrowsError(try spline(backend, inverse: false, x: [0], parameters: [0, 0, 0], mask: [0], bins: 1))
            XCTAssertThrowsError(try spline(backend, inverse: false, x: [0], parameters: [0], mask: [0], bins: 0))
            XCTAssertThrowsError(try spline(backend, inverse: false, x: [0], parameters: [0, 0], mask: [0], bins: 1, bound: 0))
            XCTAssertThrowsError(try spline(backend, inverse: false, x: [0, 0], parameters: [0, 0], mask: [0], bins: 1))
        }
    }

    // MARK: nflows

    private func python(_ script: String, input: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script]
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stdout
        try process.run()
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    /// nflows itself (in float64) on the same raw parameters, both directions.
    func testAgainstNflows() throws {
        guard let probe = try? python("import torch, nflows", input: ""), probe.status == 0 else {
            throw XCTSkip("python3 with torch and nflows is not available")
        }
        let n = 256, k = Self.bins
        let x = Self.inputs(n, seed: 30)
        let params = Self.parameters(rows: n, features: 1, seed: 31)
        let script = """
        import json, sys, torch
        from nflows.transforms.splines.rational_quadratic import unconstrained_rational_quadratic_spline as f
        d = json.load(sys.stdin)
        k = d["bins"]
        x = torch.tensor(d["x"], dtype=torch.float64)
        p = torch.tensor(d["p"], dtype=torch.float64).reshape(len(d["x"]), 3 * k - 1)
        out = {}
        for inverse in (False, True):
            y, ld = f(x, p[:, :k], p[:, k:2 * k], p[:, 2 * k:], inverse=inverse, tails="linear", tail_bound=d["bound"])
            out["inverse" if inverse else "forward"] = [y.tolist(), ld.tolist()]
        print(json.dumps(out))
        """
        let request = try JSONSerialization.data(withJSONObject: [
            "bins": k, "bound": Double(Self.bound), "x": x.map(Double.init), "p": params.map(Double.init),
        ])
        let (status, output) = try python(script, input: String(decoding: request, as: UTF8.self))
        XCTAssertEqual(status, 0, output)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: [[Double]]], output)
        for backend in try splineBackends() {
            for inverse in [false, true] {
                let expected = try XCTUnwrap(json[inverse ? "inverse" : "forward"])
                let got = try spline(backend, inverse: inverse, x: x, parameters: params, mask: [0])
                for i in 0..<n {
                    XCTAssertEqual(Double(got.y[i]), expected[0][i], accuracy: 1e-4, "nflows y[\(i)] inverse=\(inverse)")
                    XCTAssertEqual(Double(got.logdet[i]), expected[1][i], accuracy: 1e-4 * max(1, abs(expected[1][i])),
                                   "nflows log-det[\(i)] inverse=\(inverse)")
                }
            }
        }
    }

    // MARK: the coupling layer

    /// A new SplineCoupling is the identity (zero last layer, derivative offset), on both backends.
    func testCouplingStartsAsIdentity() throws {
        for backend in try splineBackends() as [Backend] {
            let d = 5, rows = 16
            let layer = SplineCoupling(name: "nsf", mask: [1, 0, 1, 0, 0], hidden: [16, 16])
            let graph = Graph()
            let x = graph.input("x", rows: rows, cols: d)
            let (y, logdet) = try layer.forward(x, context: nil, in: graph)
            let store = try ParameterStore(graph: graph, backend: backend, seed: 3)
            let plan = try Plan(graph: graph, backend: backend, outputs: [y, logdet], parameters: store)
            let values = Self.inputs(rows * d, seed: 40)
            try plan.feed(x, values)
            try plan.run()
            let out = try plan.read(y), ld = try plan.read(logdet)
            for i in 0..<values.count { XCTAssertEqual(out[i], values[i], accuracy: 2e-6 * max(1, abs(values[i]))) }
            for r in 0..<rows { XCTAssertEqual(ld[r], 0, accuracy: 1e-5) }
        }
    }

    /// A double-precision twin of the whole coupling layer (its MLP included, weights read from the
    /// store) for the brute-force Jacobian of the layer.
    static func referenceCoupling(_ x: [Double], layer: SplineCoupling, weights: [[Float]], biases: [[Float]]) -> [Double] {
        var h = zip(x, layer.mask).map { $0 * Double($1) }
        for (l, (w, b)) in zip(weights, biases).enumerated() {
            let n = b.count
            var next = (0..<n).map { Double(b[$0]) }
            for i in 0..<h.count { for o in 0..<n { next[o] += h[i] * Double(w[i * n + o]) } }
            if l < weights.count - 1 { next = next.map { max($0, 0) } }
            h = next
        }
        let scale = layer.outputScale, offset = layer.biasOffset
        let p = layer.parametersPerFeature
        var y = x
        for j in 0..<x.count where layer.mask[j] == 0 {
            let raw = (0..<p).map { h[j * p + $0] * Double(scale[j * p + $0]) + Double(offset[j * p + $0]) }
            y[j] = reference(inverse: false, x[j], raw, bins: layer.bins, bound: Double(layer.tailBound)).out
        }
        return y
    }

    /// With random (non-zero) weights: forward then inverse returns the input, the inverse's
    /// log-det is minus the forward's, and the forward log-det is the log |det| of the layer's full
    /// D×D Jacobian (MLP included) by central differences of its double twin, by LU.
    func testCouplingRoundTripAndFullJacobian() throws {
        for backend in try splineBackends() as [Backend] {
            let d = 4, rows = 32
            let layer = SplineCoupling(name: "nsf", mask: [0, 1, 1, 0], hidden: [8], bins: 6, tailBound: 2.5)
            let graph = Graph()
            let x = graph.input("x", rows: rows, cols: d)
            let (y, logdet) = try layer.forward(x, context: nil, in: graph)
            let (back, inverseLogdet) = try layer.inverse(y, context: nil, in: graph)
            let store = try ParameterStore(graph: graph, backend: backend, seed: 5)
            let net = layer.net
            var weights: [[Float]] = [], biases: [[Float]] = []
            for l in 0..<(net.widths.count - 1) {
                let (fanIn, fanOut) = (net.widths[l], net.widths[l + 1])
                var w = try store.read(net.weightName(l)), b = try store.read(net.biasName(l))
                if l == net.widths.count - 2 {   // the zero-initialized last layer: make it non-trivial
                    w = Self.uniform(fanIn * fanOut, seed: 50, -1.5, 1.5)
                    b = Self.uniform(fanOut, seed: 51, -1, 1)
                    try store.write(net.weightName(l), w)
                    try store.write(net.biasName(l), b)
                }
                weights.append(w)
                biases.append(b)
            }
            let plan = try Plan(graph: graph, backend: backend, outputs: [y, logdet, back, inverseLogdet], parameters: store)
            let values = Self.uniform(rows * d, seed: 52, -3.2, 3.2)
            try plan.feed(x, values)
            try plan.run()
            let out = try plan.read(y), ld = try plan.read(logdet)
            let roundTrip = try plan.read(back), ild = try plan.read(inverseLogdet)
            for i in 0..<values.count { XCTAssertEqual(roundTrip[i], values[i], accuracy: 1e-4, "round trip on \(backend.kind)") }
            for r in 0..<rows {
                XCTAssertEqual(ild[r], -ld[r], accuracy: 1e-4 * max(1, abs(ld[r])), "inverse log-det on \(backend.kind)")
                let point = values[(r * d)..<((r + 1) * d)].map(Double.init)
                let twin = Self.referenceCoupling(point, layer: layer, weights: weights, biases: biases)
                for j in 0..<d {
                    XCTAssertEqual(Double(out[r * d + j]), twin[j], accuracy: 1e-4, "y[\(r), \(j)] on \(backend.kind)")
                }
                let h = 1e-6
                var jacobian = [[Double]](repeating: [Double](repeating: 0, count: d), count: d)
                for j in 0..<d {
                    var plus = point, minus = point
                    plus[j] += h
                    minus[j] -= h
                    let yp = Self.referenceCoupling(plus, layer: layer, weights: weights, biases: biases)
                    let ym = Self.referenceCoupling(minus, layer: layer, weights: weights, biases: biases)
                    for i in 0..<d { jacobian[i][j] = (yp[i] - ym[i]) / (2 * h) }
                }
                XCTAssertEqual(Double(ld[r]), Self.logAbsDeterminant(jacobian), accuracy: 1e-4 * max(1, abs(Double(ld[r]))),
                               "log-det vs full Jacobian, row \(r) on \(backend.kind)")
            }
        }
    }

    /// log |det A| by Gaussian elimination with partial pivoting.
    static func logAbsDeterminant(_ matrix: [[Double]]) -> Double {
        var a = matrix
        let n = a.count
        var total = 0.0
        for c in 0..<n {
            let pivot = (c..<n).max { abs(a[$0][c]) < abs(a[$1][c]) }!
            a.swapAt(c, pivot)
            total += Foundation.log(abs(a[c][c]))
            for r in (c + 1)..<n {
                let f = a[r][c] / a[c][c]
                for k in c..<n { a[r][k] -= f * a[c][k] }
            }
        }
        return total
    }
}
