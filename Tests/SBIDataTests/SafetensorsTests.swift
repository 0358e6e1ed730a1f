import Foundation
import XCTest
@testable import SBIData

final class SafetensorsTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("safetensors-tests-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: fixtures

    /// Float bit patterns that a lossy path would change: NaN payloads (quiet and signalling,
    /// both signs), ±0, ±∞, denormals, extremes.
    static let specialFloatBits: [UInt32] = [
        0x7fc0_0000, 0x7fc0_0001, 0x7f80_0001, 0xffc1_2345, 0x7fbf_ffff,
        0x0000_0000, 0x8000_0000, 0x7f80_0000, 0xff80_0000,
        0x0000_0001, 0x8000_0001, 0x007f_ffff, 0x0040_0000,
        0x7f7f_ffff, 0xff7f_ffff, 0x0080_0000, 0x3f80_0000, 0xbf80_0001,
    ]
    static let specialDoubleBits: [UInt64] = [
        0x7ff8_0000_0000_0000, 0x7ff8_0000_0000_0001, 0x7ff0_0000_0000_0001, 0xfff8_dead_beef_0001,
        0x0000_0000_0000_0000, 0x8000_0000_0000_0000, 0x0000_0000_0000_0001, 0x000f_ffff_ffff_ffff,
        0x7ff0_0000_0000_0000, 0xfff0_0000_0000_0000, 0x7fef_ffff_ffff_ffff, 0x3ff0_0000_0000_0001,
    ]

    private func sampleFile() throws -> SafetensorsFile {
        var file = SafetensorsFile()
        let floats = Self.specialFloatBits.map(Float.init(bitPattern:))
        file.tensors["weights.special"] = try SafetensorsTensor(floats: floats, shape: [3, 6])
        file.tensors["weights.ramp"] = try SafetensorsTensor(floats: (0..<24).map { Float($0) * 0.37 - 3 }, shape: [2, 3, 4])
        file.tensors["doubles"] = try SafetensorsTensor(doubles: Self.specialDoubleBits.map(Double.init(bitPattern:)),
                                                        shape: [12])
        file.tensors["indices"] = try SafetensorsTensor(int32s: [0, -1, .max, .min, 42, 7], shape: [2, 3])
        file.tensors["step"] = try SafetensorsTensor(int64s: [.max, .min, 0, 1 << 40], shape: [4])
        file.tensors["bytes"] = try SafetensorsTensor(uint8s: (0...255).map(UInt8.init), shape: [16, 16])
        file.tensors["empty"] = try SafetensorsTensor(floats: [], shape: [0])
        file.tensors["empty.matrix"] = try SafetensorsTensor(floats: [], shape: [3, 0])
        file.tensors["scalar"] = try SafetensorsTensor(floats: [2.5], shape: [])
        file.tensors["ünïcødé name"] = try SafetensorsTensor(int32s: [1], shape: [1, 1])
        file.metadata = [
            "format": "pt",
            "step": "1200",
            "quoted \"key\"": "back\\slash, newline\n, tab\t, bell\u{07}, ∑ unicode",
            "empty": "",
        ]
        return file
    }

    /// A file from its parts: the 8-byte length (the header's unless `declaredLength`), header, data.
    private func raw(_ header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> Data {
        var out = Data()
        let headerBytes = Data(header.utf8)
        withUnsafeBytes(of: (declaredLength ?? UInt64(headerBytes.count)).littleEndian) { out.append(contentsOf: $0) }
        out.append(headerBytes)
        out.append(contentsOf: data)
        return out
    }

    private func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    // MARK: round trips

    func testRoundTripIsBitExact() throws {
        let file = try sampleFile()
        let target = url("model.safetensors")
        try file.write(to: target)
        let back = try SafetensorsFile.read(from: target)
        XCTAssertEqual(back, file)
        XCTAssertEqual(back.metadata, file.metadata)
        XCTAssertEqual(Set(back.tensors.keys), Set(file.tensors.keys))

        let special = try XCTUnwrap(back["weights.special"])
        XCTAssertEqual(special.dtype, .f32)
        XCTAssertEqual(special.shape, [3, 6])
        XCTAssertEqual(try special.floats.map(\.bitPattern), Self.specialFloatBits)
        XCTAssertEqual(try XCTUnwrap(back["doubles"]).doubles.map(\.bitPattern), Self.specialDoubleBits)
        XCTAssertEqual(try XCTUnwrap(back["indices"]).int32s, [0, -1, .max, .min, 42, 7])
        XCTAssertEqual(try XCTUnwrap(back["step"]).int64s, [.max, .min, 0, 1 << 40])
        XCTAssertEqual(try XCTUnwrap(back["bytes"]).uint8s, (0...255).map(UInt8.init))
        XCTAssertEqual(try XCTUnwrap(back["empty"]).floats, [])
        XCTAssertEqual(try XCTUnwrap(back["empty.matrix"]).shape, [3, 0])
        XCTAssertEqual(try XCTUnwrap(back["scalar"]).shape, [])
        XCTAssertEqual(try XCTUnwrap(back["scalar"]).floats, [2.5])
        XCTAssertEqual(try XCTUnwrap(back["scalar"]).elementCount, 1)

        // In-memory encoding agrees with the file.
        XCTAssertEqual(try file.encoded(), try Data(contentsOf: target))
        XCTAssertEqual(try SafetensorsFile.decode(try file.encoded()), file)
    }

    func testEmptyFileRoundTrips() throws {
        let target = url("empty.safetensors")
        try SafetensorsFile().write(to: target)
        let bytes = try Data(contentsOf: target)
        XCTAssertEqual(bytes, raw("{}      "))  // "{}" padded to 8
        XCTAssertEqual(try SafetensorsFile.read(from: target), SafetensorsFile())
    }

    func testBytesAreDeterministicAndLaidOutLikeTheReference() throws {
        // The same contents inserted in different orders give the same bytes.
        let a = try sampleFile()
        var b = SafetensorsFile()
        for name in a.tensors.keys.sorted().reversed() { b.tensors[name] = a.tensors[name] }
        for key in a.metadata.keys.sorted().reversed() { b.metadata[key] = a.metadata[key] }
        XCTAssertEqual(try a.encoded(), try b.encoded())
        try a.write(to: url("1.safetensors"))
        try b.write(to: url("2.safetensors"))
        XCTAssertEqual(try Data(contentsOf: url("1.safetensors")), try Data(contentsOf: url("2.safetensors")))

        // Exact bytes of a small file: compact JSON, metadata first, names sorted, space padding.
        let small = SafetensorsFile(tensors: [
            "b": try SafetensorsTensor(int32s: [7], shape: [1]),
            "a": try SafetensorsTensor(floats: [1, -2], shape: [2]),
        ], metadata: ["z": "1", "format": "pt"])
        let header = #"{"__metadata__":{"format":"pt","z":"1"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I32","shape":[1],"data_offsets":[8,12]}}"#
        let padding = String(repeating: " ", count: (8 - header.utf8.count % 8) % 8)
        let expected = raw(header + padding, data: [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 7, 0, 0, 0])
        XCTAssertEqual(try small.encoded(), expected)
        XCTAssertEqual((try small.encoded().count - 12) % 8, 0, "data starts 8-byte aligned")

        // serde_json's string escapes.
        XCTAssertEqual(SafetensorsFile.jsonString("a\"b\\c\n\t\u{01}\u{7f}é"), #""a\"b\\c\n\t\u0001"# + "\u{7f}é\"")
    }

    func testWriteIsAtomicAndLeavesNoTemporaryFiles() throws {
        let target = url("checkpoint.safetensors")
        let first = try sampleFile()
        try first.write(to: target)
        var second = SafetensorsFile()
        second["only"] = try SafetensorsTensor(floats: [1, 2, 3], shape: [3])
        try second.write(to: target)  // replaces
        XCTAssertEqual(try SafetensorsFile.read(from: target), second)

        // A write that fails validation leaves the previous file untouched.
        var bad = second
        bad["broken"] = SafetensorsTensor(unchecked: .f32, shape: [4], data: Data(count: 3))
        XCTAssertThrowsError(try bad.write(to: target)) { error in
            let e = error as! SafetensorsError
            XCTAssertEqual(e.kind, .shapeMismatch)
            XCTAssertTrue(e.description.contains("tensor 'broken'"), e.description)
            XCTAssertTrue(e.description.contains("needs 16 bytes, data has 3"), e.description)
            XCTAssertTrue(e.description.contains(target.path), e.description)
        }
        var reserved = second
        reserved["__metadata__"] = try SafetensorsTensor(floats: [1], shape: [1])
        XCTAssertThrowsError(try reserved.write(to: target)) { error in
            XCTAssertEqual((error as? SafetensorsError)?.kind, .invalidTensor)
            XCTAssertTrue("\(error)".contains("reserved"), "\(error)")
        }
        XCTAssertEqual(try SafetensorsFile.read(from: target), second)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["checkpoint.safetensors"])

        // An unwritable location is an I/O error naming the file.
        let nowhere = directory.appendingPathComponent("missing/dir/x.safetensors")
        XCTAssertThrowsError(try second.write(to: nowhere)) { error in
            let e = error as! SafetensorsError
            XCTAssertEqual(e.kind, .io)
            XCTAssertTrue(e.description.contains(nowhere.path), e.description)
        }
        XCTAssertThrowsError(try SafetensorsFile.read(from: nowhere)) { error in
            XCTAssertEqual((error as? SafetensorsError)?.kind, .io)
            XCTAssertTrue("\(error)".contains(nowhere.path), "\(error)")
        }
    }

    // MARK: tensors

    func testTensorInitializersAndConversions() throws {
        XCTAssertThrowsError(try SafetensorsTensor(floats: [1, 2, 3], shape: [2, 2])) { error in
            XCTAssertEqual((error as? SafetensorsError)?.kind, .shapeMismatch)
            XCTAssertEqual("\(error)", "safetensors: shape [2, 2] of F32 needs 16 bytes, data has 12")
        }
        XCTAssertThrowsError(try SafetensorsTensor(floats: [], shape: [2, -1])) { error in
            XCTAssertEqual((error as? SafetensorsError)?.kind, .invalidTensor)
        }
        XCTAssertThrowsError(try SafetensorsTensor(dtype: .u8, shape: [Int.max, 3], data: Data())) { error in
            XCTAssertTrue("\(error)".contains("too many elements"), "\(error)")
        }

        let doubles = try SafetensorsTensor(doubles: [1.5, -0.0, 1e300, .nan], shape: [4])
        let asFloats = try doubles.floats
        XCTAssertEqual(Array(asFloats.prefix(2)), [1.5, -0.0])
        XCTAssertEqual(asFloats[1].sign, .minus)
        XCTAssertEqual(asFloats[2], .infinity)
        XCTAssertTrue(asFloats[3].isNaN)

        let ints = try SafetensorsTensor(int32s: [1, 2], shape: [2])
        XCTAssertThrowsError(try ints.floats) { error in
            XCTAssertEqual((error as? SafetensorsError)?.kind, .typeMismatch)
            XCTAssertEqual("\(error)", "safetensors: a I32 tensor cannot be read as Float; expected F32, F64, F16 or BF16")
        }
        XCTAssertEqual(try ints.int64s, [1, 2])
        XCTAssertThrowsError(try SafetensorsTensor(floats: [1], shape: [1]).int32s)
        XCTAssertThrowsError(try ints.uint8s)

        // F16 / BF16: 1, -2, 65504, smallest subnormal, +∞, NaN; BF16 1.0 and -∞.
        let half = try SafetensorsTensor(dtype: .f16, shape: [6],
                                         data: Data([0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00, 0x00, 0x7c, 0x01, 0x7e]))
        let h = try half.floats
        XCTAssertEqual(Array(h.prefix(5)), [1, -2, 65504, 0x1p-24, .infinity])
        XCTAssertTrue(h[5].isNaN)
        let brain = try SafetensorsTensor(dtype: .bf16, shape: [2], data: Data([0x80, 0x3f, 0x80, 0xff]))
        XCTAssertEqual(try brain.floats, [1, -.infinity])

        let big = try SafetensorsTensor(dtype: .u64, shape: [1], data: Data([0, 0, 0, 0, 0, 0, 0, 0x80]))
        XCTAssertThrowsError(try big.int64s) { error in
            XCTAssertTrue("\(error)".contains("9223372036854775808"), "\(error)")
        }
        let signed = try SafetensorsTensor(dtype: .i8, shape: [2], data: Data([0xff, 0x7f]))
        XCTAssertEqual(try signed.int32s, [-1, 127])
    }

    // MARK: corruption corpus

    private func assertRefused(_ bytes: Data, _ kind: SafetensorsError.Kind, _ fragments: [String],
                               file: StaticString = #filePath, line: UInt = #line) {
        let target = url("corrupt-\(UUID().uuidString).safetensors")
        XCTAssertNoThrow(try bytes.write(to: target), file: file, line: line)
        XCTAssertThrowsError(try SafetensorsFile.read(from: target), file: file, line: line) { error in
            guard let e = error as? SafetensorsError else {
                return XCTFail("not a SafetensorsError: \(error)", file: file, line: line)
            }
            let text = e.description
            XCTAssertEqual(e.kind, kind, text, file: file, line: line)
            XCTAssertEqual(e.path, target.path, file: file, line: line)
            XCTAssertTrue(text.hasPrefix("safetensors file \(target.path): "), text, file: file, line: line)
            XCTAssertFalse(text.contains("\n"), "one line: \(text)", file: file, line: line)
            for fragment in fragments {
                XCTAssertTrue(text.contains(fragment), "'\(fragment)' missing from: \(text)", file: file, line: line)
            }
        }
    }

    private func entry(_ name: String, _ dtype: String = "F32", shape: String, offsets: String) -> String {
        #""\#(name)":{"dtype":"\#(dtype)","shape":\#(shape),"data_offsets":\#(offsets)}"#
    }

    func testTruncatedAndOversizedHeadersAreRefused() throws {
        assertRefused(Data(), .truncated, ["truncated: 0 bytes, expected at least 8"])
        assertRefused(Data([1, 0, 0, 0, 0]), .truncated, ["truncated: 5 bytes"])
        assertRefused(raw("{}", declaredLength: 1000), .truncated,
                      ["header length is 1000 bytes but only 2 follow the length field"])
        assertRefused(raw("{}", declaredLength: 1 << 40), .headerTooLarge,
                      ["header length 1099511627776 exceeds the limit of 100000000 bytes"])
        assertRefused(raw("{}", declaredLength: .max), .headerTooLarge, ["18446744073709551615"])

        // Every proper prefix of a valid file is refused, never read as something else.
        let good = try sampleFile().encoded()
        for length in 0 ..< good.count {
            XCTAssertThrowsError(try SafetensorsFile.decode(good.prefix(length)), "prefix of \(length) bytes")
        }
        // A file cut inside its data names the tensor that runs past the end.
        assertRefused(good.prefix(good.count - 1), .invalidOffsets, ["reach past the end of the", "truncated file?"])
    }

    func testMalformedHeadersAreRefused() throws {
        assertRefused(raw(#"{"a": {"dtype": "F32", "#), .invalidHeader, ["header is not valid JSON"])
        assertRefused(raw(#"{"a": 1} trailing"#), .invalidHeader, ["header is not valid JSON"])
        assertRefused(raw("[1, 2]"), .invalidHeader, ["header must be a JSON object starting with '{', found '['"])
        var invalidUTF8 = raw("{\"\u{1}\":1}")
        invalidUTF8[10] = 0xff
        assertRefused(invalidUTF8, .invalidHeader, ["header is not valid UTF-8"])
        assertRefused(raw(#"{"w": [1, 2]}"#), .invalidHeader,
                      ["tensor 'w': expected an object with dtype, shape and data_offsets, found an array"])
        assertRefused(raw(#"{"w": {"shape": [1], "data_offsets": [0, 4]}}"#, data: [0, 0, 0, 0]),
                      .invalidHeader, ["tensor 'w': missing field 'dtype'"])
        assertRefused(raw(#"{"w": {"dtype": "F32", "data_offsets": [0, 4]}}"#, data: [0, 0, 0, 0]),
                      .invalidHeader, ["tensor 'w': missing field 'shape'"])
        assertRefused(raw(#"{"w": {"dtype": "F32", "shape": [1]}}"#, data: [0, 0, 0, 0]),
                      .invalidHeader, ["tensor 'w': missing field 'data_offsets'"])
        assertRefused(raw(#"{"w": {"dtype": 32, "shape": [1], "data_offsets": [0, 4]}}"#, data: [0, 0, 0, 0]),
                      .invalidHeader, ["tensor 'w': field 'dtype' must be a string, found a number"])
        for shape in ["[2.5]", "[-1]", "[true]", #"["2"]"#, "2", "[2.0]", "[18446744073709551616]"] {
            assertRefused(raw("{" + entry("w", shape: shape, offsets: "[0, 8]") + "}", data: Array(repeating: 0, count: 8)),
                          .invalidHeader, ["tensor 'w': field 'shape' must be an array of non-negative integers"])
        }
        assertRefused(raw(#"{"__metadata__": ["a"]}"#), .invalidHeader,
                      ["'__metadata__' must be an object of strings, found an array"])
        assertRefused(raw(#"{"__metadata__": {"step": 12}}"#), .invalidHeader,
                      ["'__metadata__' entry 'step' must be a string, found a number"])
    }

    func testUnknownDTypeIsRefused() throws {
        assertRefused(raw("{" + entry("w", "F128", shape: "[1]", offsets: "[0, 16]") + "}",
                          data: Array(repeating: 0, count: 16)),
                      .unknownDType, ["tensor 'w': unknown dtype 'F128'; expected one of BOOL, U8", "F32", "F64"])
        assertRefused(raw("{" + entry("w", "f32", shape: "[1]", offsets: "[0, 4]") + "}", data: [0, 0, 0, 0]),
                      .unknownDType, ["unknown dtype 'f32'"])
    }

    func testShapeAndOffsetMismatchesAreRefused() throws {
        assertRefused(raw("{" + entry("w", shape: "[3]", offsets: "[0, 8]") + "}", data: Array(repeating: 0, count: 8)),
                      .shapeMismatch, ["tensor 'w': shape [3] of F32 needs 12 bytes but data_offsets [0, 8] span 8"])
        assertRefused(raw("{" + entry("w", "F64", shape: "[2, 2]", offsets: "[0, 16]") + "}", data: Array(repeating: 0, count: 16)),
                      .shapeMismatch, ["shape [2, 2] of F64 needs 32 bytes"])
        assertRefused(raw("{" + entry("w", shape: "[1]", offsets: "[8, 4]") + "}", data: Array(repeating: 0, count: 8)),
                      .invalidOffsets, ["tensor 'w': field 'data_offsets' must be [begin, end] with 0 ≤ begin ≤ end, found [8,4]"])
        assertRefused(raw("{" + entry("w", shape: "[1]", offsets: "[0, 4, 8]") + "}", data: Array(repeating: 0, count: 8)),
                      .invalidOffsets, ["field 'data_offsets' must be [begin, end]"])
        assertRefused(raw("{" + entry("w", shape: "[1]", offsets: "[-4, 0]") + "}"), .invalidOffsets, ["data_offsets"])
    }

    func testOutOfRangeOverlappingAndUncoveredOffsetsAreRefused() throws {
        let eight = [UInt8](repeating: 0, count: 8), twelve = [UInt8](repeating: 0, count: 12)
        // Out of range.
        assertRefused(raw("{" + entry("w", shape: "[4]", offsets: "[0, 16]") + "}", data: eight),
                      .invalidOffsets, ["tensor 'w': data_offsets [0, 16] reach past the end of the 8-byte data region"])
        assertRefused(raw("{" + entry("w", shape: "[1]", offsets: "[1000000, 1000004]") + "}", data: eight),
                      .invalidOffsets, ["data_offsets [1000000, 1000004] reach past the end"])
        // Overlap.
        assertRefused(raw("{" + entry("a", shape: "[2]", offsets: "[0, 8]") + "," + entry("b", shape: "[2]", offsets: "[4, 12]") + "}",
                          data: twelve),
                      .invalidOffsets, ["tensor 'b': data_offsets [4, 12] overlap tensor 'a' at [0, 8]"])
        assertRefused(raw("{" + entry("a", shape: "[2]", offsets: "[0, 8]") + "," + entry("b", shape: "[2]", offsets: "[0, 8]") + "}",
                          data: eight),
                      .invalidOffsets, ["tensor 'b': data_offsets [0, 8] overlap tensor 'a' at [0, 8]"])
        // An empty tensor inside another one's bytes.
        assertRefused(raw("{" + entry("a", shape: "[2]", offsets: "[0, 8]") + "," + entry("e", shape: "[0]", offsets: "[4, 4]") + "}",
                          data: eight),
                      .invalidOffsets, ["tensor 'e': data_offsets [4, 4] overlap tensor 'a' at [0, 8]"])
        // Gap, and bytes left over at the end.
        assertRefused(raw("{" + entry("a", shape: "[1]", offsets: "[0, 4]") + "," + entry("b", shape: "[1]", offsets: "[8, 12]") + "}",
                          data: twelve),
                      .invalidOffsets, ["data bytes 4..<8 belong to no tensor", "tensor 'b' starts at 8, expected 4"])
        assertRefused(raw("{" + entry("a", shape: "[2]", offsets: "[0, 8]") + "}", data: twelve),
                      .invalidOffsets, ["data bytes 8..<12 belong to no tensor"])
        assertRefused(raw("{" + entry("a", shape: "[1]", offsets: "[4, 8]") + "}", data: eight),
                      .invalidOffsets, ["data bytes 0..<4 belong to no tensor"])
        // Empty tensors at the boundaries are fine, and tensors may be listed out of order.
        let ok = raw("{" + entry("z", shape: "[1]", offsets: "[0, 4]") + "," + entry("a", shape: "[1]", offsets: "[4, 8]") + ","
                     + entry("e", shape: "[0, 5]", offsets: "[8, 8]") + "," + entry("f", shape: "[0]", offsets: "[0, 0]") + "}",
                     data: [0, 0, 0x80, 0x3f, 0, 0, 0, 0x40])
        let file = try SafetensorsFile.decode(ok)
        XCTAssertEqual(try file["z"]?.floats, [1])
        XCTAssertEqual(try file["a"]?.floats, [2])
        XCTAssertEqual(file["e"]?.shape, [0, 5])
        XCTAssertEqual(file["f"]?.elementCount, 0)
    }

    func testRandomCorruptionNeverCrashes() throws {
        // Flip bytes of a valid file: each variant is either refused cleanly or decodes to a valid file.
        let good = try sampleFile().encoded()
        var generator = SplitMix(seed: 7)
        for _ in 0 ..< 400 {
            var bytes = good
            for _ in 0 ..< 1 + Int(generator.next() % 3) {
                let position = Int(generator.next() % UInt64(min(bytes.count, 8 + 400)))
                bytes[position] = UInt8(truncatingIfNeeded: generator.next())
            }
            if let file = try? SafetensorsFile.decode(bytes) {
                XCTAssertNoThrow(try SafetensorsFile.decode(try file.encoded()))
            }
        }
    }

    // MARK: interoperability with the Python reference implementation

    private func python(_ script: String, _ arguments: [String] = []) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    private func requirePythonSafetensors() throws {
        guard let result = try? python("import safetensors, safetensors.numpy, numpy"), result.status == 0 else {
            throw XCTSkip("python3 with the safetensors and numpy modules is not available")
        }
    }

    static let numpyNames: [SafetensorsDType: String] = [
        .f32: "float32", .f64: "float64", .i32: "int32", .i64: "int64", .u8: "uint8",
    ]

    func testPythonReadsWhatSwiftWrites() throws {
        try requirePythonSafetensors()
        let file = try sampleFile()
        let target = url("from-swift.safetensors")
        try file.write(to: target)
        let script = """
        import json, sys
        from safetensors import safe_open
        from safetensors.numpy import load_file
        tensors = load_file(sys.argv[1])
        with safe_open(sys.argv[1], framework="np") as f:
            metadata = f.metadata()
        out = {name: [str(a.dtype), list(a.shape), a.tobytes().hex()] for name, a in tensors.items()}
        print(json.dumps({"tensors": out, "metadata": metadata}))
        """
        let (status, output) = try python(script, [target.path])
        XCTAssertEqual(status, 0, output)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], output)
        let tensors = try XCTUnwrap(json["tensors"] as? [String: [Any]])
        XCTAssertEqual(Set(tensors.keys), Set(file.tensors.keys))
        for (name, tensor) in file.tensors {
            let entry = try XCTUnwrap(tensors[name], name)
            XCTAssertEqual(entry[0] as? String, Self.numpyNames[tensor.dtype], name)
            XCTAssertEqual(entry[1] as? [Int], tensor.shape, name)
            XCTAssertEqual(entry[2] as? String, tensor.data.map { String(format: "%02x", $0) }.joined(), name)
        }
        XCTAssertEqual(json["metadata"] as? [String: String], file.metadata)
    }

    func testSwiftReadsWhatPythonWrites() throws {
        try requirePythonSafetensors()
        let target = url("from-python.safetensors")
        let floatBits = Self.specialFloatBits.map(String.init).joined(separator: ",")
        let doubleBits = Self.specialDoubleBits.map(String.init).joined(separator: ",")
        let script = """
        import sys, numpy as np
        from safetensors.numpy import save_file
        save_file({
            "special": np.array([\(floatBits)], dtype=np.uint32).view(np.float32).reshape(3, 6),
            "doubles": np.array([\(doubleBits)], dtype=np.uint64).view(np.float64),
            "ramp": (np.arange(24, dtype=np.float32) * np.float32(0.25)).reshape(2, 3, 4),
            "indices": np.array([[0, -1, 2**31 - 1], [-2**31, 42, 7]], dtype=np.int32),
            "step": np.array([2**63 - 1, -2**63, 0, 2**40], dtype=np.int64),
            "bytes": np.arange(256, dtype=np.uint8).reshape(16, 16),
            "empty": np.zeros((3, 0), dtype=np.float32),
            "scalar": np.array(2.5, dtype=np.float32),
        }, sys.argv[1], metadata={"format": "np", "note": "written by python"})
        """
        let (status, output) = try python(script, [target.path])
        XCTAssertEqual(status, 0, output)
        let file = try SafetensorsFile.read(from: target)
        XCTAssertEqual(file.metadata, ["format": "np", "note": "written by python"])
        XCTAssertEqual(Set(file.tensors.keys), ["special", "doubles", "ramp", "indices", "step", "bytes", "empty", "scalar"])
        let special = try XCTUnwrap(file["special"])
        XCTAssertEqual(special.shape, [3, 6])
        XCTAssertEqual(try special.floats.map(\.bitPattern), Self.specialFloatBits)
        XCTAssertEqual(try XCTUnwrap(file["doubles"]).doubles.map(\.bitPattern), Self.specialDoubleBits)
        XCTAssertEqual(try XCTUnwrap(file["ramp"]).floats, (0..<24).map { Float($0) * 0.25 })
        XCTAssertEqual(try XCTUnwrap(file["ramp"]).shape, [2, 3, 4])
        XCTAssertEqual(try XCTUnwrap(file["indices"]).int32s, [0, -1, .max, .min, 42, 7])
        XCTAssertEqual(try XCTUnwrap(file["step"]).int64s, [.max, .min, 0, 1 << 40])
        XCTAssertEqual(try XCTUnwrap(file["bytes"]).uint8s, (0...255).map(UInt8.init))
        XCTAssertEqual(try XCTUnwrap(file["empty"]).shape, [3, 0])
        XCTAssertEqual(try XCTUnwrap(file["scalar"]).shape, [])
        XCTAssertEqual(try XCTUnwrap(file["scalar"]).floats, [2.5])
    }

    func testSwiftBytesMatchTheReferenceWriter() throws {
        // For one dtype and at most one metadata key the reference writer is deterministic too
        // (it orders by dtype, then name; metadata is a hash map): the bytes must be identical.
        try requirePythonSafetensors()
        let target = url("reference.safetensors")
        let script = """
        import sys, numpy as np
        from safetensors.numpy import save_file
        save_file({
            "layer.1.weight": np.arange(6, dtype=np.float32).reshape(2, 3) - np.float32(2.5),
            "layer.0.bias": np.array([1.5, -0.0], dtype=np.float32),
            "b": np.zeros((0, 4), dtype=np.float32),
        }, sys.argv[1], metadata={"format": "pt"})
        """
        let (status, output) = try python(script, [target.path])
        XCTAssertEqual(status, 0, output)
        let file = SafetensorsFile(tensors: [
            "layer.1.weight": try SafetensorsTensor(floats: (0..<6).map { Float($0) - 2.5 }, shape: [2, 3]),
            "layer.0.bias": try SafetensorsTensor(floats: [1.5, -0.0], shape: [2]),
            "b": try SafetensorsTensor(floats: [], shape: [0, 4]),
        ], metadata: ["format": "pt"])
        XCTAssertEqual(try file.encoded(), try Data(contentsOf: target))
    }
}

/// A tiny deterministic generator for the corruption test.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

extension SafetensorsTensor {
    /// A tensor that skips the initializer's validation, to test the writer's own checks.
    init(unchecked dtype: SafetensorsDType, shape: [Int], data: Data) {
        self = try! SafetensorsTensor(dtype: dtype, shape: [0], data: Data())
        self.dtype = dtype
        self.shape = shape
        self.data = data
    }
}
