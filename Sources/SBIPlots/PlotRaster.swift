import Foundation

// The rasterizer: every shape becomes closed rings filled with anti-aliasing. A pixel row is
// sampled on a few sub-scanlines; on each, the spans inside the rings (nonzero or even-odd
// winding) add their exact horizontal coverage. Strokes become unions of segment quads and round
// joins (all wound the same way, so nonzero fills their union); text becomes the font's pixels as
// squares, snapped to the pixel grid when the font scale is a whole number.

enum PlotRaster {
    static func render(_ canvas: PlotCanvas, scale: Double) -> PlotImage {
        precondition(scale > 0 && scale.isFinite, "scale must be positive")
        let width = max(1, Int((canvas.width * scale).rounded(.up)))
        let height = max(1, Int((canvas.height * scale).rounded(.up)))
        var surface = PlotSurface(width: width, height: height, background: canvas.background)
        for item in canvas.items {
            draw(item, on: &surface, scale: scale)
        }
        return surface.image()
    }

    static func draw(_ item: PlotItem, on surface: inout PlotSurface, scale: Double) {
        func p(_ q: PlotPoint) -> PlotPoint { PlotPoint(q.x * scale, q.y * scale) }
        switch item {
        case let .polyline(points, stroke):
            surface.stroke(points.map(p), stroke: stroke, scale: scale, closed: false)
        case let .rect(x, y, w, h, fill, stroke):
            let ring = [PlotPoint(x, y), PlotPoint(x + w, y), PlotPoint(x + w, y + h), PlotPoint(x, y + h)].map(p)
            if let fill { surface.fill([ring], evenOdd: false, color: fill) }
            if let stroke { surface.stroke(ring, stroke: stroke, scale: scale, closed: true) }
        case let .path(rings, fill, stroke, evenOdd):
            let scaled = rings.map { $0.map(p) }
            if let fill { surface.fill(scaled, evenOdd: evenOdd, color: fill) }
            if let stroke {
                for ring in scaled { surface.stroke(ring, stroke: stroke, scale: scale, closed: true) }
            }
        case let .circle(center, radius, fill, stroke):
            let ring = circleRing(p(center), radius: radius * scale)
            if let fill { surface.fill([ring], evenOdd: false, color: fill) }
            if let stroke { surface.stroke(ring, stroke: stroke, scale: scale, closed: true) }
        case let .dots(centers, radius, fill):
            surface.fill(centers.map { circleRing(p($0), radius: radius * scale) }, evenOdd: false, color: fill)
        case let .text(string, point, size, color, anchor, baseline, rotated):
            surface.fill(textRings(string, at: p(point), size: size * scale, anchor: anchor,
                                   baseline: baseline, rotated: rotated), evenOdd: false, color: color)
        }
    }

    /// A polygon approximating a circle, wound positively.
    static func circleRing(_ c: PlotPoint, radius r: Double) -> [PlotPoint] {
        let n = min(96, max(8, Int((2 * Double.pi * r / 1.5).rounded(.up))))
        return (0..<n).map { k in
            let t = 2 * Double.pi * Double(k) / Double(n)
            return PlotPoint(c.x + r * cos(t), c.y + r * sin(t))
        }
    }

    /// The font's pixels of `string` as squares, laid out as the SVG text is.
    static func textRings(_ string: String, at anchorPoint: PlotPoint, size: Double, anchor: PlotTextAnchor,
                          baseline: PlotTextBaseline, rotated: Bool) -> [[PlotPoint]] {
        var unit = size / 10
        let whole = unit.rounded()
        let snap = whole >= 1 && abs(unit - whole) < 0.2
        if snap { unit = whole }
        let textWidth = Double(max(0, string.count * PlotFont.advance - 1)) * unit
        let u0: Double
        switch anchor {
        case .start: u0 = 0
        case .middle: u0 = -textWidth / 2
        case .end: u0 = -textWidth
        }
        let ascent = Double(PlotFont.ascent) * unit
        let v0: Double
        switch baseline {
        case .top: v0 = 0
        case .middle: v0 = -ascent / 2
        case .bottom: v0 = -ascent
        }
        // The screen position of the text box's top-left corner, then text-frame offsets from it.
        var origin = rotated ? PlotPoint(anchorPoint.x + v0, anchorPoint.y - u0) : PlotPoint(anchorPoint.x + u0, anchorPoint.y + v0)
        if snap { origin = PlotPoint(origin.x.rounded(), origin.y.rounded()) }
        func map(_ u: Double, _ v: Double) -> PlotPoint {
            rotated ? PlotPoint(origin.x + v, origin.y - u) : PlotPoint(origin.x + u, origin.y + v)
        }
        var rings: [[PlotPoint]] = []
        for (index, c) in string.enumerated() {
            let glyph = PlotFont.glyph(c)
            let left = Double(index * PlotFont.advance)
            for (row, bits) in glyph.enumerated() where bits != 0 {
                // Runs of lit pixels become one rectangle each.
                var column = 0
                while column < PlotFont.columns {
                    guard bits & UInt8(1 << (PlotFont.columns - 1 - column)) != 0 else { column += 1; continue }
                    var end = column
                    while end + 1 < PlotFont.columns && bits & UInt8(1 << (PlotFont.columns - 2 - end)) != 0 { end += 1 }
                    let ua = (left + Double(column)) * unit, ub = (left + Double(end + 1)) * unit
                    let va = Double(row) * unit, vb = Double(row + 1) * unit
                    var ring = [map(ua, va), map(ub, va), map(ub, vb), map(ua, vb)]
                    if signedArea(ring) < 0 { ring.reverse() }
                    rings.append(ring)
                    column = end + 1
                }
            }
        }
        return rings
    }

    static func signedArea(_ ring: [PlotPoint]) -> Double {
        var area = 0.0
        for i in ring.indices {
            let a = ring[i], b = ring[(i + 1) % ring.count]
            area += a.x * b.y - b.x * a.y
        }
        return area / 2
    }

    /// The polyline cut into its dashes (on lengths of `pattern`, which repeats).
    static func dashes(_ points: [PlotPoint], pattern: [Double]) -> [[PlotPoint]] {
        let pattern = pattern.filter { $0 > 0 }
        guard pattern.count >= 1 else { return [points] }
        var pieces: [[PlotPoint]] = []
        var current: [PlotPoint] = []
        var index = 0, left = pattern[0], on = true
        if on { current = [points[0]] }
        for k in 1..<points.count {
            var a = points[k - 1]
            let b = points[k]
            var remaining = hypot(b.x - a.x, b.y - a.y)
            while remaining > 0 {
                let step = min(left, remaining)
                let t = step / remaining
                let q = PlotPoint(a.x + (b.x - a.x) * t, a.y + (b.y - a.y) * t)
                if on { current.append(q) }
                remaining -= step
                left -= step
                a = q
                if left <= 1e-12 {
                    if on {
                        if current.count >= 2 { pieces.append(current) }
                        current = []
                    } else {
                        current = [q]
                    }
                    on.toggle()
                    index = (index + 1) % pattern.count
                    left = pattern[index]
                }
            }
        }
        if on && current.count >= 2 { pieces.append(current) }
        return pieces
    }
}

/// Premultiplied floating-point RGBA pixels being drawn on.
struct PlotSurface {
    let width: Int
    let height: Int
    private var pixels: [Float]
    private var coverage: [Float]
    private var crossings: [(x: Double, direction: Int)] = []

    /// Sub-scanlines per pixel row.
    private static let samples = 5

    init(width: Int, height: Int, background: PlotColor?) {
        self.width = width
        self.height = height
        let bg = background ?? PlotColor(red: 0, green: 0, blue: 0, alpha: 0)
        let a = Float(bg.alpha)
        let pixel: [Float] = [Float(bg.red) * a, Float(bg.green) * a, Float(bg.blue) * a, a]
        pixels = [Float](repeating: 0, count: width * height * 4)
        for i in 0..<(width * height) {
            pixels[4 * i] = pixel[0]
            pixels[4 * i + 1] = pixel[1]
            pixels[4 * i + 2] = pixel[2]
            pixels[4 * i + 3] = pixel[3]
        }
        coverage = [Float](repeating: 0, count: width + 2)
    }

    func image() -> PlotImage {
        var bytes = [UInt8](repeating: 0, count: width * height * 4)
        for i in 0..<(width * height) {
            let a = pixels[4 * i + 3]
            guard a > 0 else { continue }
            for c in 0..<3 {
                let v = min(max(pixels[4 * i + c] / a, 0), 1)
                bytes[4 * i + c] = UInt8((v * 255).rounded())
            }
            bytes[4 * i + 3] = UInt8((min(a, 1) * 255).rounded())
        }
        return PlotImage(width: width, height: height, rgba: bytes)
    }

    private struct Edge {
        var x0, y0, y1, slope: Double
        var direction: Int
    }

    /// Fills closed rings (pixel coordinates) with anti-aliasing.
    mutating func fill(_ rings: [[PlotPoint]], evenOdd: Bool, color: PlotColor) {
        guard color.alpha > 0 else { return }
        var edges: [Edge] = []
        var minX = Double.infinity, maxX = -Double.infinity, minY = Double.infinity, maxY = -Double.infinity
        for ring in rings where ring.count >= 3 {
            for i in ring.indices {
                let a = ring[i], b = ring[(i + 1) % ring.count]
                guard a.x.isFinite, a.y.isFinite, b.x.isFinite, b.y.isFinite else { continue }
                minX = min(minX, a.x); maxX = max(maxX, a.x)
                if a.y == b.y { continue }
                let (top, bottom, direction) = a.y < b.y ? (a, b, 1) : (b, a, -1)
                edges.append(Edge(x0: top.x, y0: top.y, y1: bottom.y, slope: (bottom.x - top.x) / (bottom.y - top.y),
                                  direction: direction))
                minY = min(minY, top.y); maxY = max(maxY, bottom.y)
            }
        }
        guard !edges.isEmpty else { return }
        let rowStart = max(0, Int(minY.rounded(.down)))
        let rowEnd = min(height - 1, Int(maxY.rounded(.up)) - 1)
        let columnStart = max(0, Int(minX.rounded(.down)))
        let columnEnd = min(width, Int(maxX.rounded(.up)))
        guard rowStart <= rowEnd, columnStart < columnEnd else { return }
        edges.sort { $0.y0 < $1.y0 }

        let samples = PlotSurface.samples
        let alpha = Float(color.alpha) / Float(samples)
        let red = Float(color.red), green = Float(color.green), blue = Float(color.blue)
        var active: [Int] = []
        var next = 0
        for row in rowStart...rowEnd {
            let rowTop = Double(row), rowBottom = Double(row + 1)
            while next < edges.count && edges[next].y0 < rowBottom {
                active.append(next)
                next += 1
            }
            active.removeAll { edges[$0].y1 <= rowTop }
            if active.isEmpty { continue }
            var touchedLow = columnEnd, touchedHigh = columnStart - 1
            for s in 0..<samples {
                let sy = rowTop + (Double(s) + 0.5) / Double(samples)
                crossings.removeAll(keepingCapacity: true)
                for e in active {
                    let edge = edges[e]
                    if edge.y0 <= sy && sy < edge.y1 {
                        crossings.append((edge.x0 + (sy - edge.y0) * edge.slope, edge.direction))
                    }
                }
                guard crossings.count >= 2 else { continue }
                crossings.sort { $0.x < $1.x }
                var winding = 0
                for k in 0..<(crossings.count - 1) {
                    winding += evenOdd ? 1 : crossings[k].direction
                    let inside = evenOdd ? (winding & 1) != 0 : winding != 0
                    guard inside else { continue }
                    let xa = max(crossings[k].x, Double(columnStart)), xb = min(crossings[k + 1].x, Double(columnEnd))
                    guard xb > xa else { continue }
                    let ia = Int(xa), ib = Int(xb)
                    touchedLow = min(touchedLow, ia)
                    touchedHigh = max(touchedHigh, min(ib, columnEnd - 1))
                    if ia == ib {
                        coverage[ia] += Float(xb - xa)
                    } else {
                        coverage[ia] += Float(Double(ia + 1) - xa)
                        var i = ia + 1
                        while i < ib {
                            coverage[i] += 1
                            i += 1
                        }
                        if ib < columnEnd { coverage[ib] += Float(xb - Double(ib)) }
                    }
                }
            }
            guard touchedLow <= touchedHigh else { continue }
            let base = row * width
            for x in touchedLow...touchedHigh {
                let c = coverage[x]
                guard c > 0 else { continue }
                coverage[x] = 0
                let a = min(c, Float(samples)) * alpha
                let p = (base + x) * 4
                let keep = 1 - a
                pixels[p] = red * a + pixels[p] * keep
                pixels[p + 1] = green * a + pixels[p + 1] * keep
                pixels[p + 2] = blue * a + pixels[p + 2] * keep
                pixels[p + 3] = a + pixels[p + 3] * keep
            }
        }
    }

    /// Strokes a polyline (pixel coordinates); `scale` converts the stroke's width and dashes.
    mutating func stroke(_ points: [PlotPoint], stroke: PlotStroke, scale: Double, closed: Bool) {
        guard points.count >= 2 else { return }
        var width = stroke.width * scale
        var color = stroke.color
        if width < 1 {
            // Hairlines: a one-pixel line, fainter.
            color = color.withAlpha(color.alpha * max(width, 0))
            width = 1
        }
        var path = points
        if closed, let first = points.first { path.append(first) }
        let pieces: [[PlotPoint]]
        if let dash = stroke.dash, !dash.isEmpty {
            pieces = PlotRaster.dashes(path, pattern: dash.map { $0 * scale })
        } else {
            pieces = [path]
        }
        var rings: [[PlotPoint]] = []
        let half = width / 2
        for piece in pieces {
            for k in 1..<piece.count {
                let a = piece[k - 1], b = piece[k]
                let length = hypot(b.x - a.x, b.y - a.y)
                guard length > 1e-9 else { continue }
                let nx = -(b.y - a.y) / length * half, ny = (b.x - a.x) / length * half
                var quad = [PlotPoint(a.x + nx, a.y + ny), PlotPoint(b.x + nx, b.y + ny),
                            PlotPoint(b.x - nx, b.y - ny), PlotPoint(a.x - nx, a.y - ny)]
                if PlotRaster.signedArea(quad) < 0 { quad.reverse() }
                rings.append(quad)
            }
            // Round joins (and, on a closed outline, the join at the start).
            if piece.count > 2 && width > 1.5 {
                for k in 1..<(piece.count - 1) {
                    rings.append(PlotRaster.circleRing(piece[k], radius: half))
                }
            }
        }
        fill(rings, evenOdd: false, color: color)
    }
}
