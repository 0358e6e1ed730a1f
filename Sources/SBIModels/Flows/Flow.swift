import Foundation
import SBIBackend
import SBIGraph

/// A normalizing flow: bijectors applied in order from data to latent, and a standard normal base.
/// log q(y|c) = log N(f(y); 0, I) + Σ log|det ∂f_i|; samples are f⁻¹(z) for z ~ N(0, I).
public struct Flow: NeuralDensity {
    public let bijectors: [Bijector]
    public let features: Int
    public let contextFeatures: Int
    /// Maps the context to what the bijectors see (trained with them); nil: the context itself.
    public let embedding: (any ContextEmbedding)?
    public var noiseFeatures: Int { features }

    public init(bijectors: [Bijector], features: Int, contextFeatures: Int, embedding: (any ContextEmbedding)? = nil) {
        self.bijectors = bijectors
        self.features = features
        self.contextFeatures = contextFeatures
        self.embedding = embedding
    }

    func embed(_ context: Tensor?, in graph: Graph) throws -> Tensor? {
        guard let context, let embedding else { return context }
        return try embedding.embed(context, in: graph)
    }

    /// The latent image of y through the first `count` bijectors and their summed log-det.
    func pushForward(_ y: Tensor, context raw: Tensor?, through count: Int, in graph: Graph) throws -> (Tensor, Tensor?) {
        let context = try embed(raw, in: graph)
        var h = y
        var total: Tensor?
        for bijector in bijectors.prefix(count) {
            let (output, logDet) = try bijector.forward(h, context: context, in: graph)
            h = output
            total = try total.map { try graph.add($0, logDet) } ?? logDet
        }
        return (h, total)
    }

    public func logProb(_ y: Tensor, context: Tensor?, in graph: Graph) throws -> Tensor {
        let (z, logDet) = try pushForward(y, context: context, through: bijectors.count, in: graph)
        let base = try graph.standardNormalLogDensity(z)
        return try logDet.map { try graph.add(base, $0) } ?? base
    }

    public func sample(noise: Tensor, context raw: Tensor?, in graph: Graph) throws -> (samples: Tensor, logProb: Tensor) {
        let context = try embed(raw, in: graph)
        var h = noise
        var total: Tensor?
        for bijector in bijectors.reversed() {
            let (output, logDet) = try bijector.inverse(h, context: context, in: graph)
            h = output
            total = try total.map { try graph.add($0, logDet) } ?? logDet
        }
        // log q(x) = log N(z) − log|det ∂x/∂z|.
        let base = try graph.standardNormalLogDensity(noise)
        return (h, try total.map { try graph.subtract(base, $0) } ?? base)
    }

    /// ActNorm's data-dependent initialization: each ActNorm layer, in order, gets the bias and
    /// scale that standardize what reaches it from (up to 2048 rows of) the data.
    public func initialize(store: ParameterStore, data: InitializationData) throws {
        let rows = min(2048, data.rows)
        let y = data.y(0..<rows), context = data.context(0..<rows)
        for (index, bijector) in bijectors.enumerated() {
            guard let actNorm = bijector as? ActNorm else { continue }
            let graph = Graph()
            let input = graph.input("y", rows: rows, cols: features)
            let c = contextFeatures > 0 ? graph.input("context", rows: rows, cols: contextFeatures) : nil
            let (h, _) = try pushForward(input, context: c, through: index, in: graph)
            let plan = try Plan(graph: graph, backend: store.backend, outputs: [h], parameters: store)
            try plan.feed(input, y)
            if let c, let context { try plan.feed(c, context) }
            try plan.run()
            let statistics = Standardize.fit(try plan.read(h), cols: features)
            try store.write(actNorm.biasName, statistics.mean.map { -$0 })
            try store.write(actNorm.logScaleName, statistics.std.map { -Foundation.log($0) })
        }
    }
}
