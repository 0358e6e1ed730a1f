import Foundation
import SBIBackend
import SBIGraph

/// Settings of the classifier two-sample test. The defaults are sbibm's `c2st`: 5 shuffled folds,
/// seed 1, z-scoring by the reference set, and scikit-learn's `MLPClassifier(activation="relu",
/// hidden_layer_sizes=(10·d, 10·d), max_iter=1000, solver="adam")` with its remaining defaults.
public struct C2STConfiguration: Sendable, Equatable {
    /// Cross-validation folds (KFold, shuffled with the seed).
    public var folds = 5
    /// Seeds the fold split, the weight initialization and the epoch shuffles (Philox streams).
    public var seed: UInt64 = 1
    /// Standardize both sets by the reference set's mean and (unbiased) standard deviation.
    public var zScore = true
    /// Hidden layers, each `hiddenUnitsPerDimension`·d wide, ReLU.
    public var hiddenLayers = 2
    public var hiddenUnitsPerDimension = 10
    /// Adam's step size (`learning_rate_init`); β = (0.9, 0.999), ε = 1e-8.
    public var learningRate: Float = 1e-3
    /// Mini-batch size, capped at the training rows (`batch_size="auto"`: min(200, n)).
    public var batchSize = 200
    /// Epochs at most (`max_iter`).
    public var maxEpochs = 1000
    /// L2 penalty (`alpha`): the loss of a batch of b rows adds α/(2b)·Σ‖W‖² over the weights
    /// (not the biases).
    public var l2Penalty: Float = 1e-4
    /// Training stops once the epoch's mean training loss has failed to improve on the best so
    /// far by `tolerance` for more than `patience` consecutive epochs (`tol`, `n_iter_no_change`).
    public var tolerance = 1e-4
    public var patience = 10

    public init(folds: Int = 5, seed: UInt64 = 1, zScore: Bool = true, hiddenLayers: Int = 2,
                hiddenUnitsPerDimension: Int = 10, learningRate: Float = 1e-3, batchSize: Int = 200,
                maxEpochs: Int = 1000, l2Penalty: Float = 1e-4, tolerance: Double = 1e-4, patience: Int = 10) {
        self.folds = folds
        self.seed = seed
        self.zScore = zScore
        self.hiddenLayers = hiddenLayers
        self.hiddenUnitsPerDimension = hiddenUnitsPerDimension
        self.learningRate = learningRate
        self.batchSize = batchSize
        self.maxEpochs = maxEpochs
        self.l2Penalty = l2Penalty
        self.tolerance = tolerance
        self.patience = patience
    }
}

/// The outcome of a C2ST: the mean held-out accuracy and what each fold did.
public struct C2STResult: Sendable {
    /// Mean held-out accuracy over the folds: ≈ 0.5 when the two sets come from one distribution,
    /// → 1 as they separate.
    public let accuracy: Double
    public let foldAccuracies: [Double]
    /// Epochs each fold's classifier trained for.
    public let epochs: [Int]
    /// Each fold's mean training loss (BCE plus the L2 term) in its last epoch.
    public let finalLosses: [Double]
}

/// The classifier two-sample test exactly as sbibm's `c2st` runs it (Lopez-Paz & Oquab 2017):
/// label the reference set X with 0 and the sample set Y with 1, z-score both by X's mean and
/// standard deviation, and report the mean held-out accuracy of an MLP classifier over shuffled
/// K-fold cross-validation.
///
/// The classifier mirrors scikit-learn's `MLPClassifier` step for step, built on this project's
/// graph engine: Glorot-uniform initialization U(±√(6/(fan_in + fan_out))) of weights and biases;
/// one logit output trained on the mean binary cross-entropy with logits,
/// mean(softplus(z) − y·z), plus the L2 term; Adam on shuffled mini-batches (the last batch of an
/// epoch holds the remainder); sklearn's stopping rule on the epoch's mean training loss; no
/// early-stopping split; prediction 1 when the logit is positive. The randomness (fold split,
/// initialization, shuffles) comes from Philox streams of the seed rather than NumPy's, so scores
/// agree with sklearn's statistically, not bit for bit.
public enum C2ST {
    /// - Parameters:
    ///   - reference: X, n_x rows of `dimension` (the reference or true-posterior samples).
    ///   - samples: Y, n_y rows of `dimension` (the samples under test).
    ///   - backend: where the classifier trains; a CPU backend when nil.
    public static func score(reference: [Float], samples: [Float], dimension d: Int,
                             configuration: C2STConfiguration = C2STConfiguration(),
                             backend: Backend? = nil) throws -> C2STResult {
        guard d > 0, !reference.isEmpty, !samples.isEmpty, reference.count % d == 0, samples.count % d == 0 else {
            throw SBIError.sizeMismatch("C2ST: \(reference.count) and \(samples.count) values are not non-empty rows of \(d)")
        }
        let config = configuration
        guard config.folds >= 2, config.hiddenLayers >= 0, config.hiddenUnitsPerDimension > 0, config.batchSize > 0,
              config.maxEpochs >= 1, config.patience >= 0 else {
            throw SBIError.invalidArgument("C2ST: needs ≥ 2 folds, positive widths and batch size, ≥ 1 epoch")
        }
        let nx = reference.count / d, ny = samples.count / d, n = nx + ny
        guard n >= config.folds else { throw SBIError.invalidArgument("C2ST: \(n) rows for \(config.folds) folds") }
        guard (reference + samples).allSatisfy(\.isFinite) else {
            throw SBIError.invalidArgument("C2ST: the samples contain non-finite values")
        }

        // z-score by the reference set (torch.std: the unbiased estimate).
        var data = reference + samples
        if config.zScore {
            for j in 0..<d {
                var mean = 0.0
                for i in 0..<nx { mean += Double(reference[i * d + j]) }
                mean /= Double(nx)
                var variance = 0.0
                for i in 0..<nx { variance += (Double(reference[i * d + j]) - mean) * (Double(reference[i * d + j]) - mean) }
                variance /= Double(max(1, nx - 1))
                let std = variance > 0 ? variance.squareRoot() : 1
                for i in 0..<n { data[i * d + j] = Float((Double(data[i * d + j]) - mean) / std) }
            }
        }
        let labels = [Float](repeating: 0, count: nx) + [Float](repeating: 1, count: ny)

        // KFold(shuffle=True): a seeded permutation cut into consecutive folds, the first n % K
        // folds one row larger.
        let order = DiagnosticRandom.permutation(n, seed: DiagnosticRandom.derive(config.seed, 10))
        let backend = backend ?? CPUBackend()
        let hidden = [Int](repeating: config.hiddenUnitsPerDimension * d, count: config.hiddenLayers)
        var accuracies: [Double] = [], epochs: [Int] = [], losses: [Double] = []
        var start = 0
        for fold in 0..<config.folds {
            let size = n / config.folds + (fold < n % config.folds ? 1 : 0)
            let test = Array(order[start..<(start + size)])
            let train = Array(order[..<start]) + Array(order[(start + size)...])
            start += size
            func rows(_ index: [Int]) -> (x: [Float], y: [Float]) {
                var x = [Float](), y = [Float]()
                x.reserveCapacity(index.count * d)
                y.reserveCapacity(index.count)
                for i in index {
                    x += data[(i * d)..<((i + 1) * d)]
                    y.append(labels[i])
                }
                return (x, y)
            }
            let (trainX, trainY) = rows(train)
            let (testX, testY) = rows(test)
            // Like sklearn's clones with random_state=seed: every fold starts from the same stream.
            let classifier = try MLPBinaryClassifier(backend: backend, inputs: d, hidden: hidden, seed: config.seed)
            let fit = try classifier.fit(x: trainX, y: trainY, configuration: config)
            let logits = try classifier.logits(testX)
            var correct = 0
            for (z, y) in zip(logits, testY) where (z > 0 ? Float(1) : 0) == y { correct += 1 }
            accuracies.append(Double(correct) / Double(test.count))
            epochs.append(fit.epochs)
            losses.append(fit.loss)
        }
        return C2STResult(accuracy: accuracies.reduce(0, +) / Double(accuracies.count), foldAccuracies: accuracies,
                          epochs: epochs, finalLosses: losses)
    }
}

/// A binary MLP classifier trained like scikit-learn's `MLPClassifier(solver="adam")`, on the
/// graph engine: ReLU hidden layers, one logit out.
final class MLPBinaryClassifier {
    let backend: Backend
    let widths: [Int]
    let store: ParameterStore

    init(backend: Backend, inputs: Int, hidden: [Int], seed: UInt64) throws {
        self.backend = backend
        widths = [inputs] + hidden + [1]
        var parameters: [(name: String, shape: [Int], initializer: Initializer)] = []
        for layer in 0..<(widths.count - 1) {
            let fanIn = widths[layer], fanOut = widths[layer + 1]
            // sklearn's _init_coef for relu: U(±√(6/(fan_in + fan_out))) for weights and biases.
            let bound = Float((6 / Double(fanIn + fanOut)).squareRoot())
            parameters.append((Self.weight(layer), [fanIn, fanOut], .uniform(bound: bound)))
            parameters.append((Self.bias(layer), [1, fanOut], .uniform(bound: bound)))
        }
        store = try ParameterStore(parameters: parameters, backend: backend, seed: DiagnosticRandom.derive(seed, 11))
    }

    static func weight(_ layer: Int) -> String { "c2st.\(layer).weight" }
    static func bias(_ layer: Int) -> String { "c2st.\(layer).bias" }

    /// The logits of x (rows×inputs) in `graph`, and the weight tensors.
    func forward(_ x: Tensor, in graph: Graph) throws -> (logits: Tensor, weights: [Tensor]) {
        var h = x, weights: [Tensor] = []
        let layers = widths.count - 1
        for layer in 0..<layers {
            let e = try store.entry(Self.weight(layer)), eb = try store.entry(Self.bias(layer))
            let w = graph.parameter(e.name, shape: e.shape, initializer: e.initializer)
            let b = graph.parameter(eb.name, shape: eb.shape, initializer: eb.initializer)
            weights.append(w)
            h = try graph.linear(h, weight: w, bias: b, activation: layer == layers - 1 ? .identity : .relu)
        }
        return (h, weights)
    }

    /// A training plan for batches of `rows`: the loss, with every gradient bound into the store.
    func trainingPlan(rows: Int, l2: Float) throws -> (plan: Plan, x: Tensor, y: Tensor, loss: Tensor) {
        let graph = Graph()
        let x = graph.input("x", rows: rows, cols: widths[0])
        let y = graph.input("y", rows: rows, cols: 1)
        let (z, weights) = try forward(x, in: graph)
        // Binary cross-entropy with logits: mean(softplus(z) − y·z).
        let bce = try graph.mean(try graph.subtract(try graph.unary(.softplus, z), try graph.multiply(y, z)))
        var loss = bce
        if l2 > 0, !weights.isEmpty {
            var squares = try graph.sum(try graph.square(weights[0]))
            for w in weights.dropFirst() { squares = try graph.add(squares, try graph.sum(try graph.square(w))) }
            loss = try graph.add(bce, try graph.affine(squares, scale: 0.5 * l2 / Float(rows), shift: 0))
        }
        let parameters = graph.parameters
        let gradients = try graph.gradients(of: loss, with: parameters.map(\.tensor))
        let plan = try Plan(graph: graph, backend: backend, outputs: [loss], parameters: store,
                            gradients: zip(gradients, parameters).map { ($0, $1.name) })
        return (plan, x, y, loss)
    }

    /// Trains on rows of x with labels y ∈ {0, 1}; returns the epochs run and the last epoch's
    /// mean training loss.
    func fit(x: [Float], y: [Float], configuration config: C2STConfiguration) throws -> (epochs: Int, loss: Double) {
        let d = widths[0], n = y.count
        precondition(x.count == n * d && n > 0)
        let batch = min(config.batchSize, n), remainder = n % batch
        let full = try trainingPlan(rows: batch, l2: config.l2Penalty)
        let last = remainder > 0 ? try trainingPlan(rows: remainder, l2: config.l2Penalty) : nil
        let xBuffer = try backend.makeBuffer(x), yBuffer = try backend.makeBuffer(y)
        let indexBuffer = try backend.makeBuffer(count: n)
        let accumulators = try backend.makeBuffer(count: 2)  // [Σ full-batch losses, remainder loss]
        let xViews = [try full.plan.view(of: full.x), try last.map { try $0.plan.view(of: $0.x) }]
        let yViews = [try full.plan.view(of: full.y), try last.map { try $0.plan.view(of: $0.y) }]
        let lossViews = [try full.plan.view(of: full.loss), try last.map { try $0.plan.view(of: $0.loss) }]

        var best = Double.infinity, noImprovement = 0, step = 0, loss = Double.nan, epoch = 0
        let shuffleSeed = DiagnosticRandom.derive(config.seed, 12)
        while epoch < config.maxEpochs {
            let order = DiagnosticRandom.permutation(n, seed: DiagnosticRandom.derive(shuffleSeed, UInt64(epoch)))
            try backend.upload(order.map(Int32.init), to: indexBuffer.view)
            try backend.fill(accumulators.view, value: 0)
            var start = 0
            while start < n {
                let rows = min(batch, n - start)
                let k = rows == batch ? 0 : 1
                let plan = k == 0 ? full.plan : last!.plan
                let indices = indexBuffer.view(offset: start, count: rows)
                try backend.gatherRows(xBuffer.view, columns: d, indices: indices, into: xViews[k]!)
                try backend.gatherRows(yBuffer.view, columns: 1, indices: indices, into: yViews[k]!)
                try plan.run()
                step += 1
                try AdamStep.run(on: backend, parameters: store.values.view, gradients: store.gradients.view,
                                     firstMoment: store.firstMoment.view, secondMoment: store.secondMoment.view,
                                     hyper: AdamHyperparameters(learningRate: config.learningRate, step: step),
                                     gradientSquaredNorm: nil, maxGradientNorm: 0)
                let slot = accumulators.view(offset: k, count: 1)
                try backend.binary(.add, slot, lossViews[k]!, slot, rows: 1, cols: 1, broadcast: .none)
                start += rows
            }
            let sums = try backend.download(accumulators.view)
            // sklearn: Σ batch loss × batch rows / n.
            loss = (Double(sums[0]) * Double(batch) + Double(sums[1]) * Double(remainder)) / Double(n)
            epoch += 1
            guard loss.isFinite else {
                throw SBIError.invalidArgument("C2ST: the classifier's training loss became \(loss) at epoch \(epoch)")
            }
            // sklearn's _update_no_improvement_count (early_stopping=False).
            if loss > best - config.tolerance { noImprovement += 1 } else { noImprovement = 0 }
            if loss < best { best = loss }
            if noImprovement > config.patience { break }
        }
        return (epoch, loss)
    }

    /// Logits of rows of x under the current parameters.
    func logits(_ x: [Float]) throws -> [Float] {
        let rows = x.count / widths[0]
        guard rows > 0 else { return [] }
        let graph = Graph()
        let input = graph.input("x", rows: rows, cols: widths[0])
        let (z, _) = try forward(input, in: graph)
        let plan = try Plan(graph: graph, backend: backend, outputs: [z], parameters: store)
        try plan.feed(input, x)
        try plan.run()
        return try plan.read(z)
    }
}
