import Foundation

/// Writing files so that no reader, and no crash, ever leaves a half-written one: the bytes go to
/// a temporary file beside the destination, are flushed to disk, and the temporary file is
/// renamed over the destination (then the directory is flushed, so the rename is durable too).
/// On any error the temporary file is removed and the destination is left as it was.
public enum AtomicFile {
    /// Why a write failed: `message` names the step and the system's reason, e.g.
    /// "cannot create temporary file /d/.f.tmp: Permission denied".
    public struct Failure: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    public static func write(_ data: Data, to url: URL) throws {
        try write([data], to: url)
    }

    public static func write(_ chunks: [Data], to url: URL) throws {
        let path = url.path
        let directory = url.deletingLastPathComponent().path
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(getpid()).\(UInt32.random(in: 0 ... .max)).tmp").path
        func failure(_ what: String) -> Failure { Failure(message: "\(what): \(String(cString: strerror(errno)))") }
        let fd = Glibc.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("cannot create temporary file \(temporary)") }
        var closed = false, renamed = false
        defer {
            if !closed { close(fd) }
            if !renamed { unlink(temporary) }
        }
        for chunk in chunks where !chunk.isEmpty {
            try chunk.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                var done = 0
                while done < raw.count {
                    let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw failure("cannot write temporary file \(temporary)")
                    }
                    done += n
                }
            }
        }
        guard fsync(fd) == 0 else { throw failure("cannot flush temporary file \(temporary)") }
        closed = true
        guard close(fd) == 0 else { throw failure("cannot close temporary file \(temporary)") }
        guard rename(temporary, path) == 0 else { throw failure("cannot rename \(temporary) to \(path)") }
        renamed = true
        // Make the rename itself durable; a failure here leaves a complete file either way.
        let directoryFD = Glibc.open(directory.isEmpty ? "." : directory, O_RDONLY | O_CLOEXEC)
        if directoryFD >= 0 {
            _ = fsync(directoryFD)
            close(directoryFD)
        }
    }
}
