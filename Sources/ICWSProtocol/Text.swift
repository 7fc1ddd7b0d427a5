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
