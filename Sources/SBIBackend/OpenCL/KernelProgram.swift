/// The source of one OpenCL program, owned by the module whose ops it implements: each module
/// embeds its own `Kernels/<module>/*.cl` (the EmbedKernels plugin) and names its programs with
/// one of these, so that an op defined outside this module launches its own kernels through
/// `OpenCLBackend.launch`. `Kernels/SBIBackend/common.cl` (helpers such as `group_sum`) is
/// prepended to every program.
public struct KernelProgram: Sendable, Hashable {
    /// "<module>/<file stem>": unique across modules, since built programs are cached by it.
    public let name: String
    /// The program text; nil when the file was not embedded (the launch then says which).
    public let source: String?

    public init(name: String, source: String?) {
        self.name = name
        self.source = source
    }

    /// A program of this module's `Kernels/SBIBackend/`.
    static func backend(_ stem: String) -> KernelProgram {
        KernelProgram(name: "SBIBackend/\(stem)", source: EmbeddedKernels.sources[stem])
    }
    /// The helpers prepended to every program.
    static let common = EmbeddedKernels.sources["common"] ?? ""
}

/// One argument of a kernel launch. A view expands to two kernel parameters: the buffer and the
/// element offset into it.
public enum KernelArgument {
    case view(BufferView)
    case int(Int)
    case float(Float)
    case ulong(UInt64)
}
