import CBLAS
import SBIBackend
import Foundation

/// One GEMM product to time: C[m×n] = op(A)[m×k]·op(B)[k×n].
public struct GEMMShape: Hashable, Sendable, CustomStringConvertible {
    public var m, n, k: Int
    public var transposeA, transposeB: Bool
    public init(m: Int, n: Int, k: Int, transposeA: Bool = false, transposeB: Bool = false) {
        (self.m, self.n, self.k, self.transposeA, self.transposeB) = (m, n, k, transposeA, transposeB)
    }
    public static func square(_ size: Int) -> GEMMShape { GEMMShape(m: size, n: size, k: size) }

    /// Square products 256…2048 and the flow's layer products: a batch of 256 through
    /// 784→1024, 1024→1024 and 1024→1568 dense layers.
    public static let standard: [GEMMShape] = [256, 512, 1024, 2048].map(square) + [
        GEMMShape(m: 256, n: 1024, k: 784),
        GEMMShape(m: 256, n: 1024, k: 1024),
        GEMMShape(m: 256, n: 1568, k: 1024),
    ]

    /// "1024" (square) or "MxNxK" (C is M×N, the inner dimension K), each positive.
    public init?(parsing text: String) {
        let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.allSatisfy({ $0 != nil && $0! > 0 }) else { return nil }
        switch parts.count {
        case 1: self = .square(parts[0]!)
        case 3: self.init(m: parts[0]!, n: parts[1]!, k: parts[2]!)
        default: return nil
        }
    }

    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
    /// "NN", "NT", "TN" or "TT".
    public var operation: String { (transposeA ? "T" : "N") + (transposeB ? "T" : "N") }
    public var description: String { "\(m)×\(n)×\(k) \(operation)" }
}

/// One measurement: the backend's median time and that of `cblas_sgemm` called directly on the
/// same operands in the same process.
public struct GEMMTiming: Codable, Sendable {
    public var backend: String
    public var device: String
    public var m, n, k: Int
    public var transA, transB: Bool
    public var gflops: Double
    public var cblasGflops: Double
    public var ratioToCBLAS: Double
    public var seconds: Double
    public var cblasSeconds: Double
    public var repeats: Int
}

/// Times GEMM on a backend against raw `cblas_sgemm`.
///
/// Both are timed on the same machine in the same loop, interleaved repeat by repeat (backend,
/// then cblas); GFLOP/s come from the median time of each, and `ratioToCBLAS` is the median of
/// the per-repeat ratios cblas time / backend time. On a shared or frequency-scaling machine the
/// two runs of a pair see the same conditions, so the paired ratio is much steadier than either
/// number. Each backend call is followed by `synchronize()` before the clock stops.
public enum GEMMBenchmark {
    /// OpenBLAS thread count of the raw baseline; the CPU backend uses the same by default.
    public static var cblasThreads: Int { ProcessInfo.processInfo.activeProcessorCount }

    public static func measure(_ backend: Backend, _ shape: GEMMShape, warmups: Int = 1, repeats: Int = 5,
                               seed: UInt64 = 1) throws -> GEMMTiming {
        precondition(repeats > 0 && warmups >= 0)
        let (m, n, k) = (shape.m, shape.n, shape.k)
        // Values in [-1, 1): no denormals or overflow to slow either side down.
        let hostA = randomFloats(m * k, seed: seed), hostB = randomFloats(k * n, seed: seed &+ 1)
        let a = try backend.makeBuffer(hostA), b = try backend.makeBuffer(hostB)
        let c = try backend.makeBuffer(count: m * n)
        var rawC = [Float](repeating: 0, count: m * n)

        func runBackend() throws {
            try backend.gemm(transposeA: shape.transposeA, transposeB: shape.transposeB, m: m, n: n, k: k,
                             alpha: 1, a: a.view, b: b.view, beta: 0, c: c.view, epilogue: .none)
            try backend.synchronize()
        }
        func runCBLAS() {
            hostA.withUnsafeBufferPointer { pa in
                hostB.withUnsafeBufferPointer { pb in
                    rawC.withUnsafeMutableBufferPointer { pc in
                        cblas_sgemm(CblasRowMajor, shape.transposeA ? CblasTrans : CblasNoTrans,
                                    shape.transposeB ? CblasTrans : CblasNoTrans,
                                    Int32(m), Int32(n), Int32(k), 1, pa.baseAddress, Int32(shape.transposeA ? m : k),
                                    pb.baseAddress, Int32(shape.transposeB ? k : n), 0, pc.baseAddress, Int32(n))
                    }
                }
            }
        }

        // A process-wide setting; the CPU backend's default is the same count.
        openblas_set_num_threads(Int32(cblasThreads))
        // Warm-up: kernel compilation, OpenBLAS thread start-up, first touch of the memory.
        for _ in 0..<warmups {
            try runBackend()
            runCBLAS()
        }
        var times: [Double] = [], cblasTimes: [Double] = []
        for _ in 0..<repeats {
            times.append(try seconds(runBackend))
            cblasTimes.append(seconds(runCBLAS))
        }
        let t = median(times), tc = median(cblasTimes)
        let ratio = median(zip(cblasTimes, times).map { $0 / $1 })
        return GEMMTiming(backend: backend.kind, device: backend.deviceName, m: m, n: n, k: k,
                          transA: shape.transposeA, transB: shape.transposeB,
                          gflops: shape.flops / t / 1e9, cblasGflops: shape.flops / tc / 1e9,
                          ratioToCBLAS: ratio, seconds: t, cblasSeconds: tc, repeats: repeats)
    }

    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    static func randomFloats(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            // xorshift64*: plenty for benchmark operands.
            state ^= state >> 12; state ^= state << 25; state ^= state >> 27
            let bits = (state &* 0x2545_F491_4F6C_DD1D) >> 40  // 24 bits
            return Float(bits) / Float(1 << 23) - 1
        }
    }
}
