import DBusKit
import ICWS

/// The interactions alerting now. StartAlerting (and "none") upserts,
/// StopAlerting removes, isDelta false replaces everything.
public struct AlertingCache: Sendable {
    private var order: [String] = []
    private var details: [String: InteractionAlertDetail] = [:]

    public init() {}

    public mutating func apply(_ m: InteractionAlertingMessage) {
        if !m.isDelta {
            order.removeAll()
            details.removeAll()
        }
        for d in m.details {
            if d.alertAction == 2 {
                if details.removeValue(forKey: d.interactionId) != nil { order.removeAll { $0 == d.interactionId } }
            } else {
                if details[d.interactionId] == nil { order.append(d.interactionId) }
                details[d.interactionId] = d
            }
        }
    }

    public mutating func clear() {
        order.removeAll()
        details.removeAll()
    }

    public var current: [InteractionAlertDetail] { order.compactMap { details[$0] } }
    public var count: Int { order.count }
}

/// The user directory. isDelta false replaces it with `added`; deltas add,
/// merge changed properties (a null removes one) and drop removed ids.
public struct UsersCache: Sendable {
    private var order: [String] = []
    private var index: [String: Int] = [:]
    private var users: [UserEntry?] = []

    public init() {}

    public mutating func apply(_ m: UsersMessage) {
        if !m.isDelta { clear() }
        for u in m.added { upsert(u, merge: false) }
        for u in m.changed { upsert(u, merge: true) }
        if !m.removed.isEmpty {
            let gone = Set(m.removed)
            for id in gone {
                if let i = index.removeValue(forKey: id) { users[i] = nil }
            }
            order.removeAll { gone.contains($0) }
            if users.count > 64 && order.count < users.count / 2 { compact() }
        }
    }

    private mutating func upsert(_ u: UserEntry, merge: Bool) {
        if let i = index[u.id], var existing = users[i] {
            if merge {
                if let d = u.displayName { existing.displayName = d }
                for (k, v) in u.properties {
                    existing.properties.removeAll { $0.0 == k }
                    if !v.isNull { existing.properties.append((k, v)) }
                }
                users[i] = existing
            } else {
                users[i] = stripped(u)
            }
        } else {
            index[u.id] = users.count
            users.append(stripped(u))
            order.append(u.id)
        }
    }

    private func stripped(_ u: UserEntry) -> UserEntry {
        var copy = u
        copy.properties.removeAll { $0.1.isNull }
        return copy
    }

    private mutating func compact() {
        let live = order.compactMap { id in index[id].flatMap { users[$0] } }
        users = live
        index = [:]
        for (i, u) in live.enumerated() { index[u.id] = i }
    }

    public mutating func clear() {
        order.removeAll()
        index.removeAll()
        users.removeAll()
    }

    public var count: Int { order.count }
    public var all: [UserEntry] { order.compactMap { id in index[id].flatMap { users[$0] } } }
    public func user(_ id: String) -> UserEntry? { index[id].flatMap { users[$0] } }
}
