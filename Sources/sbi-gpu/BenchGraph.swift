import ArgumentParser
import Foundation
import SBIBackend
import SBIGraph

/// `sbi-gpu bench graph`: what the scheduler costs — per-launch dispatch overhead, and the
/// memory plan of an MLP training step against a buffer per tensor.
struct BenchGraph: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph",
        abstract: "Per-launch dispatch overhead and the planned peak memory of an MLP training step.",
        discussion: """
            Dispatch overhead: a plan of --launches tiny element-wise launches (one float each) is \
            replayed --repeats times; the median time per replay, synchronize included, divided by \
            the launch count. Memory: the forward and backward plan of an MLP of --layers layers of \
            width --width at batch --batch; planned arena peak against one buffer per tensor.
            """)

    @Option(name: .long, parsing: .singleValue, help: "Backend: an OpenCL device index, `cpu` or `auto`; repeat for several. Default: the CPU backend and every OpenCL device.")
    var device: [DeviceSelection] = []
    @Option(name: .long, help: "Launches in the overhead plan.") var launches = 2000
    @Option(name: .long, help: "Timed replays; the median is reported.") var repeats = 7
    @Option(name: .long, help: "MLP depth for the memory plan.") var layers = 8
    @Option(name: .long, help: "MLP width for the memory plan.") var width = 1024
    @Option(name: .long, help: "Batch size for the memory plan.") var batch = 256
    @Flag(name: .long, help: "Print JSON instead of a table.") var json = false

    func run() throws {
        var selections = device
        if selections.isEmpty { selections = [.cpu] + OpenCLDevice.all().map { .openCL($0.index) } }
        var rows: [[String: Any]] = []
        for selection in selections {
            let (backend, notice) = try selection.makeBackend()
            if let notice { printError("notice: \(notice)") }
            printError("measuring \(backend.kind) (\(backend.deviceName))…")
            let overhead = try dispatchOverhead(backend)
            let (peak, naive) = try mlpPlanMemory(backend)
            rows.append(["backend": backend.kind, "device": backend.deviceName,
                         "launchMicroseconds": overhead, "launches": launches,
                         "mlpLayers": layers, "mlpWidth": width, "batch": batch,
                         "plannedPeakBytes": peak, "naiveBytes": naive])
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("backend  device                                  µs/launch   MLP \(layers)×\(width) @\(batch): planned peak / naive")
        for row in rows {
            let peak = Double(row["plannedPeakBytes"] as! Int) / 1_048_576, naive = Double(row["naiveBytes"] as! Int) / 1_048_576
            let name = (row["backend"] as! String).padding(toLength: 8, withPad: " ", startingAt: 0)
            let device = String((row["device"] as! String).prefix(40)).padding(toLength: 40, withPad: " ", startingAt: 0)
            print(name + " " + device + String(format: " %8.2f   %8.1f MiB / %8.1f MiB (%.0f%%)",
                                                row["launchMicroseconds"] as! Double, peak, naive, 100 * peak / naive))
        }
    }

    func dispatchOverhead(_ backend: Backend) throws -> Double {
        let graph = Graph()
        var h = graph.input("x", rows: 1, cols: 1)
        let x = h
        for i in 0..<launches { h = try graph.affine(h, scale: i % 2 == 0 ? 1 : -1, shift: 0) }
        let plan = try Plan(graph: graph, backend: backend, outputs: [h])
        try plan.feed(x, [1])
        try plan.run()  // compiles the kernel
        try backend.synchronize()
        var times: [Double] = []
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            try plan.run()
            try backend.synchronize()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e3)
        }
        return times.sorted()[times.count / 2] / Double(launches)
    }

    func mlpPlanMemory(_ backend: Backend) throws -> (Int, Int) {
        let graph = Graph()
        let x = graph.input("x", rows: batch, cols: width)
        let y = try MLP(name: "mlp", widths: Array(repeating: width, count: layers + 1))(x, in: graph)
        let loss = try graph.mean(try graph.square(y))
        let parameters = graph.parameters
        let gradients = try graph.gradients(of: loss, with: parameters.map(\.tensor))
        let store = try ParameterStore(graph: graph, backend: backend, seed: 0)
        let plan = try Plan(graph: graph, backend: backend, outputs: [loss], parameters: store,
                            gradients: zip(gradients, parameters).map { ($0, $1.name) })
        return (plan.peakBytes, plan.naiveBytes)
    }
}
