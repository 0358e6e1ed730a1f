import XCTest
import Foundation
import SBIBackend
import SBIInference
import SBIModels
import SBIData
@testable import sbi_gpu

/// The command line end to end on tiny budgets, run as a user would: the built `sbi-gpu` binary
/// in a scratch directory. Errors must be one line on stderr with a non-zero exit, and leave no
/// half-written output.
final class CLITests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sbi-gpu-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    /// The binary sits next to the test bundle in the build products directory.
    var binary: URL { Bundle.main.bundleURL.appendingPathComponent("sbi-gpu") }

    @discardableResult
    func run(_ arguments: [String], expectSuccess: Bool = true, file: StaticString = #filePath, line: UInt = #line)
        throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if expectSuccess {
            XCTAssertEqual(process.terminationStatus, 0, "sbi-gpu \(arguments.joined(separator: " ")): \(stderr)", file: file, line: line)
        }
        return (process.terminationStatus, stdout, stderr)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func testMainPathsEndToEnd() throws {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("sbi-gpu binary not built") }
        let devices = try run(["devices"])
        XCTAssertTrue(devices.stdout.contains("cpu"), devices.stdout)
        try run(["simulate", "--task", "two_moons", "--num", "600", "--seed", "3", "--out", path("sims")])
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("sims/theta.npy")))
        // NPE from files, every estimator family once, CPU backend.
        // The flows once with dropout and without the conditional affine layer.
        for (estimator, options) in [("realnvp", ["--dropout", "0.2"]), ("maf", ["--no-conditional-affine"]), ("nsf", []),
                                     ("mdn", []), ("gmm", [])] {
            try run(["train", "--device", "cpu", "--estimator", estimator, "--theta", path("sims/theta.npy"),
                     "--x", path("sims/x.npy"), "--epochs", "2", "--hidden", "16", "--transforms", "2",
                     "--out", path("run-\(estimator)"), "--quiet"] + options)
            for file in ["model.safetensors", "config.json", "history.csv"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: path("run-\(estimator)/\(file)")), "\(estimator): \(file)")
            }
        }
        // An observation: the first simulated x.
        try run(["simulate", "--task", "two_moons", "--num", "1", "--seed", "9", "--out", path("obs")])
        try run(["sample", "--device", "cpu", "--model", path("run-nsf"), "--observation", path("obs/x.npy"),
                 "--num", "200", "--out", path("samples.npy")])
        try run(["log-prob", "--device", "cpu", "--model", path("run-nsf"), "--theta", path("samples.npy"),
                 "--observation", path("obs/x.npy"), "--out", path("logq.npy")])
        try run(["plot", "corner", path("samples.npy"), "--out", path("corner.png")])
        try run(["plot", "loss", path("run-nsf"), "--out", path("loss.svg")])
        // Held-out pairs from another seed; a run trained on files has no task to simulate from.
        try run(["simulate", "--task", "two_moons", "--num", "20", "--seed", "11", "--out", path("heldout")])
        let diagnose = try run(["diagnose", "--device", "cpu", "--model", path("run-nsf"), "--theta", path("heldout/theta.npy"),
                                "--x", path("heldout/x.npy"), "--num-samples", "50", "--out", path("diag")])
        XCTAssertTrue(diagnose.stdout.contains("TARP"), diagnose.stdout)
        try run(["abc", "--theta", path("sims/theta.npy"), "--x", path("sims/x.npy"), "--observation", path("obs/x.npy"),
                 "--quantile", "0.05", "--out", path("abc.npy")])
        // NLE with MCMC on the built-in task, and a resumed run.
        try run(["train", "--device", "cpu", "--method", "nle", "--estimator", "maf", "--num-simulations", "500",
                 "--epochs", "2", "--hidden", "16", "--transforms", "2", "--out", path("run-nle"), "--quiet"])
        let nle = try run(["sample", "--device", "cpu", "--model", path("run-nle"), "--observation", path("obs/x.npy"),
                           "--num", "100", "--chains", "10", "--warmup", "10", "--out", path("nle.npy")])
        XCTAssertTrue(nle.stderr.contains("R̂"), nle.stderr)
        try run(["train", "--device", "cpu", "--method", "nle", "--estimator", "maf", "--num-simulations", "500",
                 "--epochs", "3", "--hidden", "16", "--transforms", "2", "--out", path("run-nle"), "--quiet", "--resume"])
        let history = try String(contentsOfFile: path("run-nle/history.csv"), encoding: .utf8)
        XCTAssertEqual(history.split(separator: "\n").count, 1 + 3)
    }

    /// NPE from images: the automatic embedding of galaxy stamps is the CNN (recorded in
    /// config.json and in the model), `sample` draws the posteriors of several stamps in one
    /// call or of one H×W stamp file, `plot predictive` draws the check, `diagnose` takes image x,
    /// and `--embedding cnn` refuses x that is not an image with one line.
    func testImageNPEUsesTheCNNEmbedding() throws {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("sbi-gpu binary not built") }
        try run(["simulate", "--task", "galaxy", "--num", "300", "--seed", "3", "--out", path("stamps")])
        try run(["train", "--device", "cpu", "--theta", path("stamps/theta.npy"), "--x", path("stamps/x.npy"),
                 "--epochs", "2", "--hidden", "16", "--transforms", "2", "--dropout", "0", "--out", path("run"), "--quiet"])
        let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("run/config.json"))))
                                   as? [String: Any])
        XCTAssertEqual(config["embedding"] as? String, "cnn: channels 8,16,32, head 128,64")
        let model = try SafetensorsFile.read(from: URL(fileURLWithPath: path("run/model.safetensors")))
        XCTAssertNotNil(model.tensors["embedding.conv2.weight"], "three conv blocks for 32×32 stamps")
        try run(["simulate", "--task", "galaxy", "--num", "3", "--seed", "9", "--out", path("obs")])
        try run(["sample", "--device", "cpu", "--model", path("run"), "--observation", path("obs/x.npy"),
                 "--num", "50", "--out", path("posterior.npy")])
        let posterior = try NumPy.read(URL(fileURLWithPath: path("posterior.npy")))
        XCTAssertEqual(posterior.shape, [3, 50, 5])
        // One stamp as a 32×32 file, its posterior, and the predictive figure.
        let stamps = try NumPy.read(URL(fileURLWithPath: path("obs/x.npy"))).floats()
        try NumPy.write(try NumPyArray(floats: Array(stamps[0..<1024]), shape: [32, 32]), to: URL(fileURLWithPath: path("stamp.npy")))
        try run(["sample", "--device", "cpu", "--model", path("run"), "--observation", path("stamp.npy"),
                 "--num", "40", "--out", path("stamp-posterior.npy")])
        XCTAssertEqual(try NumPy.read(URL(fileURLWithPath: path("stamp-posterior.npy"))).shape, [40, 5])
        try run(["plot", "predictive", "--device", "cpu", "--task", "galaxy", "--observation", path("stamp.npy"),
                 "--samples", path("stamp-posterior.npy"), "--num", "5", "--out", path("predictive.png")])
        let png = try Data(contentsOf: URL(fileURLWithPath: path("predictive.png")))
        XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
        try NumPy.write(try NumPyArray(floats: [Float](repeating: 3, count: 30), shape: [10, 3]), to: URL(fileURLWithPath: path("three.npy")))
        let wrongSamples = try run(["plot", "predictive", "--device", "cpu", "--task", "galaxy", "--observation", path("stamp.npy"),
                                    "--samples", path("three.npy"), "--out", path("bad.png")], expectSuccess: false)
        XCTAssertTrue(wrongSamples.stderr.contains("galaxy has 5 parameters"), wrongSamples.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad.png")))
        // Calibration diagnostics take image x too.
        try run(["diagnose", "--device", "cpu", "--model", path("run"), "--theta", path("obs/theta.npy"), "--x", path("obs/x.npy"),
                 "--num-samples", "30", "--out", path("diagnostics")])
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("diagnostics/diagnostics.json")))
        try run(["simulate", "--task", "two_moons", "--num", "50", "--seed", "3", "--out", path("moons")])
        let refused = try run(["train", "--device", "cpu", "--theta", path("moons/theta.npy"), "--x", path("moons/x.npy"),
                               "--embedding", "cnn", "--epochs", "1", "--out", path("moons-run"), "--quiet"], expectSuccess: false)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("CNN embedding needs images"), refused.stderr)
        XCTAssertEqual(refused.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count, 1, refused.stderr)
    }

    /// --method likelihood samples a known likelihood's posterior without a model (gaussian_linear:
    /// N(x_o/2, 0.05·I), means within 0.03 of it with 2,000 draws), reports R̂ and the effective
    /// sample size, and refuses a task whose likelihood is unknown (a usage error) or a misshapen
    /// observation (one line) without writing --out.
    func testLikelihoodPosteriorFromTheCommandLine() throws {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("sbi-gpu binary not built") }
        try run(["simulate", "--task", "gaussian_linear", "--num", "2", "--seed", "4", "--out", path("obs")])
        let sampled = try run(["sample", "--device", "cpu", "--method", "likelihood", "--task", "gaussian_linear",
                               "--observation", path("obs/x.npy"), "--num", "2000", "--chains", "40", "--out", path("exact.npy")])
        XCTAssertTrue(sampled.stderr.contains("max R̂") && sampled.stderr.contains("effective sample size"), sampled.stderr)
        let samples = try NumPy.read(URL(fileURLWithPath: path("exact.npy")))
        XCTAssertEqual(samples.shape, [2, 2000, 10])
        let values = try samples.floats(), x = try NumPy.read(URL(fileURLWithPath: path("obs/x.npy"))).floats()
        for r in 0..<2 {
            for j in 0..<10 {
                let mean = (0..<2000).reduce(0.0) { $0 + Double(values[(r * 2000 + $1) * 10 + j]) } / 2000
                XCTAssertEqual(mean, Double(x[r * 10 + j]) / 2, accuracy: 0.03)
            }
        }
        try run(["simulate", "--task", "two_moons", "--num", "1", "--out", path("moons")])
        let unknown = try run(["sample", "--device", "cpu", "--method", "likelihood", "--task", "two_moons",
                               "--observation", path("moons/x.npy"), "--out", path("none.npy")], expectSuccess: false)
        XCTAssertTrue(unknown.stderr.contains("not known in closed form") && unknown.stderr.contains("galaxy"), unknown.stderr)
        let misshapen = try run(["sample", "--device", "cpu", "--method", "likelihood", "--task", "galaxy",
                                 "--observation", path("obs/x.npy"), "--out", path("none.npy")], expectSuccess: false)
        XCTAssertTrue(misshapen.stderr.contains("expected observations of shape 32×32"), misshapen.stderr)
        XCTAssertEqual(unknown.status, 64, "a usage error: its line, then the usage")
        XCTAssertEqual(misshapen.status, 65)
        XCTAssertEqual(misshapen.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count, 1, misshapen.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("none.npy")))
    }

    /// Image densities: train (unconditional and with a context), log-prob in bits/dim, sample
    /// with a PNG grid; and bad images refused with one line naming the file before any work.
    func testImageDensityEndToEndAndBadImages() throws {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("sbi-gpu binary not built") }
        let n = 40
        let pixels: [UInt8] = (0..<(n * 64)).map { (i: Int) -> UInt8 in UInt8((i * 7 + i / 64) % 4) }
        try NumPy.write(try NumPyArray(uint8s: pixels, shape: [n, 8, 8]), to: URL(fileURLWithPath: path("images.npy")))
        try NumPy.write(try NumPyArray(floats: (0..<(n * 2)).map { Float($0 % 3) }, shape: [n, 2]),
                        to: URL(fileURLWithPath: path("context.npy")))
        let tiny = ["--levels", "4", "--epochs", "2", "--transforms", "2", "--hidden", "8", "--batch-size", "8", "--quiet"]
        try run(["train", "--device", "cpu", "--method", "density", "--data", path("images.npy"), "--out", path("glow")] + tiny)
        let config = try String(contentsOfFile: path("glow/config.json"), encoding: .utf8)
        XCTAssertTrue(config.contains("\"estimator\" : \"glow\"") && config.contains("bestValidationBitsPerDimension"), config)
        let logProb = try run(["log-prob", "--device", "cpu", "--model", path("glow"), "--data", path("images.npy"),
                               "--out", path("bpd.npy")])
        let mean = Double(logProb.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        XCTAssertNotNil(mean, logProb.stdout)
        XCTAssertTrue(mean.map { $0 > 0 && $0 < 10 } ?? false, "mean bits/dim \(logProb.stdout)")
        XCTAssertEqual(try NumPy.read(URL(fileURLWithPath: path("bpd.npy"))).shape, [n])
        try run(["sample", "--device", "cpu", "--model", path("glow"), "--num", "9", "--temperature", "0.7", "--out", path("s.npy")])
        let samples = try NumPy.read(URL(fileURLWithPath: path("s.npy")))
        XCTAssertEqual(samples.shape, [9, 8, 8])
        XCTAssertTrue(try samples.uint8s().allSatisfy { $0 < 4 })
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("s.png")))
        // The multi-scale RealNVP trains and evaluates the same way.
        try run(["train", "--device", "cpu", "--method", "density", "--estimator", "realnvp-ms", "--data", path("images.npy"),
                 "--out", path("rnvp")] + tiny)
        try run(["log-prob", "--device", "cpu", "--model", path("rnvp"), "--data", path("images.npy"), "--out", path("rbpd.npy")])
        // Glow with spline couplings: recorded in the checkpoint, sampled back to valid pixels.
        try run(["train", "--device", "cpu", "--method", "density", "--coupling", "spline", "--bins", "4", "--data", path("images.npy"),
                 "--out", path("spline")] + tiny)
        let model = try SafetensorsFile.read(from: URL(fileURLWithPath: path("spline/model.safetensors")))
        XCTAssertTrue(model.metadata["glow.configuration"]?.contains("spline") ?? false, "\(model.metadata)")
        try run(["sample", "--device", "cpu", "--model", path("spline"), "--num", "4", "--out", path("ss.npy")])
        XCTAssertTrue(try NumPy.read(URL(fileURLWithPath: path("ss.npy"))).uint8s().allSatisfy { $0 < 4 })
        // Conditional, with the logit preprocessing: one context row per image; sampling for one context row.
        try run(["train", "--device", "cpu", "--method", "density", "--data", path("images.npy"), "--context", path("context.npy"),
                 "--preprocessing", "logit", "--out", path("glow-c")] + tiny)
        try NumPy.write(try NumPyArray(floats: [1, 2], shape: [1, 2]), to: URL(fileURLWithPath: path("c1.npy")))
        try run(["sample", "--device", "cpu", "--model", path("glow-c"), "--num", "4", "--context", path("c1.npy"), "--out", path("sc.npy")])
        XCTAssertEqual(try NumPy.read(URL(fileURLWithPath: path("sc.npy"))).shape, [4, 8, 8])

        // Bad images: wrong rank, pixels beyond the levels, NaN, floats without --levels, a
        // channel count the model was not trained on, a vector estimator for images.
        try NumPy.write(try NumPyArray(uint8s: [UInt8](repeating: 1, count: 40 * 64), shape: [40, 64]), to: URL(fileURLWithPath: path("flat.npy")))
        var nan: [Float] = pixels.map { Float($0) }
        nan[64 * 3 + 5] = Float.nan
        try NumPy.write(try NumPyArray(floats: nan, shape: [n, 8, 8]), to: URL(fileURLWithPath: path("nan.npy")))
        try NumPy.write(try NumPyArray(uint8s: [UInt8](repeating: 1, count: 2 * 64 * 3), shape: [2, 8, 8, 3]), to: URL(fileURLWithPath: path("rgb.npy")))
        let cases: [([String], [String])] = [
            (["train", "--method", "density", "--data", path("flat.npy"), "--out", path("bad")], ["flat.npy", "N×H×W"]),
            (["train", "--method", "density", "--data", path("images.npy"), "--levels", "3", "--out", path("bad")], ["images.npy", "integers 0…2"]),
            (["train", "--method", "density", "--data", path("nan.npy"), "--levels", "4", "--out", path("bad")], ["nan.npy", "image 3", "nan"]),
            (["train", "--method", "density", "--data", path("nan.npy"), "--out", path("bad")], ["nan.npy", "--levels"]),
            (["log-prob", "--model", path("glow"), "--data", path("rgb.npy"), "--out", path("bad.npy")], ["rgb.npy", "8×8×3", "8×8×1"]),
            (["train", "--method", "density", "--estimator", "nsf", "--data", path("images.npy"), "--out", path("bad")], ["--estimator nsf"]),
            (["train", "--estimator", "glow", "--num-simulations", "100", "--out", path("bad")], ["--method density"]),
            (["train", "--method", "density", "--estimator", "realnvp-ms", "--coupling", "spline", "--data", path("images.npy"),
              "--out", path("bad")], ["--coupling spline", "glow"]),
        ]
        for (arguments, expected) in cases {
            let result = try run(arguments + ["--device", "cpu"], expectSuccess: false)
            XCTAssertNotEqual(result.status, 0, arguments.joined(separator: " "))
            // The error is the first line (the parser adds the usage after it).
            let message = String(result.stderr.split(separator: "\n").first ?? "")
            for word in expected { XCTAssertTrue(message.contains(word), "\(arguments.joined(separator: " ")): \(message)") }
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad/model.safetensors")))
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad.npy")))
        }
    }

    /// Outputs are checked before any work: an existing file or trained run is not replaced
    /// without --force (a run may be continued with --resume), a missing or file-blocked
    /// directory is refused, and --resume without a checkpoint says that it starts afresh.
    func testOutputsAreCheckedBeforeWork() throws {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("sbi-gpu binary not built") }
        let train = ["train", "--device", "cpu", "--num-simulations", "200", "--epochs", "1", "--hidden", "8", "--transforms", "1",
                     "--quiet", "--out", path("run")]
        var result = try run(train + ["--resume"])
        XCTAssertTrue(result.stderr.contains("no checkpoint.safetensors yet"), result.stderr)
        let model = try Data(contentsOf: URL(fileURLWithPath: path("run/model.safetensors")))
        result = try run(train, expectSuccess: false)
        XCTAssertEqual(result.status, 64)
        XCTAssertTrue(result.stderr.contains("holds a trained model") && result.stderr.contains("--force"), result.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("run/model.safetensors"))), model, "left as it was")
        try run(train + ["--force", "--seed", "1"])
        try run(["simulate", "--task", "two_moons", "--num", "1", "--out", path("obs")])
        let sample = ["sample", "--device", "cpu", "--model", path("run"), "--observation", path("obs/x.npy"), "--num", "10"]
        try run(sample + ["--out", path("samples.npy")])
        result = try run(sample + ["--out", path("samples.npy")], expectSuccess: false)
        XCTAssertTrue(result.stderr.contains("exists; pass --force"), result.stderr)
        try run(sample + ["--out", path("samples.npy"), "--force"])
        for (out, words) in [(path("missing/samples.npy"), "does not exist"), (path("obs"), "is a directory")] {
            result = try run(sample + ["--out", out], expectSuccess: false)
            XCTAssertEqual(result.status, 64)
            XCTAssertTrue(result.stderr.contains(words), result.stderr)
        }
        try Data("x".utf8).write(to: URL(fileURLWithPath: path("afile")))
        result = try run(["train", "--device", "cpu", "--num-simulations", "200", "--out", path("afile/run")], expectSuccess: false)
        XCTAssertTrue(result.stderr.contains("afile"), result.stderr)
    }

    /// Exit statuses by class (sysexits): usage 64, data 65, missing input 66, each one line
    /// naming the flag and the file.
    func testExitStatusesByClass() throws {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("sbi-gpu binary not built") }
        try run(["simulate", "--task", "two_moons", "--num", "30", "--out", path("a")])
        try run(["simulate", "--task", "two_moons", "--num", "40", "--out", path("b")])
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path("a/x.npy")))
        try bytes.prefix(bytes.count - 7).write(to: URL(fileURLWithPath: path("truncated.npy")))
        try NumPy.write(try NumPyArray(floats: [Float](repeating: 0.5, count: 60), shape: [30, 1, 2]), to: URL(fileURLWithPath: path("theta3.npy")))
        var cases: [([String], Int32, [String])] = [
            (["train", "--bins", "0", "--out", path("t")], 64, ["--bins"]),
            (["train", "--theta", path("nope.npy"), "--x", path("a/x.npy"), "--out", path("t")], 66, ["--theta", "nope.npy", "does not exist"]),
            (["sample", "--model", path("norun"), "--observation", path("a/x.npy"), "--out", path("q.npy")], 66, ["--model", "norun"]),
            (["train", "--theta", path("a/theta.npy"), "--x", path("truncated.npy"), "--out", path("t")], 65, ["--x", "truncated.npy"]),
            (["train", "--method", "density", "--data", path("a/theta.npy"), "--levels", "4", "--out", path("t")], 65, ["--data", "theta.npy"]),
            // A prior that excludes every training θ (two_moons' θ lie in [−1, 1]²).
            (["train", "--theta", path("a/theta.npy"), "--x", path("a/x.npy"), "--prior", "uniform:5,6", "--out", path("t")], 65, ["--prior", "excludes every one of the 30"]),
            // A 3-D θ is not flattened into wider rows.
            (["train", "--theta", path("theta3.npy"), "--x", path("a/x.npy"), "--out", path("t")], 65, ["--theta", "theta3.npy", "30×1×2"]),
        ]
        // The advertised mvn prior reads its mean and covariance files.
        try NumPy.write(try NumPyArray(doubles: [0, 0], shape: [2]), to: URL(fileURLWithPath: path("mean.npy")))
        try NumPy.write(try NumPyArray(doubles: [4, 0.5, 0.5, 4], shape: [2, 2]), to: URL(fileURLWithPath: path("cov.npy")))
        try run(["train", "--device", "cpu", "--theta", path("a/theta.npy"), "--x", path("a/x.npy"), "--epochs", "1", "--hidden", "8",
                 "--transforms", "1", "--quiet", "--prior", "mvn:\(path("mean.npy")),\(path("cov.npy"))", "--out", path("mvn")])
        let mvn = try String(contentsOfFile: path("mvn/config.json"), encoding: .utf8)
        XCTAssertTrue(mvn.contains("gaussian") || mvn.contains("covariance"), mvn)
        cases.append((["train", "--theta", path("a/theta.npy"), "--x", path("a/x.npy"), "--prior", "mvn:\(path("nomean.npy")),\(path("cov.npy"))",
                       "--out", path("t")], 65, ["--prior", "nomean.npy"]))
        // Resuming a run with another estimator names both, before any tensor.
        try run(["train", "--device", "cpu", "--theta", path("a/theta.npy"), "--x", path("a/x.npy"), "--epochs", "1", "--hidden", "8",
                 "--transforms", "1", "--quiet", "--estimator", "nsf", "--out", path("resumed")])
        cases.append((["train", "--theta", path("a/theta.npy"), "--x", path("a/x.npy"), "--epochs", "2", "--hidden", "8", "--transforms", "1",
                       "--estimator", "maf", "--resume", "--quiet", "--out", path("resumed")], 65, ["checkpoint is a nsf model", "asks for maf"]))
        // A trained run, then damaged copies: an unknown method, a NaN weight.
        try run(["train", "--device", "cpu", "--theta", path("a/theta.npy"), "--x", path("a/x.npy"), "--epochs", "1",
                 "--hidden", "8", "--transforms", "1", "--quiet", "--out", path("good")])
        for name in ["badmethod", "nanweight", "badjson", "nofield", "wrongdim"] {
            try FileManager.default.copyItem(atPath: path("good"), toPath: path(name))
        }
        let config = try String(contentsOfFile: path("good/config.json"), encoding: .utf8)
        try config.replacingOccurrences(of: "\"method\" : \"npe\"", with: "\"method\" : \"mystery\"")
            .write(toFile: path("badmethod/config.json"), atomically: true, encoding: .utf8)
        try String(config.prefix(config.count / 2)).write(toFile: path("badjson/config.json"), atomically: true, encoding: .utf8)
        try config.replacingOccurrences(of: "\"thetaDimension\"", with: "\"thetaDim\"")
            .write(toFile: path("nofield/config.json"), atomically: true, encoding: .utf8)
        // A config.json that disagrees with its model is caught at load, before any sampling.
        try config.replacingOccurrences(of: "\"thetaDimension\" : 2", with: "\"thetaDimension\" : 3")
            .write(toFile: path("wrongdim/config.json"), atomically: true, encoding: .utf8)
        let model = try SafetensorsFile.read(from: URL(fileURLWithPath: path("good/model.safetensors")))
        var tensors = model.tensors
        let (victim, tensor) = tensors.sorted { $0.key < $1.key }.first { $0.value.shape.reduce(1, *) > 1 }!
        var values = try tensor.floats
        values[1] = .nan
        tensors[victim] = try SafetensorsTensor(floats: values, shape: tensor.shape)
        try SafetensorsFile(tensors: tensors, metadata: model.metadata).write(to: URL(fileURLWithPath: path("nanweight/model.safetensors")))
        cases += [
            (["sample", "--model", path("badjson"), "--observation", path("a/x.npy"), "--num", "5", "--out", path("q.npy")], 65, ["config.json", "not valid JSON"]),
            (["sample", "--model", path("nofield"), "--observation", path("a/x.npy"), "--num", "5", "--out", path("q.npy")], 65, ["field 'thetaDimension' is missing"]),
            (["sample", "--model", path("wrongdim"), "--observation", path("a/x.npy"), "--num", "5", "--out", path("q.npy")], 65,
             ["config.json", "'thetaDimension' is 3", "model of 2 values"]),
            // Two files that disagree are a data error too.
            (["train", "--theta", path("a/theta.npy"), "--x", path("b/x.npy"), "--out", path("t")], 65, ["θ has 30 rows but x has 40"]),
            (["sample", "--model", path("badmethod"), "--observation", path("a/x.npy"), "--num", "5", "--out", path("q.npy")], 65, ["method", "mystery"]),
            (["sample", "--model", path("nanweight"), "--observation", path("a/x.npy"), "--num", "5", "--out", path("q.npy")], 65, [victim, "non-finite"]),
        ]
        for (arguments, status, words) in cases {
            let result = try run(arguments + ["--device", "cpu"], expectSuccess: false)
            XCTAssertEqual(result.status, status, "\(arguments.joined(separator: " ")): \(result.stderr)")
            let first = String(result.stderr.split(separator: "\n").first ?? "")
            for word in words { XCTAssertTrue(first.contains(word), "\(arguments.joined(separator: " ")): \(first)") }
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("t")))
        }
    }

    func testBadInputIsRefusedWithOneLine() throws {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("sbi-gpu binary not built") }
        try run(["simulate", "--task", "two_moons", "--num", "50", "--out", path("a")])
        try run(["simulate", "--task", "two_moons", "--num", "40", "--out", path("b")])
        // θ and x of different row counts.
        var result = try run(["train", "--device", "cpu", "--theta", path("a/theta.npy"), "--x", path("b/x.npy"),
                              "--out", path("bad"), "--quiet"], expectSuccess: false)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("50 rows") && result.stderr.contains("40"), result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad/model.safetensors")))
        // A truncated .npy names the file.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path("a/x.npy")))
        try bytes.prefix(bytes.count - 7).write(to: URL(fileURLWithPath: path("truncated.npy")))
        result = try run(["train", "--device", "cpu", "--theta", path("a/theta.npy"), "--x", path("truncated.npy"),
                          "--out", path("bad"), "--quiet"], expectSuccess: false)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("truncated.npy"), result.stderr)
        // A device index that does not exist lists what does.
        result = try run(["train", "--device", "99", "--num-simulations", "100", "--out", path("bad")], expectSuccess: false)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("device 99 does not exist") && result.stderr.contains("--device cpu"), result.stderr)
        // An unknown task and a bad prior spec.
        result = try run(["simulate", "--task", "nope", "--out", path("c")], expectSuccess: false)
        XCTAssertTrue(result.stderr.contains("two_moons"), result.stderr)
        result = try run(["train", "--device", "cpu", "--theta", path("a/theta.npy"), "--x", path("a/x.npy"),
                          "--prior", "uniform:1", "--out", path("bad"), "--quiet"], expectSuccess: false)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("--prior"), result.stderr)
        result = try run(["train", "--device", "cpu", "--theta", path("a/theta.npy"), "--x", path("a/x.npy"),
                          "--dropout", "1", "--out", path("bad"), "--quiet"], expectSuccess: false)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("--dropout"), result.stderr)
        result = try run(["train", "--device", "cpu", "--theta", path("a/theta.npy"), "--x", path("a/x.npy"),
                          "--max-device-memory", "lots", "--out", path("bad"), "--quiet"], expectSuccess: false)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("--max-device-memory lots"), result.stderr)
    }

    /// `--dropout auto` trains again with dropout when the first run overfits, keeps the model
    /// with the better validation loss and says so in config.json; a run that does not overfit
    /// trains once, exactly as `--dropout 0` does.
    func testAutomaticDropout() throws {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("sbi-gpu binary not built") }
        let common = ["train", "--device", "cpu", "--task", "gaussian_linear", "--num-simulations", "1000", "--quiet"]
        // The default flow overfits 1,000 simulations of this 10-d task: best epoch about 11, stop at 31.
        try run(common + ["--out", path("auto")])
        let auto = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("auto/config.json")))) as? [String: Any]
        let choice = try XCTUnwrap(auto?["dropoutChoice"] as? String)
        XCTAssertTrue(choice.hasPrefix("auto: "), choice)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("auto/checkpoint-dropout.safetensors")))
        let kept = try XCTUnwrap(auto?["dropout"] as? Double)
        XCTAssertEqual(kept, choice.hasPrefix("auto: dropout") ? 0.2 : 0, accuracy: 1e-6)
        // Without early stopping there is nothing to detect: one training, the same model as --dropout 0.
        try run(common + ["--epochs", "3", "--hidden", "16", "--out", path("once")])
        try run(common + ["--epochs", "3", "--hidden", "16", "--dropout", "0", "--out", path("zero")])
        let once = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("once/config.json")))) as? [String: Any]
        XCTAssertNil(once?["dropoutChoice"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("once/checkpoint-dropout.safetensors")))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("once/model.safetensors"))),
                       try Data(contentsOf: URL(fileURLWithPath: path("zero/model.safetensors"))))
    }

    /// Flags with values out of range are refused before any work, with the flag named and the
    /// usage exit code: negative numbers in both spellings (not taken for flags), empty list
    /// items, zero counts.
    func testOutOfRangeFlagsAreRefusedUpFront() throws {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("sbi-gpu binary not built") }
        let cases: [([String], String)] = [
            (["simulate", "--num", "-1", "--out", path("s")], "--num"),
            (["simulate", "--num=-1", "--out", path("s")], "--num"),
            (["train", "--epochs", "-3", "--out", path("t")], "--epochs"),
            (["train", "--learning-rate", "-0.1", "--out", path("t")], "--learning-rate"),
            (["train", "--bins", "0", "--out", path("t")], "--bins"),
            (["train", "--transforms", "0", "--out", path("t")], "--transforms"),
            (["train", "--hidden", "64,,64", "--out", path("t")], "--hidden"),
            (["train", "--seed", "-1", "--out", path("t")], "--seed"),
            (["abc", "--num-simulations", "0", "--observation", path("o.npy"), "--out", path("a.npy")], "--num-simulations"),
            (["abc", "--quantile", "-0.5", "--observation", path("o.npy"), "--out", path("a.npy")], "--quantile"),
            (["diagnose", "--model", path("none"), "--num-samples", "0", "--out", path("d")], "--num-samples"),
            (["sample", "--model", path("none"), "--observation", path("o.npy"), "--num", "-5", "--out", path("q.npy")], "--num"),
            (["sample", "--model", path("none"), "--observation", path("o.npy"), "--chains", "1", "--out", path("q.npy")], "--chains 1"),
            (["sample", "--model", path("none"), "--observation", path("o.npy"), "--warmup", "-2", "--out", path("q.npy")], "--warmup -2"),
            (["bench", "flows", "--repeats", "0"], "--repeats 0"),
            // A count whose output could not fit in memory: refused, not an allocation abort.
            (["simulate", "--num", "1000000000000", "--out", path("s")], "--num 1000000000000"),
        ]
        for (arguments, flag) in cases {
            let result = try run(arguments, expectSuccess: false)
            XCTAssertEqual(result.status, 64, "\(arguments): \(result.stderr)")
            let first = result.stderr.split(separator: "\n").first.map(String.init) ?? ""
            XCTAssertTrue(first.contains(flag), "\(arguments): \(first)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("t/model.safetensors")))
        }
    }

    /// A data set over --max-device-memory streams, says so, and trains the same model.
    func testStreamedTrainingWritesTheSameModel() throws {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("sbi-gpu binary not built") }
        let common = ["train", "--device", "cpu", "--task", "two_moons", "--num-simulations", "600", "--epochs", "3"]
        try run(common + ["--quiet", "--out", path("memory")])
        let streamed = try run(common + ["--max-device-memory", "4KB", "--out", path("streamed")])
        XCTAssertTrue(streamed.stderr.contains("streaming"), streamed.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("memory/model.safetensors"))),
                       try Data(contentsOf: URL(fileURLWithPath: path("streamed/model.safetensors"))))
    }

    /// `--device` words.
    func testDeviceWords() {
        XCTAssertEqual(DeviceSelection(argument: "cpu"), .cpu)
        XCTAssertEqual(DeviceSelection(argument: "CPU"), .cpu)
        XCTAssertEqual(DeviceSelection(argument: "blas"), .cpu)
        XCTAssertEqual(DeviceSelection(argument: "auto"), .automatic)
        XCTAssertEqual(DeviceSelection(argument: "default"), .automatic)
        XCTAssertEqual(DeviceSelection(argument: "0"), .openCL(0))
        XCTAssertEqual(DeviceSelection(argument: "12"), .openCL(12))
        XCTAssertEqual(DeviceSelection(argument: " 1 "), .openCL(1))
        for garbage in ["", "gpu", "-1", "1.5", "0x1", "cpu0", "99999999999999999999999"] {
            XCTAssertNil(DeviceSelection(argument: garbage), "'\(garbage)'")
        }
        for selection in [DeviceSelection.cpu, .automatic, .openCL(3)] {
            XCTAssertEqual(DeviceSelection(argument: selection.description), selection)
        }
    }

    /// The library's policy is the command line's: `NPE.train` and `NLE.train` with default
    /// `EstimatorTraining` write the same model bytes as `sbi-gpu train` on the same simulations,
    /// including a run that the automatic dropout rule trains twice.
    func testLibraryTrainsTheModelTheCommandLineTrains() throws {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("sbi-gpu binary not built") }
        for (method, task, simulations, extra) in [("npe", "gaussian_linear", 1000, [String]()),
                                                   ("nle", "two_moons", 400, ["--estimator", "maf", "--epochs", "3"])] {
            let out = path("cli-\(method)")
            try run(["train", "--device", "cpu", "--method", method, "--task", task,
                     "--num-simulations", "\(simulations)", "--quiet", "--out", out] + extra)
            let simulator = try Simulators.named(task)
            let backend = CPUBackend()
            let (theta, x) = try simulator.sampleAndSimulate(count: simulations, seed: 0, backend: backend)
            var training = EstimatorTraining()
            if method == "nle" { (training.estimator, training.epochs) = ("maf", 3) }
            let (d, c) = (simulator.parameterDimension, simulator.observationDimension)
            let result = method == "npe"
                ? try NPE.train(theta: theta, thetaDimension: d, x: x, xDimension: c, prior: simulator.prior,
                                training: training, backend: backend).1
                : try NLE.train(theta: theta, thetaDimension: d, x: x, xDimension: c, prior: simulator.prior,
                                training: training, backend: backend).1
            if method == "npe" { XCTAssertNotNil(result.dropoutChoice, "gaussian_linear at 10³ overfits: two trainings") }
            let library = directory.appendingPathComponent("library-\(method).safetensors")
            try result.estimator.save(to: library)
            XCTAssertEqual(try Data(contentsOf: library),
                           try Data(contentsOf: URL(fileURLWithPath: out + "/model.safetensors")), "\(method) on \(task)")
        }
    }

    /// Rows holding NaN are refused with the row named.
    func testNaNRowsAreRefused() throws {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("sbi-gpu binary not built") }
        try run(["simulate", "--task", "gaussian_linear", "--num", "30", "--out", path("g")])
        // Overwrite one value of x with NaN: the .npy data region ends the file.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path("g/x.npy")))
        let nan = Float.nan.bitPattern.littleEndian
        let at = bytes.count - 4 * 10 * 5 + 8  // row 25, feature 2
        withUnsafeBytes(of: nan) { bytes.replaceSubrange(at..<(at + 4), with: $0) }
        try bytes.write(to: URL(fileURLWithPath: path("g/x.npy")))
        let result = try run(["train", "--device", "cpu", "--theta", path("g/theta.npy"), "--x", path("g/x.npy"),
                              "--out", path("bad"), "--quiet"], expectSuccess: false)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("row 25"), result.stderr)
    }
}
