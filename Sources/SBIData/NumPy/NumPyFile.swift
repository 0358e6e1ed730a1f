import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// File plumbing shared by the .npy and .npz readers and writers: whole-file reads that memory-map
// large files, and atomic writes (temporary file in the same directory, fsync, rename).

/// Where bytes came from, for error messages: the file, whether it is an archive, the member.
struct NumPyOrigin {
    var path: String?
    var archive = false
    var member: String?

    func error(_ kind: NumPyError.Kind, _ field: String, _ message: String) -> NumPyError {
        NumPyError(kind, path: path, archive: archive, member: member, field: field, message)
    }

    func member(_ name: String) -> NumPyOrigin {
        NumPyOrigin(path: path, archive: true, member: name)
    }
}

/// A whole file's bytes, either privately memory-mapped (files of at least `mappingThreshold`
/// bytes) or read into an owned buffer. `data(in:)` hands out views that keep this object, and so
/// the mapping, alive, without copying.
final class NumPyFileBytes: @unchecked Sendable {
    /// Files at least this large are mapped rather than read.
    static let mappingThreshold = 1 << 20

    let base: UnsafeMutableRawPointer?
    let count: Int
    let isMapped: Bool

    var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    private init(base: UnsafeMutableRawPointer?, count: Int, isMapped: Bool) {
        self.base = base
        self.count = count
        self.isMapped = isMapped
    }

    /// A copy of `data` in an owned buffer.
    convenience init(copying data: Data) {
        let base = data.isEmpty ? nil : UnsafeMutableRawPointer.allocate(byteCount: data.count, alignment: 64)
        if let base { data.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        self.init(base: base, count: data.count, isMapped: false)
    }

    /// An owned, uninitialized buffer of `count` bytes, to be filled through `mutableBuffer`.
    convenience init(allocating count: Int) {
        let base = count == 0 ? nil : UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 64)
        self.init(base: base, count: count, isMapped: false)
    }

    var mutableBuffer: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: base, count: count) }

    /// The file at `url`, mapped when large. The mapping is private and writable, so a caller that
    /// mutates an array's data gets its own copy of the touched pages and the file never changes.
    /// (Like any mapping, it assumes the file is not truncated underneath it; files written by
    /// `NumPy.write` are replaced by rename, which leaves a mapped old file intact.)
    static func open(_ url: URL, origin: NumPyOrigin) throws -> NumPyFileBytes {
        let path = url.path
        func ioError(_ what: String) -> NumPyError {
            origin.error(.io, "file", "\(what): \(String(cString: strerror(errno)))")
        }
        let fd = posixOpen(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ioError("cannot open") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ioError("cannot stat") }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw origin.error(.io, "file", "not a regular file")
        }
        let size = Int(info.st_size)
        if size >= mappingThreshold {
            let address = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0)
            if let address, address != MAP_FAILED {
                return NumPyFileBytes(base: address, count: size, isMapped: true)
            }
            // Fall through: some file systems cannot map; read instead.
        }
        let base = size == 0 ? nil : UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        var done = 0
        while done < size {
            let n = read(fd, base! + done, size - done)
            if n < 0 {
                if errno == EINTR { continue }
                let error = ioError("cannot read")
                base?.deallocate()
                throw error
            }
            if n == 0 { break }  // shrank since fstat: parse what is there
            done += n
        }
        return NumPyFileBytes(base: base, count: done, isMapped: false)
    }

    deinit {
        guard let base else { return }
        if isMapped { munmap(base, count) } else { base.deallocate() }
    }

    /// The bytes in `range` as Data that shares this buffer (keeping it alive) instead of copying.
    func data(in range: Range<Int>) -> Data {
        guard !range.isEmpty, let base else { return Data() }
        return Data(bytesNoCopy: base + range.lowerBound, count: range.count,
                    deallocator: .custom { _, _ in withExtendedLifetime(self) {} })
    }
}

enum NumPyAtomicWriter {
    /// Writes `chunks` to `url` atomically (see `AtomicFile`): on any error `url` is left as it was.
    static func write(_ chunks: [Data], to url: URL, origin: NumPyOrigin) throws {
        do {
            try AtomicFile.write(chunks, to: url)
        } catch let failure as AtomicFile.Failure {
            throw origin.error(.io, "file", failure.message)
        }
    }
}

// The C library's open(2), which methods named `open` would otherwise shadow.
private func posixOpen(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
    #if canImport(Glibc)
    return Glibc.open(path, flags, mode)
    #elseif canImport(Musl)
    return Musl.open(path, flags, mode)
    #else
    return Darwin.open(path, flags, mode)
    #endif
}

