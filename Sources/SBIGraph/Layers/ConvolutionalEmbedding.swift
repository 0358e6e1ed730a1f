import Foundation
import SBIBackend

/// A net that maps conditioning data (one row per example) to the features a conditional
/// estimator sees, trained with it: an MLP for vectors, a CNN for images.
public protocol ContextEmbedding: Sendable {
    var inputFeatures: Int { get }
    var outputFeatures: Int { get }
    /// Declares the parameters in `graph` (once per graph) and embeds x (rows × inputFeatures).
    func embed(_ x: Tensor, in graph: Graph) throws -> Tensor
}

extension MLP: ContextEmbedding {
    public var inputFeatures: Int { widths[0] }
    public var outputFeatures: Int { widths[widths.count - 1] }
    public func embed(_ x: Tensor, in graph: Graph) throws -> Tensor { try self(x, in: graph) }
}

/// A CNN embedding of images, as sbi's `CNNEmbedding` for NPE on images: blocks of a 3×3 "same"
/// convolution + ReLU (fused) and 2×2 max pooling, then the flattened feature map through a
/// dense ReLU head whose last width is the embedded size. Rows of x are height×width×channels
/// images, channels last. Convolutions start He-uniform (ReLU follows each), biases and the
/// head as PyTorch's layers do.
public struct ConvolutionalEmbedding: Codable, Equatable, Sendable, ContextEmbedding {
    public var height: Int
    public var width: Int
    public var channels: Int
    /// Output channels of each conv + pool block.
    public var blockChannels: [Int]
    /// Widths of the dense head after the flattened feature map; the last is the embedded size.
    public var head: [Int]
    /// After every convolution and hidden head layer: ReLU, or another `UnaryOp` by name (a
    /// smooth one lets gradient tests avoid ReLU's kinks).
    public var activation: UnaryOp = .relu
    /// A small ResNet instead (He et al. 2016): each block's convolution is followed by a residual
    /// unit h ← act(h + conv(act(conv(h)))) at the block's width before the pooling, its second
    /// convolution zero-initialized so that the unit starts as act(h), the plain CNN's block.
    /// Deeper per block at the same pooling, for images whose features need more than one 3×3
    /// layer per scale. Absent in older checkpoints (decoded as false).
    public var residual = false

    public init(height: Int, width: Int, channels: Int, blockChannels: [Int], head: [Int], activation: UnaryOp = .relu,
                residual: Bool = false) {
        (self.height, self.width, self.channels) = (height, width, channels)
        self.blockChannels = blockChannels
        self.head = head
        self.activation = activation
        self.residual = residual
    }

    enum CodingKeys: String, CodingKey { case height, width, channels, blockChannels, head, activation, residual }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(height: c.decode(Int.self, forKey: .height), width: c.decode(Int.self, forKey: .width),
                      channels: c.decode(Int.self, forKey: .channels), blockChannels: c.decode([Int].self, forKey: .blockChannels),
                      head: c.decode([Int].self, forKey: .head), activation: c.decodeIfPresent(UnaryOp.self, forKey: .activation) ?? .relu,
                      residual: c.decodeIfPresent(Bool.self, forKey: .residual) ?? false)
    }

    /// `residual` is written only when set, so plain CNN configurations read as before it existed.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(height, forKey: .height)
        try c.encode(width, forKey: .width)
        try c.encode(channels, forKey: .channels)
        try c.encode(blockChannels, forKey: .blockChannels)
        try c.encode(head, forKey: .head)
        try c.encode(activation, forKey: .activation)
        if residual { try c.encode(residual, forKey: .residual) }
    }

    /// In words, as config.json records it: "cnn: channels 8,16,32, head 128,64" (or "resnet: …").
    public var summary: String {
        func list(_ values: [Int]) -> String { values.map(String.init).joined(separator: ",") }
        return "\(residual ? "resnet" : "cnn"): channels \(list(blockChannels)), head \(list(head))"
    }

    /// The embedding sbi-gpu picks for images: channels 8, 16, 32 doubling over blocks that halve
    /// the image while both sides stay at least 4 (three blocks at most: 32×32 → 4×4, the
    /// receptive field then spans the stamp), and a head of 128 → `embedded` units. On the galaxy
    /// task at 10⁴ simulations, 8, 16, 32 reached a held-out −log q of −4.37 against −4.11 with
    /// 16, 32, 64, in 3.6 s an epoch instead of about twice that (Benchmarks/README.md).
    public static func automatic(height: Int, width: Int, channels: Int, embedded: Int = 64,
                                 residual: Bool = false) -> ConvolutionalEmbedding {
        var blocks: [Int] = [], (h, w) = (height, width)
        while blocks.count < 3 && h / 2 >= 4 && w / 2 >= 4 {
            blocks.append(8 << blocks.count)
            (h, w) = (h / 2, w / 2)
        }
        return ConvolutionalEmbedding(height: height, width: width, channels: channels, blockChannels: blocks,
                                      head: [128, embedded], residual: residual)
    }

    public var inputFeatures: Int { height * width * channels }
    public var outputFeatures: Int { head.last ?? flattenedFeatures }
    /// Side lengths after the blocks (each pooling floors odd sides).
    public var pooledSize: (height: Int, width: Int) {
        blockChannels.reduce((height, width)) { size, _ in (size.0 / 2, size.1 / 2) }
    }
    var flattenedFeatures: Int {
        let (h, w) = pooledSize
        return h * w * (blockChannels.last ?? channels)
    }

    public func validate() throws {
        guard height > 0, width > 0, channels > 0, blockChannels.allSatisfy({ $0 > 0 }), !head.isEmpty,
              head.allSatisfy({ $0 > 0 }) else {
            throw SBIError.invalidArgument("a CNN embedding needs a positive image shape, channels and head widths; got \(self)")
        }
        guard pooledSize.height >= 1, pooledSize.width >= 1 else {
            throw SBIError.invalidArgument("a \(height)×\(width) image cannot be pooled \(blockChannels.count) times (2×2 each)")
        }
    }

    public static let name = "embedding"
    func weightName(_ block: Int) -> String { "\(Self.name).conv\(block).weight" }
    func biasName(_ block: Int) -> String { "\(Self.name).conv\(block).bias" }
    /// The residual unit's convolutions of a block: "a" (with the activation) and "b" (zero at first).
    func residualName(_ block: Int, _ layer: String, _ kind: String) -> String { "\(Self.name).res\(block).\(layer).\(kind)" }
    var headNet: MLP { MLP(name: "\(Self.name).head", widths: [flattenedFeatures] + head, activation: activation) }

    public func embed(_ x: Tensor, in graph: Graph) throws -> Tensor {
        guard x.cols == inputFeatures else {
            throw SBIError.sizeMismatch("the CNN embedding takes \(height)×\(width)×\(channels) images (\(inputFeatures) values per row), got \(x)")
        }
        var h = try graph.reshape(x, [x.rows, height, width, channels])
        var inputChannels = channels
        for (block, outputChannels) in blockChannels.enumerated() {
            let fanIn = 9 * inputChannels
            let w = graph.parameter(weightName(block), shape: [3, 3, inputChannels, outputChannels],
                                    initializer: .kaimingUniform(fanIn: fanIn))
            let b = graph.parameter(biasName(block), rows: 1, cols: outputChannels,
                                    initializer: .uniform(bound: 1 / Float(fanIn).squareRoot()))
            h = try graph.conv2d(h, weight: w, bias: b, activation: activation)
            if residual {
                let unitFanIn = 9 * outputChannels, shape = [3, 3, outputChannels, outputChannels]
                func bias(_ layer: String) -> Tensor {
                    graph.parameter(residualName(block, layer, "bias"), rows: 1, cols: outputChannels,
                                    initializer: .uniform(bound: 1 / Float(unitFanIn).squareRoot()))
                }
                let wa = graph.parameter(residualName(block, "a", "weight"), shape: shape, initializer: .kaimingUniform(fanIn: unitFanIn))
                let wb = graph.parameter(residualName(block, "b", "weight"), shape: shape, initializer: .zeros)
                let inner = try graph.conv2d(h, weight: wa, bias: bias("a"), activation: activation)
                let unit = try graph.conv2d(inner, weight: wb, bias: bias("b"), activation: .identity)
                h = try graph.unary(activation, try graph.add(h, unit))
            }
            h = try graph.maxPool2(h)
            inputChannels = outputChannels
        }
        return try headNet(try graph.reshape(h, [x.rows, flattenedFeatures]), in: graph)
    }
}
