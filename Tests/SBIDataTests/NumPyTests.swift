import Foundation
import XCTest
@testable import SBIData

final class NumPyTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("numpy-tests-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    // MARK: fixtures

    static let shapes: [[Int]] = [[], [0], [1], [7], [3, 4], [2, 3, 4], [0, 5], [4, 0, 2], [1, 1, 1, 1]]

    /// Deterministic values of every dtype, the same formulas the Python interop scripts use.
    static func sample(_ dtype: NumPyDType, shape: [Int]) throws -> NumPyArray {
        let n = shape.reduce(1, *)
        switch dtype {
        case .float32: return try NumPyArray(floats: (0 ..< n).map { Float($0) * 0.37 - 3 }, shape: shape)
        case .float64: return try NumPyArray(doubles: (0 ..< n).map { Double($0) * 0.123456789 - 7 }, shape: shape)
        case .uint8: return try NumPyArray(uint8s: (0 ..< n).map { UInt8(($0 * 37 + 11) % 256) }, shape: shape)
        case .int32: return try NumPyArray(int32s: (0 ..< n).map { Int32($0 * 1_000_003 - 500) }, shape: shape)
        case .int64: return try NumPyArray(int64s: (0 ..< n).map { Int64($0) * 3_000_000_007 - 9 }, shape: shape)
        case .bool: return try NumPyArray(bools: (0 ..< n).map { $0 % 3 == 0 }, shape: shape)
        }
    }

    static let specialFloatBits: [UInt32] = [
        0x7fc0_0000, 0x7fc0_0001, 0x7f80_0001, 0xffc1_2345, 0x0000_0000, 0x8000_0000, 0x7f80_0000, 0xff80_0000,
        0x0000_0001, 0x8000_0001, 0x007f_ffff, 0x7f7f_ffff, 0xff7f_ffff, 0x3f80_0000, 0xbf80_0001,
    ]
    static let specialDoubleBits: [UInt64] = [
        0x7ff8_0000_0000_0000, 0x7ff8_0000_0000_0001, 0x7ff0_0000_0000_0001, 0xfff8_dead_beef_0001,
        0x0000_0000_0000_0000, 0x8000_0000_0000_0000, 0x0000_0000_0000_0001, 0x7ff0_0000_0000_0000,
        0xfff0_0000_0000_0000, 0x7fef_ffff_ffff_ffff, 0x3ff0_0000_0000_0001,
    ]

    /// A .npy file with a hand-written header (padded to 64 bytes unless `align` is false).
    private func npy(header: String, version: UInt8 = 1, data: Data, align: Bool = true) -> Data {
        var text = Array(header.utf8)
        let lengthSize = version == 1 ? 2 : 4
        if align {
            let unpadded = 6 + 2 + lengthSize + text.count + 1
            text += [UInt8](repeating: 0x20, count: (64 - unpadded % 64) % 64) + [0x0a]
        }
        var out = Data(NumPy.magic + [version, 0])
        for i in 0 ..< lengthSize { out.append(UInt8(truncatingIfNeeded: text.count >> (8 * i))) }
        out.append(contentsOf: text)
        out.append(data)
        return out
    }

    private func floatBytes(_ values: [Float]) -> Data { values.withUnsafeBytes { Data($0) } }

    /// Asserts that `body` throws a one-line NumPyError of `kind` about `field` whose description
    /// contains every string of `contains`.
    private func assertRefused(_ kind: NumPyError.Kind, field: String, _ contains: [String], _ label: String = "",
                               file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("\(label): expected a \(kind) error, nothing was thrown", file: file, line: line)
        } catch let error as NumPyError {
            let text = error.description
            XCTAssertEqual(error.kind, kind, "\(label): \(text)", file: file, line: line)
            XCTAssertEqual(error.field, field, "\(label): \(text)", file: file, line: line)
            XCTAssertFalse(text.contains("\n"), "\(label): not one line: \(text)", file: file, line: line)
            for part in contains {
                XCTAssertTrue(text.contains(part), "\(label): '\(text)' lacks '\(part)'", file: file, line: line)
            }
        } catch {
            XCTFail("\(label): expected NumPyError, got \(error)", file: file, line: line)
        }
    }

    // MARK: .npy round trips

    func testRoundTripEveryDTypeAndShape() throws {
        for dtype in NumPyDType.allCases {
            for shape in Self.shapes {
                let array = try Self.sample(dtype, shape: shape)
                let label = "\(dtype) \(shape)"
                let bytes = try NumPy.encode(array)
                XCTAssertEqual(Array(bytes.prefix(8)), NumPy.magic + [1, 0], label)
                let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
                let dataOffset = 10 + headerLength
                XCTAssertEqual(dataOffset % 64, 0, label)
                XCTAssertEqual(bytes[dataOffset - 1], 0x0a, label)
                XCTAssertEqual(bytes.count, dataOffset + array.elementCount * dtype.itemSize, label)
                let header = String(decoding: bytes[10 ..< dataOffset], as: UTF8.self)
                XCTAssertTrue(header.hasPrefix("{'descr': '\(dtype.descr)', 'fortran_order': False, 'shape': "
                                               + NumPyArray.shapeText(shape) + ", }"), label)

                XCTAssertEqual(try NumPy.decode(bytes), array, label)
                let target = url("rt-\(dtype)-\(shape.map(String.init).joined(separator: "x")).npy")
                try NumPy.write(array, to: target)
                XCTAssertEqual(try Data(contentsOf: target), bytes, label)
                let read = try NumPy.read(target)
                XCTAssertEqual(read, array, label)
                XCTAssertEqual(read.shape, shape, label)
                XCTAssertEqual(read.dtype, dtype, label)
                XCTAssertFalse(read.isMemoryMapped, label)
            }
        }
    }

    func testSpecialValuesSurviveBitExactly() throws {
        let floats = try NumPyArray(floats: Self.specialFloatBits.map(Float.init(bitPattern:)), shape: [3, 5])
        let doubles = try NumPyArray(doubles: Self.specialDoubleBits.map(Double.init(bitPattern:)))
        let ints = try NumPyArray(int64s: [.min, .max, 0, -1])
        let int32s = try NumPyArray(int32s: [.min, .max, 0, -1], shape: [2, 2])
        for array in [floats, doubles, ints, int32s] {
            let target = url("special.npy")
            try NumPy.write(array, to: target)
            XCTAssertEqual(try NumPy.read(target), array)
        }
        XCTAssertEqual(try NumPy.decode(NumPy.encode(floats)).floats().map(\.bitPattern), Self.specialFloatBits)
        XCTAssertEqual(try NumPy.decode(NumPy.encode(doubles)).doubles().map(\.bitPattern), Self.specialDoubleBits)
    }

    func testTypedAccessorsConvert() throws {
        let u8 = try NumPyArray(uint8s: [0, 7, 255])
        XCTAssertEqual(try u8.floats(), [0, 7, 255])
        XCTAssertEqual(try u8.doubles(), [0, 7, 255])
        XCTAssertEqual(try u8.int32s(), [0, 7, 255])
        XCTAssertEqual(try u8.int64s(), [0, 7, 255])
        XCTAssertEqual(try u8.uint8s(), [0, 7, 255])

        let flags = try NumPyArray(bools: [true, false, true])
        XCTAssertEqual(try flags.floats(), [1, 0, 1])
        XCTAssertEqual(try flags.int32s(), [1, 0, 1])
        XCTAssertEqual(try flags.bools(), [true, false, true])

        let i64 = try NumPyArray(int64s: [-3, 1 << 40])
        XCTAssertEqual(try i64.doubles(), [-3, 1_099_511_627_776])
        XCTAssertEqual(try i64.floats(), [-3, 1_099_511_627_776])
        assertRefused(.typeMismatch, field: "data", ["int64 value 1099511627776 at flat index 1", "Int32"]) {
            _ = try i64.int32s()
        }

        let f64 = try NumPyArray(doubles: [1, -2, 2.5], shape: [3])
        XCTAssertEqual(try f64.floats(), [1, -2, 2.5])
        assertRefused(.typeMismatch, field: "data", ["float64 value 2.5 at flat index 2"]) { _ = try f64.int64s() }
        XCTAssertEqual(try NumPyArray(doubles: [1, -2, 4]).int32s(), [1, -2, 4])
        assertRefused(.typeMismatch, field: "data", ["value -2.0", "UInt8"]) { _ = try f64.uint8s() }
        assertRefused(.typeMismatch, field: "dtype", ["float64 array cannot be read as Bool"]) { _ = try f64.bools() }

        let f32 = try NumPyArray([Float(1.5), -0.25], shape: [2, 1])
        XCTAssertEqual(try f32.doubles(), [1.5, -0.25])
        XCTAssertEqual(f32.bytes.count, 8)
        XCTAssertEqual(try NumPyArray(int32s: [5, -6]).floats(), [5, -6])

        assertRefused(.sizeMismatch, field: "data", ["shape (2, 2) of float32 needs 16 bytes, data has 12"]) {
            _ = try NumPyArray(floats: [1, 2, 3], shape: [2, 2])
        }
        assertRefused(.invalidArray, field: "shape", ["negative dimension"]) {
            _ = try NumPyArray(floats: [], shape: [-1, 0])
        }
        assertRefused(.invalidArray, field: "shape", ["too many"]) {
            _ = try NumPyArray(dtype: .float64, shape: [1 << 40, 1 << 40], data: Data())
        }
    }

    // MARK: header syntax

    func testHeaderSyntaxVariants() throws {
        let values: [Float] = [1, 2, 3, 4, 5, 6]
        let data = floatBytes(values)
        let headers = [
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
            "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 3)}",
            "{ 'shape' : ( 2 , 3 , ) , 'fortran_order':False,'descr':'<f4' }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }",  // Python 2
            "{u'descr': u'<f4', 'fortran_order': False, 'shape': (2, 3)}",
            "{'descr':\t'<f4',\n 'fortran_order': False,\r\n 'shape': (2,\n 3)}",
            "  {'descr': '\\x3cf4', 'fortran_order': False, 'shape': (2, 3)}  ",  // escape, outer spaces
            "{'descr': 'f4', 'fortran_order': False, 'shape': (2, 3)}",  // native order
            "{'descr': '=f4', 'fortran_order': False, 'shape': (2, 3)}",
        ]
        for header in headers {
            let array = try NumPy.decode(npy(header: header, data: data), path: "variant.npy")
            XCTAssertEqual(array.shape, [2, 3], header)
            XCTAssertEqual(try array.floats(), values, header)
        }
        // Unaligned data (another writer, no padding) is fine.
        let unaligned = npy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)}", data: data, align: false)
        XCTAssertEqual(try NumPy.decode(unaligned).floats(), values)

        // Scalars, one-element tuples, versions 2.0 and 3.0.
        let scalar = try NumPy.decode(npy(header: "{'descr': '<f8', 'fortran_order': False, 'shape': ()}",
                                          data: [2.5].withUnsafeBytes { Data($0) }))
        XCTAssertEqual(scalar.shape, [])
        XCTAssertEqual(try scalar.doubles(), [2.5])
        for version: UInt8 in [2, 3] {
            let array = try NumPy.decode(npy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }",
                                             version: version, data: data))
            XCTAssertEqual(array.shape, [6])
            XCTAssertEqual(try array.floats(), values)
        }
        let byteOrders = ["|u1", "<u1", ">u1", "u1", "|b1"]
        for descr in byteOrders {
            let array = try NumPy.decode(npy(header: "{'descr': '\(descr)', 'fortran_order': False, 'shape': (3,)}",
                                             data: Data([0, 1, 200])))
            XCTAssertEqual(try array.int32s(), [0, 1, 200], descr)
        }
    }

    func testBigEndianIsConverted() throws {
        func big<T: FixedWidthInteger>(_ values: [T]) -> Data {
            values.map(\.bigEndian).withUnsafeBytes { Data($0) }
        }
        let f4 = try NumPy.decode(npy(header: "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }",
                                      data: big([Float(1.5), -2, 0.1, .infinity].map(\.bitPattern))))
        XCTAssertEqual(f4.dtype, .float32)
        XCTAssertEqual(try f4.floats(), [1.5, -2, 0.1, .infinity])
        XCTAssertEqual(f4, try NumPyArray(floats: [1.5, -2, 0.1, .infinity], shape: [2, 2]))
        let f8 = try NumPy.decode(npy(header: "{'descr': '>f8', 'fortran_order': False, 'shape': (3,), }",
                                      data: big([1e300, -0.5, 3].map { Double($0).bitPattern })))
        XCTAssertEqual(try f8.doubles(), [1e300, -0.5, 3])
        let i4 = try NumPy.decode(npy(header: "{'descr': '>i4', 'fortran_order': False, 'shape': (3,), }",
                                      data: big([Int32.min, -1, 123_456])))
        XCTAssertEqual(try i4.int32s(), [Int32.min, -1, 123_456])
        let i8 = try NumPy.decode(npy(header: "{'descr': '>i8', 'fortran_order': False, 'shape': (2,), }",
                                      data: big([Int64.max, -5])))
        XCTAssertEqual(try i8.int64s(), [Int64.max, -5])
        // Written back little-endian, as np.save would write the converted array.
        XCTAssertEqual(try NumPy.decode(NumPy.encode(i8)), i8)
        XCTAssertTrue(String(decoding: try NumPy.encode(i8), as: UTF8.self).contains("'<i8'"))
    }

    func testVersion2HeaderWhenVersion1CannotHoldIt() throws {
        // 22,000 dimensions of 1: the header text is over 65,535 bytes.
        let array = try NumPyArray(floats: [42], shape: [Int](repeating: 1, count: 22_000))
        let bytes = try NumPy.encode(array)
        XCTAssertEqual(Array(bytes[6 ..< 8]), [2, 0])
        let headerLength = (0 ..< 4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
        XCTAssertGreaterThan(headerLength, 65_535)
        XCTAssertEqual((12 + headerLength) % 64, 0)
        let target = url("v2.npy")
        try NumPy.write(array, to: target)
        let read = try NumPy.read(target)
        XCTAssertEqual(read, array)
        XCTAssertEqual(try read.floats(), [42])
    }

    // MARK: malformed files

    func testMalformedNpyCorpusIsRefused() throws {
        let good = try NumPy.encode(try Self.sample(.float32, shape: [2, 3]))
        let data = floatBytes([1, 2, 3, 4, 5, 6])
        func header(_ text: String) -> Data { npy(header: text, data: data) }
        func with(descr: String = "'<f4'", fortran: String = "False", shape: String = "(2, 3)") -> Data {
            header("{'descr': \(descr), 'fortran_order': \(fortran), 'shape': \(shape), }")
        }
        var badVersion = good
        badVersion[6] = 4
        var badMagic = good
        badMagic[5] = UInt8(ascii: "Z")
        let unsupported = "expected float32, float64, uint8, int32, int64 or bool"
        let corpus: [(String, Data, NumPyError.Kind, String, [String])] = [
            ("empty", Data(), .truncated, "magic", ["file is 0 bytes"]),
            ("bad magic", badMagic, .badMagic, "magic", ["expected the file to start with \\x93NUMPY", "NUMPZ"]),
            ("zip", Data([0x50, 0x4B, 3, 4, 0, 0, 0, 0]), .badMagic, "magic", ["zip archive"]),
            ("short magic", Data(NumPy.magic.prefix(4)), .truncated, "magic", ["4 bytes"]),
            ("truncated preamble", good.prefix(9), .truncated, "header length", ["9 bytes"]),
            ("truncated header", good.prefix(40), .truncated, "header", ["truncated file"]),
            ("truncated data", good.prefix(good.count - 5), .truncated, "data",
             ["shape (2, 3) of float32 needs 24 bytes but only 19 follow the header"]),
            ("trailing data", good + Data([1, 2, 3, 4]), .sizeMismatch, "data", ["4 trailing bytes"]),
            ("shape/data mismatch", with(shape: "(5,)"), .sizeMismatch, "data",
             ["shape (5,) of float32 needs 20 bytes but 24 follow"]),
            ("shape larger than data", with(shape: "(3, 3)"), .truncated, "data", ["needs 36 bytes but only 24"]),
            ("version", badVersion, .unsupportedVersion, "version", ["4.0 is not supported; expected 1.0, 2.0 or 3.0"]),
            ("not a dict", header("['descr', '<f4']"), .invalidHeader, "header", ["expected a dict", "found a list"]),
            ("syntax", header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3}"), .invalidHeader, "header",
             ["not a Python dict literal", "expected ',' or ')'"]),
            ("unterminated string", header("{'descr': '<f4}"), .invalidHeader, "header", ["not a Python dict literal"]),
            ("junk after dict", header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)} x"),
             .invalidHeader, "header", ["after the literal"]),
            ("unknown name", header("{'descr': '<f4', 'fortran_order': false, 'shape': (2, 3)}"), .invalidHeader,
             "header", ["unexpected name 'false'"]),
            ("missing key", header("{'descr': '<f4', 'fortran_order': False}"), .invalidHeader, "header",
             ["lacks key 'shape'"]),
            ("extra key", header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}"),
             .invalidHeader, "header", ["unexpected key 'extra'"]),
            ("duplicate key", header("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}"),
             .invalidHeader, "header", ["appears twice"]),
            ("fortran order", with(fortran: "True"), .fortranOrder, "fortran_order",
             ["Fortran-order", "expected fortran_order False"]),
            ("fortran_order not a bool", with(fortran: "1"), .invalidHeader, "fortran_order",
             ["expected True or False, found 1"]),
            ("object dtype", with(descr: "'|O'"), .unsupportedDType, "descr", ["object arrays (dtype |O)", unsupported]),
            ("complex dtype", with(descr: "'>c8'"), .unsupportedDType, "descr",
             ["descr: dtype >c8 is not supported; " + unsupported]),
            ("float16", with(descr: "'<f2'"), .unsupportedDType, "descr", ["dtype <f2 is not supported"]),
            ("unicode strings", with(descr: "'<U10'"), .unsupportedDType, "descr", ["dtype <U10 is not supported"]),
            ("no byte order", with(descr: "'|f4'"), .unsupportedDType, "descr", ["no byte order", "'<' or '>'"]),
            ("structured", with(descr: "[('x', '<f4'), ('y', '<f4')]"), .unsupportedDType, "descr",
             ["structured dtypes are not supported"]),
            ("descr not a string", with(descr: "4"), .invalidHeader, "descr", ["expected a dtype string"]),
            ("shape list", with(shape: "[2, 3]"), .invalidHeader, "shape", ["expected a tuple", "found [2, 3]"]),
            ("shape int", with(shape: "(6)"), .invalidHeader, "shape", ["expected a tuple", "found 6"]),
            ("negative dimension", with(shape: "(2, -3)"), .invalidHeader, "shape", ["negative dimension"]),
            ("float dimension", with(shape: "(2.0, 3)"), .invalidHeader, "shape", ["found (2.0, 3)"]),
            ("huge dimension", with(shape: "(123456789012345678901234567890,)"), .invalidHeader, "shape",
             ["expected a tuple of non-negative integers"]),
            ("overflowing shape", with(shape: "(9223372036854775807, 2)"), .invalidHeader, "shape", ["too many"]),
            ("invalid UTF-8 in version 3.0",
             npy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)}~", version: 3, data: data)
                .replacingBytes("}~", with: [0x7D, 0xFF]),
             .invalidHeader, "header", ["not valid UTF-8"]),
        ]
        for (index, (label, bytes, kind, field, contains)) in corpus.enumerated() {
            let target = url("bad-\(index).npy")
            try bytes.write(to: target)
            assertRefused(kind, field: field, contains + ["npy file \(target.path): \(field): "], label) {
                _ = try NumPy.read(target)
            }
        }
        // decode names its path too.
        assertRefused(.badMagic, field: "magic", ["npy file <memory>: magic:"]) { _ = try NumPy.decode(Data([1])) }
    }

    func testReadingMissingFileNamesIt() {
        let missing = url("nope.npy")
        assertRefused(.io, field: "file", [missing.path, "No such file"]) { _ = try NumPy.read(missing) }
        assertRefused(.io, field: "file", ["not a regular file"]) { _ = try NumPy.read(self.directory) }
        assertRefused(.io, field: "file", ["nope.npz"]) { _ = try NumPyArchive(self.url("nope.npz")) }
    }

    // MARK: atomic writing and memory mapping

    func testWritesAreAtomic() throws {
        let target = url("atomic.npy")
        let original = try Self.sample(.float64, shape: [4])
        try NumPy.write(original, to: target)
        let before = try Data(contentsOf: target)

        var broken = try Self.sample(.float32, shape: [2, 3])
        broken.shape = [4, 4]  // data no longer matches
        assertRefused(.sizeMismatch, field: "data", [target.path, "needs 64 bytes, data has 24"]) {
            try NumPy.write(broken, to: target)
        }
        assertRefused(.invalidArray, field: "member", ["must not be empty"]) {
            try NumPyArchive.write(["": original], to: self.url("atomic.npz"))
        }
        assertRefused(.sizeMismatch, field: "data", ["member 'b.npy'"]) {
            try NumPyArchive.write(["a": original, "b": broken], to: self.url("atomic.npz"))
        }
        XCTAssertEqual(try Data(contentsOf: target), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["atomic.npy"])

        let nowhere = url("missing-directory/x.npy")
        assertRefused(.io, field: "file", [nowhere.path, "cannot create temporary file"]) {
            try NumPy.write(original, to: nowhere)
        }
        // Overwriting replaces the file whole.
        let replacement = try Self.sample(.int32, shape: [2, 2])
        try NumPy.write(replacement, to: target)
        XCTAssertEqual(try NumPy.read(target), replacement)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["atomic.npy"])
    }

    func testLargeFilesAreMemoryMapped() throws {
        let count = 600_000  // 2.4 MB
        let values = (0 ..< count).map { Float($0 % 977) * 0.5 }
        let array = try NumPyArray(floats: values, shape: [count / 100, 100])
        let target = url("large.npy")
        try NumPy.write(array, to: target)
        var read = try NumPy.read(target)
        XCTAssertTrue(read.isMemoryMapped)
        XCTAssertEqual(read, array)
        XCTAssertEqual(try read.floats(), values)
        // The mapping is private: changing the array leaves the file alone.
        read.data[0] = 0xFF
        read.data[1] = 0xFF
        XCTAssertNotEqual(read, array)
        XCTAssertEqual(try NumPy.read(target), array)

        // Big-endian data has to be converted, so it is copied.
        var bigEndian = try NumPy.encode(array)
        let offset = bigEndian.count - count * 4
        bigEndian.replaceSubrange(offset ..< bigEndian.count,
                                  with: values.map { $0.bitPattern.bigEndian }.withUnsafeBytes { Data($0) })
        let descr = bigEndian.range(of: Data("'<f4'".utf8))!
        bigEndian.replaceSubrange(descr, with: Data("'>f4'".utf8))
        try bigEndian.write(to: url("large-big.npy"))
        let converted = try NumPy.read(url("large-big.npy"))
        XCTAssertFalse(converted.isMemoryMapped)
        XCTAssertEqual(converted, array)

        try NumPy.write(Self.sample(.uint8, shape: [9]), to: url("small.npy"))
        XCTAssertFalse(try NumPy.read(url("small.npy")).isMemoryMapped)

        // Stored members of a large archive are views of the mapping too; deflated ones are not.
        try NumPyArchive.write(["big": array, "small": try Self.sample(.int64, shape: [3])], to: url("large.npz"))
        let archive = try NumPyArchive(url("large.npz"))
        XCTAssertTrue(try archive.array(named: "big").isMemoryMapped)
        XCTAssertEqual(try archive.array(named: "big"), array)
        try NumPyArchive.write(["big": array], to: url("large-deflated.npz"), compressed: true)
        let deflated = try NumPyArchive.read(url("large-deflated.npz"))
        XCTAssertEqual(deflated["big"], array)
        XCTAssertFalse(deflated["big"]!.isMemoryMapped)
    }

    // MARK: .npz

    private func sampleArrays() throws -> [(name: String, array: NumPyArray)] {
        var arrays: [(name: String, array: NumPyArray)] = []
        for dtype in NumPyDType.allCases {
            arrays.append(("\(dtype)", try Self.sample(dtype, shape: [3, 4])))
            arrays.append(("\(dtype)_scalar", try Self.sample(dtype, shape: [])))
            arrays.append(("\(dtype)_empty", try Self.sample(dtype, shape: [0, 2])))
        }
        arrays.append(("ramp", try NumPyArray(floats: (0 ..< 50_000).map { Float($0 % 1000) * 0.25 }, shape: [500, 100])))
        arrays.append(("cube", try Self.sample(.float64, shape: [2, 3, 4])))
        return arrays
    }

    func testArchiveRoundTrips() throws {
        let arrays = try sampleArrays()
        var sizes: [Bool: Int] = [:]
        for compressed in [false, true] {
            for forceZip64 in [false, true] {
                let label = "compressed \(compressed), zip64 \(forceZip64)"
                let target = url("rt-\(compressed)-\(forceZip64).npz")
                try NumPyArchive.write(arrays, to: target, compressed: compressed, forceZip64: forceZip64)
                let archive = try NumPyArchive(target)
                XCTAssertEqual(archive.names, arrays.map(\.name), label)
                XCTAssertEqual(archive.memberNames, arrays.map { $0.name + ".npy" }, label)
                for (name, array) in arrays {
                    XCTAssertEqual(try archive.array(named: name), array, "\(label) \(name)")
                    XCTAssertEqual(try archive.array(named: name + ".npy"), array, "\(label) \(name)")
                }
                let all = try NumPyArchive.read(target)
                XCTAssertEqual(all.count, arrays.count, label)
                for (name, array) in arrays { XCTAssertEqual(all[name], array, "\(label) \(name)") }
                if !forceZip64 {
                    XCTAssertEqual(try Data(contentsOf: target), try NumPyArchive.encode(arrays, compressed: compressed))
                    sizes[compressed] = try Data(contentsOf: target).count
                }
            }
        }
        XCTAssertLessThan(sizes[true]!, sizes[false]! / 3)

        // The dictionary form writes members in name order.
        try NumPyArchive.write(["b": try Self.sample(.uint8, shape: [2]), "a": try Self.sample(.bool, shape: [1])],
                               to: url("dict.npz"))
        let archive = try NumPyArchive(url("dict.npz"))
        XCTAssertEqual(archive.names, ["a", "b"])
        XCTAssertTrue(archive.contains("a") && archive.contains("b.npy") && !archive.contains("c"))
        XCTAssertEqual(try archive["b"], try Self.sample(.uint8, shape: [2]))
        // An empty archive is valid.
        try NumPyArchive.write([String: NumPyArray](), to: url("empty.npz"))
        XCTAssertEqual(try NumPyArchive.read(url("empty.npz")).count, 0)
        assertRefused(.missingMember, field: "member", ["the archive holds no arrays"]) {
            _ = try NumPyArchive(self.url("empty.npz")).array(named: "x")
        }
        assertRefused(.invalidArray, field: "member", ["appears twice"]) {
            try NumPyArchive.write([("a", try Self.sample(.bool, shape: [1])), ("a", try Self.sample(.bool, shape: [1]))],
                                   to: self.url("dup.npz"))
        }
    }

    /// Byte offsets of an archive's structures, for corrupting them.
    private func centralDirectoryOffset(_ zip: Data) -> Int {
        let end = zip.count - 22
        return (0 ..< 4).reduce(0) { $0 | Int(zip[end + 16 + $1]) << (8 * $1) }
    }

    func testMalformedArchivesAreRefused() throws {
        let arrays = [("a", try Self.sample(.float32, shape: [4, 4])), ("b", try Self.sample(.int64, shape: [5]))]
        let stored = try NumPyArchive.encode(arrays)
        let deflated = try NumPyArchive.encode(arrays, compressed: true)
        // Stored member "a.npy": local header of 30 + 5 name bytes, then the .npy file.
        var crc = stored
        crc[35 + 128 + 3] ^= 0x40  // a data byte of a.npy
        var badDeflate = deflated
        badDeflate[35] = 0xFF  // block type 3: invalid
        var method = stored
        method[8] = 12  // local header
        method[centralDirectoryOffset(stored) + 10] = 12
        var badCentral = stored
        badCentral[centralDirectoryOffset(stored)] = 0
        var badLocal = stored
        badLocal[0] = 0
        // A deflated member whose sizes (local header and directory) claim 100,000 bytes (within
        // deflate's ratio, so the directory check passes): refused from its .npy header before any
        // memory is given to it.
        var sizeLie = deflated
        for offset in [22, centralDirectoryOffset(deflated) + 24] {
            for (k, byte) in [UInt8(0xA0), 0x86, 0x01, 0x00].enumerated() { sizeLie[offset + k] = byte }
        }
        let npyFile = try NumPy.encode(arrays[0].1)
        let corpus: [(String, Data, NumPyError.Kind, String, [String])] = [
            ("corrupt CRC", crc, .checksumMismatch, "crc32", ["member 'a.npy'", "CRC-32", "corrupt archive"]),
            ("corrupt deflate", badDeflate, .invalidArchive, "data", ["member 'a.npy'", "corrupt deflate data"]),
            ("size lie", sizeLie, .invalidArchive, "data", ["member 'a.npy'", "needs 192 bytes", "declares 100000"]),
            ("truncated", stored.prefix(stored.count - 10), .invalidArchive, "end of central directory",
             ["truncated file"]),
            ("truncated before directory", stored.prefix(100), .invalidArchive, "end of central directory", []),
            ("not a zip", Data(repeating: 7, count: 100), .badMagic, "zip", ["not a zip archive"]),
            ("npy file", npyFile, .badMagic, "zip", ["this is a .npy file"]),
            ("bzip2", method, .invalidArchive, "compression method",
             ["compression method 12 (bzip2) is not supported; expected 0 (stored) or 8 (deflate)"]),
            ("central header", badCentral, .invalidArchive, "central directory", ["not a central directory header"]),
            ("local header", badLocal, .invalidArchive, "local header", ["member 'a.npy'", "no local file header"]),
        ]
        for (index, (label, bytes, kind, field, contains)) in corpus.enumerated() {
            let target = url("bad-\(index).npz")
            try bytes.write(to: target)
            assertRefused(kind, field: field, contains + ["npz file \(target.path)"], label) {
                _ = try NumPyArchive.read(target)
            }
        }
        // A corrupt member does not stop the others from being read lazily.
        try crc.write(to: url("crc.npz"))
        XCTAssertEqual(try NumPyArchive(url("crc.npz")).array(named: "b"), arrays[1].1)

        try stored.write(to: url("ok.npz"))
        assertRefused(.missingMember, field: "member", ["no array named 'c'; available: 'a', 'b'", url("ok.npz").path]) {
            _ = try NumPyArchive(self.url("ok.npz")).array(named: "c")
        }
        // A .npz handed to the .npy reader says what it is.
        assertRefused(.badMagic, field: "magic", ["zip archive"]) { _ = try NumPy.read(self.url("ok.npz")) }
    }

    // MARK: interoperability with numpy

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

    private func requireNumPy() throws {
        guard let result = try? python("import numpy"), result.status == 0 else {
            throw XCTSkip("python3 with numpy is not available")
        }
    }

    func testReadsWhatNumPyWrites() throws {
        try requireNumPy()
        let script = """
        import sys, numpy as np
        from numpy.lib import format
        d = sys.argv[1]
        def arr(kind, shape):
            n = int(np.prod(shape))
            i = np.arange(n)
            if kind == 'float32': a = np.arange(n, dtype=np.float32) * np.float32(0.37) - np.float32(3)
            elif kind == 'float64': a = i * 0.123456789 - 7
            elif kind == 'uint8': a = ((i * 37 + 11) % 256).astype(np.uint8)
            elif kind == 'int32': a = (i * 1000003 - 500).astype(np.int32)
            elif kind == 'int64': a = i.astype(np.int64) * 3000000007 - 9
            else: a = i % 3 == 0
            return a.reshape(shape)
        kinds = ['float32', 'float64', 'uint8', 'int32', 'int64', 'bool']
        shapes = {'s': (), 'e': (0, 5), 'v': (7,), 'm': (3, 4), 'c': (2, 3, 4)}
        for k in kinds:
            for sn, s in shapes.items():
                np.save(f'{d}/{k}-{sn}.npy', arr(k, s))
            if k not in ('uint8', 'bool'):
                np.save(f'{d}/{k}-big.npy', arr(k, (3, 4)).astype(arr(k, ()).dtype.newbyteorder('>')))
        for v in [(2, 0), (3, 0)]:
            with open(f'{d}/v{v[0]}.npy', 'wb') as f:
                format.write_array(f, arr('float32', (3, 4)), version=v)
        np.save(f'{d}/fortran.npy', np.asfortranarray(arr('float64', (3, 4))))
        np.save(f'{d}/object.npy', np.array([1, 'a', None], dtype=object), allow_pickle=True)
        np.save(f'{d}/complex.npy', np.zeros(3, np.complex64))
        np.save(f'{d}/half.npy', np.zeros(3, np.float16))
        np.save(f'{d}/structured.npy', np.zeros(3, dtype=[('x', '<f4'), ('y', '<i4')]))
        big = (np.arange(300000) % 1000).astype(np.float32) * np.float32(0.25)
        members = {k: arr(k, (3, 4)) for k in kinds}
        members['scalar'] = arr('float64', ())
        members['empty'] = arr('int32', (0, 5))
        members['big'] = big
        np.savez(f'{d}/plain.npz', **members)
        np.savez_compressed(f'{d}/compressed.npz', **members)
        np.savez(f'{d}/positional.npz', arr('uint8', (2, 2)), arr('bool', (3,)))
        """
        let (status, output) = try python(script, [directory.path])
        XCTAssertEqual(status, 0, output)
        let shapes: [(String, [Int])] = [("s", []), ("e", [0, 5]), ("v", [7]), ("m", [3, 4]), ("c", [2, 3, 4])]
        for dtype in NumPyDType.allCases {
            for (suffix, shape) in shapes {
                let array = try NumPy.read(url("\(dtype)-\(suffix).npy"))
                XCTAssertEqual(array, try Self.sample(dtype, shape: shape), "\(dtype) \(shape)")
            }
            if dtype != .uint8 && dtype != .bool {
                XCTAssertEqual(try NumPy.read(url("\(dtype)-big.npy")), try Self.sample(dtype, shape: [3, 4]), "\(dtype) >")
            }
        }
        for version in [2, 3] {
            let bytes = try Data(contentsOf: url("v\(version).npy"))
            XCTAssertEqual(bytes[6], UInt8(version))
            XCTAssertEqual(try NumPy.read(url("v\(version).npy")), try Self.sample(.float32, shape: [3, 4]))
        }
        let unsupported = "expected float32, float64, uint8, int32, int64 or bool"
        assertRefused(.fortranOrder, field: "fortran_order", ["Fortran-order"]) { _ = try NumPy.read(self.url("fortran.npy")) }
        assertRefused(.unsupportedDType, field: "descr", ["object arrays (dtype |O)", unsupported]) {
            _ = try NumPy.read(self.url("object.npy"))
        }
        assertRefused(.unsupportedDType, field: "descr", ["dtype <c8 is not supported; " + unsupported]) {
            _ = try NumPy.read(self.url("complex.npy"))
        }
        assertRefused(.unsupportedDType, field: "descr", ["dtype <f2 is not supported"]) {
            _ = try NumPy.read(self.url("half.npy"))
        }
        assertRefused(.unsupportedDType, field: "descr", ["structured dtypes"]) {
            _ = try NumPy.read(self.url("structured.npy"))
        }

        let big = try NumPyArray(floats: (0 ..< 300_000).map { Float($0 % 1000) * 0.25 })
        for name in ["plain", "compressed"] {
            let archive = try NumPyArchive(url("\(name).npz"))
            XCTAssertEqual(archive.names, NumPyDType.allCases.map(\.rawValue) + ["scalar", "empty", "big"], name)
            for dtype in NumPyDType.allCases {
                XCTAssertEqual(try archive.array(named: dtype.rawValue), try Self.sample(dtype, shape: [3, 4]), name)
            }
            XCTAssertEqual(try archive.array(named: "scalar.npy"), try Self.sample(.float64, shape: []), name)
            XCTAssertEqual(try archive.array(named: "empty"), try Self.sample(.int32, shape: [0, 5]), name)
            XCTAssertEqual(try archive.array(named: "big"), big, name)
            XCTAssertEqual(try NumPyArchive.read(url("\(name).npz")).count, 9, name)
        }
        let positional = try NumPyArchive.read(url("positional.npz"))
        XCTAssertEqual(positional["arr_0"], try Self.sample(.uint8, shape: [2, 2]))
        XCTAssertEqual(positional["arr_1"], try Self.sample(.bool, shape: [3]))

        // np.save's bytes and ours are identical.
        for dtype in NumPyDType.allCases {
            for (suffix, shape) in shapes {
                XCTAssertEqual(try NumPy.encode(Self.sample(dtype, shape: shape)),
                               try Data(contentsOf: url("\(dtype)-\(suffix).npy")), "\(dtype) \(shape)")
            }
        }
    }

    func testNumPyReadsWhatSwiftWrites() throws {
        try requireNumPy()
        var expected: [String: NumPyArray] = [:]
        for dtype in NumPyDType.allCases {
            for (index, shape) in Self.shapes.enumerated() {
                let array = try Self.sample(dtype, shape: shape)
                try NumPy.write(array, to: url("\(dtype)-\(index).npy"))
                expected["\(dtype)-\(index).npy"] = array
            }
        }
        let special = try NumPyArray(floats: Self.specialFloatBits.map(Float.init(bitPattern:)), shape: [5, 3])
        try NumPy.write(special, to: url("special.npy"))
        expected["special.npy"] = special
        let arrays = try sampleArrays()
        try NumPyArchive.write(arrays, to: url("stored.npz"))
        try NumPyArchive.write(arrays, to: url("deflated.npz"), compressed: true)
        try NumPyArchive.write(arrays, to: url("zip64.npz"), compressed: false, forceZip64: true)
        try NumPyArchive.write(arrays, to: url("zip64-deflated.npz"), compressed: true, forceZip64: true)
        for (name, array) in arrays {
            for archive in ["stored", "deflated", "zip64", "zip64-deflated"] { expected["\(archive).npz/\(name)"] = array }
        }

        // numpy prints, for every array: name, dtype, shape and the little-endian bytes in hex.
        let script = """
        import sys, os, zipfile, numpy as np
        d = sys.argv[1]
        for f in sorted(os.listdir(d)):
            p = os.path.join(d, f)
            if f.endswith('.npy'):
                items = [(f, np.load(p))]
            else:
                with zipfile.ZipFile(p) as z:
                    bad = z.testzip()
                    assert bad is None, (f, bad)
                with np.load(p) as z:
                    items = [(f + '/' + k, z[k]) for k in z.files]
            for name, a in items:
                assert a.flags.c_contiguous
                le = a.astype(a.dtype.newbyteorder('<'))
                print(name, a.dtype.name, ','.join(map(str, a.shape)) or 'scalar', le.tobytes().hex() or '-')
        """
        let (status, output) = try python(script, [directory.path])
        XCTAssertEqual(status, 0, output)
        var seen = Set<String>()
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: " ").map(String.init)
            guard parts.count == 4, let array = expected[parts[0]] else {
                XCTFail("unexpected line from numpy: \(line)")
                continue
            }
            seen.insert(parts[0])
            XCTAssertEqual(parts[1], array.dtype.rawValue, parts[0])
            XCTAssertEqual(parts[2], array.shape.isEmpty ? "scalar" : array.shape.map(String.init).joined(separator: ","),
                           parts[0])
            let hex = Self.hex(array.data)
            XCTAssertEqual(parts[3], hex.isEmpty ? "-" : hex, parts[0])
        }
        XCTAssertEqual(seen, Set(expected.keys))
    }

    private static func hex(_ data: Data) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(data.count * 2)
        for byte in data {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: robustness

    /// Random corruption (flipped bytes, truncation) must be refused with an error, never trap.
    func testCorruptedBytesNeverCrash() throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        let arrays = [("x", try Self.sample(.float64, shape: [3, 2])), ("y", try Self.sample(.bool, shape: [4]))]
        let samples = [
            try NumPy.encode(Self.sample(.int32, shape: [2, 3])),
            try NumPyArchive.encode(arrays),
            try NumPyArchive.encode(arrays, compressed: true),
        ]
        var refused = 0
        for round in 0 ..< 3000 {
            var bytes = samples[round % samples.count]
            if next(4) == 0 {
                bytes = bytes.prefix(next(bytes.count))
            } else {
                for _ in 0 ... next(3) {
                    let index = next(bytes.count)
                    bytes[index] = next(2) == 0 ? UInt8(next(256)) : bytes[index] ^ UInt8(1 << next(8))
                }
            }
            do {
                if round % samples.count == 0 {
                    _ = try NumPy.decode(bytes)
                } else {
                    _ = try NumPyArchive(data: bytes).arrays()
                }
            } catch is NumPyError {
                refused += 1
            }
        }
        XCTAssertGreaterThan(refused, 1000)
    }

    // MARK: shared data

    func testSharedDataFiles() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let data = root.deletingLastPathComponent().appendingPathComponent("shared/data")
        guard FileManager.default.fileExists(atPath: data.path) else {
            throw XCTSkip("shared data directory \(data.path) is missing")
        }
        let sets: [(String, Int, Int, UInt8)] = [
            ("mnist5k_train", 4000, 28, 255), ("mnist5k_val", 500, 28, 255),
            ("digits8x8_train", 1500, 8, 16), ("digits8x8_val", 297, 8, 16),
        ]
        for (name, count, side, maximum) in sets {
            let imagesURL = data.appendingPathComponent("\(name)_images.npy")
            let labelsURL = data.appendingPathComponent("\(name)_labels.npy")
            guard FileManager.default.fileExists(atPath: imagesURL.path),
                  FileManager.default.fileExists(atPath: labelsURL.path) else {
                continue
            }
            let images = try NumPy.read(imagesURL)
            let labels = try NumPy.read(labelsURL)
            XCTAssertEqual(images.dtype, .uint8, name)
            XCTAssertEqual(images.shape, [count, side, side], name)
            XCTAssertEqual(images.isMemoryMapped, images.data.count + 128 >= 1 << 20, name)
            let pixels = try images.uint8s()
            XCTAssertEqual(pixels.max(), maximum, name)
            XCTAssertEqual(pixels.min(), 0, name)
            XCTAssertEqual(labels.shape, [count], name)
            let classes = try labels.int32s()
            XCTAssertEqual(Set(classes), Set(0 ... 9), name)
            XCTAssertEqual(try images.floats().count, count * side * side, name)
        }
    }
}

private extension Data {
    /// The bytes with the UTF-8 encoding of `marker` replaced by `bytes` (first occurrence).
    func replacingBytes(_ marker: String, with bytes: [UInt8]) -> Data {
        var copy = self
        if let range = copy.range(of: Data(marker.utf8)) { copy.replaceSubrange(range, with: bytes) }
        return copy
    }
}

/// `FloatRows` over arrays and mapped float32 files.
final class FloatRowsTests: XCTestCase {
    func testRowsGatherAndMapping() throws {
        let values = (0..<(400 * 700)).map { Float($0 % 977) - 300.5 }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("rows-\(UUID().uuidString).npy")
        defer { try? FileManager.default.removeItem(at: url) }
        try NumPy.write(try NumPyArray(floats: values, shape: [400, 7, 100]), to: url)
        let mapped = try XCTUnwrap(FloatRows(try NumPy.read(url)))
        let inMemory = FloatRows(values, cols: 700)
        XCTAssertTrue(mapped.isMapped)
        XCTAssertFalse(inMemory.isMapped)
        for rows in [mapped, inMemory] {
            XCTAssertEqual(rows.rows, 400)
            XCTAssertEqual(rows.cols, 700)
            XCTAssertEqual(rows.rows(3..<5), Array(values[2100..<3500]))
            var out = [Float](repeating: .nan, count: 3 * 700)
            out.withUnsafeMutableBufferPointer { rows.gather([399, 0, 7] as [Int32], into: $0.baseAddress!) }
            XCTAssertEqual(out, Array(values[(399 * 700)..<(400 * 700)] + values[0..<700] + values[(7 * 700)..<(8 * 700)]))
            XCTAssertNil(rows.firstNonFinite())
        }
        var bad = values
        bad[5 * 700 + 3] = .infinity
        XCTAssertEqual(FloatRows(bad, cols: 700).firstNonFinite()?.row, 5)
        XCTAssertEqual(FloatRows(bad, cols: 700).firstNonFinite()?.column, 3)
        // Other dtypes are not viewed as floats.
        XCTAssertNil(FloatRows(try NumPyArray(doubles: [1, 2], shape: [2, 1])))
    }
}
