import Foundation
import SBIBackend

/// 32×32 images of a Sérsic galaxy centred on pixel (16, 16), convolved with a Moffat PSF and
/// with Gaussian sky noise. θ = (log₁₀ flux, half-light radius r_e in pixels along the major
/// axis, Sérsic index n, ellipticity e₁, e₂); the prior is log flux U[2, 4], r_e U[1, 8],
/// n U[0.5, 4], e₁, e₂ U[−0.5, 0.5].
///
/// The profile (see `SersicProfile`) is normalized analytically so that its total flux over
/// the plane is 10^logflux; |e| = (1 − q)/(1 + q) for axis ratio q, position angle ½·atan2(e₂, e₁)
/// (e₁ > 0: elongated along x, the column index; e₂ > 0: along x = y). The image is rendered by
/// `SersicRenderer.render` on the given backend (the CPU backend when it is nil
/// or of another kind): cell fluxes by an adaptive midpoint rule plus the exact flux of the
/// central cusp, then a direct sum over cells weighted by the pixel-integrated Moffat PSF
/// (FWHM 2.5 px, β = 3.5, truncated at 7 px and renormalized). See `SersicRenderSettings` for
/// why this is exact up to sub-percent quadrature terms.
///
/// Noise: σ (1 flux unit per pixel) times the standard normals of the backend's `fillNormal`
/// at stream positions r·1024 … r·1024 + 1023 of the seed — the same Philox numbers on every
/// backend, to within their rounding of Box–Muller.
public struct GalaxySimulator: Simulator {
    public let name = "galaxy"
    public let summary = "32×32 Sérsic galaxy ⊗ Moffat PSF + sky noise: θ = (log10 flux, r_e, n, e1, e2)"
    public let parameterNames = ["log10_flux", "half_light_radius", "sersic_index", "e1", "e2"]
    public let prior = Prior.uniform(low: [2, 1, 0.5, -0.5, -0.5], high: [4, 8, 4, 0.5, 0.5])
    public var settings: SersicRenderSettings
    /// Moffat PSF full width at half maximum, in pixels, and its β; fwhm 0 renders without a PSF.
    public var psfFWHM: Double
    public var psfBeta: Double
    /// Sky noise per pixel, in flux units.
    public var noiseSigma: Float

    public var observationShape: [Int] { [settings.height, settings.width] }

    /// The settings the kernels get: without a PSF (FWHM 0) the stamp needs no padding.
    public var renderSettings: SersicRenderSettings {
        var effective = settings
        if psfFWHM == 0 { effective.psfRadius = 0 }
        return effective
    }

    public init(settings: SersicRenderSettings = SersicRenderSettings(), psfFWHM: Double = 2.5, psfBeta: Double = 3.5,
                noiseSigma: Float = 1) {
        self.settings = settings
        self.psfFWHM = psfFWHM
        self.psfBeta = psfBeta
        self.noiseSigma = noiseSigma
    }

    /// The PSF's cell taps for the current settings.
    public func psfTaps() throws -> [Float] {
        let effective = renderSettings
        return effective.psfRadius == 0
            ? PSFTaps.none(settings: effective)
            : try PSFTaps.moffat(fwhm: psfFWHM, beta: psfBeta, settings: effective)
    }

    /// The kernel parameters of every row (validated).
    public func kernelParameters(theta: [Float], rows: Int) throws -> [Float] {
        try checkTheta(theta, rows: rows)
        var out = [Float]()
        out.reserveCapacity(rows * SersicProfile.parameterCount)
        for r in 0..<rows {
            let t = theta[(r * 5)..<(r * 5 + 5)].map(Double.init)
            do {
                out += try SersicProfile.kernelParameters(logFlux: t[0], halfLightRadius: t[1], index: t[2],
                                                          e1: t[3], e2: t[4], settings: renderSettings)
            } catch {
                throw SBIError.invalidArgument("galaxy: θ row \(r): \(error)")
            }
        }
        return out
    }

    /// Noise-free images (rows × height × width).
    public func render(theta: [Float], rows: Int, backend: Backend? = nil) throws -> [Float] {
        let device = try renderingBackend(backend)
        let images = try renderOnDevice(theta: theta, rows: rows, backend: device)
        return try device.download(images.view)
    }

    public func simulate(theta: [Float], rows: Int, seed: UInt64, backend: Backend?) throws -> [Float] {
        let device = try renderingBackend(backend)
        let images = try renderOnDevice(theta: theta, rows: rows, backend: device)
        if noiseSigma != 0, images.count > 0 {
            let noise = try device.makeBuffer(count: images.count)
            try device.fillNormal(noise.view, seed: seed, offset: 0, mean: 0, std: noiseSigma)
            try device.binary(.add, images.view, noise.view, images.view, rows: 1, cols: images.count, broadcast: .none)
        }
        return try device.download(images.view)
    }

    private func renderingBackend(_ backend: Backend?) throws -> Backend {
        if let backend, backend is CPUBackend || backend is OpenCLBackend { return backend }
        return CPUBackend()
    }

    private func renderOnDevice(theta: [Float], rows: Int, backend: Backend) throws -> Buffer {
        let parameters = try kernelParameters(theta: theta, rows: rows)
        let taps = try psfTaps()
        let p = try backend.makeBuffer(parameters)
        let t = try backend.makeBuffer(taps)
        let images = try backend.makeBuffer(count: rows * settings.width * settings.height)
        try SersicRenderer.render(on: backend, parameters: p.view, psf: t.view, images: images.view, rows: rows,
                                  settings: renderSettings)
        return images
    }
}

extension GalaxySimulator: ExplicitLikelihood {
    /// The sky noise is independent N(0, σ²) per pixel around the noise-free render, so log p(x | θ)
    /// is a Gaussian sum over the render's residuals (rendered on `backend`, summed on the host).
    public func logLikelihood(observation: [Float], theta: [Float], rows: Int, backend: Backend?) throws -> [Double] {
        guard noiseSigma > 0 else { throw SBIError.invalidArgument("galaxy: without sky noise (σ = 0) the likelihood is degenerate") }
        let images = try render(theta: theta, rows: rows, backend: backend)
        return gaussianLogLikelihood(observation: observation, means: images, rows: rows,
                                     variance: Double(noiseSigma) * Double(noiseSigma))
    }
}
