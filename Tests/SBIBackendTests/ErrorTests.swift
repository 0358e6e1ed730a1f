import Foundation
import XCTest
import SBITestSupport
@testable import SBIBackend

// The error paths: device selection, kernel compile failures, size mismatches, buffers of
// another backend. Each bad call must throw the stated SBIError case on both backends.

final class ErrorTests: XCTestCase {
    typealias F = ElemFixture

    /// Runs `body`, which must throw an SBIError accepted by `matches`; returns the error.
    @discardableResult
    func expectError(_ what: String, _ matches: (SBIError) -> Bool, file: StaticString = #filePath, line: UInt = #line,
                     _ body: () throws -> Void) -> SBIError? {
        do {
            try body()
            XCTFail("\(what): no error thrown", file: file, line: line)
        } catch let error as SBIError {
            XCTAssertTrue(matches(error), "\(what): unexpected error \(error)", file: file, line: line)
            XCTAssertFalse(error.description.isEmpty, file: file, line: line)
            return error
        } catch {
            XCTFail("\(what): not an SBIError: \(error)", file: file, line: line)
        }
        return nil
    }

    static func isSizeMismatch(_ e: SBIError) -> Bool { if case .sizeMismatch = e { return true }; return false }
    static func isForeign(_ e: SBIError) -> Bool { if case .foreignBuffer = e { return true }; return false }
    static func isInvalid(_ e: SBIError) -> Bool { if case .invalidArgument = e { return true }; return false }

    // MARK: devices

    func testDeviceIndexOutOfRangeListsTheDevices() throws {
        let devices = OpenCLDevice.all()
        for make in [{ _ = try OpenCLBackend(deviceIndex: 99) }, { _ = try DeviceSelection.openCL(99).makeBackend() },
                     { _ = try OpenCLBackend(deviceIndex: devices.count) }] {
            let error = expectError("device out of range", {
                if case let .deviceOutOfRange(requested, available) = $0 {
                    return (requested == 99 || requested == devices.count) && available.count == devices.count
                }
                return false
            }, make)
            let text = error?.description ?? ""
            if devices.isEmpty {
                XCTAssertTrue(text.contains("no OpenCL devices are present"), text)
            }
            for device in devices {
                XCTAssertTrue(text.contains("\(device.index): \(device.name)"), "'\(text)' lacks device \(device.index)")
            }
            XCTAssertTrue(text.contains("CPU backend"), text)
            XCTAssertEqual((error as Error?)?.localizedDescription, error?.description)
        }
    }

    func testDeviceSelectionMakesBackends() throws {
        let (cpu, cpuNotice) = try DeviceSelection.cpu.makeBackend()
        XCTAssertEqual(cpu.kind, "cpu")
        XCTAssertNil(cpuNotice)
        // auto: the first GPU, else the CPU backend with a notice saying why.
        let (auto, notice) = try DeviceSelection.automatic.makeBackend()
        if OpenCLDevice.all().contains(where: \.isGPU) {
            XCTAssertEqual(auto.kind, "opencl")
        } else {
            XCTAssertEqual(auto.kind, "cpu")
            XCTAssertNotNil(notice)
        }
        if !OpenCLDevice.all().isEmpty {
            let (zero, _) = try DeviceSelection.openCL(0).makeBackend()
            XCTAssertEqual(zero.kind, "opencl")
        }
    }

    // MARK: kernel compilation

    func testProgramThatDoesNotCompileCarriesTheCompilerLog() throws {
        let cl = try F.openCL()
        let source = """
            __kernel void broken(__global float* y) {
                y[get_global_id(0)] = undeclared_identifier_xyz * 2.0f;
            }
            """
        let error = expectError("bad kernel", {
            if case let .programBuild(program, _, log) = $0 {
                return program == "broken_program" && log.contains("undeclared_identifier_xyz")
            }
            return false
        }) { try cl.buildProgram(name: "broken_program", source: source) }
        XCTAssertTrue(error?.description.contains("broken_program") ?? false)
        XCTAssertTrue(error?.description.contains("undeclared_identifier_xyz") ?? false)
        // A good program on the same backend still builds afterwards.
        try cl.buildProgram(name: "fine_program", source: "__kernel void fine(__global float* y) { y[0] = 1.0f; }")
    }

    // MARK: size mismatches

    func testSizeMismatchesOnBothBackends() throws {
        for backend in try backends() {
            let b4 = try backend.makeBuffer(count: 4), b6 = try backend.makeBuffer(count: 6)
            let b12 = try backend.makeBuffer(count: 12)
            let k = backend.kind
            expectError("\(k) upload", Self.isSizeMismatch) { try backend.upload([1, 2, 3, 4, 5] as [Float], to: b4.view) }
            expectError("\(k) upload into a view", Self.isSizeMismatch) {
                try backend.upload([1, 2, 3] as [Float], to: b6.view(offset: 2, count: 4))
            }
            expectError("\(k) unary x/y", Self.isSizeMismatch) { try backend.unary(.exp, b4.view, b6.view) }
            expectError("\(k) affine x/y", Self.isSizeMismatch) { try backend.affine(b6.view, b4.view, scale: 1, shift: 0) }
            expectError("\(k) copy", Self.isSizeMismatch) { try backend.copy(b4.view, to: b6.view) }
            // a is 3×4; b too small for each broadcast.
            expectError("\(k) binary none", Self.isSizeMismatch) {
                try backend.binary(.add, b12.view, b6.view, b12.view, rows: 3, cols: 4, broadcast: .none)
            }
            expectError("\(k) binary row", Self.isSizeMismatch) {
                try backend.binary(.add, b12.view, b12.view(offset: 0, count: 3), b12.view, rows: 3, cols: 4, broadcast: .row)
            }
            expectError("\(k) binary column", Self.isSizeMismatch) {
                try backend.binary(.add, b12.view, b12.view(offset: 0, count: 2), b12.view, rows: 3, cols: 4, broadcast: .column)
            }
            expectError("\(k) binary output", Self.isSizeMismatch) {
                try backend.binary(.add, b12.view, b4.view, b6.view, rows: 3, cols: 4, broadcast: .row)
            }
            expectError("\(k) sumRows", Self.isSizeMismatch) { try backend.sumRows(b12.view, rows: 3, cols: 4, b4.view) }
            expectError("\(k) sumColumns", Self.isSizeMismatch) { try backend.sumColumns(b12.view, rows: 3, cols: 4, b6.view) }
            expectError("\(k) logSumExpRows", Self.isSizeMismatch) { try backend.logSumExpRows(b6.view, rows: 3, cols: 4, b4.view) }
            // gemm: A must be m×k = 2×3 = 6 elements; 4 given.
            expectError("\(k) gemm A", Self.isSizeMismatch) {
                try backend.gemm(m: 2, n: 2, k: 3, a: b4.view, b: b6.view, c: b4.view)
            }
            // Not a size mismatch but refused alike: 8-byte elements, overlapping copy.
            expectError("\(k) 8-byte upload", Self.isInvalid) { try backend.upload([1.0, 2.0] as [Double], to: b4.view(offset: 0, count: 2)) }
            expectError("\(k) overlapping copy", Self.isInvalid) {
                try backend.copy(b12.view(offset: 0, count: 8), to: b12.view(offset: 4, count: 8))
            }
        }
        try skipIfNoOpenCL()
    }

    // MARK: foreign buffers

    func testBufferOfAnotherBackendIsRefused() throws {
        let otherCPU = CPUBackend()
        var pairs: [(Backend, Backend)] = [(F.cpu, otherCPU)]
        if let cl = try? F.openCL() { pairs += [(F.cpu, cl), (cl, F.cpu)] }
        for (backend, other) in pairs {
            let mine = try backend.makeBuffer(count: 8)
            let foreign = try other.makeBuffer(count: 8)
            let k = "\(backend.kind) with a buffer of \(other.kind)"
            let empty = foreign.view(offset: 0, count: 0)
            expectError("\(k): upload", Self.isForeign) { try backend.upload([Float](repeating: 0, count: 8), to: foreign.view) }
            expectError("\(k): empty upload", Self.isForeign) { try backend.upload([Float](), to: empty) }
            expectError("\(k): download", Self.isForeign) { _ = try backend.download(foreign.view) }
            expectError("\(k): empty download", Self.isForeign) { _ = try backend.download(empty) }
            expectError("\(k): copy", Self.isForeign) { try backend.copy(foreign.view, to: mine.view) }
            expectError("\(k): empty copy", Self.isForeign) { try backend.copy(empty, to: mine.view(offset: 0, count: 0)) }
            expectError("\(k): fill", Self.isForeign) { try backend.fill(foreign.view, value: 1) }
            expectError("\(k): empty fill", Self.isForeign) { try backend.fill(empty, value: 1) }
            expectError("\(k): unary", Self.isForeign) { try backend.unary(.relu, mine.view, foreign.view) }
            expectError("\(k): affine", Self.isForeign) { try backend.affine(foreign.view, mine.view, scale: 1, shift: 1) }
            expectError("\(k): binary", Self.isForeign) {
                try backend.binary(.add, mine.view, foreign.view, mine.view, rows: 2, cols: 4, broadcast: .none)
            }
            expectError("\(k): sumRows", Self.isForeign) { try backend.sumRows(foreign.view, rows: 2, cols: 4, mine.view(offset: 0, count: 2)) }
            expectError("\(k): sumColumns", Self.isForeign) { try backend.sumColumns(mine.view, rows: 2, cols: 4, foreign.view(offset: 0, count: 4)) }
            expectError("\(k): logSumExpRows", Self.isForeign) { try backend.logSumExpRows(foreign.view, rows: 4, cols: 2, mine.view(offset: 0, count: 4)) }
            expectError("\(k): fillUniform", Self.isForeign) { try backend.fillUniform(foreign.view, seed: 1, offset: 0, low: 0, high: 1) }
            expectError("\(k): fillNormal", Self.isForeign) { try backend.fillNormal(empty, seed: 1, offset: 0, mean: 0, std: 1) }
            expectError("\(k): fillRandomBits", Self.isForeign) { try backend.fillRandomBits(foreign.view, seed: 1, offset: 0) }
            expectError("\(k): gemm", Self.isForeign) {
                try backend.gemm(m: 2, n: 2, k: 2, a: foreign.view(offset: 0, count: 4), b: mine.view(offset: 0, count: 4),
                                 c: mine.view(offset: 4, count: 4))
            }
        }
        try skipIfNoOpenCL()
    }

    func testErrorDescriptions() {
        XCTAssertEqual(openCLErrorName(-11), "CL_BUILD_PROGRAM_FAILURE")
        XCTAssertEqual(openCLErrorName(-9999), "unknown OpenCL error")
        XCTAssertEqual(SBIError.openCL(call: "clFinish", code: -36).description,
                       "clFinish failed with CL_INVALID_COMMAND_QUEUE (-36)")
        XCTAssertEqual(SBIError.sizeMismatch("x").description, "size mismatch: x")
        let error: Error = SBIError.foreignBuffer("operand")
        XCTAssertEqual(error.localizedDescription, "buffer belongs to another backend: operand")
        let out = SBIError.deviceOutOfRange(requested: 3, available: ["0: A", "1: B"]).description
        XCTAssertTrue(out.contains("device 3 does not exist") && out.contains("0: A; 1: B"), out)
    }

    // MARK: helpers

    func backends() throws -> [Backend] { try TestBackends.all() }

    func skipIfNoOpenCL() throws { _ = try TestBackends.openCL() }
}
