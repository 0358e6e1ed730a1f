import Foundation

/// A batch of images as rows of H·W·C pixel values, channels last (what the pixel-space flows
/// read), from a NumPy array of shape N×H×W (one channel), N×H×W×C, or N×C×H×W with
/// `channelsFirst` (PyTorch's layout, transposed here).
public struct ImageRows: Sendable {
    public let pixels: FloatRows
    public let height: Int
    public let width: Int
    public let channels: Int
    public var count: Int { pixels.rows }
    public var shape: [Int] { [height, width, channels] }

    /// A refusal naming what is wrong with the images.
    public struct Invalid: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public init(_ array: NumPyArray, channelsFirst: Bool = false) throws {
        let s = array.shape
        let (n, h, w, c): (Int, Int, Int, Int)
        switch s.count {
        case 3: (n, h, w, c) = (s[0], s[1], s[2], 1)
        case 4: (n, h, w, c) = channelsFirst ? (s[0], s[2], s[3], s[1]) : (s[0], s[1], s[2], s[3])
        default:
            throw Invalid(description: "expected images of shape N×H×W, N×H×W×C or (with channels first) N×C×H×W, got \(s)")
        }
        guard n > 0, h > 0, w > 0, c > 0 else { throw Invalid(description: "expected at least one image of positive size, got shape \(s)") }
        (height, width, channels) = (h, w, c)
        if !channelsFirst || c == 1, let mapped = FloatRows(array) {
            pixels = mapped  // float32: rows of the first axis over the file's bytes
            return
        }
        let values = try array.floats()
        guard channelsFirst && c > 1 else { pixels = FloatRows(values, cols: h * w * c); return }
        var transposed = [Float](repeating: 0, count: values.count)
        let plane = h * w
        for image in 0..<n {
            for channel in 0..<c {
                for p in 0..<plane { transposed[(image * plane + p) * c + channel] = values[(image * c + channel) * plane + p] }
            }
        }
        pixels = FloatRows(transposed, cols: plane * c)
    }

    public init(pixels: FloatRows, height: Int, width: Int, channels: Int) {
        precondition(pixels.cols == height * width * channels)
        self.pixels = pixels
        (self.height, self.width, self.channels) = (height, width, channels)
    }

    /// The levels that discrete data of this dtype has by default: 256 for uint8, none otherwise.
    public static func defaultLevels(_ dtype: NumPyDType) -> Int? { dtype == .uint8 ? 256 : nil }

    /// Refuses pixels that are not integers 0…levels − 1 (NaN and inf included), naming the first
    /// offending image, pixel and value.
    public func checkLevels(_ levels: Int) throws {
        let top = Float(levels - 1)
        for start in stride(from: 0, to: count, by: 1024) {
            let values = pixels.rows(start..<min(count, start + 1024))
            if let bad = values.firstIndex(where: { !($0 >= 0 && $0 <= top && $0.rounded() == $0) }) {
                let image = start + bad / pixels.cols, pixel = bad % pixels.cols
                throw Invalid(description: "image \(image), pixel (\(pixel / channels / width), \(pixel / channels % width)) channel \(pixel % channels) is \(values[bad]); pixels must be integers 0…\(levels - 1) for \(levels) levels (set --levels, or quantize float images first)")
            }
        }
    }
}
