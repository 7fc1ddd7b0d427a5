// Small text helpers, so that the daemon needs only FoundationEssentials
// (full Foundation links ICU and several megabytes more code).

extension StringProtocol {
    /// The text without leading and trailing white space (spaces, tabs, CR, LF).
    public var trimmed: String {
        guard let first = firstIndex(where: { !$0.isWhitespace }),
            let last = lastIndex(where: { !$0.isWhitespace })
        else { return "" }
        return String(self[first...last])
    }
}

/// `value` in octal, at least four digits: file modes as chmod writes them.
public func octal<T: BinaryInteger>(_ value: T) -> String {
    let digits = String(value, radix: 8)
    return digits.count >= 4 ? digits : String(repeating: "0", count: 4 - digits.count) + digits
}

extension StringProtocol {
    /// Server or caller text made fit for one line of a status, a property
    /// or an error message: control characters become spaces, and text past
    /// `maxBytes` UTF-8 bytes is cut at a character boundary and ends in "…".
    public func singleLine(maxBytes: Int = 1024) -> String {
        var out = String.UnicodeScalarView()
        var used = 0
        for scalar in unicodeScalars {
            let clean: Unicode.Scalar = scalar.properties.generalCategory == .control ? " " : scalar
            let w = UTF8.width(clean)
            if used + w > maxBytes {
                out.append("…")
                break
            }
            used += w
            out.append(clean)
        }
        return String(out)
    }
}
