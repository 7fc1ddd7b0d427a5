import DBusKit
import ICWSProtocol

/// The limits server data meets on its way to the bus (design: "Limits that
/// server data and callers meet").
public enum BusLimits {
    /// JSON nested deeper than this many containers is published as its
    /// compact JSON text (`s`). D-Bus allows 32 nested containers, variants
    /// included; a JSON object costs a variant, an array and a dict entry.
    public static let maxJSONDepth = 16
    /// What one entry (a user map, an alerting detail, a station info map)
    /// may take on the bus. A value that would pass it is published as its
    /// compact JSON text cut to what is left, ending in "…".
    public static let entryBytes = 8 << 20
    /// A signal that would pass this is split into several of the same member.
    public static let signalSplitBytes = 8 << 20
    /// Sets carried whole in `PropertiesChanged` up to this size; beyond it
    /// the property is announced as invalidated (Get reads it).
    public static let propertyValueBytes = 1 << 20
    public static let propertyValueEntries = 64
}

/// The byte budget of one entry while it is converted.
public struct EntryBudget: Sendable {
    public private(set) var remaining: Int

    public init(bytes: Int = BusLimits.entryBytes) { remaining = bytes }

    /// Takes `cost` bytes; false (and nothing taken) when they do not fit.
    mutating func take(_ cost: Int) -> Bool {
        guard cost <= remaining else { return false }
        remaining -= cost
        return true
    }

    /// `s` whole when it fits, else cut at a character boundary to what is
    /// left and ended with "…" (then the budget is spent).
    public mutating func string(_ s: String) -> String {
        let cost = s.utf8.count + 8
        if take(cost) { return s }
        let room = max(0, remaining - 8 - 3)
        remaining = 0
        return Self.prefix(s, utf8Bytes: room) + "…"
    }

    /// A map key: kept whole up to 256 bytes (cut beyond, ending in "…") even
    /// when the budget is spent, so that a value cut to nothing keeps its name.
    public mutating func key(_ s: String) -> String {
        let k = s.utf8.count <= 256 ? s : Self.prefix(s, utf8Bytes: 256) + "…"
        remaining = max(0, remaining - k.utf8.count - 8)
        return k
    }

    /// The longest prefix of `s` of at most `n` UTF-8 bytes that ends on a scalar boundary.
    static func prefix(_ s: String, utf8Bytes n: Int) -> String {
        var out = String.UnicodeScalarView()
        var used = 0
        for scalar in s.unicodeScalars {
            let w = UTF8.width(scalar)
            if used + w > n { break }
            used += w
            out.append(scalar)
        }
        return String(out)
    }
}

extension JSONValue {
    /// How many containers deep this value nests (a scalar is 0).
    public var containerDepth: Int {
        switch self {
        case .array(let items): return 1 + (items.lazy.map(\.containerDepth).max() ?? 0)
        case .object(let members): return 1 + (members.lazy.map(\.1.containerDepth).max() ?? 0)
        default: return 0
        }
    }
}

/// Splits a sequence of entries into runs whose encoded size stays under
/// `BusLimits.signalSplitBytes` (an entry larger alone goes alone), in order.
public enum SignalSplitter {
    public static func runs(_ items: [DBusValue], limit: Int = BusLimits.signalSplitBytes) -> [[DBusValue]] {
        runs(costs: items.map(\.encodedSizeBound), limit: limit).map { Array(items[$0.range]) }
    }

    /// The same split by the items' costs (their `encodedSizeBound`): the
    /// index range of each run and the sum of its costs. One run (empty when
    /// there are no items) at least.
    public static func runs(costs: [Int], limit: Int = BusLimits.signalSplitBytes) -> [(range: Range<Int>, cost: Int)] {
        var runs: [(range: Range<Int>, cost: Int)] = []
        var start = 0
        var size = 0
        for (i, cost) in costs.enumerated() {
            if i > start, size + cost > limit {
                runs.append((start..<i, size))
                start = i
                size = 0
            }
            size += cost
        }
        if start < costs.count || runs.isEmpty { runs.append((start..<costs.count, size)) }
        return runs
    }

    /// The arguments of one `UsersChanged` split into signals: added, then
    /// changed, then removed entries fill the signals in order; the first
    /// keeps `isDelta`, the rest say true.
    public static func usersChanged(added: [DBusValue], changed: [DBusValue], removed: [String], isDelta: Bool,
                                    limit: Int = BusLimits.signalSplitBytes) -> [[DBusValue]] {
        enum Kind { case added, changed, removed }
        var signals: [[DBusValue]] = []
        var parts: ([DBusValue], [DBusValue], [String]) = ([], [], [])
        var size = 0
        func flush() {
            signals.append([
                .vardicts(parts.0), .vardicts(parts.1), .strings(parts.2), .bool(signals.isEmpty ? isDelta : true),
            ])
            parts = ([], [], [])
            size = 0
        }
        func add(_ kind: Kind, _ value: DBusValue, _ id: String) {
            let cost = value.encodedSizeBound
            if size > 0, size + cost > limit { flush() }
            switch kind {
            case .added: parts.0.append(value)
            case .changed: parts.1.append(value)
            case .removed: parts.2.append(id)
            }
            size += cost
        }
        for v in added { add(.added, v, "") }
        for v in changed { add(.changed, v, "") }
        for id in removed { add(.removed, .string(id), id) }
        if size > 0 || signals.isEmpty { flush() }
        return signals
    }
}
