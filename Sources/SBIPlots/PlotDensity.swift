import Foundation

// The numerical side of the plots: histograms, Gaussian smoothing, highest-density levels,
// marching-squares contours, quantiles and binomial intervals.

enum PlotDensity {
    /// Counts of `values` in `bins` equal bins over [lo, hi]; values outside are dropped.
    static func histogram(_ values: [Double], lo: Double, hi: Double, bins: Int) -> [Double] {
        var counts = [Double](repeating: 0, count: bins)
        let scale = Double(bins) / (hi - lo)
        for v in values where v >= lo && v <= hi {
            counts[min(bins - 1, Int((v - lo) * scale))] += 1
        }
        return counts
    }

    /// A 2-D histogram, `grid[iy * bins + ix]`, of the pairs (xs[k], ys[k]) inside the ranges.
    static func histogram2D(_ xs: [Double], _ ys: [Double], x: (Double, Double), y: (Double, Double), bins: Int) -> [Double] {
        var grid = [Double](repeating: 0, count: bins * bins)
        let sx = Double(bins) / (x.1 - x.0), sy = Double(bins) / (y.1 - y.0)
        for k in xs.indices {
            let u = xs[k], v = ys[k]
            guard u >= x.0, u <= x.1, v >= y.0, v <= y.1 else { continue }
            let ix = min(bins - 1, Int((u - x.0) * sx)), iy = min(bins - 1, Int((v - y.0) * sy))
            grid[iy * bins + ix] += 1
        }
        return grid
    }

    /// Separable Gaussian smoothing (σ in bins) of a square grid; mass beyond the edges is lost.
    static func smooth(_ grid: [Double], bins: Int, sigma: Double) -> [Double] {
        guard sigma > 0 else { return grid }
        let radius = max(1, Int((3 * sigma).rounded(.up)))
        var kernel = (-radius...radius).map { exp(-0.5 * Double($0 * $0) / (sigma * sigma)) }
        let total = kernel.reduce(0, +)
        kernel = kernel.map { $0 / total }
        // One pass along x (neighbours 1 apart), then one along y (bins apart).
        func blur(_ input: [Double], alongX: Bool) -> [Double] {
            let step = alongX ? 1 : bins
            var out = [Double](repeating: 0, count: input.count)
            for iy in 0..<bins {
                for ix in 0..<bins {
                    let i = iy * bins + ix, position = alongX ? ix : iy
                    var s = 0.0
                    for k in -radius...radius where position + k >= 0 && position + k < bins {
                        s += kernel[k + radius] * input[i + k * step]
                    }
                    out[i] = s
                }
            }
            return out
        }
        return blur(blur(grid, alongX: true), alongX: false)
    }

    /// For each mass fraction, the density threshold whose superlevel set holds that fraction of
    /// the grid's total (the highest-density region). Nil where the grid has no mass.
    static func levels(_ grid: [Double], masses: [Double]) -> [Double?] {
        let sorted = grid.sorted(by: >)
        let total = sorted.reduce(0, +)
        guard total > 0 else { return masses.map { _ in nil } }
        var cumulative = [Double](repeating: 0, count: sorted.count)
        var running = 0.0
        for (i, v) in sorted.enumerated() {
            running += v
            cumulative[i] = running / total
        }
        return masses.map { m in
            guard m > 0, m < 1 else { return nil }
            // The first index whose cumulative mass reaches m.
            var lo = 0, hi = sorted.count - 1
            while lo < hi {
                let mid = (lo + hi) / 2
                if cumulative[mid] >= m { hi = mid } else { lo = mid + 1 }
            }
            let v = sorted[lo]
            return v > 0 ? v : nil
        }
    }

    /// The closed isolines at `level` of a square grid whose node (ix, iy) lies at
    /// (x0 + ix·dx, y0 + iy·dy). The grid is padded with zeros first, so (for a positive level)
    /// every line closes; filling the rings even-odd gives the superlevel set.
    static func contours(_ grid: [Double], bins: Int, level: Double,
                         x0: Double, dx: Double, y0: Double, dy: Double) -> [[(Double, Double)]] {
        let n = bins + 2
        var g = [Double](repeating: 0, count: n * n)
        for iy in 0..<bins {
            for ix in 0..<bins { g[(iy + 1) * n + ix + 1] = grid[iy * bins + ix] }
        }
        func value(_ ix: Int, _ iy: Int) -> Double { g[iy * n + ix] }
        // Edge ids: horizontal edge from node (ix, iy) to (ix+1, iy) is 2·(iy·n + ix); vertical edge
        // from (ix, iy) to (ix, iy+1) is 2·(iy·n + ix) + 1.
        func horizontal(_ ix: Int, _ iy: Int) -> Int { 2 * (iy * n + ix) }
        func vertical(_ ix: Int, _ iy: Int) -> Int { 2 * (iy * n + ix) + 1 }
        var links: [Int: [Int]] = [:]
        func connect(_ a: Int, _ b: Int) {
            links[a, default: []].append(b)
            links[b, default: []].append(a)
        }
        for iy in 0..<(n - 1) {
            for ix in 0..<(n - 1) {
                let v0 = value(ix, iy), v1 = value(ix + 1, iy), v2 = value(ix + 1, iy + 1), v3 = value(ix, iy + 1)
                let inside = [v0 >= level, v1 >= level, v2 >= level, v3 >= level]
                let count = inside.filter { $0 }.count
                if count == 0 || count == 4 { continue }
                // Cell edges in order: bottom (c0–c1), right (c1–c2), top (c2–c3), left (c3–c0).
                let edges = [horizontal(ix, iy), vertical(ix + 1, iy), horizontal(ix, iy + 1), vertical(ix, iy)]
                var crossed: [Int] = []
                for e in 0..<4 where inside[e] != inside[(e + 1) % 4] { crossed.append(e) }
                if crossed.count == 2 {
                    connect(edges[crossed[0]], edges[crossed[1]])
                } else {
                    // Saddle: cut off the two corners that the centre value does not join.
                    let centreInside = (v0 + v1 + v2 + v3) / 4 >= level
                    // Corner k lies between edges k-1 and k.
                    for corner in 0..<4 where inside[corner] != centreInside {
                        connect(edges[(corner + 3) % 4], edges[corner])
                    }
                }
            }
        }
        func position(_ edge: Int) -> (Double, Double) {
            let node = edge / 2, ix = node % n, iy = node / n
            let (jx, jy) = edge % 2 == 0 ? (ix + 1, iy) : (ix, iy + 1)
            let a = value(ix, iy), b = value(jx, jy)
            let t = a == b ? 0.5 : min(max((level - a) / (b - a), 0), 1)
            let fx = Double(ix) + t * Double(jx - ix) - 1, fy = Double(iy) + t * Double(jy - iy) - 1
            return (x0 + fx * dx, y0 + fy * dy)
        }
        var visited = Set<Int>()
        var rings: [[(Double, Double)]] = []
        for start in links.keys.sorted() where !visited.contains(start) {
            var ring: [(Double, Double)] = []
            var previous = -1, current = start
            while !visited.contains(current) {
                visited.insert(current)
                ring.append(position(current))
                let neighbours = links[current] ?? []
                guard let next = neighbours.first(where: { $0 != previous && !visited.contains($0) })
                    ?? neighbours.first(where: { $0 != previous }) else { break }
                previous = current
                current = next
            }
            if ring.count >= 3 { rings.append(ring) }
        }
        return rings
    }

    /// The q-quantile (linear interpolation) of sorted values.
    static func quantile(sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        let position = min(max(q, 0), 1) * Double(sorted.count - 1)
        let i = Int(position.rounded(.down)), f = position - Double(i)
        return i + 1 < sorted.count ? sorted[i] * (1 - f) + sorted[i + 1] * f : sorted[i]
    }

    private static func logGamma(_ x: Double) -> Double {
        let value: Double = lgamma(x)
        return value
    }

    /// The central `confidence` interval of Binomial(n, p): the (1−c)/2 and (1+c)/2 quantiles.
    static func binomialInterval(n: Int, p: Double, confidence: Double) -> (lower: Int, upper: Int) {
        guard n > 0 else { return (0, 0) }
        if p <= 0 { return (0, 0) }
        if p >= 1 { return (n, n) }
        let lowTail = (1 - confidence) / 2, highTail = 1 - lowTail
        let logP = log(p), logQ = log1p(-p), logNFactorial = logGamma(Double(n) + 1)
        var cumulative = 0.0
        var lower: Int?
        for k in 0...n {
            let logPMF = logNFactorial - logGamma(Double(k) + 1) - logGamma(Double(n - k) + 1) + Double(k) * logP + Double(n - k) * logQ
            cumulative += exp(logPMF)
            if lower == nil && cumulative >= lowTail { lower = k }
            if cumulative >= highTail { return (lower ?? k, k) }
        }
        return (lower ?? n, n)
    }
}
