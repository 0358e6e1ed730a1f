import Foundation

public extension Plots {
    /// A PNG of images side by side in a near-square grid with a 1-pixel gap, each pixel value
    /// scaled from [0, maxValue] to 0…255 (gray for one channel, RGB for three; other channel
    /// counts show their first). `pixels` holds `count` images of height×width×channels values,
    /// channels last; `scale` repeats every pixel that many times for small images.
    static func imageGrid(_ pixels: [Float], count: Int, height: Int, width: Int, channels: Int,
                          maxValue: Float, scale: Int = 1) -> Data {
        let columns = max(1, Int(Double(count).squareRoot().rounded(.up)))
        let gridRows = max(1, (count + columns - 1) / columns)
        let cell = (h: height * scale + 1, w: width * scale + 1)
        let (W, H) = (columns * cell.w + 1, gridRows * cell.h + 1)
        var rgba = [UInt8](repeating: 0, count: W * H * 4)
        for i in 3..<rgba.count where i % 4 == 3 { rgba[i] = 255 }
        func byte(_ v: Float) -> UInt8 { UInt8(max(0, min(255, (v / maxValue * 255).rounded()))) }
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
        return PlotPNG.encode(PlotImage(width: W, height: H, rgba: rgba))
    }
}
