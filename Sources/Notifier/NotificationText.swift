/// Server-supplied text made fit for a notification: one line, no control or
/// bidirectional-override characters, cut to a length a notification can show,
/// and escaped when the server reads the body as markup.
///
/// Every text the notifier shows (RemoteName, RemoteAddress, the queue, the
/// interaction type) comes from the ICWS server through the bridge, so it is
/// treated as hostile: a `<a href=…>`, a fake second line, or a right-to-left
/// override that turns a number around must not reach the screen as such.
public enum NotificationText {
    /// Characters kept of one field (a name, a number, a queue).
    public static let maxFieldLength = 256
    /// What is kept of a property when it arrives (before the cut), so that a
    /// huge value costs no more memory than this.
    static let maxStoredLength = 4 * maxFieldLength

    /// One line of at most `limit` characters: control characters (C0, C1,
    /// DEL, line and paragraph separators) become spaces, format characters
    /// that reorder or hide text (bidi marks, overrides and isolates, the
    /// zero-width space, word joiner and BOM) are dropped (the zero-width
    /// joiner stays: emoji need it), runs of spaces become one, and the
    /// ends are trimmed. A longer text is cut and ends in "…".
    public static func clean(_ text: String, limit: Int = maxFieldLength) -> String {
        var out = String.UnicodeScalarView()
        var pendingSpace = false
        var count = 0
        var cut = false
        for scalar in text.unicodeScalars {
            if isDropped(scalar) { continue }
            if isSpace(scalar) {
                pendingSpace = !out.isEmpty
                continue
            }
            if pendingSpace {
                out.append(" ")
                count += 1
                pendingSpace = false
            }
            if count >= limit {
                cut = true
                break
            }
            out.append(scalar)
            count += 1
        }
        var result = String(out)
        if cut {
            // Cut on a character boundary (a scalar cut may split a grapheme), then mark it.
            while result.unicodeScalars.count > max(0, limit - 1), !result.isEmpty { result.removeLast() }
            result += "…"
        }
        return result
    }

    /// `&`, `<` and `>` as entities (the markup the notification spec allows in bodies).
    public static func escapeMarkup(_ text: String) -> String {
        guard text.contains(where: { $0 == "&" || $0 == "<" || $0 == ">" }) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 16)
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            default: out.append(c)
            }
        }
        return out
    }

    /// Control characters and separators that would break the line.
    static func isSpace(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x2028, 0x2029, 0x85: return true
        default: return s.properties.isWhitespace
        }
    }

    /// Invisible characters that reorder or hide text (and the BOM).
    static func isDropped(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x200B, 0x200E, 0x200F, 0x202A...0x202E, 0x2060...0x2069, 0xFEFF, 0xFFF9...0xFFFB, 0x061C, 0x180E: return true
        default: return false
        }
    }

    /// A stored copy of a property: bounded before anything else looks at it.
    static func bounded(_ text: String) -> String {
        // Scalars, not Characters: one base letter with a million combining marks is one Character.
        text.utf8.count <= maxStoredLength ? text : String(String.UnicodeScalarView(text.unicodeScalars.prefix(maxStoredLength)))
    }
}
