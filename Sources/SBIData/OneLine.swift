public extension String {
    /// This text with line breaks and other control characters written as Swift escapes (`\n`,
    /// `\u{1B}`): a file, member or tensor name may hold any of them, and an error that quotes
    /// one must still be one line.
    var escapingControlCharacters: String {
        func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
            switch scalar.properties.generalCategory {
            case .control: return scalar != "\t"
            case .lineSeparator, .paragraphSeparator: return true
            default: return false
            }
        }
        guard unicodeScalars.contains(where: needsEscape) else { return self }
        var out = String.UnicodeScalarView()
        for scalar in unicodeScalars {
            if needsEscape(scalar) { out.append(contentsOf: scalar.escaped(asASCII: true).unicodeScalars) } else { out.append(scalar) }
        }
        return String(out)
    }
}
