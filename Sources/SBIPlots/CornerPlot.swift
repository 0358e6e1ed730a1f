import Foundation

/// Settings of `Plots.corner`; every one has a default.
public struct CornerPlotOptions: Sendable {
    /// One label per parameter; default θ1, θ2, ...
    public var labels: [String]?
    /// Axis range per parameter; default the central 99.9% of all sets (and truths), padded 5%.
    public var ranges: [ClosedRange<Double>]?
    /// True parameter values, drawn as lines.
    public var truths: [Double]?
    /// Bins of the 1-D histograms.
    public var bins: Int
    /// Bins per axis of the 2-D histograms behind the contours.
    public var bins2D: Int
    /// Gaussian smoothing of the 2-D histograms, in bins (0: none).
    public var smoothing: Double
    /// Probability masses enclosed by the filled sample contours (default: 0.5σ to 2σ of a 2-D Gaussian).
    public var levels: [Double]
    /// Masses enclosed by the reference set's contour lines (default 1σ and 2σ).
    public var referenceLevels: [Double]
    /// Draw the samples outside the outermost contour as dots.
    public var showPoints: Bool
    /// At most this many such dots per panel (evenly thinned); small panels take fewer (one per
    /// 25 square units of panel).
    public var maxPoints: Int
    /// Side of one panel; default depends on the dimension.
    public var panelSize: Double?
    public var title: String?
    public var sampleName: String
    public var referenceName: String
    public var truthName: String
    public var color: PlotColor
    public var referenceColor: PlotColor
    public var truthColor: PlotColor

    public init(labels: [String]? = nil, ranges: [ClosedRange<Double>]? = nil, truths: [Double]? = nil,
                bins: Int = 30, bins2D: Int = 40, smoothing: Double = 1.0,
                levels: [Double] = [0.118, 0.393, 0.675, 0.865], referenceLevels: [Double] = [0.393, 0.865],
                showPoints: Bool = true, maxPoints: Int = 3000, panelSize: Double? = nil, title: String? = nil,
                sampleName: String = "samples", referenceName: String = "reference", truthName: String = "true value",
                color: PlotColor = .blue, referenceColor: PlotColor = .orange, truthColor: PlotColor = .red) {
        self.labels = labels
        self.ranges = ranges
        self.truths = truths
        self.bins = bins
        self.bins2D = bins2D
        self.smoothing = smoothing
        self.levels = levels
        self.referenceLevels = referenceLevels
        self.showPoints = showPoints
        self.maxPoints = maxPoints
        self.panelSize = panelSize
        self.title = title
        self.sampleName = sampleName
        self.referenceName = referenceName
        self.truthName = truthName
        self.color = color
        self.referenceColor = referenceColor
        self.truthColor = truthColor
    }
}

extension Plots {
    /// A corner plot of d-dimensional samples (row-major, `dimension` values a row): 1-D histograms
    /// on the diagonal, filled highest-density contours of smoothed 2-D histograms below it, with an
    /// optional reference set (contour lines and histogram outlines in a second colour) and truths.
    /// Rows with a non-finite value are left out.
    public static func corner(samples: [Double], dimension: Int, reference: [Double]? = nil,
                              options: CornerPlotOptions = CornerPlotOptions()) throws -> PlotCanvas {
        let d = dimension
        guard d >= 1 else { throw PlotError("corner plot: the dimension must be positive, not \(d)") }
        let columns = try finiteColumns(samples, dimension: d, what: "samples")
        let referenceColumns = try reference.map { try finiteColumns($0, dimension: d, what: "reference samples") }
        guard options.bins >= 1, options.bins2D >= 2 else { throw PlotError("corner plot: bins must be positive") }
        let labels = options.labels ?? (1...d).map { "θ\($0)" }
        guard labels.count == d else {
            throw PlotError("corner plot: \(labels.count) labels for \(d) parameters")
        }
        if let truths = options.truths, truths.count != d {
            throw PlotError("corner plot: \(truths.count) truth values for \(d) parameters")
        }
        let ranges: [(Double, Double)]
        if let given = options.ranges {
            guard given.count == d else { throw PlotError("corner plot: \(given.count) ranges for \(d) parameters") }
            ranges = given.map { $0.upperBound > $0.lowerBound ? ($0.lowerBound, $0.upperBound)
                : ($0.lowerBound - 0.5, $0.lowerBound + 0.5) }
        } else {
            ranges = (0..<d).map { k in
                automaticRange([columns[k]] + (referenceColumns.map { [$0[k]] } ?? []), extra: options.truths?[k])
            }
        }

        // Layout.
        let size = PlotStyle.fontSize
        let panel = (options.panelSize ?? (d == 1 ? 440 : d == 2 ? 320 : d <= 4 ? 250 : d <= 6 ? 200 : 160)).rounded()
        let gap = d == 1 ? 0.0 : 14.0
        let xTicks = (0..<d).map { k in
            edgeSafe(PlotTicks.fitting(ranges[k].0, ranges[k].1, length: panel, vertical: false, maxCount: 5),
                     range: ranges[k], length: panel, margin: gap / 2, vertical: false)
        }
        let yTicks = (0..<d).map { k in
            edgeSafe(PlotTicks.fitting(ranges[k].0, ranges[k].1, length: panel, vertical: true, maxCount: 5),
                     range: ranges[k], length: panel, margin: gap / 2, vertical: true)
        }
        let yReach = d == 1 ? 0 : (1..<d).map { PlotAxes.yTickLabelReach(yTicks[$0]) }.max() ?? 0
        let labelBand = 0.7 * size + 16
        let left = (d == 1 ? 30 : 18 + labelBand + yReach).rounded()
        let top = (options.title == nil ? 24.0 : 24 + 0.7 * PlotStyle.titleSize + 22).rounded()
        let bottom = (PlotAxes.xTickLabelDepth + labelBand + 20).rounded()
        let right = 28.0
        let width = left + Double(d) * panel + Double(d - 1) * gap + right
        let height = top + Double(d) * panel + Double(d - 1) * gap + bottom
        let canvas = PlotCanvas(width: width, height: height)
        func box(row: Int, column: Int) -> PlotBox {
            PlotBox(x: (left + Double(column) * (panel + gap)).rounded(.down) + 0.5,
                    y: (top + Double(row) * (panel + gap)).rounded(.down) + 0.5, width: panel, height: panel)
        }
        if let title = options.title {
            canvas.text(title, at: PlotPoint(left + (width - left - right) / 2, 20), size: PlotStyle.titleSize,
                        color: PlotStyle.textColor, anchor: .middle, baseline: .top)
        }

        let lineWidth = 1.6
        var diagonalLines: [[PlotPoint]] = []
        let truthStroke = PlotStroke(options.truthColor, width: 1.5)
        for row in 0..<d {
            for column in 0...row {
                let frame = box(row: row, column: column)
                let isBottom = row == d - 1
                if row == column {
                    // Diagonal: 1-D densities.
                    let (lo, hi) = ranges[row]
                    let binWidth = (hi - lo) / Double(options.bins)
                    func density(_ values: [Double]) -> [Double] {
                        let counts = PlotDensity.histogram(values, lo: lo, hi: hi, bins: options.bins)
                        let n = Double(max(values.count, 1))
                        return counts.map { $0 / (n * binWidth) }
                    }
                    let main = density(columns[row])
                    let second = referenceColumns.map { density($0[row]) }
                    let peak = max(main.max() ?? 0, second?.max() ?? 0)
                    let axes = PlotAxes(box: frame, x: (lo, hi), y: (0, peak > 0 ? peak * 1.1 : 1))
                    func steps(_ heights: [Double]) -> [PlotPoint] {
                        var points = [axes.point(lo, 0)]
                        for (b, h) in heights.enumerated() {
                            points.append(axes.point(lo + Double(b) * binWidth, h))
                            points.append(axes.point(lo + Double(b + 1) * binWidth, h))
                        }
                        points.append(axes.point(hi, 0))
                        return points
                    }
                    canvas.polygon(steps(main), fill: options.color.tint(0.22))
                    canvas.line(steps(main), stroke: PlotStroke(options.color, width: lineWidth))
                    diagonalLines.append(steps(main))
                    if let second {
                        canvas.line(steps(second), stroke: PlotStroke(options.referenceColor, width: lineWidth))
                        diagonalLines.append(steps(second))
                    }
                    if let t = options.truths?[row], t >= lo, t <= hi {
                        canvas.line(from: PlotPoint(axes.px(t), frame.y), to: PlotPoint(axes.px(t), frame.maxY), stroke: truthStroke)
                    }
                    axes.frame(on: canvas, x: xTicks[row], y: nil, xLabels: isBottom)
                } else {
                    let axes = PlotAxes(box: frame, x: ranges[column], y: ranges[row])
                    drawDensity2D(xs: columns[column], ys: columns[row], axes: axes, options: options, on: canvas,
                                  color: options.color, levels: options.levels, filled: true)
                    if let referenceColumns {
                        drawDensity2D(xs: referenceColumns[column], ys: referenceColumns[row], axes: axes, options: options,
                                      on: canvas, color: options.referenceColor, levels: options.referenceLevels, filled: false)
                    }
                    if let truths = options.truths {
                        let tx = truths[column], ty = truths[row]
                        if tx >= axes.xLo && tx <= axes.xHi {
                            canvas.line(from: PlotPoint(axes.px(tx), frame.y), to: PlotPoint(axes.px(tx), frame.maxY), stroke: truthStroke)
                        }
                        if ty >= axes.yLo && ty <= axes.yHi {
                            canvas.line(from: PlotPoint(frame.x, axes.py(ty)), to: PlotPoint(frame.maxX, axes.py(ty)), stroke: truthStroke)
                        }
                        if axes.contains(tx, ty) {
                            canvas.rect(x: axes.px(tx) - 3.5, y: axes.py(ty) - 3.5, width: 7, height: 7, fill: options.truthColor)
                        }
                    }
                    axes.frame(on: canvas, x: xTicks[column], y: yTicks[row], xLabels: isBottom, yLabels: column == 0)
                }
            }
        }

        // Axis labels: under the bottom row, and left of the rows below the first.
        let lastRow = box(row: d - 1, column: 0)
        for k in 0..<d {
            let frame = box(row: d - 1, column: k)
            canvas.text(labels[k], at: PlotPoint(frame.midX, lastRow.maxY + PlotAxes.xTickLabelDepth + 14), size: size,
                        color: PlotStyle.textColor, anchor: .middle, baseline: .top)
        }
        for k in 1..<max(d, 1) {
            let frame = box(row: k, column: 0)
            canvas.text(labels[k], at: PlotPoint(frame.x - yReach - 14, frame.midY), size: size,
                        color: PlotStyle.textColor, anchor: .middle, baseline: .bottom, rotated: true)
        }

        // Legend, in the empty upper triangle (or inside the single panel).
        var entries: [PlotLegendEntry] = []
        if referenceColumns != nil || options.truths != nil {
            entries.append(PlotLegendEntry(label: options.sampleName, mark: .patch(options.color.tint(0.6))))
            if referenceColumns != nil {
                entries.append(PlotLegendEntry(label: options.referenceName,
                                               mark: .line(PlotStroke(options.referenceColor, width: 2))))
            }
            if options.truths != nil {
                entries.append(PlotLegendEntry(label: options.truthName, mark: .line(truthStroke)))
            }
        }
        if d == 1 {
            PlotLegend.draw(entries, in: box(row: 0, column: 0), corners: [.topRight, .topLeft],
                            avoiding: PlotLegend.samples(of: diagonalLines), on: canvas)
        } else {
            let first = box(row: 0, column: 1)
            let area = PlotBox(x: first.x, y: first.y, width: Double(d - 1) * (panel + gap) - gap, height: panel)
            PlotLegend.draw(entries, in: area, corners: [.topRight], on: canvas)
        }
        return canvas
    }

    /// `corner` for single-precision samples (as the estimators return them).
    public static func corner(samples: [Float], dimension: Int, reference: [Float]? = nil,
                              options: CornerPlotOptions = CornerPlotOptions()) throws -> PlotCanvas {
        try corner(samples: samples.map(Double.init), dimension: dimension, reference: reference?.map(Double.init),
                   options: options)
    }

    /// Filled (or outlined) highest-density contours of one pair of parameters.
    static func drawDensity2D(xs: [Double], ys: [Double], axes: PlotAxes, options: CornerPlotOptions, on canvas: PlotCanvas,
                              color: PlotColor, levels: [Double], filled: Bool) {
        let bins = options.bins2D
        let xRange = (axes.xLo, axes.xHi), yRange = (axes.yLo, axes.yHi)
        let raw = PlotDensity.histogram2D(xs, ys, x: xRange, y: yRange, bins: bins)
        let grid = PlotDensity.smooth(raw, bins: bins, sigma: options.smoothing)
        // Outermost (largest mass, lowest threshold) first, so inner bands paint over outer ones.
        var pairs: [(mass: Double, threshold: Double)] = []
        for (mass, threshold) in zip(levels, PlotDensity.levels(grid, masses: levels)) {
            if let threshold { pairs.append((mass, threshold)) }
        }
        pairs.sort { $0.mass > $1.mass }
        // Equal thresholds (a very peaked histogram) would draw the same ring twice.
        var kept: [(mass: Double, threshold: Double)] = []
        for p in pairs where kept.last.map({ p.threshold > $0.threshold }) ?? true { kept.append(p) }
        let dx = (axes.xHi - axes.xLo) / Double(bins), dy = (axes.yHi - axes.yLo) / Double(bins)

        if filled && options.showPoints, let outer = kept.first?.threshold {
            var outside: [PlotPoint] = []
            for k in xs.indices {
                let u = xs[k], v = ys[k]
                guard axes.contains(u, v) else { continue }
                let ix = min(bins - 1, Int((u - axes.xLo) / dx)), iy = min(bins - 1, Int((v - axes.yLo) / dy))
                if grid[iy * bins + ix] < outer { outside.append(axes.point(u, v)) }
            }
            let limit = max(0, min(options.maxPoints, Int(axes.box.width * axes.box.height / 25)))
            if outside.count > limit {
                let stride = Double(outside.count) / Double(max(limit, 1))
                outside = limit == 0 ? [] : (0..<limit).map { outside[Int(Double($0) * stride)] }
            }
            canvas.dots(outside, radius: 1.4, fill: color.shade(0.1).withAlpha(0.55))
        }

        let box = axes.box
        for (k, level) in kept.enumerated() {
            let rings = PlotDensity.contours(grid, bins: bins, level: level.threshold, x0: axes.xLo + dx / 2, dx: dx,
                                             y0: axes.yLo + dy / 2, dy: dy)
            let points = rings.map { ring in
                ring.map { PlotPoint(min(max(axes.px($0.0), box.x), box.maxX), min(max(axes.py($0.1), box.y), box.maxY)) }
            }
            if filled {
                let t = kept.count == 1 ? 0.5 : 0.18 + 0.6 * Double(k) / Double(kept.count - 1)
                canvas.path(points, fill: color.tint(t), stroke: PlotStroke(color.shade(0.15), width: 1.2), evenOdd: true)
            } else {
                canvas.path(points, fill: nil, stroke: PlotStroke(color, width: 1.8), evenOdd: true)
            }
        }
    }

    /// Columns of row-major `values`, without rows holding a non-finite value.
    static func finiteColumns(_ values: [Double], dimension d: Int, what: String) throws -> [[Double]] {
        guard values.count % d == 0 else {
            throw PlotError("corner plot: \(values.count) \(what) values are not whole rows of \(d) parameters")
        }
        var columns = [[Double]](repeating: [], count: d)
        let rows = values.count / d
        for r in 0..<rows {
            let row = values[(r * d)..<((r + 1) * d)]
            guard row.allSatisfy({ $0.isFinite }) else { continue }
            for (k, v) in row.enumerated() { columns[k].append(v) }
        }
        guard !columns[0].isEmpty else { throw PlotError("corner plot: no \(what) with all values finite") }
        return columns
    }

    /// The central 99.9% of each set, joined (with an extra value such as a truth), padded 5%.
    static func automaticRange(_ sets: [[Double]], extra: Double?) -> (Double, Double) {
        var lo = Double.infinity, hi = -Double.infinity
        for set in sets where !set.isEmpty {
            let sorted = set.sorted()
            lo = min(lo, PlotDensity.quantile(sorted: sorted, 0.0005))
            hi = max(hi, PlotDensity.quantile(sorted: sorted, 0.9995))
        }
        if let extra, extra.isFinite {
            lo = min(lo, extra)
            hi = max(hi, extra)
        }
        guard lo.isFinite, hi.isFinite else { return (0, 1) }
        if hi - lo <= 1e-12 * max(1, abs(lo)) {
            let half = max(abs(lo) * 0.1, 0.5)
            return (lo - half, hi + half)
        }
        let pad = 0.05 * (hi - lo)
        return (lo - pad, hi + pad)
    }

    /// Drops ticks whose labels would reach more than `margin` past the panel's ends (where they
    /// would run into the next panel's labels).
    static func edgeSafe(_ ticks: PlotTicks, range: (Double, Double), length: Double, margin: Double, vertical: Bool) -> PlotTicks {
        var kept = PlotTicks.empty
        for (v, label) in zip(ticks.values, ticks.labels) {
            let position = (v - range.0) / (range.1 - range.0) * length
            let half = vertical ? 0.35 * PlotStyle.fontSize : PlotFont.width(of: label, size: PlotStyle.fontSize) / 2
            if position - half >= -margin && position + half <= length + margin {
                kept.values.append(v)
                kept.labels.append(label)
            }
        }
        return kept
    }
}
