import Foundation

/// The most bytes that one thing a file or a flag sizes may be given: half this machine's
/// physical memory. A larger request is refused with an error naming its culprit, rather than
/// attempted and aborted by the allocator.
public enum MemoryLimit {
    public static var bytes: Int { Int(clamping: ProcessInfo.processInfo.physicalMemory / 2) }
}
