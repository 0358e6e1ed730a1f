import Foundation

/// Kernels of the built-in simulators (see Kernels/simulators.cl; CPU twin in
/// CPU/CPUBackend+Simulators.swift). A family of its own, like `FlowKernels`, so that a backend
/// can lack it and the simulator then renders on the CPU backend.
public protocol SimulatorKernels: Backend {
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
    func renderSersicGalaxies(parameters: BufferView, psf: BufferView, images: BufferView, rows: Int,
                              settings: SersicRenderSettings) throws
}

/// How `renderSersicGalaxies` discretizes the profile. The defaults give sub-percent quadrature
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

/// Cell taps of a PSF for `renderSersicGalaxies`: tap (a, b), for the cell a columns and b rows
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

extension Check {
    static func galaxies(parameters: BufferView, psf: BufferView, images: BufferView, rows: Int,
                         settings: SersicRenderSettings) throws {
        try settings.validate()
        guard rows >= 0 else { throw SBIError.invalidArgument("galaxy render: negative row count \(rows)") }
        try count(parameters, rows * SersicProfile.parameterCount, "galaxy parameters (\(rows)×\(SersicProfile.parameterCount))")
        try count(psf, settings.tapSide * settings.tapSide, "galaxy PSF taps (\(settings.tapSide)×\(settings.tapSide))")
        try count(images, rows * settings.width * settings.height,
                  "galaxy images (\(rows)×\(settings.height)×\(settings.width))")
    }
}
