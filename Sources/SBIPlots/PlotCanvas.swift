import Foundation
import SBIData

// A tiny vector canvas: shapes are recorded in canvas units (one unit is one PNG pixel at scale 1,
// y pointing down as in SVG) and rendered either to SVG text or, through PlotRaster, to an RGBA
// image that PlotPNG encodes. No third-party code: the rasterizer, bitmap font and PNG writer live
// beside this file.

/// An sRGB colour with straight (not premultiplied) alpha, each channel in 0...1.
public struct PlotColor: Equatable, Sendable {
    public var red: Double
    public var green: Double
    public var blue: Double
    public var alpha: Double

    public init(red: Double, green: Double, blue: Double, alpha: Double = 1) {
        self.red = red
        self.green = green
        self.blue = blue
        self.alpha = alpha
    }

    /// `0xRRGGBB`.
    public init(hex: UInt32, alpha: Double = 1) {
        self.init(red: Double((hex >> 16) & 0xFF) / 255, green: Double((hex >> 8) & 0xFF) / 255,
                  blue: Double(hex & 0xFF) / 255, alpha: alpha)
    }

    public func withAlpha(_ alpha: Double) -> PlotColor {
        PlotColor(red: red, green: green, blue: blue, alpha: alpha)
    }

    /// This colour mixed with white: `amount` 0 is white, 1 is the colour itself (opaque).
    public func tint(_ amount: Double) -> PlotColor {
        let t = min(max(amount, 0), 1)
        return PlotColor(red: 1 - t * (1 - red), green: 1 - t * (1 - green), blue: 1 - t * (1 - blue))
    }

    /// This colour mixed with black: `amount` 0 is the colour, 1 is black.
    public func shade(_ amount: Double) -> PlotColor {
        let t = 1 - min(max(amount, 0), 1)
        return PlotColor(red: red * t, green: green * t, blue: blue * t, alpha: alpha)
    }

    var svgHex: String {
        func byte(_ v: Double) -> String {
            let b = Int((min(max(v, 0), 1) * 255).rounded())
            let s = String(b, radix: 16)
            return s.count == 1 ? "0" + s : s
        }
        return "#" + byte(red) + byte(green) + byte(blue)
    }

    public static let white = PlotColor(red: 1, green: 1, blue: 1)
    public static let black = PlotColor(red: 0, green: 0, blue: 0)
    /// matplotlib's "tab10" cycle, the first five.
    public static let blue = PlotColor(hex: 0x1F77B4)
    public static let orange = PlotColor(hex: 0xFF7F0E)
    public static let green = PlotColor(hex: 0x2CA02C)
    public static let red = PlotColor(hex: 0xD62728)
    public static let purple = PlotColor(hex: 0x9467BD)
    public static let gray = PlotColor(hex: 0x7F7F7F)
    /// The cycle used for several series.
    public static let cycle: [PlotColor] = [.blue, .orange, .green, .red, .purple,
                                            PlotColor(hex: 0x8C564B), PlotColor(hex: 0xE377C2),
                                            .gray, PlotColor(hex: 0xBCBD22), PlotColor(hex: 0x17BECF)]
}

public struct PlotPoint: Equatable, Sendable {
    public var x: Double
    public var y: Double
    public init(_ x: Double, _ y: Double) {
        self.x = x
        self.y = y
    }
}

/// How a line or outline is drawn.
public struct PlotStroke: Equatable, Sendable {
    public var color: PlotColor
    public var width: Double
    /// On and off lengths, repeated; nil for a solid line.
    public var dash: [Double]?

    public init(_ color: PlotColor, width: Double = 1, dash: [Double]? = nil) {
        self.color = color
        self.width = width
        self.dash = dash
    }
}

/// Where a text's anchor point lies on its box.
public enum PlotTextAnchor: Sendable { case start, middle, end }
public enum PlotTextBaseline: Sendable { case top, middle, bottom }

/// One recorded shape.
enum PlotItem {
    case polyline([PlotPoint], PlotStroke)
    case rect(x: Double, y: Double, width: Double, height: Double, fill: PlotColor?, stroke: PlotStroke?)
    /// Closed subpaths filled together (nonzero or even-odd), then outlined.
    case path([[PlotPoint]], fill: PlotColor?, stroke: PlotStroke?, evenOdd: Bool)
    case circle(PlotPoint, radius: Double, fill: PlotColor?, stroke: PlotStroke?)
    /// Many filled discs of one colour, drawn as their union.
    case dots([PlotPoint], radius: Double, fill: PlotColor)
    /// `rotated`: turned 90° counter-clockwise (reads bottom to top), about the anchor point.
    case text(String, PlotPoint, size: Double, color: PlotColor, anchor: PlotTextAnchor,
              baseline: PlotTextBaseline, rotated: Bool)
}

/// What went wrong making or writing a plot.
public struct PlotError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }

    /// The output format comes from the file extension.
    public static func unsupportedExtension(_ path: String) -> PlotError {
        let ext = (path as NSString).pathExtension
        let shown = ext.isEmpty ? "no extension" : "extension \".\(ext)\""
        return PlotError("cannot write plot to \(path): \(shown) is not a plot format; "
            + "accepted extensions: \(PlotCanvas.acceptedExtensions.map { "." + $0 }.joined(separator: ", "))")
    }
}

/// A drawing surface recording shapes, rendered to SVG or PNG.
public final class PlotCanvas {
    public let width: Double
    public let height: Double
    /// Painted under everything; nil leaves the image transparent.
    public var background: PlotColor?
    private(set) var items: [PlotItem] = []

    public static let acceptedExtensions = ["svg", "png"]

    public init(width: Double, height: Double, background: PlotColor? = .white) {
        precondition(width > 0 && height > 0, "a canvas needs a positive size")
        self.width = width
        self.height = height
        self.background = background
    }

    /// How many shapes have been drawn (each becomes one SVG element).
    public var itemCount: Int { items.count }

    // MARK: Drawing

    /// An open polyline; fewer than two points draws nothing.
    public func line(_ points: [PlotPoint], stroke: PlotStroke) {
        guard points.count >= 2 else { return }
        items.append(.polyline(points, stroke))
    }

    public func line(from a: PlotPoint, to b: PlotPoint, stroke: PlotStroke) {
        line([a, b], stroke: stroke)
    }

    public func rect(x: Double, y: Double, width: Double, height: Double, fill: PlotColor?, stroke: PlotStroke? = nil) {
        guard width > 0, height > 0, fill != nil || stroke != nil else { return }
        items.append(.rect(x: x, y: y, width: width, height: height, fill: fill, stroke: stroke))
    }

    /// A filled polygon: one closed ring.
    public func polygon(_ points: [PlotPoint], fill: PlotColor?, stroke: PlotStroke? = nil) {
        path([points], fill: fill, stroke: stroke, evenOdd: false)
    }

    /// Several closed rings filled as one shape; with `evenOdd`, nested rings make holes
    /// (a filled contour is drawn so).
    public func path(_ rings: [[PlotPoint]], fill: PlotColor?, stroke: PlotStroke? = nil, evenOdd: Bool = true) {
        let kept = rings.filter { $0.count >= 3 }
        guard !kept.isEmpty, fill != nil || stroke != nil else { return }
        items.append(.path(kept, fill: fill, stroke: stroke, evenOdd: evenOdd))
    }

    public func circle(center: PlotPoint, radius: Double, fill: PlotColor?, stroke: PlotStroke? = nil) {
        guard radius > 0, fill != nil || stroke != nil else { return }
        items.append(.circle(center, radius: radius, fill: fill, stroke: stroke))
    }

    /// Many small discs of one colour (a scatter of points), as one shape.
    public func dots(_ centers: [PlotPoint], radius: Double, fill: PlotColor) {
        guard !centers.isEmpty, radius > 0 else { return }
        items.append(.dots(centers, radius: radius, fill: fill))
    }

    /// Text in the built-in font; `size` is the em size in canvas units (capitals are 0.7 of it).
    public func text(_ string: String, at point: PlotPoint, size: Double, color: PlotColor = .black,
                     anchor: PlotTextAnchor = .start, baseline: PlotTextBaseline = .bottom, rotated: Bool = false) {
        guard !string.isEmpty, size > 0 else { return }
        items.append(.text(string, point, size: size, color: color, anchor: anchor, baseline: baseline, rotated: rotated))
    }

    /// The advance width of `string` at `size`, as both renderers lay it out.
    public static func textWidth(_ string: String, size: Double) -> Double {
        PlotFont.width(of: string, size: size)
    }

    // MARK: Output

    /// The drawing as an SVG document.
    public func svg() -> String { PlotSVG.render(self) }

    /// The drawing as RGBA pixels, `scale` pixels per canvas unit.
    public func rasterize(scale: Double = 1) -> PlotImage { PlotRaster.render(self, scale: scale) }

    /// The drawing as a PNG file's bytes.
    public func png(scale: Double = 1) -> Data { PlotPNG.encode(rasterize(scale: scale)) }

    /// Writes the drawing to `path`, as SVG or PNG after its extension (case-insensitive),
    /// atomically: a temporary file beside it, then a rename.
    public func write(to path: String, scale: Double = 1) throws {
        let data: Data
        switch (path as NSString).pathExtension.lowercased() {
        case "svg": data = Data(svg().utf8)
        case "png": data = png(scale: scale)
        default: throw PlotError.unsupportedExtension(path)
        }
        try PlotFileWriter.writeAtomically(data, to: path)
    }

    public func write(to url: URL, scale: Double = 1) throws {
        try write(to: url.path, scale: scale)
    }
}

/// 8-bit RGBA pixels, rows top to bottom, straight alpha.
public struct PlotImage: Sendable {
    public let width: Int
    public let height: Int
    public var rgba: [UInt8]

    public init(width: Int, height: Int, rgba: [UInt8]) {
        precondition(rgba.count == width * height * 4)
        self.width = width
        self.height = height
        self.rgba = rgba
    }

    public func pixel(x: Int, y: Int) -> (r: UInt8, g: UInt8, b: UInt8, a: UInt8) {
        let i = (y * width + x) * 4
        return (rgba[i], rgba[i + 1], rgba[i + 2], rgba[i + 3])
    }
}

enum PlotFileWriter {
    /// Writes `data` to a temporary file in the destination's folder, then renames it over `path`,
    /// so a reader never sees half a file.
    static func writeAtomically(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent()
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isFolder), isFolder.boolValue else {
            throw PlotError("cannot write plot to \(path): folder \(folder.path) does not exist")
        }
        do {
            try AtomicFile.write(data, to: url)
        } catch {
            throw PlotError("cannot write plot to \(path): \(error)")
        }
    }
}
