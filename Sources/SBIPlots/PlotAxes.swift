import Foundation

// Axes: a data-to-canvas mapping over a box, "nice" tick values and their labels, the frame with
// outward ticks (matplotlib's look), clipping of lines to the box, and legends.

/// Shared sizes of the plots' furniture, in canvas units (PNG pixels).
enum PlotStyle {
    /// Em size of tick labels, legend entries and axis labels: the bitmap font at two pixels a dot.
    static let fontSize = 20.0
    /// Em size of titles.
    static let titleSize = 20.0
    static let tickLength = 6.0
    static let tickGap = 6.0
    static let frameColor = PlotColor(hex: 0x262626)
    static let frameWidth = 1.0
    static let textColor = PlotColor(hex: 0x262626)
    static let lightText = PlotColor(hex: 0x555555)
    static let gridColor = PlotColor(hex: 0xE5E5E5)
}

struct PlotBox {
    var x: Double
    var y: Double
    var width: Double
    var height: Double
    var maxX: Double { x + width }
    var maxY: Double { y + height }
    var midX: Double { x + width / 2 }
    var midY: Double { y + height / 2 }
}

/// Tick values for an axis and their labels.
struct PlotTicks {
    var values: [Double]
    var labels: [String]

    static let empty = PlotTicks(values: [], labels: [])

    /// Multiples of a 1-2-2.5-5 step inside [lo, hi], at most about `maxCount + 1` of them.
    static func nice(_ lo: Double, _ hi: Double, maxCount: Int, integer: Bool = false) -> PlotTicks {
        guard lo.isFinite, hi.isFinite, hi > lo, maxCount >= 1 else { return .empty }
        let raw = (hi - lo) / Double(maxCount)
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        var step = magnitude * 10
        for m in [1.0, 2, 2.5, 5, 10] where m * magnitude >= raw * (1 - 1e-9) {
            step = m * magnitude
            break
        }
        if integer { step = max(1, step.rounded(.up)) }
        let first = (lo / step - 1e-9).rounded(.up), last = (hi / step + 1e-9).rounded(.down)
        guard last >= first, last - first < 1000 else { return .empty }
        var values: [Double] = []
        var k = first
        while k <= last {
            let v = k * step
            values.append(abs(v) < step * 1e-9 ? 0 : v)
            k += 1
        }
        return PlotTicks(values: values, labels: format(values, step: step))
    }

    /// Labels with just enough decimals for `step`; scientific for very large or small values.
    static func format(_ values: [Double], step: Double) -> [String] {
        let largest = values.map { abs($0) }.max() ?? 0
        if largest >= 1e5 || (largest > 0 && largest < 1e-3) {
            for precision in 0...6 {
                let labels = values.map { v -> String in v == 0 ? "0" : scientific(v, precision: precision) }
                if Set(labels).count == labels.count { return labels }
            }
        }
        var decimals = max(0, Int((-log10(step) - 1e-9).rounded(.up)))
        // Steps like 0.25 or 2.5 need one more place than their magnitude.
        let scaled = step * pow(10, Double(decimals))
        if abs(scaled - scaled.rounded()) > 1e-6 { decimals += 1 }
        return values.map { v in
            var s = String(format: "%.\(decimals)f", v)
            if s.hasPrefix("-") && Double(s) == 0 { s.removeFirst() }
            return s
        }
    }

    static func scientific(_ v: Double, precision: Int) -> String {
        let s = String(format: "%.\(precision)e", v)
        guard let e = s.firstIndex(of: "e") else { return s }
        var mantissa = String(s[..<e])
        if mantissa.contains(".") {
            while mantissa.hasSuffix("0") { mantissa.removeLast() }
            if mantissa.hasSuffix(".") { mantissa.removeLast() }
        }
        let exponent = Int(s[s.index(after: e)...]) ?? 0
        return "\(mantissa)e\(exponent)"
    }

    /// The densest nice ticks whose labels fit along an axis of `length` canvas units without
    /// crowding: side by side for a horizontal axis, stacked for a vertical one.
    static func fitting(_ lo: Double, _ hi: Double, length: Double, vertical: Bool, maxCount: Int = 6,
                        integer: Bool = false, fontSize: Double = PlotStyle.fontSize) -> PlotTicks {
        var count = maxCount
        while count >= 1 {
            let ticks = nice(lo, hi, maxCount: count, integer: integer)
            if ticks.values.count <= 1 { return ticks }
            let spacing = length / (hi - lo) * (ticks.values[1] - ticks.values[0])
            let needed: Double
            if vertical {
                needed = fontSize * 1.6
            } else {
                needed = (ticks.labels.map { PlotFont.width(of: $0, size: fontSize) }.max() ?? 0) + fontSize * 0.6
            }
            if spacing >= needed { return ticks }
            count -= 1
        }
        return nice(lo, hi, maxCount: 1, integer: integer)
    }
}

/// A data rectangle mapped onto a box of the canvas (y up).
struct PlotAxes {
    var box: PlotBox
    var xLo: Double, xHi: Double, yLo: Double, yHi: Double

    init(box: PlotBox, x: (Double, Double), y: (Double, Double)) {
        self.box = box
        (xLo, xHi) = x.1 > x.0 ? x : (x.0 - 0.5, x.0 + 0.5)
        (yLo, yHi) = y.1 > y.0 ? y : (y.0 - 0.5, y.0 + 0.5)
    }

    func px(_ x: Double) -> Double { box.x + (x - xLo) / (xHi - xLo) * box.width }
    func py(_ y: Double) -> Double { box.maxY - (y - yLo) / (yHi - yLo) * box.height }
    func point(_ x: Double, _ y: Double) -> PlotPoint { PlotPoint(px(x), py(y)) }

    /// A data-space polyline as canvas polylines clipped to the box; non-finite points break it.
    func clipped(_ points: [(Double, Double)]) -> [[PlotPoint]] {
        var pieces: [[PlotPoint]] = []
        var current: [PlotPoint] = []
        func flush() {
            if current.count >= 2 { pieces.append(current) }
            current = []
        }
        var previous: PlotPoint?
        for (x, y) in points {
            guard x.isFinite, y.isFinite else { flush(); previous = nil; continue }
            let p = point(x, y)
            defer { previous = p }
            guard let a = previous else { continue }
            guard let (ca, cb) = clipSegment(a, p) else { flush(); continue }
            if current.isEmpty || current.last! != ca {
                flush()
                current = [ca]
            }
            current.append(cb)
            if cb != p { flush() }
        }
        // A single finite point inside the box still counts for the caller's markers; lines need two.
        flush()
        return pieces
    }

    /// Liang–Barsky clipping of a canvas segment to the box.
    func clipSegment(_ a: PlotPoint, _ b: PlotPoint) -> (PlotPoint, PlotPoint)? {
        var t0 = 0.0, t1 = 1.0
        let dx = b.x - a.x, dy = b.y - a.y
        let checks: [(Double, Double)] = [(-dx, a.x - box.x), (dx, box.maxX - a.x), (-dy, a.y - box.y), (dy, box.maxY - a.y)]
        for (p, q) in checks {
            if p == 0 {
                if q < 0 { return nil }
            } else {
                let r = q / p
                if p < 0 {
                    if r > t1 { return nil }
                    t0 = max(t0, r)
                } else {
                    if r < t0 { return nil }
                    t1 = min(t1, r)
                }
            }
        }
        return (PlotPoint(a.x + t0 * dx, a.y + t0 * dy), PlotPoint(a.x + t1 * dx, a.y + t1 * dy))
    }

    func contains(_ x: Double, _ y: Double) -> Bool {
        x >= xLo && x <= xHi && y >= yLo && y <= yHi
    }

    /// Light grid lines at the ticks, under the data.
    func grid(on canvas: PlotCanvas, x: PlotTicks?, y: PlotTicks?) {
        let stroke = PlotStroke(PlotStyle.gridColor, width: 1)
        for v in x?.values ?? [] {
            let p = crisp(px(v))
            canvas.line(from: PlotPoint(p, box.y), to: PlotPoint(p, box.maxY), stroke: stroke)
        }
        for v in y?.values ?? [] {
            let p = crisp(py(v))
            canvas.line(from: PlotPoint(box.x, p), to: PlotPoint(box.maxX, p), stroke: stroke)
        }
    }

    /// The frame, outward ticks and (where `labels`) their labels.
    func frame(on canvas: PlotCanvas, x: PlotTicks?, y: PlotTicks?, xLabels: Bool = true, yLabels: Bool = true) {
        let stroke = PlotStroke(PlotStyle.frameColor, width: PlotStyle.frameWidth)
        let size = PlotStyle.fontSize
        if let x {
            for (v, label) in zip(x.values, x.labels) {
                let p = crisp(px(v))
                canvas.line(from: PlotPoint(p, box.maxY), to: PlotPoint(p, box.maxY + PlotStyle.tickLength), stroke: stroke)
                if xLabels {
                    canvas.text(label, at: PlotPoint(px(v), box.maxY + PlotStyle.tickLength + PlotStyle.tickGap),
                                size: size, color: PlotStyle.textColor, anchor: .middle, baseline: .top)
                }
            }
        }
        if let y {
            for (v, label) in zip(y.values, y.labels) {
                let p = crisp(py(v))
                canvas.line(from: PlotPoint(box.x - PlotStyle.tickLength, p), to: PlotPoint(box.x, p), stroke: stroke)
                if yLabels {
                    canvas.text(label, at: PlotPoint(box.x - PlotStyle.tickLength - PlotStyle.tickGap, py(v)),
                                size: size, color: PlotStyle.textColor, anchor: .end, baseline: .middle)
                }
            }
        }
        canvas.rect(x: box.x, y: box.y, width: box.width, height: box.height, fill: nil, stroke: stroke)
    }

    /// The axis titles: `x` centred under the x tick labels, `y` rotated left of the y tick labels
    /// (`yTicks`); either may be nil, as in a grid's inner panels.
    func titles(on canvas: PlotCanvas, x: String?, y: String?, yTicks: PlotTicks) {
        let size = PlotStyle.fontSize
        if let x {
            canvas.text(x, at: PlotPoint(box.midX, box.maxY + PlotAxes.xTickLabelDepth + 14), size: size,
                        color: PlotStyle.textColor, anchor: .middle, baseline: .top)
        }
        if let y {
            canvas.text(y, at: PlotPoint(box.x - PlotAxes.yTickLabelReach(yTicks) - 14, box.midY), size: size,
                        color: PlotStyle.textColor, anchor: .middle, baseline: .bottom, rotated: true)
        }
    }

    /// The margin left of a box that holds y tick labels like `yTicks` and a rotated axis title.
    static func leftMargin(_ yTicks: PlotTicks) -> Double {
        (18 + 0.7 * PlotStyle.fontSize + 16 + yTickLabelReach(yTicks)).rounded()
    }

    /// The margin below a box that holds x tick labels and an axis title.
    static var bottomMargin: Double {
        (xTickLabelDepth + 0.7 * PlotStyle.fontSize + 36).rounded()
    }

    /// The distance from the box's bottom edge to below its x tick labels.
    static var xTickLabelDepth: Double {
        PlotStyle.tickLength + PlotStyle.tickGap + 0.7 * PlotStyle.fontSize
    }

    /// The distance from the box's left edge to the left of y tick labels this wide.
    static func yTickLabelReach(_ ticks: PlotTicks) -> Double {
        PlotStyle.tickLength + PlotStyle.tickGap
            + (ticks.labels.map { PlotFont.width(of: $0, size: PlotStyle.fontSize) }.max() ?? 0)
    }

    /// A 1-unit line's coordinate centred on a pixel.
    func crisp(_ v: Double) -> Double { v.rounded(.down) + 0.5 }
}

/// One legend row.
struct PlotLegendEntry {
    enum Mark {
        case line(PlotStroke)
        case patch(PlotColor)
        case lineAndMarker(PlotStroke)
    }

    var label: String
    var mark: Mark
}

enum PlotLegend {
    enum Corner { case topRight, bottomRight, topLeft, bottomLeft }

    /// Draws a framed legend inside `box`, at the first of `corners` that covers the fewest of
    /// `avoiding` (canvas points of the data; see `samples(of:)`).
    static func draw(_ entries: [PlotLegendEntry], in box: PlotBox, corners: [Corner], avoiding: [PlotPoint] = [],
                     on canvas: PlotCanvas) {
        guard !entries.isEmpty, !corners.isEmpty else { return }
        let size = PlotStyle.fontSize
        let rowHeight = size * 1.3, swatch = 30.0, pad = 10.0
        let textWidth = entries.map { PlotFont.width(of: $0.label, size: size) }.max() ?? 0
        let width = (pad + swatch + 8 + textWidth + pad).rounded()
        let height = (pad * 2 + rowHeight * Double(entries.count) - (rowHeight - 0.7 * size)).rounded()
        let inset = 10.0
        func origin(_ corner: Corner) -> (Double, Double) {
            switch corner {
            case .topRight: return (box.maxX - inset - width, box.y + inset)
            case .bottomRight: return (box.maxX - inset - width, box.maxY - inset - height)
            case .topLeft: return (box.x + inset, box.y + inset)
            case .bottomLeft: return (box.x + inset, box.maxY - inset - height)
            }
        }
        var best = corners[0], fewest = Int.max
        for corner in corners {
            let (x, y) = origin(corner)
            let covered = avoiding.filter { $0.x >= x - 4 && $0.x <= x + width + 4 && $0.y >= y - 4 && $0.y <= y + height + 4 }.count
            if covered < fewest {
                fewest = covered
                best = corner
            }
        }
        let (x, y) = origin(best)
        let left = x.rounded(.down) + 0.5, top = y.rounded(.down) + 0.5
        canvas.rect(x: left, y: top, width: width, height: height,
                    fill: PlotColor.white.withAlpha(0.85), stroke: PlotStroke(PlotColor(hex: 0xCCCCCC), width: 1))
        for (k, entry) in entries.enumerated() {
            let midY = top + pad + rowHeight * Double(k) + 0.35 * size
            let sx = left + pad
            switch entry.mark {
            case let .line(stroke):
                canvas.line(from: PlotPoint(sx, midY), to: PlotPoint(sx + swatch, midY), stroke: stroke)
            case let .lineAndMarker(stroke):
                canvas.line(from: PlotPoint(sx, midY), to: PlotPoint(sx + swatch, midY), stroke: stroke)
                canvas.circle(center: PlotPoint(sx + swatch / 2, midY), radius: 4, fill: stroke.color)
            case let .patch(color):
                canvas.rect(x: sx, y: midY - 0.35 * size - 1, width: swatch, height: 0.7 * size + 2, fill: color)
            }
            canvas.text(entry.label, at: PlotPoint(sx + swatch + 8, midY), size: size, color: PlotStyle.textColor,
                        anchor: .start, baseline: .middle)
        }
    }

    /// Points every few units along polylines, for `draw`'s `avoiding`.
    static func samples(of polylines: [[PlotPoint]], every spacing: Double = 4) -> [PlotPoint] {
        var out: [PlotPoint] = []
        for line in polylines {
            guard let first = line.first else { continue }
            out.append(first)
            for k in 1..<max(line.count, 1) {
                let a = line[k - 1], b = line[k]
                let steps = max(1, Int((hypot(b.x - a.x, b.y - a.y) / spacing).rounded(.up)))
                for j in 1...steps {
                    let t = Double(j) / Double(steps)
                    out.append(PlotPoint(a.x + (b.x - a.x) * t, a.y + (b.y - a.y) * t))
                }
            }
        }
        return out
    }
}
