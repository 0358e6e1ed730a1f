import CZlib
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import SBIPlots
import XCTest

final class PlotTests: XCTestCase {
    // MARK: Helpers

    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("sbi-plot-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    /// CRC-32 (ISO-HDLC), bit by bit: independent of the encoder's zlib call.
    private func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    private func bigEndian(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        bytes[at..<(at + 4)].reduce(0) { $0 << 8 | UInt32($1) }
    }

    struct DecodedPNG {
        var width: Int
        var height: Int
        var chunkTypes: [String]
        var rgba: [UInt8]
        func pixel(_ x: Int, _ y: Int) -> [UInt8] { Array(rgba[((y * width + x) * 4)..<((y * width + x) * 4 + 4)]) }
    }

    /// Checks a PNG's structure (signature, chunk CRCs, IHDR, IEND last) and decodes its pixels.
    private func decodePNG(_ data: Data, file: StaticString = #filePath, line: UInt = #line) throws -> DecodedPNG {
        let bytes = [UInt8](data)
        XCTAssertEqual(Array(bytes.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "signature", file: file, line: line)
        var offset = 8
        var types: [String] = []
        var header: [UInt8] = []
        var compressed: [UInt8] = []
        while offset < bytes.count {
            XCTAssertLessThanOrEqual(offset + 12, bytes.count, "truncated chunk", file: file, line: line)
            let length = Int(bigEndian(bytes, offset))
            let type = String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self)
            let body = Array(bytes[(offset + 8)..<(offset + 8 + length)])
            let stored = bigEndian(bytes, offset + 8 + length)
            XCTAssertEqual(stored, crc32(Array(bytes[(offset + 4)..<(offset + 8 + length)])), "CRC of \(type)", file: file, line: line)
            types.append(type)
            if type == "IHDR" { header = body }
            if type == "IDAT" { compressed += body }
            offset += 12 + length
        }
        XCTAssertEqual(offset, bytes.count, file: file, line: line)
        XCTAssertEqual(types.first, "IHDR", file: file, line: line)
        XCTAssertEqual(types.last, "IEND", file: file, line: line)
        XCTAssertEqual(header.count, 13, file: file, line: line)
        let width = Int(bigEndian(header, 0)), height = Int(bigEndian(header, 4))
        XCTAssertEqual(Array(header[8...12]), [8, 6, 0, 0, 0], "8-bit RGBA, no interlace", file: file, line: line)

        // Inflate the zlib stream.
        let stride = width * 4
        var raw = [UInt8](repeating: 0, count: (stride + 1) * height + 1)
        var stream = z_stream()
        XCTAssertEqual(inflateInit_(&stream, zlibVersion(), Int32(MemoryLayout<z_stream>.size)), Z_OK)
        var status: Int32 = Z_OK
        compressed.withUnsafeMutableBufferPointer { input in
            raw.withUnsafeMutableBufferPointer { output in
                stream.next_in = input.baseAddress
                stream.avail_in = uInt(input.count)
                stream.next_out = output.baseAddress
                stream.avail_out = uInt(output.count)
                status = inflate(&stream, Z_FINISH)
            }
        }
        let produced = raw.count - Int(stream.avail_out)
        inflateEnd(&stream)
        XCTAssertEqual(status, Z_STREAM_END, "IDAT inflates completely", file: file, line: line)
        XCTAssertEqual(produced, (stride + 1) * height, "one filter byte and \(stride) bytes a row", file: file, line: line)

        // Undo the scanline filters.
        var rgba = [UInt8](repeating: 0, count: stride * height)
        for y in 0..<height {
            let filter = raw[y * (stride + 1)]
            XCTAssertLessThanOrEqual(filter, 4, file: file, line: line)
            for i in 0..<stride {
                let x = raw[y * (stride + 1) + 1 + i]
                let a = i >= 4 ? Int(rgba[y * stride + i - 4]) : 0
                let b = y > 0 ? Int(rgba[(y - 1) * stride + i]) : 0
                let c = (i >= 4 && y > 0) ? Int(rgba[(y - 1) * stride + i - 4]) : 0
                let predicted: Int
                switch filter {
                case 0: predicted = 0
                case 1: predicted = a
                case 2: predicted = b
                case 3: predicted = (a + b) / 2
                default:
                    let p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                    predicted = pa <= pb && pa <= pc ? a : (pb <= pc ? b : c)
                }
                rgba[y * stride + i] = x &+ UInt8(predicted)
            }
        }
        return DecodedPNG(width: width, height: height, chunkTypes: types, rgba: rgba)
    }

    /// Element names and counts of an SVG document, or a failure if it is not well-formed XML.
    private func svgElements(_ svg: String, file: StaticString = #filePath, line: UInt = #line) -> [String: Int] {
        final class Counter: NSObject, XMLParserDelegate {
            var counts: [String: Int] = [:]
            func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                        attributes: [String: String] = [:]) {
                counts[name, default: 0] += 1
            }
        }
        let parser = XMLParser(data: Data(svg.utf8))
        let counter = Counter()
        parser.delegate = counter
        XCTAssertTrue(parser.parse(), "SVG is well-formed XML: \(String(describing: parser.parserError))", file: file, line: line)
        return counter.counts
    }

    /// Standard normal draws from a fixed seed.
    private func gaussians(_ count: Int, seed: UInt64) -> [Double] {
        var state = seed &* 6364136223846793005 &+ 1442695040888963407
        func uniform() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return (Double(state >> 11) + 0.5) / Double(1 << 53)
        }
        return (0..<count).map { _ in sqrt(-2 * log(uniform())) * cos(2 * .pi * uniform()) }
    }

    /// Correlated 3-D Gaussian samples, row-major.
    private func samples3D(_ count: Int, seed: UInt64, shift: Double = 0) -> [Double] {
        let z = gaussians(3 * count, seed: seed)
        var out: [Double] = []
        for r in 0..<count {
            let a = z[3 * r], b = z[3 * r + 1], c = z[3 * r + 2]
            out += [1 + 0.5 * a + shift, -2 + 0.8 * (0.7 * a + 0.71 * b), 0.3 * c + 0.1 * a]
        }
        return out
    }

    // MARK: PNG

    func testPNGStructureCRCsAndPixels() throws {
        let canvas = PlotCanvas(width: 64, height: 48)
        canvas.rect(x: 10, y: 12, width: 20, height: 15, fill: PlotColor(red: 1, green: 0, blue: 0))
        canvas.line(from: PlotPoint(40, 5.5), to: PlotPoint(60, 5.5), stroke: PlotStroke(.blue, width: 1))
        let png = try decodePNG(canvas.png())
        XCTAssertEqual(png.width, 64)
        XCTAssertEqual(png.height, 48)
        XCTAssertEqual(png.chunkTypes, ["IHDR", "IDAT", "IEND"])
        // Inside the rectangle: red; outside: the white background; a pixel on the line: blue.
        XCTAssertEqual(png.pixel(15, 20), [255, 0, 0, 255])
        XCTAssertEqual(png.pixel(29, 26), [255, 0, 0, 255])
        XCTAssertEqual(png.pixel(9, 20), [255, 255, 255, 255])
        XCTAssertEqual(png.pixel(30, 20), [255, 255, 255, 255])
        XCTAssertEqual(png.pixel(15, 11), [255, 255, 255, 255])
        XCTAssertEqual(png.pixel(2, 2), [255, 255, 255, 255])
        XCTAssertEqual(png.pixel(50, 5), [0x1F, 0x77, 0xB4, 255])
        let red = (0..<(64 * 48)).filter { png.rgba[4 * $0] == 255 && png.rgba[4 * $0 + 1] == 0 }.count
        XCTAssertEqual(red, 20 * 15, "exactly the rectangle's pixels are red")
    }

    func testPNGAntialiasingAndTransparency() throws {
        let canvas = PlotCanvas(width: 20, height: 20, background: nil)
        canvas.rect(x: 5.5, y: 5, width: 5, height: 5, fill: .black)
        canvas.circle(center: PlotPoint(15, 15), radius: 3, fill: PlotColor.black.withAlpha(0.5))
        let png = try decodePNG(canvas.png())
        XCTAssertEqual(png.pixel(0, 0)[3], 0, "no background: transparent")
        XCTAssertEqual(png.pixel(7, 7), [0, 0, 0, 255])
        let edge = png.pixel(5, 7)[3]
        XCTAssertTrue((120...135).contains(edge), "half-covered pixel is half opaque, got \(edge)")
        XCTAssertTrue((120...135).contains(png.pixel(15, 15)[3]), "half-transparent fill")
    }

    func testPNGScale() throws {
        let canvas = PlotCanvas(width: 30, height: 20)
        canvas.rect(x: 0, y: 0, width: 10, height: 10, fill: .black)
        let png = try decodePNG(canvas.png(scale: 2))
        XCTAssertEqual(png.width, 60)
        XCTAssertEqual(png.height, 40)
        XCTAssertEqual(png.pixel(19, 19), [0, 0, 0, 255])
        XCTAssertEqual(png.pixel(20, 20), [255, 255, 255, 255])
    }

    /// The posterior predictive figure: the observation framed in orange at the grid's top left,
    /// on its own intensity scale (its lowest pixel black, pixels past its 99.5th percentile
    /// white), the predictions beside it on the same scale, the corner plot to the right.
    func testPosteriorPredictiveFigure() throws {
        let observation = (0..<64).map { Float($0) - 10 }
        let predictions = [Float](repeating: 100, count: 128) + [Float](repeating: -50, count: 64)
        let samples = gaussians(400, seed: 3).map(Float.init)
        let png = try decodePNG(try Plots.posteriorPredictive(observation: observation, predictions: predictions, count: 3,
                                                              height: 8, width: 8, channels: 1, samples: samples, dimension: 2))
        let orange: [UInt8] = [230, 120, 30, 255]
        let top = try XCTUnwrap((0..<png.height).first { png.pixel(0, $0) == orange }, "the observation's frame")
        let side = try XCTUnwrap((1..<png.width).first { png.pixel($0, top) != orange }) - 1  // cell side + 1
        let scale = (side - 1) / 8
        XCTAssertGreaterThanOrEqual(scale, 1)
        XCTAssertEqual(png.pixel(1, top + 1), [0, 0, 0, 255], "the lowest observed pixel is black")
        XCTAssertEqual(png.pixel(side - 1, top + side - 1), [255, 255, 255, 255], "the highest is white")
        XCTAssertEqual(png.pixel(side + 1, top + 1), [255, 255, 255, 255], "a prediction above the scale is white")
        XCTAssertEqual(png.pixel(side + 1, top + side + 1), [0, 0, 0, 255], "one below it black (the third, bottom right of 2×2)")
        let right = (png.width * 3 / 4..<png.width).contains { x in (0..<png.height).contains { png.pixel(x, $0) != [255, 255, 255, 255] } }
        XCTAssertTrue(right, "the corner plot is drawn on the right")
    }

    func testPNGOpensWithPillow() throws {
        guard shell("python3", ["-c", "import PIL"]).status == 0 else {
            throw XCTSkip("Pillow is not installed (python3 -c \"import PIL\" failed)")
        }
        let canvas = PlotCanvas(width: 64, height: 48)
        canvas.rect(x: 10, y: 12, width: 20, height: 15, fill: PlotColor(red: 1, green: 0, blue: 0))
        canvas.text("Ag 0.5", at: PlotPoint(32, 40), size: 10, anchor: .middle)
        let path = folder.appendingPathComponent("pillow.png").path
        try canvas.write(to: path)
        let script = "from PIL import Image; im = Image.open('\(path)'); im.load(); "
            + "print(im.size[0], im.size[1], im.mode, *im.getpixel((15, 20)))"
        let result = shell("python3", ["-c", script])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertEqual(result.output.trimmingCharacters(in: .whitespacesAndNewlines), "64 48 RGBA 255 0 0 255")

        let corner = try Plots.corner(samples: samples3D(500, seed: 3), dimension: 3)
        let cornerPath = folder.appendingPathComponent("corner.png").path
        try corner.write(to: cornerPath)
        let check = shell("python3", ["-c", "from PIL import Image; im = Image.open('\(cornerPath)'); im.verify(); print(im.size)"])
        XCTAssertEqual(check.status, 0, check.output)
    }

    private func shell(_ program: String, _ arguments: [String]) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [program] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { return (-1, "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    // MARK: SVG

    func testSVGIsWellFormedWithOneElementPerShape() throws {
        let canvas = PlotCanvas(width: 200, height: 100)
        canvas.rect(x: 10, y: 10, width: 30, height: 20, fill: .red)
        canvas.rect(x: 50, y: 10, width: 30, height: 20, fill: nil, stroke: PlotStroke(.black))
        canvas.line([PlotPoint(0, 0), PlotPoint(100, 50), PlotPoint(200, 0)], stroke: PlotStroke(.blue, width: 2, dash: [4, 2]))
        canvas.circle(center: PlotPoint(150, 50), radius: 10, fill: .green.withAlpha(0.5))
        canvas.polygon([PlotPoint(0, 100), PlotPoint(20, 80), PlotPoint(40, 100)], fill: .orange)
        canvas.dots([PlotPoint(5, 5), PlotPoint(9, 9)], radius: 1, fill: .black)
        canvas.text("a < b & \"c\"", at: PlotPoint(100, 90), size: 12, anchor: .middle)
        canvas.text("θ1", at: PlotPoint(190, 50), size: 12, rotated: true)
        XCTAssertEqual(canvas.itemCount, 8)
        let counts = svgElements(canvas.svg())
        XCTAssertEqual(counts["svg"], 1)
        XCTAssertEqual(counts["rect"], 3, "background and two rectangles")
        XCTAssertEqual(counts["polyline"], 1)
        XCTAssertEqual(counts["circle"], 1)
        XCTAssertEqual(counts["path"], 2, "polygon and dots")
        XCTAssertEqual(counts["text"], 2)
        XCTAssertTrue(canvas.svg().contains("a &lt; b &amp; &quot;c&quot;"))
    }

    func testSVGFileRoundTrip() throws {
        let canvas = PlotCanvas(width: 10, height: 10, background: nil)
        canvas.rect(x: 1, y: 1, width: 2, height: 2, fill: .black)
        let path = folder.appendingPathComponent("x.SVG").path
        try canvas.write(to: path)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertEqual(svgElements(text)["rect"], 1)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["x.SVG"], "no temporary file left")
    }

    // MARK: File names

    func testBadExtensionIsRefused() throws {
        let canvas = PlotCanvas(width: 10, height: 10)
        for name in ["plot.jpg", "plot", "plot.svg.txt"] {
            let path = folder.appendingPathComponent(name).path
            XCTAssertThrowsError(try canvas.write(to: path)) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(path), message)
                XCTAssertTrue(message.contains(".svg") && message.contains(".png"), message)
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [])
    }

    func testMissingFolderIsReported() {
        let canvas = PlotCanvas(width: 10, height: 10)
        let path = folder.appendingPathComponent("no/such/folder/p.png").path
        XCTAssertThrowsError(try canvas.write(to: path)) { error in
            XCTAssertTrue("\(error)".contains(path))
        }
    }

    func testWriteReplacesExistingFile() throws {
        let path = folder.appendingPathComponent("p.png").path
        try Data("old".utf8).write(to: URL(fileURLWithPath: path))
        let canvas = PlotCanvas(width: 8, height: 8)
        try canvas.write(to: path)
        let png = try decodePNG(try Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(png.width, 8)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["p.png"])
    }

    // MARK: Plots

    func testCornerPlotOfGaussianSamplesInBothFormats() throws {
        let samples = samples3D(4000, seed: 1)
        let reference = samples3D(2000, seed: 2, shift: 0.3)
        let options = CornerPlotOptions(labels: ["mass", "log rate", "θ3"], truths: [1, -2, 0], title: "posterior")
        let canvas = try Plots.corner(samples: samples, dimension: 3, reference: reference, options: options)
        let png = folder.appendingPathComponent("corner.png"), svg = folder.appendingPathComponent("corner.svg")
        try canvas.write(to: png)
        try canvas.write(to: svg)
        let decoded = try decodePNG(try Data(contentsOf: png))
        XCTAssertEqual(decoded.width, Int(canvas.width.rounded(.up)))
        XCTAssertEqual(decoded.height, Int(canvas.height.rounded(.up)))
        // Some pixels carry the samples' colour family (bluish) and the reference's (orange).
        let bluish = (0..<(decoded.width * decoded.height)).filter {
            let r = Int(decoded.rgba[4 * $0]), b = Int(decoded.rgba[4 * $0 + 2])
            return b > r + 60
        }.count
        let orange = (0..<(decoded.width * decoded.height)).filter {
            let r = Int(decoded.rgba[4 * $0]), g = Int(decoded.rgba[4 * $0 + 1]), b = Int(decoded.rgba[4 * $0 + 2])
            return r > 200 && g > 90 && g < 160 && b < 60
        }.count
        XCTAssertGreaterThan(bluish, 1000)
        XCTAssertGreaterThan(orange, 100)
        let counts = svgElements(try String(contentsOf: svg, encoding: .utf8))
        XCTAssertEqual(counts["svg"], 1)
        // Three 2-D panels, each with filled sample contours and reference contour lines.
        XCTAssertGreaterThanOrEqual(counts["path"] ?? 0, 3 * 4 + 3 * 2)
        XCTAssertGreaterThanOrEqual(counts["text"] ?? 0, 3 + 2 + 1 + 3)
    }

    func testCornerPlotVariants() throws {
        // One dimension, single-precision input, a constant column and non-finite rows.
        let one = try Plots.corner(samples: gaussians(500, seed: 4).map(Float.init), dimension: 1)
        XCTAssertGreaterThan(one.itemCount, 3)
        var values = samples3D(300, seed: 5)
        for r in 0..<300 { values[3 * r + 2] = 7 }
        values[0] = .nan
        let constant = try Plots.corner(samples: values, dimension: 3)
        _ = constant.rasterize()
        let two = try Plots.corner(samples: Array(gaussians(2000, seed: 6)), dimension: 2,
                                   options: CornerPlotOptions(ranges: [-3...3, -3...3], showPoints: false))
        XCTAssertTrue(two.svg().contains("<path"))
        XCTAssertThrowsError(try Plots.corner(samples: [1, 2, 3] as [Double], dimension: 2))
        XCTAssertThrowsError(try Plots.corner(samples: [1, 2, 3, 4] as [Double], dimension: 2, options: CornerPlotOptions(labels: ["a"])))
        XCTAssertThrowsError(try Plots.corner(samples: [Double.nan, 1], dimension: 2))
    }

    /// A decaying loss curve with a wiggle (training) or a late rise (validation).
    private func lossCurve(_ epochs: Int, floor: Double, wiggle: Double = 0, rise: Double = 0, turn: Double = 0) -> [Double] {
        (1...epochs).map { (k: Int) -> Double in
            let t = Double(k)
            let decay: Double = 3 * exp(-t / 12)
            return decay + floor + wiggle * sin(t) + rise * (t - turn) * (t - turn)
        }
    }

    func testLossCurves() throws {
        let training = lossCurve(60, floor: 0.5, wiggle: 0.02)
        let validation = lossCurve(60, floor: 0.6, rise: 0.0002, turn: 35)
        let canvas = try Plots.lossCurves(training: [40] + training.dropFirst(), validation: validation)
        let path = folder.appendingPathComponent("loss.png")
        try canvas.write(to: path)
        let png = try decodePNG(try Data(contentsOf: path))
        XCTAssertEqual(png.width, 900)
        XCTAssertEqual(svgElements(canvas.svg())["polyline"].map { $0 >= 2 }, true)
        let best = validation.indices.min { validation[$0] < validation[$1] }! + 1
        XCTAssertTrue(canvas.svg().contains("best: epoch \(best),"), "the best validation epoch is named")
        _ = try Plots.lossCurves(training: [1.5], validation: [])
        _ = try Plots.lossCurves(training: [2, Double.nan, 1], validation: [Double.infinity, 1.5, 1.2])
        XCTAssertThrowsError(try Plots.lossCurves(training: [], validation: []))
        XCTAssertThrowsError(try Plots.lossCurves(training: [Double.nan]))
    }

    func testSBCRankHistograms() throws {
        let d = 3, n = 400, posteriorSamples = 99
        var state: UInt64 = 7
        var ranks: [Int] = []
        for _ in 0..<(n * d) {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            ranks.append(Int(state >> 33) % (posteriorSamples + 1))
        }
        let canvas = try Plots.sbcRanks(ranks: ranks, dimension: d, posteriorSamples: posteriorSamples,
                                        options: SBCPlotOptions(labels: ["a", "b", "c"]))
        try canvas.write(to: folder.appendingPathComponent("sbc.svg"))
        try canvas.write(to: folder.appendingPathComponent("sbc.png"))
        let counts = svgElements(canvas.svg())
        XCTAssertGreaterThanOrEqual(counts["rect"] ?? 0, 1 + d * 10, "bars for every panel")
        XCTAssertThrowsError(try Plots.sbcRanks(ranks: [0, 100], dimension: 1, posteriorSamples: 99))
        XCTAssertThrowsError(try Plots.sbcRanks(ranks: [0, 1, 2], dimension: 2, posteriorSamples: 99))
    }

    func testCoverageCurve() throws {
        let levels = (1...19).map { Double($0) / 20 }
        let good = levels.map { $0 + 0.01 * sin(10 * $0) }
        let overconfident = levels.map { pow($0, 1.6) }
        let canvas = try Plots.coverage(levels: levels, empirical: [good, overconfident],
                                        options: CoveragePlotOptions(labels: ["NPE", "NLE"], trials: 200))
        try canvas.write(to: folder.appendingPathComponent("coverage.png"))
        try canvas.write(to: folder.appendingPathComponent("coverage.svg"))
        let svg = canvas.svg()
        XCTAssertTrue(svg.contains("NPE") && svg.contains("NLE"))
        XCTAssertThrowsError(try Plots.coverage(levels: [0.5], empirical: [0.4, 0.6]))
    }

    /// With SBI_PLOT_EXAMPLES=<folder>, writes example plots there to look at.
    func testWriteExamplePlots() throws {
        guard let out = ProcessInfo.processInfo.environment["SBI_PLOT_EXAMPLES"] else {
            throw XCTSkip("set SBI_PLOT_EXAMPLES=<folder> to write example plots")
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let corner = try Plots.corner(samples: samples3D(5000, seed: 1), dimension: 3, reference: samples3D(3000, seed: 2, shift: 0.3),
                                      options: CornerPlotOptions(labels: ["mass", "log rate", "θ3"], truths: [1, -2, 0],
                                                                 title: "posterior samples"))
        let plain = try Plots.corner(samples: samples3D(3000, seed: 8).map(Float.init), dimension: 3)
        var wide: [Double] = []
        let z = gaussians(5 * 4000, seed: 9)
        for r in 0..<4000 { for k in 0..<5 { wide.append(z[5 * r + k] * Double(k + 1) + (k == 3 ? 1e-4 * z[5 * r] : 0)) } }
        let five = try Plots.corner(samples: wide, dimension: 5, options: CornerPlotOptions(truths: [0, 0, 0, 0, 0]))
        let one = try Plots.corner(samples: gaussians(3000, seed: 10), dimension: 1, reference: gaussians(3000, seed: 11).map { $0 + 0.3 })
        let training = lossCurve(80, floor: 0.5, wiggle: 0.03)
        let validation = lossCurve(80, floor: 0.6, rise: 0.00015, turn: 40)
        let loss = try Plots.lossCurves(training: [25] + training.dropFirst(), validation: validation,
                                        options: LossPlotOptions(title: "NPE training"))
        let shortLoss = try Plots.lossCurves(training: [3.2, 2.1, 1.7, 1.5, 1.45, 1.43], validation: [3.0, 2.2, 1.8, 1.7, 1.72, 1.75])
        var state: UInt64 = 7
        var ranks: [Int] = []
        for k in 0..<(500 * 4) {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            var r = Int(state >> 33) % 100
            if k % 4 == 1 { r = min(99, max(0, 50 + (r - 50) / 2)) } // overdispersed posterior: ranks pile up in the middle
            ranks.append(r)
        }
        let sbc = try Plots.sbcRanks(ranks: ranks, dimension: 4, posteriorSamples: 99)
        let levels = (1...19).map { Double($0) / 20 }
        let coverage = try Plots.coverage(levels: levels, empirical: [levels.map { $0 + 0.01 * sin(10 * $0) }, levels.map { pow($0, 1.6) }],
                                          options: CoveragePlotOptions(labels: ["NPE", "NLE"], trials: 200))
        let font = PlotCanvas(width: 760, height: 150)
        font.text(" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ", at: PlotPoint(10, 10), size: 20, baseline: .top)
        font.text("[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~ θσμαβλπφ±°·−×", at: PlotPoint(10, 50), size: 20, baseline: .top)
        font.text("gjpqy, Ag", at: PlotPoint(10, 90), size: 30, baseline: .top)
        font.text("up", at: PlotPoint(700, 140), size: 20, rotated: true)
        for (name, canvas) in [("corner", corner), ("corner-plain", plain), ("corner-5d", five), ("corner-1d", one),
                               ("loss", loss), ("loss-short", shortLoss), ("sbc", sbc), ("coverage", coverage), ("font", font)] {
            try canvas.write(to: "\(out)/\(name).png")
            try canvas.write(to: "\(out)/\(name).svg")
        }
    }

    // MARK: Pieces

    func testNiceTicks() {
        XCTAssertEqual(PlotTicks.nice(0, 1, maxCount: 5).labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"])
        XCTAssertEqual(PlotTicks.nice(-3.2, 3.2, maxCount: 4).labels, ["-2", "0", "2"])
        XCTAssertEqual(PlotTicks.nice(0, 1, maxCount: 4).labels, ["0.00", "0.25", "0.50", "0.75", "1.00"])
        XCTAssertEqual(PlotTicks.nice(1, 60, maxCount: 10, integer: true).values.first, 10)
        XCTAssertEqual(PlotTicks.nice(0, 3e-5, maxCount: 3).labels, ["0", "1e-5", "2e-5", "3e-5"])
    }

    func testBinomialInterval() {
        let (lo, hi) = PlotDensity.binomialInterval(n: 1000, p: 0.05, confidence: 0.99)
        // Mean 50, sd ≈ 6.9: about ±2.58 sd.
        XCTAssertTrue((31...34).contains(lo), "\(lo)")
        XCTAssertTrue((67...69).contains(hi), "\(hi)")
    }

    func testContoursOfAGaussianBlobAreOneClosedRing() {
        let bins = 30
        var grid = [Double](repeating: 0, count: bins * bins)
        for iy in 0..<bins {
            for ix in 0..<bins {
                let x = Double(ix) - 14.5, y = Double(iy) - 14.5
                grid[iy * bins + ix] = exp(-(x * x + y * y) / 50)
            }
        }
        let rings = PlotDensity.contours(grid, bins: bins, level: 0.5, x0: 0, dx: 1, y0: 0, dy: 1)
        XCTAssertEqual(rings.count, 1)
        let radius = sqrt(50 * log(2.0))
        for (x, y) in rings[0] {
            XCTAssertEqual(hypot(x - 14.5, y - 14.5), radius, accuracy: 0.15)
        }
    }

    func testFontCoversPrintableASCII() {
        let unknown = PlotFont.glyph("\u{1F600}")
        XCTAssertEqual(unknown, PlotFont.glyph("?"))
        for code in 0x21...0x7E where code != 0x3F {
            let c = Character(Unicode.Scalar(UInt8(code)))
            XCTAssertNotEqual(PlotFont.glyph(c), unknown, "glyph for \(c)")
            XCTAssertTrue(PlotFont.glyph(c).contains { $0 != 0 }, "glyph for \(c) is not blank")
        }
        XCTAssertEqual(PlotCanvas.textWidth("abc", size: 10), 17)
    }
}
