import Foundation

// SVG output: one element per recorded shape (after the background rectangle), plain SVG 1.1
// attributes only, so any viewer or browser shows it.

enum PlotSVG {
    static let fontFamily = "DejaVu Sans, Helvetica, Arial, sans-serif"

    static func render(_ canvas: PlotCanvas) -> String {
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"\(number(canvas.width))\" "
            + "height=\"\(number(canvas.height))\" viewBox=\"0 0 \(number(canvas.width)) \(number(canvas.height))\">\n"
        if let background = canvas.background {
            out += "<rect x=\"0\" y=\"0\" width=\"\(number(canvas.width))\" height=\"\(number(canvas.height))\"\(fill(background))/>\n"
        }
        for item in canvas.items {
            out += element(item)
            out += "\n"
        }
        out += "</svg>\n"
        return out
    }

    static func element(_ item: PlotItem) -> String {
        switch item {
        case let .polyline(points, stroke):
            return "<polyline points=\"\(pointList(points))\" fill=\"none\"\(self.stroke(stroke))/>"
        case let .rect(x, y, w, h, fill, stroke):
            return "<rect x=\"\(number(x))\" y=\"\(number(y))\" width=\"\(number(w))\" height=\"\(number(h))\""
                + "\(self.fill(fill))\(self.stroke(stroke))/>"
        case let .path(rings, fill, stroke, evenOdd):
            var d = ""
            for ring in rings {
                d += "M" + pointList(ring, separator: "L") + "Z"
            }
            return "<path d=\"\(d)\" fill-rule=\"\(evenOdd ? "evenodd" : "nonzero")\"\(self.fill(fill))\(self.stroke(stroke))/>"
        case let .circle(center, radius, fill, stroke):
            return "<circle cx=\"\(number(center.x))\" cy=\"\(number(center.y))\" r=\"\(number(radius))\""
                + "\(self.fill(fill))\(self.stroke(stroke))/>"
        case let .dots(centers, radius, fill):
            let r = number(radius), diameter = number(2 * radius)
            var d = ""
            for c in centers {
                d += "M\(number(c.x - radius)) \(number(c.y))a\(r) \(r) 0 1 0 \(diameter) 0a\(r) \(r) 0 1 0 -\(diameter) 0Z"
            }
            return "<path d=\"\(d)\"\(self.fill(fill))/>"
        case let .text(string, point, size, color, anchor, baseline, rotated):
            // The bitmap font's capitals are 0.7 em tall; sans-serif capitals are about as tall.
            let drop: Double
            switch baseline {
            case .top: drop = 0.7 * size
            case .middle: drop = 0.35 * size
            case .bottom: drop = 0
            }
            let anchorName: String
            switch anchor {
            case .start: anchorName = "start"
            case .middle: anchorName = "middle"
            case .end: anchorName = "end"
            }
            var head = "<text"
            if rotated {
                head += " transform=\"translate(\(number(point.x)) \(number(point.y))) rotate(-90)\" x=\"0\" y=\"\(number(drop))\""
            } else {
                head += " x=\"\(number(point.x))\" y=\"\(number(point.y + drop))\""
            }
            return head + " font-family=\"\(fontFamily)\" font-size=\"\(number(size))\" text-anchor=\"\(anchorName)\""
                + "\(fill(color))>\(escape(string))</text>"
        }
    }

    static func fill(_ color: PlotColor?) -> String {
        guard let color else { return " fill=\"none\"" }
        var s = " fill=\"\(color.svgHex)\""
        if color.alpha < 1 { s += " fill-opacity=\"\(number(color.alpha, digits: 3))\"" }
        return s
    }

    static func stroke(_ stroke: PlotStroke?) -> String {
        guard let stroke else { return "" }
        var s = " stroke=\"\(stroke.color.svgHex)\" stroke-width=\"\(number(stroke.width))\" stroke-linejoin=\"round\""
        if stroke.color.alpha < 1 { s += " stroke-opacity=\"\(number(stroke.color.alpha, digits: 3))\"" }
        if let dash = stroke.dash, !dash.isEmpty {
            s += " stroke-dasharray=\"\(dash.map { number($0) }.joined(separator: " "))\""
        }
        return s
    }

    static func pointList(_ points: [PlotPoint], separator: String = " ") -> String {
        points.map { "\(number($0.x)),\(number($0.y))" }.joined(separator: separator)
    }

    /// A short decimal: at most `digits` places, trailing zeros dropped.
    static func number(_ value: Double, digits: Int = 2) -> String {
        guard value.isFinite else { return "0" }
        var s = String(format: "%.\(digits)f", value)
        if s.contains(".") {
            while s.hasSuffix("0") { s.removeLast() }
            if s.hasSuffix(".") { s.removeLast() }
        }
        if s == "-0" { s = "0" }
        return s
    }

    static func escape(_ string: String) -> String {
        var s = ""
        for c in string {
            switch c {
            case "&": s += "&amp;"
            case "<": s += "&lt;"
            case ">": s += "&gt;"
            case "\"": s += "&quot;"
            default: s.append(c)
            }
        }
        return s
    }
}
