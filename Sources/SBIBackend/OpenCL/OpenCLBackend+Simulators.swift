/// Launches of Kernels/simulators.cl.
extension OpenCLBackend: SimulatorKernels {
    /// Images rendered per pass, so that the cell scratch stays near 64 MiB however large the batch.
    static let galaxyScratchBytes = 64 << 20

    public func renderSersicGalaxies(parameters: BufferView, psf: BufferView, images: BufferView, rows: Int,
                                     settings: SersicRenderSettings) throws {
        try Check.galaxies(parameters: parameters, psf: psf, images: images, rows: rows, settings: settings)
        _ = try mem(parameters, "galaxy parameters")
        _ = try mem(psf, "galaxy PSF taps")
        _ = try mem(images, "galaxy images")
        guard rows > 0 else { return }
        let pw = settings.width + 2 * settings.psfRadius, ph = settings.height + 2 * settings.psfRadius
        let cells = settings.cellColumns * settings.cellRows
        let pixels = settings.width * settings.height
        let chunk = max(1, min(rows, Self.galaxyScratchBytes / (cells * 4)))
        let scratch = try makeBuffer(count: chunk * cells)
        let (cxc, cyc) = settings.centreCell
        let core2 = Float(settings.coreRadius * settings.coreRadius)
        var first = 0
        while first < rows {
            let n = min(chunk, rows - first)
            let p = parameters.buffer.view(offset: parameters.offset + first * SersicProfile.parameterCount,
                                           count: n * SersicProfile.parameterCount)
            let out = images.buffer.view(offset: images.offset + first * pixels, count: n * pixels)
            let cellView = scratch.view(offset: 0, count: n * cells)
            try launch("simulators", "sersic_cells", global: cells, global1: n, local: 64, local1: 1,
                       [.view(p), .view(cellView), .int(n), .int(pw), .int(ph), .int(settings.cellsPerPixel),
                        .int(cxc), .int(cyc),
                        .int(settings.samples(settings.centreSamples)), .int(settings.samples(settings.innerSamples)),
                        .int(settings.samples(settings.middleSamples)), .int(settings.samples(settings.outerSamples)),
                        .float(settings.innerRadius), .float(settings.middleRadius), .float(core2)])
            try launch("simulators", "cells_convolve", global: pixels, global1: n, local: 64, local1: 1,
                       [.view(cellView), .view(psf), .view(out), .int(n), .int(settings.width), .int(settings.height),
                        .int(pw), .int(ph), .int(settings.cellsPerPixel), .int(settings.psfRadius)])
            first += n
        }
    }
}
