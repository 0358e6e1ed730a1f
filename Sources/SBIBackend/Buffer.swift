import COpenCL

/// Memory owned by one backend: host memory for the CPU backend, a `cl_mem` for OpenCL.
/// Elements are 4 bytes (Float32, Int32 or UInt32); `count` is in elements.
/// New buffers are not zeroed: write before you read.
public final class Buffer: @unchecked Sendable {
    enum Storage {
        case host(UnsafeMutablePointer<Float>)
        case device(cl_mem)
    }

    public let count: Int
    let storage: Storage
    let owner: ObjectIdentifier

    init(count: Int, storage: Storage, owner: ObjectIdentifier) {
        self.count = count
        self.storage = storage
        self.owner = owner
    }

    deinit {
        switch storage {
        case let .host(pointer): pointer.deallocate()
        case let .device(mem): clReleaseMemObject(mem)
        }
    }

    public var byteCount: Int { count * 4 }
    /// The whole buffer as an operand.
    public var view: BufferView { BufferView(buffer: self, offset: 0, count: count) }
    /// Elements `offset ..< offset + count` as an operand.
    public func view(offset: Int, count: Int) -> BufferView {
        BufferView(buffer: self, offset: offset, count: count)
    }
}

/// A contiguous run of a buffer's elements: the operand type of every backend operation.
public struct BufferView {
    public let buffer: Buffer
    public let offset: Int
    public let count: Int

    public init(buffer: Buffer, offset: Int, count: Int) {
        precondition(offset >= 0 && count >= 0 && offset + count <= buffer.count,
                     "view \(offset)..<\(offset + count) outside buffer of \(buffer.count) elements")
        self.buffer = buffer
        self.offset = offset
        self.count = count
    }
}
