import XCTest
@testable import SBIBackend

final class SmokeTests: XCTestCase {
    func testOpenCLGemmAndUnary() throws {
        guard let device = OpenCLDevice.all().first else { throw XCTSkip("no OpenCL device") }
        let cl = try OpenCLBackend(device: device)
        let cpu = CPUBackend()
        for backend in [cl as Backend, cpu] {
            let a = try backend.makeBuffer([1, 2, 3, 4, 5, 6] as [Float])  // 2×3
            let b = try backend.makeBuffer([1, 0, 0, 1, 1, 1] as [Float])  // 3×2
            let c = try backend.makeBuffer(count: 4)
            try backend.gemm(m: 2, n: 2, k: 3, a: a.view, b: b.view, c: c.view)
            XCTAssertEqual(try backend.download(c.view), [4, 5, 10, 11], backend.kind)
            try backend.unary(.relu, c.view, c.view)
            let r = try backend.makeBuffer(count: 9)
            try backend.fillRandomBits(r.view, seed: 42, offset: 3)
            let bits = try backend.download(r.view, as: UInt32.self)
            XCTAssertEqual(bits[0], Philox.word(at: 3, seed: 42))
        }
    }
}
