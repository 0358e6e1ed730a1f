// swift-tools-version: 6.1
import PackageDescription

// Layers, each knowing only the one below:
//   COpenCL / CBLAS (system libraries) -> SBIBackend (runtime, kernels, CPU + OpenCL backends)
//   -> SBIGraph (graph IR, autodiff, scheduler, optimizer, checkpoints)
//   -> SBIModels (density estimators: flows, MDN, GMM)
//   -> SBIInference (NumPy I/O, priors, simulators, NPE/NLE/ABC, diagnostics) -> sbi-gpu (command line).
// Kernels/*.cl are embedded into SBIBackend at build time by the EmbedKernels plugin,
// so a copied binary needs no source tree.
let package = Package(
    name: "sbi-gpu",
    products: [
        .library(name: "SBIBackend", targets: ["SBIBackend"]),
        .library(name: "SBIGraph", targets: ["SBIGraph"]),
        .library(name: "SBIModels", targets: ["SBIModels"]),
        .library(name: "SBIInference", targets: ["SBIInference"]),
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
        .executableTarget(name: "KernelEmbedder", path: "Sources/KernelEmbedder"),
        .plugin(name: "EmbedKernels", capability: .buildTool(), dependencies: ["KernelEmbedder"],
                path: "Plugins/EmbedKernels"),
        .target(name: "SBIBackend", dependencies: ["COpenCL", "CBLAS"],
                path: "Sources/SBIBackend",
                swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))],
                plugins: ["EmbedKernels"]),
        .target(name: "SBIGraph", dependencies: ["SBIBackend"], path: "Sources/SBIGraph"),
        .target(name: "SBIModels", dependencies: ["SBIBackend", "SBIGraph"], path: "Sources/SBIModels",
                plugins: ["EmbedKernels"]),
        .target(name: "SBIInference", dependencies: ["SBIBackend", "SBIGraph", "SBIModels", "CZlib"],
                path: "Sources/SBIInference", plugins: ["EmbedKernels"]),
        .executableTarget(name: "sbi-gpu",
                          dependencies: ["SBIBackend", "SBIGraph", "SBIModels", "SBIInference", "CBLAS",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "Sources/sbi-gpu"),
        // The one backend fixture of every test target (CPU, and OpenCL device SBI_TEST_OPENCL_DEVICE).
        .target(name: "SBITestSupport", dependencies: ["SBIBackend"], path: "Tests/SBITestSupport"),
        .testTarget(name: "SBIBackendTests", dependencies: ["SBIBackend", "SBITestSupport"], path: "Tests/SBIBackendTests"),
        .testTarget(name: "SBIGraphTests", dependencies: ["SBIBackend", "SBIGraph", "SBITestSupport"],
                    path: "Tests/SBIGraphTests"),
        .testTarget(name: "SBIInferenceTests",
                    dependencies: ["SBIBackend", "SBIGraph", "SBIModels", "SBIInference", "SBITestSupport"],
                    path: "Tests/SBIInferenceTests"),
        .testTarget(name: "CLITests", dependencies: ["sbi-gpu"], path: "Tests/CLITests"),
        // Includes the op table: every primitive of every module, on every backend.
        .testTarget(name: "SBIModelsTests", dependencies: ["SBIBackend", "SBIGraph", "SBIModels", "SBITestSupport"],
                    path: "Tests/SBIModelsTests"),
    ],
    swiftLanguageModes: [.v5]
)
