import SBIBackend

/// The trainable parameters of a model and their optimizer state, each in one flat buffer, so
/// that gradient clipping is one reduction and the Adam update one launch over all of them.
/// Plans built for different batch sizes share one store; parameters are matched by name.
public final class ParameterStore {
    public struct Entry: Sendable {
        public let name: String
        /// The shape as declared in the graph (what checkpoints store).
        public let shape: [Int]
        public let offset: Int
        public let initializer: Initializer
        public var count: Int { shape.reduce(1, *) }
        /// The matrix the kernels see: the last axis, and the product of the others.
        public var rows: Int { shape.dropLast().reduce(1, *) }
        public var cols: Int { shape.last ?? 1 }
    }

    public let backend: Backend
    public let entries: [Entry]
    private let byName: [String: Int]
    /// Parameter values, gradients and Adam's two moments; padding between entries stays zero.
    public let values: Buffer, gradients: Buffer, firstMoment: Buffer, secondMoment: Buffer

    /// Lays out the parameters of `graph` and initializes them from the Philox stream `seed`.
    public convenience init(graph: Graph, backend: Backend, seed: UInt64) throws {
        try self.init(parameters: graph.parameters.map { ($0.name, $0.tensor.shape, $0.initializer) },
                      backend: backend, seed: seed)
    }

    public init(parameters: [(name: String, shape: [Int], initializer: Initializer)], backend: Backend,
                seed: UInt64) throws {
        self.backend = backend
        var entries: [Entry] = [], offset = 0
        for p in parameters {
            let entry = Entry(name: p.name, shape: p.shape, offset: offset, initializer: p.initializer)
            entries.append(entry)
            offset = alignUp(offset + entry.count)
        }
        self.entries = entries
        byName = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
        values = try backend.makeBuffer(count: offset)
        gradients = try backend.makeBuffer(count: offset)
        firstMoment = try backend.makeBuffer(count: offset)
        secondMoment = try backend.makeBuffer(count: offset)
        for buffer in [values, gradients, firstMoment, secondMoment] { try backend.fill(buffer.view, value: 0) }
        try initialize(seed: seed)
    }

    /// Elements in the flat buffers, padding included.
    public var count: Int { values.count }
    /// Trainable scalars, padding excluded.
    public var parameterCount: Int { entries.reduce(0) { $0 + $1.count } }

    public func entry(_ name: String) throws -> Entry {
        guard let index = byName[name] else { throw SBIError.invalidArgument("no parameter named \(name)") }
        return entries[index]
    }

    public func value(_ name: String) throws -> BufferView {
        let e = try entry(name)
        return values.view(offset: e.offset, count: e.count)
    }

    public func gradient(_ name: String) throws -> BufferView {
        let e = try entry(name)
        return gradients.view(offset: e.offset, count: e.count)
    }

    /// Draws every parameter from its initializer. Entry e uses stream positions
    /// [e.offset, e.offset + e.count) of `seed`, so initialization is identical on every backend.
    public func initialize(seed: UInt64) throws {
        for e in entries {
            let view = values.view(offset: e.offset, count: e.count)
            let position = UInt64(e.offset)
            switch e.initializer {
            case .zeros: try backend.fill(view, value: 0)
            case let .constant(v): try backend.fill(view, value: v)
            case let .uniform(bound):
                try backend.fillUniform(view, seed: seed, offset: position, low: -bound, high: bound)
            case let .normal(std):
                try backend.fillNormal(view, seed: seed, offset: position, mean: 0, std: std)
            case let .kaimingUniform(fanIn):
                let bound = (6 / Float(max(fanIn, 1))).squareRoot()
                try backend.fillUniform(view, seed: seed, offset: position, low: -bound, high: bound)
            case let .glorotUniform(fanIn, fanOut):
                let bound = (6 / Float(max(fanIn + fanOut, 1))).squareRoot()
                try backend.fillUniform(view, seed: seed, offset: position, low: -bound, high: bound)
            }
        }
    }

    /// Zeroes Adam's moments (a fresh optimizer).
    public func resetOptimizer() throws {
        try backend.fill(firstMoment.view, value: 0)
        try backend.fill(secondMoment.view, value: 0)
    }

    /// Values of one parameter, downloaded.
    public func read(_ name: String, from buffer: Buffer? = nil) throws -> [Float] {
        let e = try entry(name)
        return try backend.download((buffer ?? values).view(offset: e.offset, count: e.count))
    }

    public func write(_ name: String, _ data: [Float], to buffer: Buffer? = nil) throws {
        let e = try entry(name)
        guard data.count == e.count else {
            throw SBIError.sizeMismatch("parameter \(name) is \(e.shape), got \(data.count) values")
        }
        try backend.upload(data, to: (buffer ?? values).view(offset: e.offset, count: e.count))
    }
}

/// Tensors start on 64-element (256-byte) boundaries: aligned, coalesced device accesses.
@inline(__always) func alignUp(_ n: Int) -> Int { (n + 63) / 64 * 64 }
