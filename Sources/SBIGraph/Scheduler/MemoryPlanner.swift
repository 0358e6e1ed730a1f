/// Places tensors with known live ranges in one arena, reusing the space of tensors that are
/// dead: a tensor last read by step s can be overwritten by outputs of step s+1 onwards, never
/// by those of step s itself (a launch must not write what it still reads).
struct MemoryPlanner {
    struct Interval {
        let tensor: Int
        let size: Int
        /// Step that writes it (−1: before the first step, for inputs).
        let firstStep: Int
        /// Last step that reads it (Int.max: read after the plan ran, for outputs).
        let lastStep: Int
    }

    /// Offsets (in elements) of each interval's tensor, and the arena size.
    static func place(_ intervals: [Interval]) -> (offsets: [Int: Int], size: Int) {
        var offsets: [Int: Int] = [:]
        var active: [(offset: Int, size: Int, lastStep: Int)] = []
        var size = 0
        for interval in intervals.sorted(by: { ($0.firstStep, -$0.size, $0.tensor) < ($1.firstStep, -$1.size, $1.tensor) }) {
            active.removeAll { $0.lastStep < interval.firstStep }
            active.sort { $0.offset < $1.offset }
            // First fit: the lowest gap between live blocks that holds the tensor.
            var candidate = 0
            for block in active {
                if candidate + interval.size <= block.offset { break }
                candidate = max(candidate, alignUp(block.offset + block.size))
            }
            offsets[interval.tensor] = candidate
            active.append((candidate, interval.size, interval.lastStep))
            size = max(size, candidate + interval.size)
        }
        return (offsets, size)
    }
}
