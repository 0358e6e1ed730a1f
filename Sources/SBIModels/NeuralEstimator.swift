import Foundation
import SBIData
import SBIBackend
import SBIGraph

/// Trains and runs a `NeuralDensity` on a backend: z-scores y and context with statistics of the
/// training data (kept in the model), trains by maximum likelihood with `Trainer`, and evaluates
/// and samples in fixed-size batches through cached plans.
public final class NeuralEstimator: DensityEstimator {
    public let name: String
    public let backend: Backend
    public let model: NeuralDensity
    /// Serialized architecture, written to checkpoints so `load` can rebuild the model.
    public let architecture: [String: String]
    public var features: Int { model.features }
    public var contextFeatures: Int { model.contextFeatures }
    /// Rows per evaluation launch.
    public var evaluationBatch = 4096

    public private(set) var store: ParameterStore?
    var yScaler: Standardize
    var contextScaler: Standardize?
    private var logProbPlans: [Int: (plan: Plan, y: Tensor, context: Tensor?, out: Tensor)] = [:]
    private var samplePlans: [Int: (plan: Plan, noise: Tensor, context: Tensor?, out: Tensor, logq: Tensor)] = [:]

    public init(name: String, model: NeuralDensity, backend: Backend, architecture: [String: String] = [:]) {
        self.name = name
        self.model = model
        self.backend = backend
        self.architecture = architecture
        yScaler = Standardize(mean: Array(repeating: 0, count: model.features), std: Array(repeating: 1, count: model.features))
        contextScaler = model.contextFeatures > 0
            ? Standardize(mean: Array(repeating: 0, count: model.contextFeatures), std: Array(repeating: 1, count: model.contextFeatures))
            : nil
    }

    func check(_ y: [Float]?, _ context: [Float]?, rows: Int? = nil) throws -> Int {
        let n = rows ?? (y.map { $0.count / features } ?? 0)
        if let y, y.count != n * features {
            throw SBIError.sizeMismatch("y has \(y.count) values, not a multiple of \(features) features")
        }
        if contextFeatures > 0 {
            guard let context else { throw SBIError.invalidArgument("\(name) is conditional: a context of \(contextFeatures) features is required") }
            guard context.count % contextFeatures == 0, context.count == n * contextFeatures || context.count == contextFeatures else {
                throw SBIError.sizeMismatch("context has \(context.count) values; expected \(n) or 1 rows of \(contextFeatures)")
            }
        } else if let context, !context.isEmpty {
            throw SBIError.invalidArgument("\(name) is unconditional but a context was given")
        }
        return n
    }

    /// The log q of standardized y plus the log-det of the standardization.
    func logProbGraph(_ graph: Graph, rows: Int) throws -> (y: Tensor, context: Tensor?, out: Tensor) {
        let y = graph.input("y", rows: rows, cols: features)
        let c = contextFeatures > 0 ? graph.input("context", rows: rows, cols: contextFeatures) : nil
        let (z, logDet) = try yScaler.forward(y, context: nil, in: graph)
        let out = try graph.add(try model.logProb(z, context: try c.map { try contextScaler!.apply($0, in: graph) }, in: graph), logDet)
        return (y, c, out)
    }

    /// Bytes of device memory the training data may take before it streams (nil:
    /// `Trainer.defaultDataBudget`, half the backend's memory).
    public var dataBudget: Int?

    @discardableResult
    public func fit(_ y: [Float], context: [Float]?, configuration: TrainingConfiguration,
                    checkpoint: URL? = nil, resume: Bool = false,
                    progress: ((EpochRecord) -> Void)? = nil) throws -> [EpochRecord] {
        let rows = try check(y, context)
        let contextRows = context.flatMap { context in
            contextFeatures > 0 ? FloatRows(context.count == contextFeatures
                ? Array([[Float]](repeating: context, count: rows).joined()) : context, cols: contextFeatures) : nil
        }
        return try fit(rows: FloatRows(y, cols: features), context: contextRows, configuration: configuration,
                       checkpoint: checkpoint, resume: resume, progress: progress)
    }

    @discardableResult
    public func fit(rows y: FloatRows, context: FloatRows?, configuration: TrainingConfiguration,
                    checkpoint: URL? = nil, resume: Bool = false,
                    progress: ((EpochRecord) -> Void)? = nil) throws -> [EpochRecord] {
        guard y.cols == features else {
            throw SBIError.sizeMismatch("y has rows of \(y.cols) values, not \(features) features")
        }
        if contextFeatures > 0 {
            guard let context else { throw SBIError.invalidArgument("\(name) is conditional: a context of \(contextFeatures) features is required") }
            guard context.cols == contextFeatures, context.rows == y.rows else {
                throw SBIError.sizeMismatch("context has \(context.rows) rows of \(context.cols); expected \(y.rows) rows of \(contextFeatures)")
            }
        } else if let context, context.count > 0 {
            throw SBIError.invalidArgument("\(name) is unconditional but a context was given")
        }
        if let bad = y.firstNonFinite() {
            throw SBIError.invalidArgument("y row \(bad.row) has a non-finite value")
        }
        try model.validate(y)
        if model.standardizesData { yScaler = Standardize.fit(y) }
        let context = contextFeatures > 0 ? context : nil
        if let context {
            if let bad = context.firstNonFinite() {
                throw SBIError.invalidArgument("context row \(bad.row) has a non-finite value")
            }
            contextScaler = Standardize.fit(context)
        }
        var columns = [TrainingData.Column(name: "y", values: y)]
        if let context { columns.append(.init(name: "context", values: context)) }
        let trainer = try Trainer(backend: backend, configuration: configuration, data: try TrainingData(columns),
                                  dataBudget: dataBudget) { graph, batch in
            let (_, _, logq) = try self.logProbGraph(graph, rows: batch)
            return try graph.affine(try graph.mean(logq), scale: -1, shift: 0)
        }
        // Data-dependent initialization on standardized data, unless resuming.
        if !(resume && checkpoint.map { FileManager.default.fileExists(atPath: $0.path) } == true) {
            try model.initialize(store: trainer.store, data: InitializationData(
                rows: y.rows, y: y, context: context, yScaler: yScaler, contextScaler: context == nil ? nil : contextScaler))
            try trainer.resetBest()
        }
        trainer.modelMetadata = try metadata()
        let history = try trainer.train(checkpoint: checkpoint, resume: resume, progress: progress)
        store = trainer.store
        logProbPlans = [:]
        samplePlans = [:]
        return history
    }

    func requireStore() throws -> ParameterStore {
        guard let store else { throw SBIError.invalidArgument("\(name) has not been fitted or loaded") }
        return store
    }

    /// Repeats a single context row `rows` times, or returns the matching slice.
    func contextRows(_ context: [Float]?, start: Int, rows: Int) -> [Float]? {
        guard let context, contextFeatures > 0 else { return nil }
        if context.count == contextFeatures { return Array([[Float]](repeating: context, count: rows).joined()) }
        return Array(context[(start * contextFeatures)..<((start + rows) * contextFeatures)])
    }

    public func logProb(_ y: [Float], context: [Float]?) throws -> [Float] {
        let store = try requireStore()
        let rows = try check(y, context)
        var result: [Float] = []
        result.reserveCapacity(rows)
        var start = 0
        while start < rows {
            let n = min(evaluationBatch, rows - start)
            if logProbPlans[n] == nil {
                let graph = Graph()
                let (yt, ct, out) = try logProbGraph(graph, rows: n)
                logProbPlans[n] = (try Plan(graph: graph, backend: backend, outputs: [out], parameters: store), yt, ct, out)
            }
            let p = logProbPlans[n]!
            try p.plan.feed(p.y, Array(y[(start * features)..<((start + n) * features)]))
            if let ct = p.context, let c = contextRows(context, start: start, rows: n) { try p.plan.feed(ct, c) }
            try p.plan.fillNoise(seed: NeuralEstimator.evaluationNoiseSeed, offset: UInt64(start) << 32)
            try p.plan.run()
            result += try p.plan.read(p.out)
            start += n
        }
        return result
    }

    /// The seed of the noise inputs' draws in `logProb` (dequantization), so that the same rows
    /// always get the same log-prob.
    public static let evaluationNoiseSeed: UInt64 = 0x4556_414C  // "EVAL"

    /// Samples and their log q, `count` per context row. `temperature` scales the base noise
    /// (Glow's reduced-temperature sampling); log q is that of the samples drawn.
    public func sampleWithLogProb(_ count: Int, context: [Float]?, seed: UInt64,
                                  temperature: Float = 1) throws -> (samples: [Float], logProb: [Float]) {
        let store = try requireStore()
        let groups = contextFeatures > 0 ? try check(nil, context, rows: (context?.count ?? 0) / contextFeatures) : 1
        guard count >= 0 else { throw SBIError.invalidArgument("sample count must be non-negative") }
        var samples: [Float] = [], logq: [Float] = []
        samples.reserveCapacity(groups * count * features)
        var drawn: UInt64 = 0
        for group in 0..<groups {
            let row = contextFeatures > 0 ? Array(context![(group * contextFeatures)..<((group + 1) * contextFeatures)]) : nil
            if let host = model as? HostSampledDensity {
                let standardized = try host.sampleOnHost(count, context: row.map { contextScaler!.standardize($0) },
                                                         store: store, seed: seed &+ UInt64(group) &* 0x9E37_79B9_7F4A_7C15)
                let drawn = standardized.enumerated().map { i, v in v * yScaler.std[i % features] + yScaler.mean[i % features] }
                samples += drawn
                logq += try logProb(drawn, context: row)
                continue
            }
            var start = 0
            while start < count {
                let n = min(evaluationBatch, count - start)
                if samplePlans[n] == nil {
                    let graph = Graph()
                    let noise = graph.input("noise", rows: n, cols: model.noiseFeatures)
                    let c = contextFeatures > 0 ? graph.input("context", rows: n, cols: contextFeatures) : nil
                    let (x, lq) = try model.sample(noise: noise, context: try c.map { try contextScaler!.apply($0, in: graph) }, in: graph)
                    // Back to data units: y = σ⊙x + μ, log q(y) = log q(x) − Σ log σ.
                    let (y, logDet) = try yScaler.inverse(x, context: nil, in: graph)
                    let out = try graph.subtract(lq, logDet)
                    samplePlans[n] = (try Plan(graph: graph, backend: backend, outputs: [y, out], parameters: store), noise, c, y, out)
                }
                let p = samplePlans[n]!
                try backend.fillNormal(try p.plan.view(of: p.noise), seed: seed, offset: drawn, mean: 0, std: temperature)
                drawn += UInt64(n * model.noiseFeatures)
                if let ct = p.context, let row { try p.plan.feed(ct, contextRows(row, start: 0, rows: n)!) }
                try p.plan.run()
                samples += try p.plan.read(p.out)
                logq += try p.plan.read(p.logq)
                start += n
            }
        }
        return (samples, logq)
    }

    public func sample(_ count: Int, context: [Float]?, seed: UInt64) throws -> [Float] {
        try sampleWithLogProb(count, context: context, seed: seed).samples
    }

    // MARK: persistence

    func metadata() throws -> [String: String] {
        var meta = architecture
        meta["estimator"] = name
        meta["standardization.y"] = try Checkpoint.json([yScaler.mean, yScaler.std])
        if let contextScaler { meta["standardization.context"] = try Checkpoint.json([contextScaler.mean, contextScaler.std]) }
        return meta
    }

    public func save(to url: URL) throws {
        try requireStore().save(to: url, metadata: try metadata())
    }

    /// Restores parameters and standardization from a file written by `save` (or a training
    /// checkpoint) into this estimator, whose architecture must match.
    public func load(_ file: SafetensorsFile, path: String) throws {
        func scaler(_ key: String) throws -> Standardize? {
            guard let text = file.metadata[key] else { return nil }
            let pair = try Checkpoint.decode([[Float]].self, text, key: key, path: path)
            guard pair.count == 2, pair[0].count == pair[1].count else {
                throw SBIError.invalidArgument("\(path): metadata '\(key)' should hold [mean, std]")
            }
            return Standardize(mean: pair[0], std: pair[1])
        }
        guard let y = try scaler("standardization.y"), y.mean.count == features else {
            throw SBIError.invalidArgument("\(path): metadata 'standardization.y' is missing or not \(features) wide")
        }
        yScaler = y
        if contextFeatures > 0 {
            guard let c = try scaler("standardization.context"), c.mean.count == contextFeatures else {
                throw SBIError.invalidArgument("\(path): metadata 'standardization.context' is missing or not \(contextFeatures) wide")
            }
            contextScaler = c
        }
        let graph = Graph()
        _ = try logProbGraph(graph, rows: 1)
        let store = try ParameterStore(graph: graph, backend: backend, seed: 0)
        try store.load(file, path: path)  // refuses missing, misshapen and non-finite tensors by name
        self.store = store
        logProbPlans = [:]
        samplePlans = [:]
    }
}
