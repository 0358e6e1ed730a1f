import Foundation

public extension Plots {
    /// A PNG of images side by side in a near-square grid with a 1-pixel gap, each pixel value
    /// scaled from [0, maxValue] to 0…255 (gray for one channel, RGB for three; other channel
    /// counts show their first). `pixels` holds `count` images of height×width×channels values,
    /// channels last; `scale` repeats every pixel that many times for small images.
    static func imageGrid(_ pixels: [Float], count: Int, height: Int, width: Int, channels: Int,
                          maxValue: Float, scale: Int = 1) -> Data {
        PlotPNG.encode(imageGridImage(pixels, count: count, height: height, width: width, channels: channels,
                                      range: (0, maxValue), scale: scale))
    }

    /// `imageGrid`'s bitmap, pixel values scaled from `range` to 0…255.
    static func imageGridImage(_ pixels: [Float], count: Int, height: Int, width: Int, channels: Int,
                               range: (low: Float, high: Float), scale: Int = 1) -> PlotImage {
        let columns = max(1, Int(Double(count).squareRoot().rounded(.up)))
        let gridRows = max(1, (count + columns - 1) / columns)
        let cell = (h: height * scale + 1, w: width * scale + 1)
        let (W, H) = (columns * cell.w + 1, gridRows * cell.h + 1)
        var rgba = [UInt8](repeating: 0, count: W * H * 4)
        for i in 3..<rgba.count where i % 4 == 3 { rgba[i] = 255 }
        let span = range.high > range.low ? range.high - range.low : 1
        func byte(_ v: Float) -> UInt8 { UInt8(max(0, min(255, ((v - range.low) / span * 255).rounded()))) }
        for image in 0..<count {
            let (gx, gy) = (image % columns * cell.w + 1, image / columns * cell.h + 1)
            for y in 0..<(height * scale) {
                for x in 0..<(width * scale) {
                    let base = ((image * height + y / scale) * width + x / scale) * channels
                    let rgb = channels == 3 ? [pixels[base], pixels[base + 1], pixels[base + 2]] : [Float](repeating: pixels[base], count: 3)
                    let o = ((gy + y) * W + gx + x) * 4
                    for k in 0..<3 { rgba[o + k] = byte(rgb[k]) }
                }
            }
        }
        return PlotImage(width: W, height: H, rgba: rgba)
    }

    /// Posterior predictive checks of an image task, as one PNG: on the left the observation
    /// (top left, framed in orange) followed by images simulated at
    /// posterior draws, all on the observation's intensity scale (its 0.5th to 99.5th percentile,
    /// so noise and predictions compare by eye); on the right the corner plot of the posterior
    /// samples (`samples`, N×dimension).
    static func posteriorPredictive(observation: [Float], predictions: [Float], count: Int, height: Int, width: Int,
                                    channels: Int, samples: [Float], dimension: Int,
                                    options: CornerPlotOptions = CornerPlotOptions()) throws -> Data {
        let sorted = observation.sorted()
        let range = (sorted[Int(0.005 * Double(sorted.count - 1))], sorted[Int(0.995 * Double(sorted.count - 1))])
        let corner = try Plots.corner(samples: samples, dimension: dimension, options: options).rasterize()
        let scale = max(1, min(8, corner.height / (4 * max(height, width))))
        let grid = imageGridImage(observation + predictions, count: count + 1, height: height, width: width,
                                  channels: channels, range: range, scale: scale)
        // The observation's frame: the cell border of image 0.
        var framed = grid
        let (cellW, cellH) = (width * scale + 1, height * scale + 1)
        for y in 0...cellH {
            for x in 0...cellW where y == 0 || y == cellH || x == 0 || x == cellW {
                let o = (y * grid.width + x) * 4
                (framed.rgba[o], framed.rgba[o + 1], framed.rgba[o + 2]) = (230, 120, 30)
            }
        }
        let gap = 12, W = framed.width + gap + corner.width, H = max(framed.height, corner.height)
        var rgba = [UInt8](repeating: 255, count: W * H * 4)
        for (image, left) in [(framed, 0), (corner, framed.width + gap)] {
            let top = (H - image.height) / 2
            for y in 0..<image.height {
                let source = y * image.width * 4, target = ((top + y) * W + left) * 4
                rgba.replaceSubrange(target..<(target + image.width * 4), with: image.rgba[source..<(source + image.width * 4)])
            }
        }
        return PlotPNG.encode(PlotImage(width: W, height: H, rgba: rgba))
    }
}
