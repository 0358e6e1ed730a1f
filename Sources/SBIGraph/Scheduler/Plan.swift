import SBIBackend

/// A graph compiled for one backend: the launches of the nodes that the requested outputs need,
/// in order, with every tensor assigned storage up front. `run()` replays the launches and
/// allocates nothing; it does not wait for the device (read an output for that).
///
/// Storage: parameters and their gradients live in a `ParameterStore`; constants in a buffer
/// uploaded once; inputs, intermediates and outputs in one arena, placed by `MemoryPlanner` so
/// that tensors whose lifetimes do not overlap share space. The output of a `ViewPrimitive` (a
/// reshape) is no launch and no storage of its own: it aliases its input's, whose lifetime then
/// extends to the view's last reader.
public final class Plan: CustomStringConvertible {
    public let backend: Backend
    public let graph: Graph
    public let parameters: ParameterStore?

    struct Launch {
        let node: Int
        let primitive: Primitive
        let inputs: [Operand]
        let outputs: [Operand]
        /// Set when the backend cannot run the primitive: it runs on the CPU, with operands copied.
        let fallback: Fallback?
    }

    struct Fallback {
        let cpu: CPUBackend
        let inputs: [Operand]
        let outputs: [Operand]
    }

    enum Placement: CustomStringConvertible {
        case arena(Int)
        case parameter(String)
        case gradient(String)
        case constant(Int)
        var description: String {
            switch self {
            case let .arena(offset): return "arena+\(offset)"
            case let .parameter(name): return "param \(name)"
            case let .gradient(name): return "grad \(name)"
            case let .constant(offset): return "const+\(offset)"
            }
        }
    }

    private var launches: [Launch] = []
    private var storage: [Int: Operand] = [:]
    private(set) var placement: [Int: Placement] = [:]
    /// Live range (first write step, last read step) of each arena tensor.
    private(set) var liveRanges: [Int: (first: Int, last: Int)] = [:]
    private let arena: Buffer?
    private let constants: Buffer?

    /// Bytes of the arena: the planned peak of inputs, intermediates and outputs.
    public let peakBytes: Int
    /// Bytes those tensors would take with a buffer each.
    public let naiveBytes: Int
    /// Tensors copied between the device and the CPU by fallback launches so far.
    public private(set) var crossDeviceCopies = 0
    public var launchCount: Int { launches.count }

    /// - Parameters:
    ///   - outputs: tensors to compute; they stay readable after `run()`.
    ///   - gradients: (gradient tensor, parameter name) pairs: each gradient is written into the
    ///     store's gradient buffer for that parameter.
    ///   - gradientBuffer: where the gradients go instead, laid out like the store's gradients
    ///     (a data-parallel replica's own).
    public init(graph: Graph, backend: Backend, outputs: [Tensor], parameters: ParameterStore? = nil,
                gradients: [(tensor: Tensor, parameter: String)] = [], gradientBuffer: Buffer? = nil) throws {
        self.backend = backend
        self.graph = graph
        self.parameters = parameters

        // Bind gradients to the store. A gradient that is not the sole output of a node of its own
        // (a parameter's, an input's, or one bound twice) gets a copy node to bind instead.
        var boundGradients: [Int: String] = [:]
        var targets = outputs
        for (tensor, name) in gradients {
            guard let store = parameters else { throw SBIError.invalidArgument("gradients need a ParameterStore") }
            _ = try store.entry(name)
            var t = tensor
            if graph.producer[t.id].map({ graph.nodes[$0].primitive is ViewPrimitive }) ?? true
                || boundGradients[t.id] != nil || outputs.contains(t) {
                t = try graph.copy(t)
            }
            boundGradients[t.id] = name
            targets.append(t)
        }

        // The nodes the targets need, in graph order (already topological).
        var needed = Set<Int>()
        var stack = targets.compactMap { graph.producer[$0.id] }
        while let node = stack.popLast() {
            guard needed.insert(node).inserted else { continue }
            for input in graph.nodes[node].inputs {
                if let p = graph.producer[input.id] { stack.append(p) }
            }
        }
        let order = needed.sorted()

        // Views: each view output maps to the tensor that owns its storage.
        var viewRoot: [Int: Int] = [:]
        for node in order where graph.nodes[node].primitive is ViewPrimitive {
            let n = graph.nodes[node]
            guard n.inputs.count == 1, n.outputs.count == 1, n.inputs[0].count == n.outputs[0].count else {
                throw SBIError.invalidArgument("view \(n.primitive) must map one input to one output of as many elements")
            }
            viewRoot[n.outputs[0].id] = viewRoot[n.inputs[0].id] ?? n.inputs[0].id
        }
        func root(_ t: Tensor) -> Tensor { viewRoot[t.id].map { graph.tensors[$0] } ?? t }

        // Live ranges of arena tensors.
        var first: [Int: Int] = [:], last: [Int: Int] = [:]
        var constantIDs: [Int] = []
        func touch(_ view: Tensor, at step: Int) throws {
            let t = root(view)
            switch graph.roles[t.id] {
            case .parameter(let name, _):
                guard let store = parameters else {
                    throw SBIError.invalidArgument("the graph uses parameter \(name) but the plan has no ParameterStore")
                }
                _ = try store.entry(name)
            case .constant:
                if !constantIDs.contains(t.id) { constantIDs.append(t.id) }
            case .input:
                first[t.id] = -1
                last[t.id] = max(last[t.id] ?? -1, step)
            case .computed:
                if boundGradients[t.id] == nil { last[t.id] = max(last[t.id] ?? step, step) }
            }
        }
        for (step, node) in order.enumerated() {
            for input in graph.nodes[node].inputs { try touch(input, at: step) }
            for output in graph.nodes[node].outputs where boundGradients[output.id] == nil && viewRoot[output.id] == nil {
                first[output.id] = step
                last[output.id] = max(last[output.id] ?? step, step)
            }
        }
        for t in outputs.map(root) {
            if case .input = graph.roles[t.id] { first[t.id] = -1 }
            if first[t.id] != nil { last[t.id] = Int.max }
        }
        for (_, input) in graph.inputs where first[input.id] == nil {
            // Inputs the targets do not need still get a slot, so that feeding them is harmless.
            first[input.id] = -1
            last[input.id] = -1
        }

        let intervals = first.keys.sorted().map { id in
            MemoryPlanner.Interval(tensor: id, size: graph.tensors[id].count, firstStep: first[id]!,
                                   lastStep: last[id] ?? first[id]!)
        }
        let (offsets, arenaSize) = MemoryPlanner.place(intervals)
        peakBytes = arenaSize * 4
        naiveBytes = intervals.reduce(0) { $0 + $1.size } * 4
        arena = arenaSize > 0 ? try backend.makeBuffer(count: arenaSize) : nil
        for interval in intervals {
            let t = graph.tensors[interval.tensor], offset = offsets[interval.tensor]!
            storage[t.id] = Operand(view: arena!.view(offset: offset, count: t.count), shape: t.shape)
            placement[t.id] = .arena(offset)
            liveRanges[t.id] = (interval.firstStep, interval.lastStep)
        }

        // Constants: one buffer, uploaded now.
        var constantOffsets: [Int: Int] = [:], constantSize = 0
        for id in constantIDs {
            constantOffsets[id] = constantSize
            constantSize = alignUp(constantSize + graph.tensors[id].count)
        }
        constants = constantSize > 0 ? try backend.makeBuffer(count: constantSize) : nil
        for id in constantIDs {
            let t = graph.tensors[id], view = constants!.view(offset: constantOffsets[id]!, count: t.count)
            guard case let .constant(values) = graph.roles[id] else { continue }
            switch values {
            case let .floats(v): try backend.upload(v, to: view)
            case let .indices(v): try backend.upload(v, to: view)
            }
            storage[id] = Operand(view: view, shape: t.shape)
            placement[id] = .constant(constantOffsets[id]!)
        }

        // Parameters and bound gradients: views into the store.
        for (id, role) in graph.roles.enumerated() {
            if case let .parameter(name, _) = role, let store = parameters, let view = try? store.value(name) {
                let t = graph.tensors[id]
                storage[id] = Operand(view: view, shape: t.shape)
                placement[id] = .parameter(name)
            }
        }
        for (id, name) in boundGradients {
            let t = graph.tensors[id]
            let entry = try parameters!.entry(name)
            let view = (gradientBuffer ?? parameters!.gradients).view(offset: entry.offset, count: entry.count)
            guard view.count == t.count else {
                throw SBIError.sizeMismatch("gradient \(t) bound to parameter \(name) of \(view.count) elements")
            }
            storage[id] = Operand(view: view, shape: t.shape)
            placement[id] = .gradient(name)
        }

        for id in viewRoot.keys.sorted() {
            guard let owner = storage[viewRoot[id]!] else { continue }
            storage[id] = Operand(view: owner.view, shape: graph.tensors[id].shape)
            placement[id] = placement[viewRoot[id]!]
        }

        // Launches, with CPU fallbacks where the backend cannot run a primitive.
        var cpu: CPUBackend?
        for node in order where !(graph.nodes[node].primitive is ViewPrimitive) {
            let n = graph.nodes[node]
            let inputs = n.inputs.map { storage[$0.id]! }, outputs = n.outputs.map { storage[$0.id]! }
            var fallback: Fallback?
            if !(backend is CPUBackend) && !n.primitive.supports(backend) {
                let host = cpu ?? CPUBackend()
                cpu = host
                func mirror(_ o: Operand) throws -> Operand {
                    Operand(view: try host.makeBuffer(count: o.view.count).view, shape: o.shape)
                }
                fallback = Fallback(cpu: host, inputs: try inputs.map(mirror), outputs: try outputs.map(mirror))
            }
            launches.append(Launch(node: node, primitive: n.primitive, inputs: inputs, outputs: outputs, fallback: fallback))
        }
    }

    /// The storage of a tensor of the plan (an input to fill, an output to read).
    public func view(of tensor: Tensor) throws -> BufferView {
        guard let operand = storage[tensor.id] else {
            throw SBIError.invalidArgument("tensor \(tensor) is not part of this plan")
        }
        return operand.view
    }

    /// Uploads values into an input.
    public func feed(_ tensor: Tensor, _ values: [Float]) throws {
        try backend.upload(values, to: try view(of: tensor))
    }

    /// Fills the graph's noise inputs (`Graph.noiseInputs`) with their uniform draws from the
    /// Philox stream (seed, offset + i), the inputs one after another; returns the draws taken.
    @discardableResult
    public func fillNoise(seed: UInt64, offset: UInt64) throws -> UInt64 {
        var position = offset
        for (tensor, low, high) in graph.noiseInputs {
            try backend.fillUniform(try view(of: tensor), seed: seed, offset: position, low: low, high: high)
            position &+= UInt64(tensor.count)
        }
        return position &- offset
    }

    /// Downloads a tensor (waits for the queued launches).
    public func read(_ tensor: Tensor) throws -> [Float] {
        try backend.download(try view(of: tensor))
    }

    /// Enqueues every launch of the plan.
    public func run() throws {
        for launch in launches {
            if let fallback = launch.fallback {
                for (device, host) in zip(launch.inputs, fallback.inputs) {
                    try fallback.cpu.upload(try backend.download(device.view), to: host.view)
                }
                try launch.primitive.evaluate(on: fallback.cpu, inputs: fallback.inputs, outputs: fallback.outputs)
                for (device, host) in zip(launch.outputs, fallback.outputs) {
                    try backend.upload(try fallback.cpu.download(host.view), to: device.view)
                }
                crossDeviceCopies += launch.inputs.count + launch.outputs.count
            } else {
                try launch.primitive.evaluate(on: backend, inputs: launch.inputs, outputs: launch.outputs)
            }
        }
    }

    /// Checks the memory plan: no two arena tensors that are live at the same step overlap.
    /// Returns the offending pairs (empty when the plan is sound).
    public func overlappingLiveTensors() -> [(Int, Int)] {
        var conflicts: [(Int, Int)] = []
        let ids = liveRanges.keys.sorted()
        for (i, a) in ids.enumerated() {
            guard case let .arena(oa)? = placement[a] else { continue }
            let ra = liveRanges[a]!, sa = graph.tensors[a].count
            for b in ids[(i + 1)...] {
                guard case let .arena(ob)? = placement[b] else { continue }
                let rb = liveRanges[b]!, sb = graph.tensors[b].count
                let liveTogether = ra.first <= rb.last && rb.first <= ra.last
                let shareMemory = oa < ob + sb && ob < oa + sa
                if liveTogether && shareMemory && sa > 0 && sb > 0 { conflicts.append((a, b)) }
            }
        }
        return conflicts
    }

    public var description: String {
        var lines = ["plan on \(backend.kind) (\(backend.deviceName)): \(launches.count) launches"]
        for (step, launch) in launches.enumerated() {
            let node = graph.nodes[launch.node]
            let outs = node.outputs.map { "\($0) @\(placement[$0.id]?.description ?? "?")" }.joined(separator: ", ")
            let ins = node.inputs.map(\.description).joined(separator: ", ")
            lines.append("  \(step): \(launch.primitive)\(launch.fallback == nil ? "" : " [CPU fallback]") \(outs) ← \(ins)")
        }
        lines.append("  arena peak \(peakBytes) bytes vs \(naiveBytes) bytes with a buffer per tensor"
                     + (naiveBytes > 0 ? String(format: " (%.1f%%)", 100 * Double(peakBytes) / Double(naiveBytes)) : ""))
        return lines.joined(separator: "\n")
    }
}

import Foundation
