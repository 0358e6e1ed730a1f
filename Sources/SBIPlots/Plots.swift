import Foundation

/// Diagnostic plots. Each function returns a `PlotCanvas`; `write(to:)` saves it as .svg or .png
/// after the path's extension.
public enum Plots {}

// MARK: - Loss curves

/// Settings of `Plots.lossCurves`.
public struct LossPlotOptions: Sendable {
    public var title: String?
    public var xLabel: String
    public var yLabel: String
    /// Keep a few huge early losses from flattening the rest: the y axis stops a little above the
    /// bulk of the values, and what lies beyond runs off the top.
    public var clipOutliers: Bool
    /// Mark the epoch of the lowest validation loss.
    public var markBest: Bool
    public var width: Double
    public var height: Double

    public init(title: String? = nil, xLabel: String = "epoch", yLabel: String = "loss", clipOutliers: Bool = true,
                markBest: Bool = true, width: Double = 900, height: Double = 560) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.clipOutliers = clipOutliers
        self.markBest = markBest
        self.width = width
        self.height = height
    }
}

extension Plots {
    /// Training and validation loss per epoch; element k is epoch k + 1. Either may be empty, and
    /// non-finite losses leave gaps.
    public static func lossCurves(training: [Double], validation: [Double] = [],
                                  options: LossPlotOptions = LossPlotOptions()) throws -> PlotCanvas {
        try lossCurves(epochs: training.indices.map { Double($0 + 1) }, training: training,
                       validationEpochs: validation.indices.map { Double($0 + 1) }, validation: validation, options: options)
    }

    /// Loss curves at the given epochs (a training history's epoch numbers, say).
    public static func lossCurves(epochs: [Double], training: [Double], validationEpochs: [Double], validation: [Double],
                                  options: LossPlotOptions = LossPlotOptions()) throws -> PlotCanvas {
        let trainingPoints = zip(epochs, training).map { ($0, $1) }
        let validationPoints = zip(validationEpochs, validation).map { ($0, $1) }
        let finite = (trainingPoints + validationPoints).filter { $0.0.isFinite && $0.1.isFinite }
        guard !finite.isEmpty else { throw PlotError("loss plot: no finite loss values") }
        let xs = finite.map(\.0), ys = finite.map(\.1).sorted()
        var xLo = xs.min()!, xHi = xs.max()!
        if xHi - xLo < 1 { xLo -= 0.5; xHi += 0.5 }
        let xPad = 0.03 * (xHi - xLo)
        var yLo = ys.first!, yHi = ys.last!
        var clipped = false
        if options.clipOutliers && ys.count >= 5 {
            let q90 = PlotDensity.quantile(sorted: ys, 0.9)
            let limit = q90 + 2 * (q90 - yLo)
            if limit < yHi && limit > yLo { yHi = limit; clipped = true }
        }
        if yHi - yLo <= 1e-12 * max(1, abs(yLo)) {
            let half = max(abs(yLo) * 0.05, 0.5)
            yLo -= half; yHi += half
        }
        let yPad = 0.05 * (yHi - yLo)
        let xRange = (xLo - xPad, xHi + xPad), yRange = (yLo - yPad, yHi + (clipped ? 0 : yPad))

        let top = (options.title == nil ? 24.0 : 24 + 0.7 * PlotStyle.titleSize + 22).rounded()
        let plotHeight = options.height - top - PlotAxes.bottomMargin
        let yTicks = PlotTicks.fitting(yRange.0, yRange.1, length: plotHeight, vertical: true, maxCount: 8)
        let left = PlotAxes.leftMargin(yTicks)
        let box = PlotBox(x: left + 0.5, y: top + 0.5, width: (options.width - left - 30).rounded(), height: plotHeight.rounded())
        guard box.width > 40, box.height > 40 else { throw PlotError("loss plot: \(options.width)×\(options.height) is too small") }
        let xTicks = PlotTicks.fitting(xRange.0, xRange.1, length: box.width, vertical: false, maxCount: 10, integer: true)
        let axes = PlotAxes(box: box, x: xRange, y: yRange)
        let canvas = PlotCanvas(width: options.width, height: options.height)
        if let title = options.title {
            canvas.text(title, at: PlotPoint(box.midX, 20), size: PlotStyle.titleSize, color: PlotStyle.textColor,
                        anchor: .middle, baseline: .top)
        }
        axes.grid(on: canvas, x: xTicks, y: yTicks)

        var entries: [PlotLegendEntry] = []
        var drawn: [[PlotPoint]] = []
        let series: [(String, [(Double, Double)], PlotColor)] = [("training", trainingPoints, .blue),
                                                                 ("validation", validationPoints, .orange)]
        for (name, points, color) in series where points.contains(where: { $0.0.isFinite && $0.1.isFinite }) {
            let stroke = PlotStroke(color, width: 2)
            for piece in axes.clipped(points) {
                canvas.line(piece, stroke: stroke)
                drawn.append(piece)
            }
            let markers = points.count <= 40
            if markers {
                for (x, y) in points where x.isFinite && y.isFinite && axes.contains(x, y) {
                    canvas.circle(center: axes.point(x, y), radius: 3.5, fill: color)
                }
            }
            entries.append(PlotLegendEntry(label: name, mark: markers ? .lineAndMarker(stroke) : .line(stroke)))
        }
        if options.markBest,
           let best = validationPoints.filter({ $0.0.isFinite && $0.1.isFinite }).min(by: { $0.1 < $1.1 }) {
            let x = axes.px(best.0)
            canvas.line(from: PlotPoint(x, box.y), to: PlotPoint(x, box.maxY),
                        stroke: PlotStroke(PlotColor(hex: 0x555555), width: 1.2, dash: [6, 4]))
            if axes.contains(best.0, best.1) {
                canvas.circle(center: axes.point(best.0, best.1), radius: 6, fill: .orange, stroke: PlotStroke(.white, width: 2))
            }
            let epoch = best.0 == best.0.rounded() ? String(Int(best.0)) : String(format: "%g", best.0)
            entries.append(PlotLegendEntry(label: "best: epoch \(epoch), \(String(format: "%.4g", best.1))",
                                           mark: .line(PlotStroke(PlotColor(hex: 0x555555), width: 1.2, dash: [6, 4]))))
        }
        axes.frame(on: canvas, x: xTicks, y: yTicks)
        axes.titles(on: canvas, x: options.xLabel, y: options.yLabel, yTicks: yTicks)
        PlotLegend.draw(entries, in: box, corners: [.topRight, .bottomLeft, .bottomRight, .topLeft],
                        avoiding: PlotLegend.samples(of: drawn), on: canvas)
        return canvas
    }
}

// MARK: - SBC rank histograms

/// Settings of `Plots.sbcRanks`.
public struct SBCPlotOptions: Sendable {
    /// One label per parameter; default θ1, θ2, ...
    public var labels: [String]?
    /// Histogram bins; default about 20, fewer for few simulations, dividing the rank count if it can.
    public var bins: Int?
    /// Probability of the band that uniform ranks' bin counts fall in.
    public var confidence: Double
    /// Panels per row; default up to 4.
    public var columns: Int?
    public var title: String?
    public var color: PlotColor

    public init(labels: [String]? = nil, bins: Int? = nil, confidence: Double = 0.99, columns: Int? = nil,
                title: String? = nil, color: PlotColor = .blue) {
        self.labels = labels
        self.bins = bins
        self.confidence = confidence
        self.columns = columns
        self.title = title
        self.color = color
    }
}

extension Plots {
    /// Simulation-based-calibration rank histograms, one panel per parameter, over the band in
    /// which a calibrated posterior's bin counts fall with probability `confidence` (binomial).
    /// `ranks` is row-major, one row of `dimension` ranks per SBC simulation; each rank counts the
    /// posterior samples (of `posteriorSamples`) below the true value, so lies in 0...posteriorSamples.
    public static func sbcRanks(ranks: [Int], dimension: Int, posteriorSamples: Int,
                                options: SBCPlotOptions = SBCPlotOptions()) throws -> PlotCanvas {
        let d = dimension
        guard d >= 1 else { throw PlotError("SBC plot: the dimension must be positive, not \(d)") }
        guard posteriorSamples >= 1 else { throw PlotError("SBC plot: posteriorSamples must be positive") }
        guard !ranks.isEmpty, ranks.count % d == 0 else {
            throw PlotError("SBC plot: \(ranks.count) ranks are not whole rows of \(d) parameters")
        }
        if let bad = ranks.first(where: { $0 < 0 || $0 > posteriorSamples }) {
            throw PlotError("SBC plot: rank \(bad) is outside 0...\(posteriorSamples)")
        }
        guard options.confidence > 0, options.confidence < 1 else { throw PlotError("SBC plot: confidence must lie in (0, 1)") }
        let labels = options.labels ?? (1...d).map { "θ\($0)" }
        guard labels.count == d else { throw PlotError("SBC plot: \(labels.count) labels for \(d) parameters") }
        let n = ranks.count / d, values = posteriorSamples + 1
        let bins: Int
        if let given = options.bins {
            guard given >= 1 else { throw PlotError("SBC plot: bins must be positive") }
            bins = min(given, values)
        } else {
            let wanted = min(20, values, max(2, n / 10))
            bins = stride(from: wanted, through: max(1, wanted / 2 + 1), by: -1).first { values % $0 == 0 } ?? wanted
        }
        // Bin b holds ranks r with r·bins / values == b.
        func bin(_ r: Int) -> Int { r * bins / values }
        var binStart = [Int](repeating: values, count: bins + 1)
        for r in stride(from: values - 1, through: 0, by: -1) { binStart[bin(r)] = r }
        binStart[bins] = values
        let probabilities = (0..<bins).map { Double(binStart[$0 + 1] - binStart[$0]) / Double(values) }
        let band = probabilities.map { PlotDensity.binomialInterval(n: n, p: $0, confidence: options.confidence) }
        var counts = [[Int]](repeating: [Int](repeating: 0, count: bins), count: d)
        for row in 0..<n {
            for k in 0..<d { counts[k][bin(ranks[row * d + k])] += 1 }
        }
        let peak = max(counts.flatMap { $0 }.max() ?? 0, band.map(\.upper).max() ?? 0)
        let yRange = (0.0, Double(max(peak, 1)) * 1.12), xRange = (0.0, Double(values))

        // Layout: a grid of panels sharing the y axis.
        let size = PlotStyle.fontSize
        let perRow = max(1, min(options.columns ?? min(d, 4), d))
        let gridRows = (d + perRow - 1) / perRow
        let panelWidth = 300.0, panelHeight = 210.0
        let yTicks = PlotTicks.fitting(yRange.0, yRange.1, length: panelHeight, vertical: true, maxCount: 5, integer: true)
        let xTicks = edgeSafe(PlotTicks.fitting(xRange.0, xRange.1, length: panelWidth, vertical: false, maxCount: 5, integer: true),
                              range: xRange, length: panelWidth, margin: 12, vertical: false)
        let titleBand = 0.7 * size + 14
        let left = PlotAxes.leftMargin(yTicks)
        let header = 20 + (options.title == nil ? 0 : 0.7 * PlotStyle.titleSize + 14) + 0.7 * size + 16
        let top = (header + titleBand).rounded()
        let hGap = 30.0, vGap = (PlotAxes.xTickLabelDepth + 16 + titleBand).rounded()
        let bottom = PlotAxes.bottomMargin
        let width = left + Double(perRow) * panelWidth + Double(perRow - 1) * hGap + 30
        let height = top + Double(gridRows) * panelHeight + Double(gridRows - 1) * vGap + bottom
        let canvas = PlotCanvas(width: width, height: height)
        var headerY = 20.0
        if let title = options.title {
            canvas.text(title, at: PlotPoint(width / 2, headerY), size: PlotStyle.titleSize, color: PlotStyle.textColor,
                        anchor: .middle, baseline: .top)
            headerY += 0.7 * PlotStyle.titleSize + 14
        }
        let percent = String(format: "%g", options.confidence * 100)
        canvas.text("grey band: \(percent)% interval of a bin's count for uniform ranks · \(n) simulations · ranks 0-\(posteriorSamples) in \(bins) bins",
                    at: PlotPoint(width / 2, headerY), size: size, color: PlotStyle.lightText, anchor: .middle, baseline: .top)

        for k in 0..<d {
            let gridRow = k / perRow, gridColumn = k % perRow
            let box = PlotBox(x: (left + Double(gridColumn) * (panelWidth + hGap)).rounded(.down) + 0.5,
                              y: (top + Double(gridRow) * (panelHeight + vGap)).rounded(.down) + 0.5,
                              width: panelWidth, height: panelHeight)
            let axes = PlotAxes(box: box, x: xRange, y: yRange)
            // The band, as steps over the bins.
            var upper: [PlotPoint] = [], lower: [PlotPoint] = []
            for b in 0..<bins {
                let x0 = axes.px(Double(binStart[b])), x1 = axes.px(Double(binStart[b + 1]))
                upper += [PlotPoint(x0, axes.py(Double(band[b].upper))), PlotPoint(x1, axes.py(Double(band[b].upper)))]
                lower += [PlotPoint(x0, axes.py(Double(band[b].lower))), PlotPoint(x1, axes.py(Double(band[b].lower)))]
            }
            let bandColor = PlotColor(hex: 0x000000, alpha: 0.13)
            canvas.polygon(upper + lower.reversed(), fill: bandColor)
            for b in 0..<bins where counts[k][b] > 0 {
                let x0 = axes.px(Double(binStart[b])), x1 = axes.px(Double(binStart[b + 1]))
                let y = axes.py(Double(counts[k][b]))
                canvas.rect(x: x0 + 0.5, y: y, width: max(x1 - x0 - 1, 0.5), height: box.maxY - y,
                            fill: options.color.withAlpha(0.8))
            }
            var expected: [PlotPoint] = []
            for b in 0..<bins {
                let y = axes.py(Double(n) * probabilities[b])
                expected += [PlotPoint(axes.px(Double(binStart[b])), y), PlotPoint(axes.px(Double(binStart[b + 1])), y)]
            }
            canvas.line(expected, stroke: PlotStroke(PlotColor(hex: 0x333333), width: 1.2, dash: [6, 4]))
            // The band's edges again over the bars, so bars leaving it show.
            let edge = PlotStroke(PlotColor(hex: 0x000000, alpha: 0.35), width: 1)
            canvas.line(upper, stroke: edge)
            canvas.line(lower, stroke: edge)
            axes.frame(on: canvas, x: xTicks, y: yTicks, xLabels: true, yLabels: gridColumn == 0)
            canvas.text(labels[k], at: PlotPoint(box.midX, box.y - 10), size: size, color: PlotStyle.textColor,
                        anchor: .middle, baseline: .bottom)
            let isLowest = gridRow == gridRows - 1 || k + perRow >= d
            axes.titles(on: canvas, x: isLowest ? "rank" : nil, y: gridColumn == 0 ? "count" : nil, yTicks: yTicks)
        }
        return canvas
    }
}

// MARK: - Coverage

/// Settings of `Plots.coverage`.
public struct CoveragePlotOptions: Sendable {
    /// One name per series (shown in the legend when there are several, or any name is given).
    public var labels: [String]?
    /// How many test cases each empirical coverage was measured on; draws the band within which a
    /// calibrated estimator's coverage falls with probability `confidence`.
    public var trials: Int?
    public var confidence: Double
    public var title: String?
    public var xLabel: String
    public var yLabel: String
    public var size: Double

    public init(labels: [String]? = nil, trials: Int? = nil, confidence: Double = 0.99, title: String? = nil,
                xLabel: String = "expected coverage", yLabel: String = "empirical coverage", size: Double = 640) {
        self.labels = labels
        self.trials = trials
        self.confidence = confidence
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.size = size
    }
}

extension Plots {
    /// Empirical against expected coverage of credible regions: `levels` are the nominal levels in
    /// [0, 1]; each series of `empirical` gives the observed coverage at each level. A calibrated
    /// estimator lies on the diagonal; below it is overconfident, above it conservative.
    public static func coverage(levels: [Double], empirical: [[Double]],
                                options: CoveragePlotOptions = CoveragePlotOptions()) throws -> PlotCanvas {
        guard !levels.isEmpty else { throw PlotError("coverage plot: no levels") }
        guard !empirical.isEmpty else { throw PlotError("coverage plot: no empirical coverage series") }
        for (k, series) in empirical.enumerated() where series.count != levels.count {
            throw PlotError("coverage plot: series \(k) has \(series.count) values for \(levels.count) levels")
        }
        if let labels = options.labels, labels.count != empirical.count {
            throw PlotError("coverage plot: \(labels.count) labels for \(empirical.count) series")
        }
        let side = options.size
        let top = (options.title == nil ? 24.0 : 24 + 0.7 * PlotStyle.titleSize + 22).rounded()
        let ticks = PlotTicks.nice(0, 1, maxCount: 5)
        let left = PlotAxes.leftMargin(ticks)
        let bottom = PlotAxes.bottomMargin
        let plotSide = min(side - left - 30, side - top - bottom).rounded()
        guard plotSide > 60 else { throw PlotError("coverage plot: size \(side) is too small") }
        let canvas = PlotCanvas(width: left + plotSide + 30, height: top + plotSide + bottom)
        let box = PlotBox(x: left + 0.5, y: top + 0.5, width: plotSide, height: plotSide)
        let axes = PlotAxes(box: box, x: (0, 1), y: (0, 1))
        if let title = options.title {
            canvas.text(title, at: PlotPoint(box.midX, 20), size: PlotStyle.titleSize, color: PlotStyle.textColor,
                        anchor: .middle, baseline: .top)
        }
        axes.grid(on: canvas, x: ticks, y: ticks)
        var entries: [PlotLegendEntry] = []
        let ideal = PlotStroke(PlotColor(hex: 0x333333), width: 1.4, dash: [7, 5])
        if let trials = options.trials, trials > 0 {
            let grid = (0...100).map { Double($0) / 100 }
            var upper: [PlotPoint] = [], lower: [PlotPoint] = []
            for a in grid {
                let (lo, hi) = PlotDensity.binomialInterval(n: trials, p: a, confidence: options.confidence)
                upper.append(axes.point(a, Double(hi) / Double(trials)))
                lower.append(axes.point(a, Double(lo) / Double(trials)))
            }
            let fill = PlotColor(hex: 0x000000, alpha: 0.12)
            canvas.polygon(upper + lower.reversed(), fill: fill)
            entries.append(PlotLegendEntry(label: "\(String(format: "%g", options.confidence * 100))% band, \(trials) trials",
                                           mark: .patch(PlotColor(hex: 0x000000, alpha: 0.12))))
        }
        canvas.line(from: axes.point(0, 0), to: axes.point(1, 1), stroke: ideal)
        entries.insert(PlotLegendEntry(label: "calibrated", mark: .line(ideal)), at: 0)
        let order = levels.indices.sorted { levels[$0] < levels[$1] }
        var drawn: [[PlotPoint]] = []
        for (k, series) in empirical.enumerated() {
            let color = PlotColor.cycle[k % PlotColor.cycle.count]
            let stroke = PlotStroke(color, width: 2)
            let points = order.map { (levels[$0], series[$0]) }
            for piece in axes.clipped(points) {
                canvas.line(piece, stroke: stroke)
                drawn.append(piece)
            }
            let markers = levels.count <= 40
            if markers {
                for (x, y) in points where x.isFinite && y.isFinite && axes.contains(x, y) {
                    canvas.circle(center: axes.point(x, y), radius: 3.5, fill: color)
                }
            }
            let name = options.labels?[k] ?? (empirical.count == 1 ? "estimator" : "series \(k + 1)")
            entries.append(PlotLegendEntry(label: name, mark: markers ? .lineAndMarker(stroke) : .line(stroke)))
        }
        axes.frame(on: canvas, x: ticks, y: ticks)
        axes.titles(on: canvas, x: options.xLabel, y: options.yLabel, yTicks: ticks)
        PlotLegend.draw(entries, in: box, corners: [.bottomRight, .topLeft], avoiding: PlotLegend.samples(of: drawn), on: canvas)
        return canvas
    }

    /// `coverage` of one series.
    public static func coverage(levels: [Double], empirical: [Double],
                                options: CoveragePlotOptions = CoveragePlotOptions()) throws -> PlotCanvas {
        try coverage(levels: levels, empirical: [empirical], options: options)
    }
}
