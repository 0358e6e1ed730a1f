import SBIBackend

/// A tensor of the graph: dense, row-major, with `shape` its axes outermost first (a batch of
/// images is [N, H, W, C], channels last). Every kernel also sees it as a matrix: `cols` is the
/// last axis, `rows` the product of the others, so a batch of feature vectors is [N, D] and an
/// image batch is an (N·H·W)×C matrix whose per-channel operations are row broadcasts and GEMMs.
/// Scalars are 1×1. Shapes are static; a plan for another batch size comes from building the
/// graph again.
public struct Tensor: Hashable, CustomStringConvertible, Sendable {
    public let id: Int
    public let shape: [Int]
    public let rows: Int
    public let cols: Int
    public var count: Int { rows * cols }
    public var description: String { "%\(id)[\(shape.map(String.init).joined(separator: "×"))]" }

    init(id: Int, shape: [Int]) {
        precondition(!shape.isEmpty && shape.allSatisfy { $0 >= 0 }, "tensor shape \(shape)")
        self.id = id
        self.shape = shape
        cols = shape[shape.count - 1]
        rows = shape.dropLast().reduce(1, *)
    }
}

/// How parameters are initialized, from the seeded Philox stream (identical on every backend).
public enum Initializer: Sendable, Equatable {
    case zeros
    case constant(Float)
    case uniform(bound: Float)
    case normal(std: Float)
    /// He/Kaiming uniform for ReLU nets: U(±√(6/fanIn)).
    case kaimingUniform(fanIn: Int)
    /// Glorot/Xavier uniform: U(±√(6/(fanIn+fanOut))).
    case glorotUniform(fanIn: Int, fanOut: Int)
}

/// Where a tensor's values come from.
public enum TensorRole: Equatable {
    /// Fed before each run (a mini-batch).
    case input(String)
    /// Trainable; lives in the ParameterStore across runs and plans.
    case parameter(String, Initializer)
    /// Fixed values (masks, permutations) uploaded once per plan.
    case constant(ConstantValues)
    /// Computed by a node.
    case computed
}

/// The values of a constant tensor: floats, or 32-bit indices for gathers.
public enum ConstantValues: Equatable {
    case floats([Float])
    case indices([Int32])
}

/// One operation of the graph: what it computes on each backend and its vector-Jacobian
/// product, in the style of MLX's primitives. New ops (fused coupling kernels, say) conform to
/// this protocol outside the module and join the graph like any built-in.
public protocol Primitive: CustomStringConvertible {
    /// Output shapes (rows, cols) for these inputs; throws on mismatched shapes.
    func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)]
    /// The outputs' full shapes. By default those of `outputShapes`, where an output with the
    /// first input's rows keeps that input's leading axes (element-wise ops keep an image an
    /// image; a product or slice along the last axis changes only the channels); ops that make
    /// other axes (convolutions, squeezes, reshapes) say so here.
    func outputTensorShapes(_ inputs: [Tensor]) throws -> [[Int]]
    /// Computes the outputs into their views. Outputs never alias inputs or each other.
    func evaluate(on backend: Backend, inputs: [Operand], outputs: [Operand]) throws
    /// Cotangents of the inputs given those of the outputs (nil: zero), built as new graph nodes.
    /// Return nil for an input that receives no gradient.
    func vjp(in graph: Graph, inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor?]) throws -> [Tensor?]
    /// Whether `backend` can run this op; when it cannot, the scheduler runs it on the CPU
    /// backend and copies its operands across.
    func supports(_ backend: Backend) -> Bool
}

public extension Primitive {
    func supports(_ backend: Backend) -> Bool { true }
    func outputTensorShapes(_ inputs: [Tensor]) throws -> [[Int]] {
        try outputShapes(inputs).map { shape in
            guard let first = inputs.first, first.rows == shape.rows, first.shape.count > 2 else {
                return [shape.rows, shape.cols]
            }
            return first.shape.dropLast() + [shape.cols]
        }
    }
}

/// A primitive that states its outputs' full shapes (`outputTensorShapes`: convolutions,
/// pooling); their (rows, cols) follow, every axis but the last being rows.
public protocol ShapedPrimitive: Primitive {}

public extension ShapedPrimitive {
    func outputShapes(_ inputs: [Tensor]) throws -> [(rows: Int, cols: Int)] {
        try outputTensorShapes(inputs).map { ($0.dropLast().reduce(1, *), $0[$0.count - 1]) }
    }
}

/// A primitive whose single output is its single input's storage under another shape (a
/// reshape): plans alias the output to the input instead of launching anything or copying.
public protocol ViewPrimitive: Primitive {}

/// A tensor's storage during evaluation: a view and the shape it holds.
public struct Operand {
    public let view: BufferView
    public let shape: [Int]
    public let rows: Int
    public let cols: Int
    public init(view: BufferView, shape: [Int]) {
        self.view = view
        self.shape = shape
        cols = shape.last ?? 1
        rows = shape.dropLast().reduce(1, *)
    }
    public init(view: BufferView, rows: Int, cols: Int) {
        self.init(view: view, shape: [rows, cols])
    }
}

/// An application of a primitive.
public struct Node {
    public let primitive: Primitive
    public let inputs: [Tensor]
    public let outputs: [Tensor]
}

/// A computation described once and planned for a backend by `Plan`. Building a graph computes
/// nothing: every builder method appends a node and returns its output tensor.
public final class Graph {
    public private(set) var nodes: [Node] = []
    public private(set) var roles: [TensorRole] = []
    /// Every tensor, indexed by id.
    public private(set) var tensors: [Tensor] = []
    /// The node that computes each tensor (nil for inputs, parameters and constants).
    public private(set) var producer: [Int?] = []

    public init() {}

    func newTensor(shape: [Int], role: TensorRole, producer node: Int?) -> Tensor {
        let tensor = Tensor(id: roles.count, shape: shape)
        tensors.append(tensor)
        roles.append(role)
        producer.append(node)
        return tensor
    }

    public func role(of tensor: Tensor) -> TensorRole { roles[tensor.id] }

    public func input(_ name: String, rows: Int, cols: Int) -> Tensor {
        input(name, shape: [rows, cols])
    }

    /// An input of any shape (a batch of images: [N, H, W, C]).
    public func input(_ name: String, shape: [Int]) -> Tensor {
        newTensor(shape: shape, role: .input(name), producer: nil)
    }

    /// A trainable parameter. Declaring a name again returns the same tensor, so that a layer
    /// used twice in one graph (forward and inverse, say) shares its weights.
    public func parameter(_ name: String, rows: Int, cols: Int, initializer: Initializer) -> Tensor {
        parameter(name, shape: [rows, cols], initializer: initializer)
    }

    /// A trainable parameter of any shape (a convolution's kh×kw×cin×cout weights); checkpoints
    /// store the shape as declared.
    public func parameter(_ name: String, shape: [Int], initializer: Initializer) -> Tensor {
        if let id = parameterIDs[name] {
            precondition(tensors[id].shape == shape, "parameter \(name) declared as \(tensors[id]) and as \(shape)")
            return tensors[id]
        }
        let tensor = newTensor(shape: shape, role: .parameter(name, initializer), producer: nil)
        parameterIDs[name] = tensor.id
        return tensor
    }
    private var parameterIDs: [String: Int] = [:]

    /// Whether this graph is a training step's: layers then build their training-only parts
    /// (dropout). The `Trainer` sets it on its step graphs; evaluation and sampling graphs leave it off.
    public var isTraining = false

    /// Dropout masks declared by the layers of a training graph: inputs that the `Trainer` fills
    /// before each step with keep-probability draws of 1/(1 − rate), from its seed and the step.
    public private(set) var dropoutMasks: [(tensor: Tensor, rate: Float)] = []

    /// `h` times a fresh dropout mask (see `dropoutMasks`) in a training graph with a rate above
    /// 0; `h` itself otherwise.
    public func dropout(_ h: Tensor, rate: Float) throws -> Tensor {
        precondition(rate >= 0 && rate < 1, "dropout rate \(rate) is not in [0, 1)")
        guard isTraining && rate > 0 else { return h }
        let mask = input("dropout.\(dropoutMasks.count)", shape: h.shape)
        dropoutMasks.append((mask, rate))
        return try multiply(h, mask)
    }

    /// Uniform noise inputs declared by the models (dequantization of discrete data), with their
    /// ranges: the `Trainer` fills them with fresh draws before every training step, and with
    /// fixed draws for validation, as `Plan.fillNoise` does for evaluation, so that a validation
    /// loss or a log-prob is reproducible.
    public private(set) var noiseInputs: [(tensor: Tensor, low: Float, high: Float)] = []

    /// An input of U(low, high) draws (see `noiseInputs`), in training and evaluation graphs alike.
    public func uniformNoise(shape: [Int], low: Float = 0, high: Float = 1) -> Tensor {
        let noise = input("noise.\(noiseInputs.count)", shape: shape)
        noiseInputs.append((noise, low, high))
        return noise
    }

    /// Inputs that the caller feeds from data: every input but the dropout masks and the noise.
    public var dataInputs: [(name: String, tensor: Tensor)] {
        let drawn = Set(dropoutMasks.map(\.tensor.id) + noiseInputs.map(\.tensor.id))
        return inputs.filter { !drawn.contains($0.tensor.id) }
    }

    public func constant(_ values: [Float], rows: Int, cols: Int) -> Tensor {
        constant(values, shape: [rows, cols])
    }

    public func constant(_ values: [Float], shape: [Int]) -> Tensor {
        precondition(values.count == shape.reduce(1, *), "constant of \(values.count) values for \(shape)")
        return newTensor(shape: shape, role: .constant(.floats(values)), producer: nil)
    }

    public func indices(_ values: [Int32]) -> Tensor {
        newTensor(shape: [1, values.count], role: .constant(.indices(values)), producer: nil)
    }

    /// The parameters in declaration order.
    public var parameters: [(name: String, tensor: Tensor, initializer: Initializer)] {
        roles.enumerated().compactMap { id, role in
            guard case let .parameter(name, initializer) = role else { return nil }
            return (name, tensors[id], initializer)
        }
    }

    public var inputs: [(name: String, tensor: Tensor)] {
        roles.enumerated().compactMap { id, role in
            guard case let .input(name) = role else { return nil }
            return (name, tensors[id])
        }
    }

    /// Appends a node; returns its outputs.
    @discardableResult
    public func apply(_ primitive: Primitive, _ inputs: [Tensor]) throws -> [Tensor] {
        let shapes = try primitive.outputTensorShapes(inputs)
        let index = nodes.count
        let outputs = shapes.map { newTensor(shape: $0, role: .computed, producer: index) }
        nodes.append(Node(primitive: primitive, inputs: inputs, outputs: outputs))
        return outputs
    }

    /// Appends a single-output node.
    public func apply1(_ primitive: Primitive, _ inputs: Tensor...) throws -> Tensor {
        try apply(primitive, inputs)[0]
    }
}
