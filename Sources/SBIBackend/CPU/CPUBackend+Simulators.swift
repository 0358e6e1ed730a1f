import Foundation

/// CPU twins of Kernels/simulators.cl, formula for formula and in the same summation order, so
/// the two backends agree to within the built-in functions' ulps.
extension CPUBackend: SimulatorKernels {
    public func renderSersicGalaxies(parameters: BufferView, psf: BufferView, images: BufferView, rows: Int,
                                     settings: SersicRenderSettings) throws {
        try Check.galaxies(parameters: parameters, psf: psf, images: images, rows: rows, settings: settings)
        guard rows > 0 else { return }
        let pp = try pointer(parameters, "galaxy parameters"), pt = try pointer(psf, "galaxy PSF taps")
        let pi = try pointer(images, "galaxy images")
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
                // The phase-major layout of Kernels/simulators.cl.
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
