import CFuzzDriver
import Foundation
import SBIFuzz

// sbi-fuzz TARGET [ARGS]: one binary for every fuzz target (npy, npz, safetensors, prior).
// Built with -sanitize=fuzzer, ARGS go to libFuzzer (corpus directories, -runs=N, ...);
// in an ordinary build, ARGS are files or directories whose files are replayed through the
// target's checks, so a crash reproducer or the seed corpus can be rerun without the fuzzer.

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("sbi-fuzz: \(message)\n".utf8))
    exit(64)
}

let arguments = CommandLine.arguments
let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
guard arguments.count >= 2, let selected = FuzzTarget(rawValue: arguments[1]) else {
    fail("usage: sbi-fuzz TARGET [libFuzzer flags | files to replay]; TARGET is one of \(names)")
}
nonisolated(unsafe) var target = selected

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = data.map { Data(bytes: $0, count: count) } ?? Data()
    if let violation = target.violation(bytes) { fatalError("\(target.rawValue): \(violation)") }
    return 0
}

if sbi_fuzzer_linked() != 0 {
    // libFuzzer sees argv without the target name.
    let argv = CommandLine.unsafeArgv
    argv[1] = argv[0]
    exit(sbi_fuzzer_run(CommandLine.argc - 1, argv + 1, fuzzOne))
}

var files: [URL] = []
for path in arguments.dropFirst(2) {
    let url = URL(fileURLWithPath: path)
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { fail("\(path): no such file") }
    if isDirectory.boolValue {
        let children = (try? FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil)) ?? []
        files += children.sorted { $0.path < $1.path }
    } else {
        files.append(url)
    }
}
for file in files {
    guard let bytes = try? Data(contentsOf: file) else { fail("\(file.path): cannot read") }
    if let violation = target.violation(bytes) { fail("\(file.path): \(violation)") }
}
print("sbi-fuzz \(target.rawValue): \(files.count) inputs replayed, no findings (an ordinary build; build with -sanitize=fuzzer to fuzz)")
