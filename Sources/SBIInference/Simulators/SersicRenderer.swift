import Foundation
import SBIBackend

/// Noise-free images (rows × height × width, row-major, x = the column index) of Sérsic
/// galaxies centred on pixel (width/2, height/2), convolved with the PSF.
///
/// `parameters` holds `SersicProfile.parameterCount` values per row, made by
/// `SersicProfile.kernelParameters`; `psf` holds the `settings.tapSide`² cell taps made by
/// `PSFTaps` (or `PSFTaps.none`, with `psfRadius` 0, for no PSF). The method is:
///  1. each pixel of the stamp, padded by `settings.psfRadius` pixels on every side, is split
///     into s×s cells (s = `cellsPerPixel`, odd, so the galaxy centre is a cell centre), and
///     each cell's flux ∫_cell I is estimated by an m×m midpoint rule, m growing towards the
///     centre (`SersicRenderSettings`); the elliptical core R < 1/(2s) of the central cell,
///     where the profile has its cusp, is not sampled but given its exact flux;
///  2. each pixel sums the cells' fluxes times the pixel-integrated PSF at the offset of the
///     cell from the pixel centre: pixel(p) = Σ_c F_c·Q(p − y_c), Q = PSF ⊗ pixel box.
/// This is ∫ I(y)·Q(p − y) dy, the exact pixel value, up to Q's variation across one cell
/// (an O(1/(24 s²)·∇²Q/Q) ≈ 0.2% effect at s = 3 for the default Moffat) and the cell fluxes'
/// quadrature error; a point source at a cell centre is rendered exactly.
/// OpenCL: Kernels/SBIInference/simulators.cl; `SersicCPU` below is its CPU twin, formula for
/// formula and in the same summation order, so the two backends agree to within the built-in
/// functions' ulps.
public enum SersicRenderer {
    static let program = KernelProgram(name: "SBIInference/simulators", source: EmbeddedKernels.sources["simulators"])
    /// Images rendered per OpenCL pass, so that the cell scratch stays near 64 MiB however large the batch.
    static let galaxyScratchBytes = 64 << 20

    public static func render(on backend: Backend, parameters: BufferView, psf: BufferView, images: BufferView,
                              rows: Int, settings: SersicRenderSettings) throws {
        try check(parameters: parameters, psf: psf, images: images, rows: rows, settings: settings)
        try backend.run("the Sérsic renderer", cpu: { cpu in
            let pp = try cpu.pointer(parameters, "galaxy parameters"), pt = try cpu.pointer(psf, "galaxy PSF taps")
            let pi = try cpu.pointer(images, "galaxy images")
            guard rows > 0 else { return }
            let cells = settings.cellColumns * settings.cellRows
            let pixels = settings.width * settings.height
            let work = cells * 4 + pixels * settings.tapSide * settings.tapSide
            CPUParallel.forEachChunk(rows, work: rows * work) { range in
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: cells)
                defer { scratch.deallocate() }
                let s = settings.cellsPerPixel
                let pw = settings.width + 2 * settings.psfRadius, ph = settings.height + 2 * settings.psfRadius
                for row in range {
                    let p = pp + row * SersicProfile.parameterCount
                    // The phase-major layout of Kernels/SBIInference/simulators.cl.
                    for phase in 0..<(s * s) {
                        for y in 0..<ph {
                            for x in 0..<pw {
                                scratch[(phase * ph + y) * pw + x] =
                                    SersicCPU.cellFlux(p, cx: x * s + phase % s, cy: y * s + phase / s, settings)
                            }
                        }
                    }
                    SersicCPU.convolve(scratch, taps: pt, into: pi + row * pixels, settings)
                }
            }
        }, openCL: { cl in
            try cl.checkOwned(parameters, "galaxy parameters")
            try cl.checkOwned(psf, "galaxy PSF taps")
            try cl.checkOwned(images, "galaxy images")
            guard rows > 0 else { return }
            let pw = settings.width + 2 * settings.psfRadius, ph = settings.height + 2 * settings.psfRadius
            let cells = settings.cellColumns * settings.cellRows
            let pixels = settings.width * settings.height
            let chunk = max(1, min(rows, galaxyScratchBytes / (cells * 4)))
            let scratch = try cl.makeBuffer(count: chunk * cells)
            let (cxc, cyc) = settings.centreCell
            let core2 = Float(settings.coreRadius * settings.coreRadius)
            var first = 0
            while first < rows {
                let n = min(chunk, rows - first)
                let p = parameters.buffer.view(offset: parameters.offset + first * SersicProfile.parameterCount,
                                               count: n * SersicProfile.parameterCount)
                let out = images.buffer.view(offset: images.offset + first * pixels, count: n * pixels)
                let cellView = scratch.view(offset: 0, count: n * cells)
                try cl.launch(program, "sersic_cells", global: cells, global1: n, local: 64, local1: 1,
                              [.view(p), .view(cellView), .int(n), .int(pw), .int(ph), .int(settings.cellsPerPixel),
                              .int(cxc), .int(cyc),
                              .int(settings.samples(settings.centreSamples)), .int(settings.samples(settings.innerSamples)),
                              .int(settings.samples(settings.middleSamples)), .int(settings.samples(settings.outerSamples)),
                              .float(settings.innerRadius), .float(settings.middleRadius), .float(core2)])
                try cl.launch(program, "cells_convolve", global: pixels, global1: n, local: 64, local1: 1,
                              [.view(cellView), .view(psf), .view(out), .int(n), .int(settings.width), .int(settings.height),
                              .int(pw), .int(ph), .int(settings.cellsPerPixel), .int(settings.psfRadius)])
                first += n
            }
        })
    }

    static func check(parameters: BufferView, psf: BufferView, images: BufferView, rows: Int,
                      settings: SersicRenderSettings) throws {
        try settings.validate()
        guard rows >= 0 else { throw SBIError.invalidArgument("galaxy render: negative row count \(rows)") }
        try Check.count(parameters, rows * SersicProfile.parameterCount, "galaxy parameters (\(rows)×\(SersicProfile.parameterCount))")
        try Check.count(psf, settings.tapSide * settings.tapSide, "galaxy PSF taps (\(settings.tapSide)×\(settings.tapSide))")
        try Check.count(images, rows * settings.width * settings.height,
                        "galaxy images (\(rows)×\(settings.height)×\(settings.width))")
    }
}

/// How `SersicRenderer.render` discretizes the profile. The defaults give sub-percent quadrature
/// errors over the galaxy simulator's prior (SimulatorTests checks convergence).
public struct SersicRenderSettings: Sendable, Equatable {
    public var width: Int = 32
    public var height: Int = 32
    /// Cells per pixel along each axis (odd).
    public var cellsPerPixel: Int = 3
    /// Half-width of the PSF's support in pixels (0: no PSF; the taps are then `PSFTaps.none`).
    public var psfRadius: Int = 7
    /// Midpoint samples per cell along each axis: in the 3×3 cells around the centre, in cells
    /// within `innerRadius` pixels (Chebyshev distance) of it, within `middleRadius`, and beyond.
    public var centreSamples: Int = 32
    public var innerSamples: Int = 8
    public var middleSamples: Int = 2
    public var outerSamples: Int = 1
    public var innerRadius: Float = 1.5
    public var middleRadius: Float = 4
    /// Multiplies every zone's samples (for convergence checks).
    public var oversampling: Int = 1

    public init(width: Int = 32, height: Int = 32, cellsPerPixel: Int = 3, psfRadius: Int = 7,
                oversampling: Int = 1) {
        self.width = width
        self.height = height
        self.cellsPerPixel = cellsPerPixel
        self.psfRadius = psfRadius
        self.oversampling = oversampling
    }

    /// J: taps span cell offsets −J…J from a pixel's centre cell along each axis.
    public var tapHalfWidth: Int { psfRadius * cellsPerPixel + (cellsPerPixel - 1) / 2 }
    /// 2J + 1 = (2·psfRadius + 1)·cellsPerPixel.
    public var tapSide: Int { 2 * tapHalfWidth + 1 }
    /// The cell grid of one padded stamp.
    public var cellColumns: Int { (width + 2 * psfRadius) * cellsPerPixel }
    public var cellRows: Int { (height + 2 * psfRadius) * cellsPerPixel }
    /// The cell whose centre is the galaxy centre (the centre of pixel (width/2, height/2)).
    public var centreCell: (x: Int, y: Int) {
        ((width / 2 + psfRadius) * cellsPerPixel + (cellsPerPixel - 1) / 2,
         (height / 2 + psfRadius) * cellsPerPixel + (cellsPerPixel - 1) / 2)
    }
    /// The semi-major axis of the analytic core: half a cell, so the core ellipse lies inside
    /// the central cell whatever its orientation.
    public var coreRadius: Double { 0.5 / Double(cellsPerPixel) }

    func samples(_ base: Int) -> Int { base * oversampling }

    public func validate() throws {
        guard width > 0, height > 0 else {
            throw SBIError.invalidArgument("galaxy render: image size \(width)×\(height) must be positive")
        }
        guard cellsPerPixel >= 1, cellsPerPixel % 2 == 1 else {
            throw SBIError.invalidArgument("galaxy render: cellsPerPixel must be odd and positive, got \(cellsPerPixel)")
        }
        guard psfRadius >= 0, oversampling >= 1,
              [centreSamples, innerSamples, middleSamples, outerSamples].allSatisfy({ $0 >= 1 }) else {
            throw SBIError.invalidArgument("galaxy render: psfRadius ≥ 0, oversampling ≥ 1 and samples ≥ 1 are required")
        }
        guard innerRadius.isFinite, middleRadius.isFinite else {
            throw SBIError.invalidArgument("galaxy render: zone radii must be finite")
        }
    }
}

/// The host-side half of the Sérsic renderer: from physical parameters to the per-row values
/// the kernels take, computed in double precision.
///
/// Profile: I(R) = I_e·exp(−b_n[(R/r_e)^{1/n} − 1]) with elliptical radius R² = x'² + (y'/q)²,
/// (x', y') the offset rotated by the position angle φ, so r_e is the half-light radius along the
/// major axis. b_n ≈ 2n − 1/3 + 4/(405n) + 46/(25515n²) (Ciotti & Bertin 1999). The total flux is
/// F = 2π n r_e² e^{b_n} b_n^{−2n} Γ(2n)·q·I_e, which fixes I_e for F = 10^logflux. Ellipticity
/// (e₁, e₂) = |e|(cos 2φ, sin 2φ) with |e| = (1 − q)/(1 + q) (the reduced-shear convention):
/// e₁ > 0 stretches along x, e₂ > 0 along the diagonal x = y.
public enum SersicProfile {
    /// Values per row: [ln I_e + b_n, 1/r_e², 1/(2n), b_n, 1/q², cos φ, sin φ, core flux].
    public static let parameterCount = 8

    public static func b(_ n: Double) -> Double {
        2 * n - 1.0 / 3 + 4 / (405 * n) + 46 / (25515 * n * n)
    }

    /// q = (1 − |e|)/(1 + |e|) and φ = ½ atan2(e₂, e₁).
    public static func shape(e1: Double, e2: Double) -> (axisRatio: Double, angle: Double) {
        let magnitude = (e1 * e1 + e2 * e2).squareRoot()
        return ((1 - magnitude) / (1 + magnitude), 0.5 * atan2(e2, e1))
    }

    /// ln of 2π n r_e² e^{b} b^{−2n} Γ(2n) q: the total flux of a profile with I_e = 1.
    public static func logUnitFlux(halfLightRadius re: Double, index n: Double, axisRatio q: Double) -> Double {
        let bn = b(n)
        return Foundation.log(2 * Double.pi * n * re * re * q) + bn - 2 * n * Foundation.log(bn) + lgamma(2 * n)
    }

    /// The fraction of the total flux inside elliptical radius R: P(2n, b_n (R/r_e)^{1/n}).
    public static func enclosedFraction(radius: Double, halfLightRadius re: Double, index n: Double) -> Double {
        regularizedGammaP(2 * n, b(n) * Foundation.pow(radius / re, 1 / n))
    }

    /// The kernel row for one galaxy; throws for parameters with no profile.
    public static func kernelParameters(logFlux: Double, halfLightRadius re: Double, index n: Double,
                                        e1: Double, e2: Double, settings: SersicRenderSettings) throws -> [Float] {
        guard logFlux.isFinite, re.isFinite, re > 0, n.isFinite, n >= 0.2, n <= 10,
              e1.isFinite, e2.isFinite, e1 * e1 + e2 * e2 < 1 else {
            throw SBIError.invalidArgument(
                "Sérsic galaxy: need finite log flux, r_e > 0, 0.2 ≤ n ≤ 10 and |e| < 1; got logflux \(logFlux), r_e \(re), n \(n), e (\(e1), \(e2))")
        }
        let (q, phi) = shape(e1: e1, e2: e2)
        let bn = b(n)
        let logFluxNatural = logFlux * Foundation.log(10.0)
        let logIe = logFluxNatural - logUnitFlux(halfLightRadius: re, index: n, axisRatio: q)
        let core = Foundation.exp(logFluxNatural) * enclosedFraction(radius: settings.coreRadius, halfLightRadius: re, index: n)
        return [Float(logIe + bn), Float(1 / (re * re)), Float(0.5 / n), Float(bn), Float(1 / (q * q)),
                Float(Foundation.cos(phi)), Float(Foundation.sin(phi)), Float(core)]
    }

    /// The regularized lower incomplete gamma function P(a, x).
    public static func regularizedGammaP(_ a: Double, _ x: Double) -> Double {
        IncompleteGamma.regularized(a, x).p
    }
}

/// Cell taps of a PSF for `SersicRenderer.render`: tap (a, b), for the cell a columns and b rows
/// from a pixel's centre cell, is Q(−a/s, −b/s) with Q the PSF integrated over one pixel (the
/// pixel response), computed in double by a 16×16 midpoint rule per tap. The taps of each of the
/// s² sub-pixel phases are normalized to sum to one, so every cell's flux is conserved exactly
/// (up to the stamp's edges) whatever the truncation of the PSF at `settings.psfRadius`.
public enum PSFTaps {
    /// Taps of a Moffat PSF, I(r) ∝ (1 + r²/α²)^(−β), α = FWHM / (2√(2^{1/β} − 1)).
    public static func moffat(fwhm: Double, beta: Double, settings: SersicRenderSettings) throws -> [Float] {
        guard fwhm > 0, fwhm.isFinite, beta > 1, beta.isFinite else {
            throw SBIError.invalidArgument("Moffat PSF: need FWHM > 0 and β > 1, got FWHM \(fwhm), β \(beta)")
        }
        let alpha = fwhm / (2 * (Foundation.pow(2, 1 / beta) - 1).squareRoot())
        return try pixelIntegrated(settings: settings) { r2 in Foundation.pow(1 + r2 / (alpha * alpha), -beta) }
    }

    /// Taps of any circular PSF given as a function of r² (in pixels², unnormalized).
    public static func pixelIntegrated(settings: SersicRenderSettings, profile: (Double) -> Double) throws -> [Float] {
        try settings.validate()
        guard settings.psfRadius > 0 else { return none(settings: settings) }
        let s = settings.cellsPerPixel, j = settings.tapHalfWidth, side = settings.tapSide
        let sub = 16
        var taps = [Double](repeating: 0, count: side * side)
        for b in -j...j {
            for a in -j...j {
                let dx = -Double(a) / Double(s), dy = -Double(b) / Double(s)
                var sum = 0.0
                for v in 0..<sub {
                    let y = dy - 0.5 + (Double(v) + 0.5) / Double(sub)
                    for u in 0..<sub {
                        let x = dx - 0.5 + (Double(u) + 0.5) / Double(sub)
                        sum += profile(x * x + y * y)
                    }
                }
                taps[(b + j) * side + (a + j)] = sum
            }
        }
        // Per-phase normalization: taps whose offsets agree modulo s serve the same cells.
        for pb in 0..<s {
            for pa in 0..<s {
                var total = 0.0
                for b in stride(from: pb, to: side, by: s) { for a in stride(from: pa, to: side, by: s) { total += taps[b * side + a] } }
                for b in stride(from: pb, to: side, by: s) { for a in stride(from: pa, to: side, by: s) { taps[b * side + a] /= total } }
            }
        }
        return taps.map(Float.init)
    }

    /// The taps with no PSF: each pixel sums exactly its own s×s cells. They are 1×1 taps per
    /// phase, so they go with settings whose `psfRadius` is 0.
    public static func none(settings: SersicRenderSettings) -> [Float] {
        var plain = settings
        plain.psfRadius = 0
        return [Float](repeating: 1, count: plain.tapSide * plain.tapSide)
    }
}

enum SersicCPU {
    /// Twin of `sersic_cells`: the flux of one cell of the padded stamp.
    @inline(__always)
    static func cellFlux(_ p: UnsafeMutablePointer<Float>, cx: Int, cy: Int, _ settings: SersicRenderSettings) -> Float {
        let s = settings.cellsPerPixel
        let (cxc, cyc) = settings.centreCell
        let a = p[0], invRe2 = p[1], halfInvN = p[2], b = p[3], invQ2 = p[4], c = p[5], sn = p[6], core = p[7]
        let core2 = Float(settings.coreRadius * settings.coreRadius)
        let ix = cx - cxc, iy = cy - cyc
        let cheb = max(abs(ix), abs(iy))
        let invS: Float = 1 / Float(s)
        let d = Float(cheb) * invS
        let m = cheb <= 1 ? settings.samples(settings.centreSamples)
            : (d <= settings.innerRadius ? settings.samples(settings.innerSamples)
               : (d <= settings.middleRadius ? settings.samples(settings.middleSamples) : settings.samples(settings.outerSamples)))
        let x0 = Float(ix) * invS, y0 = Float(iy) * invS
        let step = invS / Float(m)
        let start = -0.5 * invS + 0.5 * step
        var sum: Float = 0
        for v in 0..<m {
            let dy = y0 + (start + Float(v) * step)
            var partial: Float = 0
            for u in 0..<m {
                let dx = x0 + (start + Float(u) * step)
                let xp = c * dx + sn * dy
                let yp = c * dy - sn * dx
                let r2 = xp * xp + yp * yp * invQ2
                if r2 >= core2 { partial += Foundation.exp(a - b * Foundation.pow(r2 * invRe2, halfInvN)) }
            }
            sum += partial
        }
        var flux = sum * (step * step)
        if ix == 0 && iy == 0 { flux += core }
        return flux
    }

    /// Twin of `cells_convolve` for one image, in the same order for every pixel: over phases
    /// (py, px), then tap rows b', each row's sum over a' formed first and then added.
    /// Vectorized across a row of pixels (consecutive cells of a phase).
    static func convolve(_ cells: UnsafeMutablePointer<Float>, taps: UnsafeMutablePointer<Float>,
                         into out: UnsafeMutablePointer<Float>, _ settings: SersicRenderSettings) {
        let w = settings.width, h = settings.height, s = settings.cellsPerPixel
        let pad = settings.psfRadius, pw = w + 2 * pad, ph = h + 2 * pad
        let span = 2 * pad + 1, side = span * s
        let acc = UnsafeMutablePointer<Float>.allocate(capacity: w)
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: w)
        defer { acc.deallocate(); partial.deallocate() }
        for j in 0..<h {
            acc.update(repeating: 0, count: w)
            for py in 0..<s {
                for px in 0..<s {
                    let phase = cells + ((py * s + px) * ph + j) * pw
                    for b in 0..<span {
                        let line = phase + b * pw
                        let t = taps + (s * b + py) * side + px
                        partial.update(repeating: 0, count: w)
                        for a in 0..<span {
                            let weight = t[s * a]
                            let source = line + a
                            for i in 0..<w { partial[i] += weight * source[i] }
                        }
                        for i in 0..<w { acc[i] += partial[i] }
                    }
                }
            }
            (out + j * w).update(from: acc, count: w)
        }
    }
}
