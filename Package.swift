// swift-tools-version: 6.1
import PackageDescription

// Layers, each knowing only those below:
//   COpenCL / CBLAS / CZlib (system libraries)
//   -> SBIData (files: NumPy .npy/.npz, safetensors, atomic writes; no compute)
//   -> SBIBackend (OpenCL runtime, the Backend protocol and its CPU + OpenCL implementations of the
//      core ops; the public launch API through which every other module runs its own kernels)
//   -> SBIGraph (N-D graph IR, primitives with their vjps, autodiff, scheduler, the Adam op with its
//      kernel, training with streamed batches, checkpoints)
//   -> SBIModels (density estimators: flows, MDN, GMM; the coupling and spline ops with their kernels)
//   -> SBIInference (priors, simulators with their kernels, NPE/NLE/ABC, diagnostics)
//   -> sbi-gpu (the command line, one type per subcommand), and beside it SBIFuzz + sbi-fuzz (the
//      parsers of untrusted bytes under libFuzzer).
// SBIPlots (SVG/PNG plots and image grids) needs only SBIData. A module's kernels are
// Kernels/<module>/*.cl, embedded into it at build time by the EmbedKernels plugin, so a copied
// binary needs no source tree.
let package = Package(
    name: "sbi-gpu",
    products: [
        .library(name: "SBIData", targets: ["SBIData"]),
        .library(name: "SBIBackend", targets: ["SBIBackend"]),
        .library(name: "SBIGraph", targets: ["SBIGraph"]),
        .library(name: "SBIModels", targets: ["SBIModels"]),
        .library(name: "SBIInference", targets: ["SBIInference"]),
        .library(name: "SBIPlots", targets: ["SBIPlots"]),
        .executable(name: "sbi-gpu", targets: ["sbi-gpu"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "COpenCL", path: "Sources/COpenCL",
                       providers: [.apt(["ocl-icd-opencl-dev", "opencl-headers"])]),
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),
        // libFuzzer's entry points, weak: every executable links it so that a -sanitize=fuzzer
        // build of the whole package links (see SBIFuzz).
        .target(name: "CFuzzDriver", path: "Sources/CFuzzDriver"),
        .executableTarget(name: "KernelEmbedder", dependencies: ["CFuzzDriver"], path: "Sources/KernelEmbedder"),
        .plugin(name: "EmbedKernels", capability: .buildTool(), dependencies: ["KernelEmbedder"],
                path: "Plugins/EmbedKernels"),
        .target(name: "SBIData", dependencies: ["CZlib"], path: "Sources/SBIData"),
        .target(name: "SBIBackend", dependencies: ["COpenCL", "CBLAS", "SBIData"],
                path: "Sources/SBIBackend",
                swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))],
                plugins: ["EmbedKernels"]),
        .target(name: "SBIGraph", dependencies: ["SBIData", "SBIBackend"], path: "Sources/SBIGraph",
                plugins: ["EmbedKernels"]),
        .target(name: "SBIModels", dependencies: ["SBIBackend", "SBIGraph"], path: "Sources/SBIModels",
                plugins: ["EmbedKernels"]),
        .target(name: "SBIInference", dependencies: ["SBIData", "SBIBackend", "SBIGraph", "SBIModels"],
                path: "Sources/SBIInference", plugins: ["EmbedKernels"]),
        .target(name: "SBIPlots", dependencies: ["SBIData", "CZlib"], path: "Sources/SBIPlots"),
        // Fuzzing: the parsers of untrusted bytes with their checked properties, and one binary
        // that runs them under libFuzzer (a -sanitize=fuzzer build) or replays files.
        .target(name: "SBIFuzz", dependencies: ["SBIData", "SBIBackend", "SBIInference"], path: "Sources/SBIFuzz"),
        .executableTarget(name: "sbi-fuzz", dependencies: ["CFuzzDriver", "SBIFuzz"], path: "Sources/sbi-fuzz"),
        .executableTarget(name: "sbi-gpu",
                          dependencies: ["SBIData", "SBIBackend", "SBIGraph", "SBIModels", "SBIInference", "SBIPlots", "CBLAS", "CFuzzDriver",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "Sources/sbi-gpu"),
        // The one backend fixture of every test target (CPU, and OpenCL device SBI_TEST_OPENCL_DEVICE).
        .target(name: "SBITestSupport", dependencies: ["SBIBackend"], path: "Tests/SBITestSupport"),
        .testTarget(name: "SBIDataTests", dependencies: ["SBIData"], path: "Tests/SBIDataTests"),
        .testTarget(name: "SBIPlotsTests", dependencies: ["SBIPlots", "CZlib"], path: "Tests/SBIPlotsTests"),
        .testTarget(name: "SBIBackendTests", dependencies: ["SBIBackend", "SBITestSupport"], path: "Tests/SBIBackendTests"),
        .testTarget(name: "SBIGraphTests", dependencies: ["SBIData", "SBIBackend", "SBIGraph", "SBITestSupport"],
                    path: "Tests/SBIGraphTests"),
        .testTarget(name: "SBIInferenceTests",
                    dependencies: ["SBIData", "SBIBackend", "SBIGraph", "SBIModels", "SBIInference", "SBITestSupport"],
                    path: "Tests/SBIInferenceTests"),
        .testTarget(name: "SBIFuzzTests", dependencies: ["SBIFuzz"], path: "Tests/SBIFuzzTests"),
        .testTarget(name: "CLITests", dependencies: ["sbi-gpu", "SBIBackend", "SBIModels", "SBIInference"],
                    path: "Tests/CLITests"),
        // Includes the op table: every primitive of every module, on every backend.
        .testTarget(name: "SBIModelsTests", dependencies: ["SBIData", "SBIBackend", "SBIGraph", "SBIModels", "SBITestSupport"],
                    path: "Tests/SBIModelsTests"),
    ],
    swiftLanguageModes: [.v5]
)
