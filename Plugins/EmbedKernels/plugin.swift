import Foundation
import PackagePlugin

/// Embeds the OpenCL kernels that a target owns, `Kernels/<target name>/*.cl`, into it as Swift
/// string constants (`EmbeddedKernels.sources`, keyed by file stem), so that the built binary
/// carries its kernels and runs from any directory, and each op's kernel file lives beside the
/// module that gives the op its meaning.
@main
struct EmbedKernels: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let kernels = context.package.directoryURL.appending(path: "Kernels").appending(path: target.name)
        let files = try FileManager.default
            .contentsOfDirectory(at: kernels, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "cl" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedKernels.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(files.count) OpenCL kernel files of \(target.name)",
                executable: try context.tool(named: "KernelEmbedder").url,
                arguments: [output.path] + files.map(\.path),
                inputFiles: files,
                outputFiles: [output])
        ]
    }
}
