import SBIBackend

public extension Graph {
    /// Reverse-mode differentiation: appends the backward nodes of the scalar `loss` and returns
    /// d loss / d t for each tensor of `wrt` (a zero tensor where the loss does not depend on it).
    /// Cotangents of a tensor that feeds several nodes are summed.
    func gradients(of loss: Tensor, with wrt: [Tensor]) throws -> [Tensor] {
        guard loss.rows == 1, loss.cols == 1 else {
            throw SBIError.invalidArgument("gradients need a scalar (1×1) loss, got \(loss)")
        }
        let forwardNodes = nodes.count
        // Tensors that depend on some tensor of `wrt`: only they need cotangents.
        var dependsOnWrt = Set(wrt.map(\.id))
        for node in nodes where node.inputs.contains(where: { dependsOnWrt.contains($0.id) }) {
            for output in node.outputs { dependsOnWrt.insert(output.id) }
        }
        var cotangent: [Int: Tensor] = [loss.id: try fill(rows: 1, cols: 1, value: 1)]
        for index in stride(from: forwardNodes - 1, through: 0, by: -1) {
            let node = nodes[index]
            let incoming = node.outputs.map { cotangent[$0.id] }
            guard incoming.contains(where: { $0 != nil }),
                  node.inputs.contains(where: { dependsOnWrt.contains($0.id) }) else { continue }
            let outgoing = try node.primitive.vjp(in: self, inputs: node.inputs, outputs: node.outputs,
                                                  cotangents: incoming)
            for (input, contribution) in zip(node.inputs, outgoing) {
                guard let contribution, dependsOnWrt.contains(input.id) else { continue }
                if let existing = cotangent[input.id] {
                    cotangent[input.id] = try add(existing, contribution)
                } else {
                    cotangent[input.id] = contribution
                }
            }
        }
        return try wrt.map { t in try cotangent[t.id] ?? zeros(rows: t.rows, cols: t.cols) }
    }
}
