import Foundation

/// A row-major matrix of float32 values that a consumer reads row by row or batch by batch:
/// an array in memory, or the data of a float32 NumPy file, memory-mapped. A mapped file's pages
/// belong to the file, not to the process's anonymous memory: the kernel reads them in as they
/// are touched and drops them under pressure, so a data set larger than memory can be streamed.
public struct FloatRows: @unchecked Sendable {
    public let rows: Int
    public let cols: Int

    enum Storage {
        case array([Float])
        /// Little-endian float32 bytes shared with a (mapped) NumPy array, kept alive by `Data`.
        case bytes(Data)
    }
    let storage: Storage

    public init(_ values: [Float], cols: Int) {
        precondition(cols > 0 && values.count % cols == 0, "\(values.count) values are not rows of \(cols)")
        self.rows = values.count / cols
        self.cols = cols
        storage = .array(values)
    }

    /// The elements of a float32 array as rows of its first axis, without copying; nil for other
    /// dtypes or data not aligned to 4 bytes (read those with `NumPyArray.floats()`).
    public init?(_ array: NumPyArray) {
        guard array.dtype == .float32, let rows = array.shape.first, rows > 0 else { return nil }
        let count = array.elementCount
        let aligned = array.data.withUnsafeBytes { raw in
            raw.baseAddress.map { Int(bitPattern: $0) % MemoryLayout<Float>.alignment == 0 } ?? true
        }
        guard aligned, count % rows == 0, count > 0 else { return nil }
        self.rows = rows
        cols = count / rows
        storage = .bytes(array.data)
    }

    public var count: Int { rows * cols }
    /// Whether the values live in a memory-mapped file rather than in an array.
    public var isMapped: Bool {
        if case .bytes = storage { return true }
        return false
    }

    /// Calls `body` with all the values (row-major), without copying.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        switch storage {
        case let .array(values): return try values.withUnsafeBufferPointer(body)
        case let .bytes(data):
            return try data.withUnsafeBytes { raw in
                try body(UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: Float.self), count: count))
            }
        }
    }

    /// The values as an array (a copy when mapped).
    public var array: [Float] {
        if case let .array(values) = storage { return values }
        return withUnsafeBufferPointer { Array($0) }
    }

    /// Rows `range`, copied out.
    public func rows(_ range: Range<Int>) -> [Float] {
        withUnsafeBufferPointer { Array($0[(range.lowerBound * cols)..<(range.upperBound * cols)]) }
    }

    /// Copies rows `indices` (in that order) into `destination`, which holds indices.count × cols.
    public func gather<C: Collection>(_ indices: C, into destination: UnsafeMutablePointer<Float>) where C.Element == Int32 {
        withUnsafeBufferPointer { source in
            var out = destination
            for index in indices {
                out.update(from: source.baseAddress! + Int(index) * cols, count: cols)
                out += cols
            }
        }
    }

    /// The first non-finite value's (row, column), or nil.
    public func firstNonFinite() -> (row: Int, column: Int)? {
        withUnsafeBufferPointer { values in
            values.firstIndex { !$0.isFinite }.map { ($0 / cols, $0 % cols) }
        }
    }
}
