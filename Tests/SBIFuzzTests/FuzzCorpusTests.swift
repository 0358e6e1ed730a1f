import Foundation
import SBIFuzz
import XCTest

/// The fuzz targets' properties on the seed corpus and on every truncation and a sweep of
/// single-byte mutations of each seed: a deterministic slice of what `sbi-fuzz` explores, so that
/// a regression in a parser fails the ordinary test run. The libFuzzer runs themselves (10⁶
/// executions and more) are in Benchmarks/README.md and the CI script.
final class FuzzCorpusTests: XCTestCase {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("FuzzCorpus")

    func seeds(_ target: FuzzTarget) throws -> [(name: String, bytes: Data)] {
        let folder = Self.corpus.appendingPathComponent(target.rawValue)
        let files = try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
        return try files.sorted { $0.path < $1.path }.map { ($0.lastPathComponent, try Data(contentsOf: $0)) }
    }

    func testSeedsAndTheirMutations() throws {
        for target in FuzzTarget.allCases {
            let seeds = try seeds(target)
            XCTAssertGreaterThanOrEqual(seeds.count, 3, "\(target): seed corpus")
            var inputs = 0
            for (name, bytes) in seeds {
                var variants: [(String, Data)] = [("as is", bytes)]
                for length in 0..<bytes.count { variants.append(("first \(length) bytes", bytes.prefix(length))) }
                // Each byte set to values that parsers treat specially: 0, 0xff, a digit, a quote, a line break.
                for index in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 64)) {
                    for value: UInt8 in [0x00, 0xff, 0x39, 0x27, 0x0a] where bytes[index] != value {
                        var mutated = bytes
                        mutated[index] = value
                        variants.append(("byte \(index) = \(value)", mutated))
                    }
                }
                for (variant, input) in variants {
                    inputs += 1
                    if let violation = target.violation(input) {
                        XCTFail("\(target) \(name), \(variant): \(violation)")
                    }
                }
            }
            XCTAssertGreaterThan(inputs, 100, "\(target): inputs checked")
        }
    }

    /// The seeds are valid files (those named refused_ aside): the properties of accepted
    /// values, not only refusals, are exercised.
    func testSeedsParse() throws {
        for target in FuzzTarget.allCases {
            for (name, bytes) in try seeds(target) {
                XCTAssertEqual(target.accepts(bytes), !name.hasPrefix("refused_"),
                               "\(target) \(name)")
            }
        }
    }
}
