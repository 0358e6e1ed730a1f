import Foundation
import SBIBackend

/// Mini-batch training with Adam/AdamW, global-norm clipping, a learning-rate schedule, a
/// validation split, early stopping that restores the best parameters, and checkpoints that a
/// killed run resumes from.
///
/// When the data fits the device budget it is uploaded once, and a step gathers its batch on the
/// device from the epoch's shuffled index list (uploaded once per epoch), replays the planned
/// forward/backward launches and the Adam launch, and adds the loss to a device accumulator: no
/// allocation and no host synchronization per step; the losses are read once per epoch. A data
/// set larger than the budget (memory-mapped files, see `FloatRows`) is streamed instead: each
/// step gathers its rows on the host, in the same order, into preallocated staging buffers (two
/// per input, used in turn) and queues their upload into the plan's inputs without waiting, so
/// the host gathers the next batch while the device copies and computes this one; the
/// parameters do not depend on the budget.
///
/// With `averagingEpochs`, the Adam step also keeps a moving average of the parameters; the
/// average is validated and kept as the result, the last iterate decides early stopping.
///
/// On the CPU backend a small model's batch is split into two replicas of the plan, one per
/// half, run on two threads, their gradients averaged before Adam (data parallelism). Each
/// thread keeps its activations in its own core's cache: splitting every loop and product
/// across the cores instead made the 2-core development machine slower, since each op's data
/// crossed between cores. The split is the same on any core count, so results do not depend
/// on the machine.
public final class Trainer {
    public let backend: Backend
    public let configuration: TrainingConfiguration
    public let store: ParameterStore
    public private(set) var history: [EpochRecord] = []
    /// Model description stored in checkpoints next to the parameters (`__metadata__`).
    public var modelMetadata: [String: String] = [:]

    /// A planned loss-and-gradients graph over `rows` of the batch.
    struct Replica {
        let plan: Plan
        let inputs: [(tensor: Tensor, column: Int)]
        let loss: Tensor
        let rows: Int
        /// The dropout masks the step graph declared, with their rates.
        let masks: [(tensor: Tensor, rate: Float)]
        /// Their elements: the Philox draws the replica takes each step.
        var maskDraws: UInt64 { UInt64(masks.reduce(0) { $0 + $1.tensor.count }) }
    }
    /// One replica over the whole batch, or two over its halves (the second writing its
    /// gradients into `replicaGradients`).
    let replicas: [Replica]
    let replicaGradients: Buffer?
    let evalPlans: [(plan: Plan, inputs: [(tensor: Tensor, column: Int)], loss: Tensor, rows: Int)]
    let dataBuffers: [Buffer]
    let columnWidths: [Int]
    let data: TrainingData
    /// Whether batches stream from the host (the data exceeds the device budget).
    public let streamsData: Bool
    /// The epoch's training rows in step order, on the host (what streaming gathers).
    var epochOrder: [Int32] = []
    /// Host staging of streamed batches, one per replica (or evaluation plan) and input: two
    /// buffers used in turn, so that a step's rows are gathered while the device may still be
    /// copying the previous step's (an upload's ticket is waited on before its buffer is reused).
    final class Staging {
        let buffers: [UnsafeMutablePointer<Float>]
        var tickets: [UploadTicket] = [.done, .done]
        var next = 0
        init(_ count: Int) {
            buffers = (0..<2).map { _ in
                let p = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
                p.initialize(repeating: 0, count: max(count, 1))
                return p
            }
        }
        deinit {
            for ticket in tickets { try? ticket.wait() }
            for p in buffers { p.deallocate() }
        }
    }
    let replicaStaging: [[Staging]]
    let evalStaging: [[Staging]]
    let trainIndices: [Int32]
    let validationOrder: [Int32]
    let validationIndices: Buffer?
    let epochIndices: Buffer
    /// [training loss sum, full-batch validation sum, remainder validation loss, and the same two
    /// for the last iterate when the parameters are averaged].
    let accumulators: Buffer
    let bestValues: Buffer
    /// The moving average of the parameters (kept by the Adam step), and where the last iterate
    /// waits while validation runs on the average; both when `averagingEpochs` is set.
    let averageValues: Buffer?
    let averageScratch: Buffer?
    let squaredNorm: Buffer
    public let stepsPerEpoch: Int
    let validationRows: Int

    /// State that a checkpoint carries across a restart.
    struct State: Codable, Equatable {
        var epoch = 0
        var step = 0
        var bestValidationLoss = Double.infinity
        /// The last iterate's best validation loss, which early stopping watches; nil until the
        /// first epoch (and in checkpoints written before it was kept).
        var bestIterateLoss: Double?
        var epochsWithoutImprovement = 0
        var learningRateScale: Float = 1
        var epochsSinceRateChange = 0
        var history: [EpochRecord] = []
        var stoppedEarly = false
    }
    var state = State()

    /// - Parameters:
    ///   - lossGraph: builds the scalar loss (a mean over the batch) of a batch of the given size
    ///     into the graph; its inputs are named like the data's columns.
    ///   - splitBatch: run each step as two half-batch replicas; nil decides by `splitsBatch`.
    ///   - dataBudget: bytes of device memory the data may take; a larger data set streams.
    ///     nil: `defaultDataBudget` of the backend.
    public init(backend: Backend, configuration: TrainingConfiguration, data: TrainingData,
                splitBatch: Bool? = nil, dataBudget: Int? = nil, lossGraph: (Graph, Int) throws -> Tensor) throws {
        self.backend = backend
        self.configuration = configuration
        self.data = data
        streamsData = Trainer.streams(byteCount: data.byteCount, budget: dataBudget, backend: backend)
        let batch = configuration.batchSize
        guard batch > 0, configuration.epochs >= 0 else {
            throw SBIError.invalidArgument("batch size must be positive and epochs non-negative")
        }
        let split = Trainer.validationSplit(rows: data.rows, configuration: configuration)
        validationRows = split.validation.count
        trainIndices = split.training
        validationOrder = split.validation
        guard trainIndices.count >= batch else {
            throw SBIError.invalidArgument("\(trainIndices.count) training rows are fewer than one batch of \(batch); lower --batch-size")
        }
        stepsPerEpoch = trainIndices.count / batch

        // The training graph: loss and gradients of every parameter.
        let graph = Graph()
        graph.isTraining = true
        let loss = try lossGraph(graph, batch)
        let store = try ParameterStore(graph: graph, backend: backend, seed: configuration.seed)
        self.store = store
        func bind(_ g: Graph) throws -> [(tensor: Tensor, column: Int)] {
            try g.dataInputs.map { input in
                guard let column = data.columns.firstIndex(where: { $0.name == input.name }) else {
                    throw SBIError.invalidArgument("the model reads input '\(input.name)' but the data has columns \(data.columns.map(\.name))")
                }
                guard data.columns[column].cols == input.tensor.cols else {
                    throw SBIError.sizeMismatch("input \(input.name) has \(input.tensor.cols) features, data column has \(data.columns[column].cols)")
                }
                return (input.tensor, column)
            }
        }
        func replica(_ g: Graph, _ loss: Tensor, rows: Int, gradientBuffer: Buffer?) throws -> Replica {
            let parameters = g.parameters
            let gradients = try g.gradients(of: loss, with: parameters.map(\.tensor))
            let plan = try Plan(graph: g, backend: backend, outputs: [loss], parameters: store,
                                gradients: zip(gradients, parameters).map { ($0, $1.name) }, gradientBuffer: gradientBuffer)
            return Replica(plan: plan, inputs: try bind(g), loss: loss, rows: rows, masks: g.dropoutMasks)
        }
        if splitBatch ?? Trainer.splitsBatch(backend: backend, batch: batch,
                                             largestParameter: store.entries.map(\.count).max() ?? 0,
                                             rowsPerExample: Trainer.rowsPerExample(graph, batch: batch)) {
            guard batch % 2 == 0 else { throw SBIError.invalidArgument("a split batch needs an even batch size, not \(batch)") }
            let second = try backend.makeBuffer(count: store.count)
            try backend.fill(second.view, value: 0)  // the padding between entries stays zero
            replicaGradients = second
            replicas = try [nil, second].map { buffer in
                let g = Graph()
                g.isTraining = true
                return try replica(g, try lossGraph(g, batch / 2), rows: batch / 2, gradientBuffer: buffer)
            }
        } else {
            replicaGradients = nil
            replicas = [try replica(graph, loss, rows: batch, gradientBuffer: nil)]
        }

        // Evaluation plans: full batches, and one for the remainder of the validation set.
        var evalPlans: [(Plan, [(tensor: Tensor, column: Int)], Tensor, Int)] = []
        for rows in Set([validationRows >= batch ? batch : 0, validationRows % batch]).sorted() where rows > 0 {
            let g = Graph()
            let loss = try lossGraph(g, rows)
            evalPlans.append((try Plan(graph: g, backend: backend, outputs: [loss], parameters: store), try bind(g), loss, rows))
        }
        self.evalPlans = evalPlans

        // Uploaded straight from the rows (a mapped file is not copied into an array first).
        dataBuffers = streamsData ? [] : try data.columns.map { column in
            let buffer = try backend.makeBuffer(count: column.values.count)
            try column.values.withUnsafeBufferPointer { values in
                if let base = values.baseAddress { try backend.enqueueUpload(from: base, to: buffer.view).wait() }
            }
            return buffer
        }
        replicaStaging = streamsData ? replicas.map { r in r.inputs.map { Staging(r.rows * data.columns[$0.column].cols) } } : []
        evalStaging = streamsData ? evalPlans.map { e in e.1.map { Staging(e.3 * data.columns[$0.column].cols) } } : []
        columnWidths = data.columns.map(\.cols)
        validationIndices = validationRows > 0 ? try backend.makeBuffer(split.validation) : nil
        epochIndices = try backend.makeBuffer(count: trainIndices.count)
        accumulators = try backend.makeBuffer(count: 5)
        bestValues = try backend.makeBuffer(count: store.count)
        squaredNorm = try backend.makeBuffer(count: 1)
        try backend.copy(store.values.view, to: bestValues.view)
        if configuration.averagingEpochs != nil {
            averageValues = try backend.makeBuffer(count: store.count)
            averageScratch = try backend.makeBuffer(count: store.count)
            try backend.copy(store.values.view, to: averageValues!.view)
        } else {
            averageValues = nil
            averageScratch = nil
        }
    }

    /// The averaging weight of step `step` (1-based): the decay that gives the configured time
    /// constant, lowered early on (as TensorFlow's ExponentialMovingAverage does with
    /// num_updates) so that the initialization does not linger in the average. Until that cap
    /// the window is about a tenth of the steps so far; wider windows (a third, a fifth) and
    /// caps of 1 to 8 epochs gave the same held-out likelihood in
    /// Benchmarks/results/epyc-2core-heldout-nll.txt.
    func averageDecay(step: Int) -> Float {
        guard let epochs = configuration.averagingEpochs else { return 0 }
        let decay = 1 - 1 / max(1, epochs * Double(stepsPerEpoch))
        return Float(min(decay, Double(1 + step) / Double(10 + step)))
    }

    /// Runs `body` with the averaged parameters in the store (when averaging), then puts the
    /// last iterate back.
    func withAveragedParameters<T>(_ body: () throws -> T) throws -> T {
        guard let averageValues, let averageScratch else { return try body() }
        try backend.copy(store.values.view, to: averageScratch.view)
        try backend.copy(averageValues.view, to: store.values.view)
        defer { try? backend.copy(averageScratch.view, to: store.values.view) }
        return try body()
    }

    /// The default data budget: half the backend's memory (device memory, or the host's for the
    /// CPU backend), leaving the rest to activations, parameters and everything else.
    public static func defaultDataBudget(_ backend: Backend) -> Int { backend.memoryBytes / 2 }

    /// Whether data of `byteCount` bytes streams under `budget` (nil: the default budget).
    public static func streams(byteCount: Int, budget: Int?, backend: Backend) -> Bool {
        byteCount > budget ?? defaultDataBudget(backend)
    }

    /// Fills a plan's inputs with data rows `rows` (indices into the data set): a device gather
    /// from the uploaded columns, or, when streaming, a host gather into `staging` and an upload.
    func feed(_ plan: Plan, inputs: [(tensor: Tensor, column: Int)], rows: BufferView, hostRows: ArraySlice<Int32>,
              staging: [Staging]) throws {
        for (k, (tensor, column)) in inputs.enumerated() {
            if streamsData {
                let stage = staging[k], slot = stage.next
                stage.next = 1 - slot
                try stage.tickets[slot].wait()
                data.columns[column].values.gather(hostRows, into: stage.buffers[slot])
                stage.tickets[slot] = try backend.enqueueUpload(from: stage.buffers[slot], to: try plan.view(of: tensor))
            } else {
                try backend.gatherRows(dataBuffers[column].view, columns: columnWidths[column], indices: rows,
                                       into: try plan.view(of: tensor))
            }
        }
    }

    /// Whether a training step runs as two half-batch replicas: on the CPU backend, for batches
    /// of 64 rows or more, when every product of the model stays on one OpenBLAS thread, so that
    /// the two threads never reconfigure OpenBLAS under each other. The estimators' products
    /// multiply activations by a weight (or, for its gradient, activations by activations over
    /// the batch), so their multiply-adds are at most rows × the largest parameter's size.
    /// `rowsPerExample` counts the matrix rows one example makes: its pixels for an image model,
    /// whose convolutions multiply (N·H·W)-row matrices.
    static func splitsBatch(backend: Backend, batch: Int, largestParameter: Int, rowsPerExample: Int = 1) -> Bool {
        guard let cpu = backend as? CPUBackend else { return false }
        return batch % 2 == 0 && batch >= 64 && batch / 2 * rowsPerExample * largestParameter < cpu.singleThreadedGEMMWork
    }

    /// The most matrix rows one example of `batch` makes in `graph`: 1 for vectors, H·W for the
    /// N×H×W×C tensors of an image model.
    static func rowsPerExample(_ graph: Graph, batch: Int) -> Int {
        graph.tensors.filter { $0.shape.count > 2 && $0.shape[0] == batch }.map { $0.rows / batch }.max() ?? 1
    }

    /// The rows every estimator trains on and those it holds out for validation (the GMM
    /// included): a seeded permutation of the rows (stream UInt64.max of the training seed), its
    /// last round(rows × validationFraction) held out, at most rows − 1.
    public static func validationSplit(rows: Int, configuration: TrainingConfiguration)
        -> (training: [Int32], validation: [Int32]) {
        let order = permutation(count: rows, seed: configuration.seed, stream: UInt64.max)
        let held = max(0, min(rows - 1, Int((Double(rows) * configuration.validationFraction).rounded())))
        return (Array(order.prefix(rows - held)), Array(order.suffix(held)))
    }

    /// A seeded Fisher–Yates shuffle of 0..<count from the Philox stream (seed, stream).
    static func permutation(count: Int, seed: UInt64, stream: UInt64) -> [Int32] {
        var order = (0..<count).map(Int32.init)
        guard count > 1 else { return order }
        let key = seed ^ (stream &* 0x9E37_79B9_7F4A_7C15)
        for i in stride(from: count - 1, to: 0, by: -1) {
            let j = Int(Philox.word(at: UInt64(i), seed: key) % UInt32(i + 1))
            order.swapAt(i, j)
        }
        return order
    }

    /// The learning rate of global step `step` (0-based).
    func learningRate(step: Int) -> Float {
        let base = configuration.learningRate * state.learningRateScale
        switch configuration.schedule {
        case .constant, .stepOnPlateau: return base
        case let .cosine(minimum):
            let total = max(1, configuration.epochs * stepsPerEpoch)
            let progress = Double(min(step, total)) / Double(total)
            let factor = Double(minimum) + (1 - Double(minimum)) * 0.5 * (1 + cos(Double.pi * progress))
            return Float(Double(base) * factor)
        }
    }

    /// Runs one epoch of training steps, adding their losses to the (zeroed) accumulators.
    func runEpoch() throws {
        let batch = configuration.batchSize
        let shuffled = Trainer.permutation(count: trainIndices.count, seed: configuration.seed, stream: UInt64(state.epoch))
        epochOrder = shuffled.map { trainIndices[Int($0)] }
        if !streamsData { try backend.upload(epochOrder, to: epochIndices.view) }
        try backend.fill(accumulators.view, value: 0)
        let lossSum = accumulators.view(offset: 0, count: 1)
        let lossViews = try replicas.map { try $0.plan.view(of: $0.loss) }
        for step in 0..<stepsPerEpoch {
            func run(_ r: Int) throws {
                let replica = replicas[r]
                let first = step * batch + r * replica.rows
                try feed(replica.plan, inputs: replica.inputs,
                         rows: epochIndices.view(offset: first, count: replica.rows),
                         hostRows: epochOrder[first..<(first + replica.rows)], staging: streamsData ? replicaStaging[r] : [])
                try fillDropoutMasks(replica, replicaIndex: r)
                // Fresh noise each step, at a position of its own per (step, replica).
                try replica.plan.fillNoise(seed: configuration.seed ^ Trainer.noiseStream,
                                           offset: (UInt64(state.step) &* UInt64(replicas.count) &+ UInt64(r)) << 32)
                try replica.plan.run()
            }
            if let replicaGradients {
                var failure0: Error?, failure1: Error?
                DispatchQueue.concurrentPerform(iterations: 2) { r in
                    do { try run(r) } catch { if r == 0 { failure0 = error } else { failure1 = error } }
                }
                if let failure = failure0 ?? failure1 { throw failure }
                let gradients = store.gradients.view
                try backend.binary(.add, gradients, replicaGradients.view, gradients, rows: 1, cols: gradients.count,
                                   broadcast: .none)
                try backend.affine(gradients, gradients, scale: 0.5, shift: 0)
            } else {
                try run(0)
            }
            let clip = configuration.maxGradientNorm
            if clip != nil { try backend.sumOfSquares(store.gradients.view, into: squaredNorm.view) }
            state.step += 1
            try AdamStep.run(on: backend, parameters: store.values.view, gradients: store.gradients.view,
                                 firstMoment: store.firstMoment.view, secondMoment: store.secondMoment.view,
                                 hyper: AdamHyperparameters(learningRate: learningRate(step: state.step - 1),
                                                            weightDecay: configuration.weightDecay, step: state.step,
                                                            averageDecay: averageDecay(step: state.step)),
                                 gradientSquaredNorm: clip == nil ? nil : squaredNorm.view,
                                 maxGradientNorm: clip ?? 0, average: averageValues?.view)
            for lossView in lossViews {
                try backend.binary(.add, lossSum, lossView, lossSum, rows: 1, cols: 1, broadcast: .none)
            }
        }
    }

    /// Draws the replica's dropout masks for this step: each mask element has its own position
    /// in the Philox stream of the training seed, (step, replica, mask, element), so a resumed
    /// run draws the masks the uninterrupted one would have.
    func fillDropoutMasks(_ replica: Replica, replicaIndex: Int) throws {
        guard !replica.masks.isEmpty else { return }
        // The replicas have the same masks, so each step takes replicas.count · maskDraws draws.
        var offset = (UInt64(state.step) &* UInt64(replicas.count) &+ UInt64(replicaIndex)) &* replica.maskDraws
        for (tensor, rate) in replica.masks {
            try backend.fillBernoulli(try replica.plan.view(of: tensor), seed: configuration.seed ^ Trainer.dropoutStream,
                                      offset: offset, probability: 1 - rate, value: 1 / (1 - rate))
            offset &+= UInt64(tensor.count)
        }
    }
    /// Keys the dropout draws apart from every other use of the training seed.
    static let dropoutStream: UInt64 = 0x44_524F_504F_5554  // "DROPOUT"
    /// Keys the noise inputs' draws (dequantization): training steps draw at (step, replica) << 32,
    /// validation batches from a stream of their own at (first row) << 32, the same every epoch.
    static let noiseStream: UInt64 = 0x4E_4F49_5345  // "NOISE"
    static let validationNoiseStream: UInt64 = 0x56_4E4F_4953_45  // "VNOISE"

    /// Adds the validation rows' losses, with the parameters in the store, to the accumulators:
    /// full batches into slot `first`, the remainder batch into slot `first + 1`.
    func validate(into first: Int) throws {
        guard let validationIndices else { return }
        let batch = configuration.batchSize
        var start = 0
        while start < validationRows {
            let rows = min(batch, validationRows - start)
            guard let e = evalPlans.firstIndex(where: { $0.rows == rows }) else { break }
            let eval = evalPlans[e]
            try feed(eval.plan, inputs: eval.inputs, rows: validationIndices.view(offset: start, count: rows),
                     hostRows: validationOrder[start..<(start + rows)], staging: streamsData ? evalStaging[e] : [])
            try eval.plan.fillNoise(seed: configuration.seed ^ Trainer.validationNoiseStream, offset: UInt64(start) << 32)
            try eval.plan.run()
            let slot = accumulators.view(offset: rows == batch ? first : first + 1, count: 1)
            try backend.binary(.add, slot, try eval.plan.view(of: eval.loss), slot, rows: 1, cols: 1, broadcast: .none)
            start += rows
        }
    }

    /// The epoch's mean training loss, validation loss (the training loss when nothing is held
    /// out), and, with averaging, the last iterate's validation loss, from the accumulators.
    func epochLosses(_ sums: [Float]) -> (train: Double, validation: Double, iterate: Double?) {
        let train = Double(sums[0]) / Double(stepsPerEpoch * replicas.count)  // each replica's loss is a mean over its rows
        let batch = configuration.batchSize, remainder = validationRows % batch
        func validation(_ slot: Int) -> Double {
            validationRows == 0 ? train
                : (Double(sums[slot]) * Double(batch) + Double(sums[slot + 1]) * Double(remainder)) / Double(validationRows)
        }
        return (train, validation(1), averageValues == nil ? nil : validation(3))
    }

    /// Trains until `epochs`, early stopping, or the end of a resumed run; leaves the best
    /// parameters (by validation loss) in the store. With `checkpoint`, the state is saved after
    /// every epoch and, when `resume` is set and the file exists, training continues from it.
    @discardableResult
    public func train(checkpoint: URL? = nil, resume: Bool = false,
                      progress: ((EpochRecord) -> Void)? = nil) throws -> [EpochRecord] {
        if resume, let checkpoint, FileManager.default.fileExists(atPath: checkpoint.path) {
            try restore(from: checkpoint)
        }
        while state.epoch < configuration.epochs && !state.stoppedEarly {
            let started = DispatchTime.now().uptimeNanoseconds
            let rate = learningRate(step: state.step)
            try runEpoch()
            // With averaging, the last iterate is validated too: early stopping and the plateau
            // schedule watch it (whether the optimizer still makes progress), while the average,
            // which keeps improving slowly as it takes in more iterates, is what is kept.
            if averageValues != nil { try validate(into: 3) }
            let (train, validation, iterate) = try withAveragedParameters {
                try validate(into: 1)
                let sums = try backend.download(accumulators.view)  // the epoch's one synchronization
                let (train, validation, iterate) = epochLosses(sums)
                guard train.isFinite else {
                    throw SBIError.invalidArgument("training loss became \(train) at epoch \(state.epoch + 1); lower the learning rate")
                }
                if validation < state.bestValidationLoss {
                    state.bestValidationLoss = validation
                    try backend.copy(store.values.view, to: bestValues.view)
                }
                return (train, validation, iterate ?? validation)
            }
            if iterate < state.bestIterateLoss ?? .infinity {
                state.bestIterateLoss = iterate
                state.epochsWithoutImprovement = 0
                state.epochsSinceRateChange = 0
            } else {
                state.epochsWithoutImprovement += 1
                state.epochsSinceRateChange += 1
                if case let .stepOnPlateau(factor, patience) = configuration.schedule,
                   state.epochsSinceRateChange >= patience {
                    state.learningRateScale *= factor
                    state.epochsSinceRateChange = 0
                }
                if state.epochsWithoutImprovement >= configuration.patience { state.stoppedEarly = true }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            let record = EpochRecord(epoch: state.epoch + 1, trainingLoss: train, validationLoss: validation,
                                     learningRate: rate, seconds: seconds)
            state.history.append(record)
            state.epoch += 1
            if let checkpoint { try save(to: checkpoint) }
            progress?(record)
        }
        try backend.copy(bestValues.view, to: store.values.view)
        history = state.history
        return history
    }

    /// Takes the current parameters as the best so far (after an external initialization).
    public func resetBest() throws {
        try backend.copy(store.values.view, to: bestValues.view)
    }

    public var stoppedEarly: Bool { state.stoppedEarly }
    public var bestValidationLoss: Double { state.bestValidationLoss }
}
