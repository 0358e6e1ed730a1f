import Foundation

// The .npy header: a Python dict literal such as
//     {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
// parsed with Python's literal syntax (ast.literal_eval's subset that numpy headers use): strings in
// single or double quotes with escapes and an optional u/b/r prefix, integers (with '_' separators
// and Python 2's 'L' suffix), True/False/None, tuples (a one-element tuple needs its comma, as in
// Python: (3) is the integer 3), lists and dicts, trailing commas and any whitespace between tokens.

/// A value of the Python literal subset used by .npy headers.
indirect enum NumPyHeaderValue: Equatable {
    case string(String)
    case integer(Int)
    /// An integer literal outside Int's range, or a float, kept as written.
    case otherNumber(String)
    case boolean(Bool)
    case none
    case tuple([NumPyHeaderValue])
    case list([NumPyHeaderValue])
    case dict([(key: NumPyHeaderValue, value: NumPyHeaderValue)])

    static func == (a: NumPyHeaderValue, b: NumPyHeaderValue) -> Bool { a.repr == b.repr }

    /// The value as Python's repr would write it (for error messages).
    var repr: String {
        switch self {
        case .string(let s):
            var out = "'"
            for scalar in s.unicodeScalars {
                switch scalar {
                case "'": out += "\\'"
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case _ where scalar.value < 0x20 || scalar.value == 0x7f:
                    out += String(format: "\\x%02x", scalar.value)
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out + "'"
        case .integer(let n): return String(n)
        case .otherNumber(let text): return text
        case .boolean(let b): return b ? "True" : "False"
        case .none: return "None"
        case .tuple(let items):
            return items.count == 1 ? "(\(items[0].repr),)" : "(" + items.map(\.repr).joined(separator: ", ") + ")"
        case .list(let items): return "[" + items.map(\.repr).joined(separator: ", ") + "]"
        case .dict(let pairs): return "{" + pairs.map { "\($0.key.repr): \($0.value.repr)" }.joined(separator: ", ") + "}"
        }
    }

    /// A short kind name: "a string", "a tuple", ...
    var kindName: String {
        switch self {
        case .string: return "a string"
        case .integer, .otherNumber: return "a number"
        case .boolean: return "a boolean"
        case .none: return "None"
        case .tuple: return "a tuple"
        case .list: return "a list"
        case .dict: return "a dict"
        }
    }
}

/// A recursive-descent parser for one Python literal.
struct NumPyHeaderParser {
    struct Failure: Error {
        let message: String
    }

    private let scalars: [Unicode.Scalar]
    private var position = 0
    private var depth = 0

    /// Parses `text`, which must hold exactly one literal (whitespace around it is fine).
    static func parse(_ text: String) throws -> NumPyHeaderValue {
        var parser = NumPyHeaderParser(scalars: Array(text.unicodeScalars))
        let value = try parser.value()
        parser.skipWhitespace()
        if parser.position < parser.scalars.count {
            throw parser.failure("unexpected \(parser.found) after the literal")
        }
        return value
    }

    private init(scalars: [Unicode.Scalar]) {
        self.scalars = scalars
    }

    private var current: Unicode.Scalar? { position < scalars.count ? scalars[position] : nil }

    /// The text at the current position, quoted, for messages.
    private var found: String {
        guard position < scalars.count else { return "end of header" }
        let end = min(scalars.count, position + 12)
        var snippet = ""
        for scalar in scalars[position ..< end] {
            if scalar == "\n" { snippet += "\\n" } else if scalar.value < 0x20 {
                snippet += String(format: "\\x%02x", scalar.value)
            } else { snippet.unicodeScalars.append(scalar) }
        }
        return "\"\(snippet)\(end < scalars.count ? "..." : "")\""
    }

    private func failure(_ message: String) -> Failure {
        Failure(message: "\(message) at character \(position)")
    }

    private mutating func skipWhitespace() {
        while let c = current, c == " " || c == "\t" || c == "\n" || c == "\r" || c == "\u{0B}" || c == "\u{0C}" {
            position += 1
        }
    }

    private mutating func value() throws -> NumPyHeaderValue {
        skipWhitespace()
        guard let c = current else { throw failure("expected a value, found end of header") }
        depth += 1
        defer { depth -= 1 }
        guard depth <= 64 else { throw failure("literal nested too deeply") }
        switch c {
        case "'", "\"": return .string(try string())
        case "(":
            position += 1
            let (items, sawComma) = try sequence(closing: ")")
            // (x) is just x; (x,) and () are tuples.
            return items.count == 1 && !sawComma ? items[0] : .tuple(items)
        case "[":
            position += 1
            return .list(try sequence(closing: "]").items)
        case "{":
            position += 1
            return try dict()
        case "-", "+", "0" ... "9", ".":
            return try number()
        default:
            if c.properties.isAlphabetic || c == "_" {
                let start = position
                while let d = current, d.properties.isAlphabetic || d == "_" || ("0" ... "9").contains(d) {
                    position += 1
                }
                let word = String(String.UnicodeScalarView(scalars[start ..< position]))
                if let quote = current, quote == "'" || quote == "\"",
                   ["u", "U", "b", "B", "r", "R"].contains(word) {
                    return .string(try string(raw: word.lowercased() == "r"))
                }
                switch word {
                case "True": return .boolean(true)
                case "False": return .boolean(false)
                case "None": return .none
                default:
                    position = start
                    throw failure("unexpected name '\(word)'; expected a string, number, True, False, None, tuple, list or dict")
                }
            }
            throw failure("unexpected \(found); expected a string, number, True, False, None, tuple, list or dict")
        }
    }

    /// Comma-separated values up to `closing`; a trailing comma is allowed.
    private mutating func sequence(closing: Unicode.Scalar) throws -> (items: [NumPyHeaderValue], sawComma: Bool) {
        var items: [NumPyHeaderValue] = []
        var sawComma = false
        while true {
            skipWhitespace()
            if current == closing {
                position += 1
                return (items, sawComma)
            }
            items.append(try value())
            skipWhitespace()
            if current == "," {
                position += 1
                sawComma = true
            } else if current == closing {
                position += 1
                return (items, sawComma)
            } else {
                throw failure("expected ',' or '\(closing)', found \(found)")
            }
        }
    }

    private mutating func dict() throws -> NumPyHeaderValue {
        var pairs: [(key: NumPyHeaderValue, value: NumPyHeaderValue)] = []
        while true {
            skipWhitespace()
            if current == "}" {
                position += 1
                return .dict(pairs)
            }
            let key = try value()
            skipWhitespace()
            guard current == ":" else { throw failure("expected ':' after key \(key.repr), found \(found)") }
            position += 1
            let item = try value()
            pairs.append((key, item))
            skipWhitespace()
            if current == "," {
                position += 1
            } else if current != "}" {
                throw failure("expected ',' or '}', found \(found)")
            }
        }
    }

    private mutating func string(raw: Bool = false) throws -> String {
        let quote = current!
        let start = position
        position += 1
        var out = String.UnicodeScalarView()
        while true {
            guard let c = current else {
                position = start
                throw failure("unterminated string")
            }
            position += 1
            if c == quote { return String(out) }
            if c == "\n" {
                position = start
                throw failure("unterminated string")
            }
            guard c == "\\", !raw else {
                out.append(c)
                continue
            }
            guard let e = current else { continue }
            position += 1
            switch e {
            case "\\", "'", "\"": out.append(e)
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "0": out.append("\0")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "v": out.append("\u{0B}")
            case "\n": break
            case "x", "u", "U":
                let digits = e == "x" ? 2 : e == "u" ? 4 : 8
                guard position + digits <= scalars.count,
                      let code = UInt32(String(String.UnicodeScalarView(scalars[position ..< position + digits])), radix: 16),
                      let scalar = Unicode.Scalar(code) else {
                    throw failure("invalid \\\(e) escape in string")
                }
                position += digits
                out.append(scalar)
            default:
                out.append("\\")
                out.append(e)
            }
        }
    }

    private mutating func number() throws -> NumPyHeaderValue {
        let start = position
        var negative = false
        if current == "-" || current == "+" {
            negative = current == "-"
            position += 1
            skipWhitespace()  // Python allows "- 3"
        }
        var digits = ""
        var isInteger = true
        while let c = current {
            if ("0" ... "9").contains(c) {
                digits.unicodeScalars.append(c)
            } else if c == "_" {
                // separators between digits, as Python 3.6+ allows
            } else if c == "." || c == "e" || c == "E" {
                isInteger = false
                digits.unicodeScalars.append(c)
                if c != ".", let sign = position + 1 < scalars.count ? scalars[position + 1] : nil,
                   sign == "+" || sign == "-" {
                    position += 1
                    digits.unicodeScalars.append(sign)
                }
            } else {
                break
            }
            position += 1
        }
        if isInteger, current == "L" || current == "l" { position += 1 }  // Python 2 long
        let text = String(String.UnicodeScalarView(scalars[start ..< position]))
        guard !digits.isEmpty, digits.contains(where: \.isNumber) else {
            position = start
            throw failure("malformed number")
        }
        if isInteger, let magnitude = Int(digits) {
            return .integer(negative ? -magnitude : magnitude)
        }
        return .otherNumber(text)
    }
}
