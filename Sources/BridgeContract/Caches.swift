import DBusKit
import ICWSProtocol

/// Values in insertion order with O(1) lookup, update and removal: removed
/// slots are left empty and compacted once they are half the store, so a
/// burst of N changes costs O(N), not O(N²).
struct OrderedStore<Value: Sendable>: Sendable {
    private var index: [String: Int] = [:]
    private var slots: [Value?] = []

    var count: Int { index.count }
    var values: [Value] { slots.compactMap { $0 } }

    subscript(id: String) -> Value? { index[id].flatMap { slots[$0] } }

    /// Replaces the value of `id` in place, or appends it.
    mutating func upsert(_ id: String, _ value: Value) {
        if let i = index[id] {
            slots[i] = value
        } else {
            index[id] = slots.count
            slots.append(value)
        }
    }

    /// False when there was nothing under `id`.
    @discardableResult
    mutating func remove(_ id: String) -> Bool {
        guard let i = index.removeValue(forKey: id) else { return false }
        slots[i] = nil
        if slots.count > 64 && index.count < slots.count / 2 { compact() }
        return true
    }

    private mutating func compact() {
        var live: [Value?] = []
        live.reserveCapacity(index.count)
        var moved: [String: Int] = [:]
        moved.reserveCapacity(index.count)
        let byPosition = index.sorted { $0.value < $1.value }
        for (id, i) in byPosition {
            moved[id] = live.count
            live.append(slots[i])
        }
        slots = live
        index = moved
    }

    mutating func removeAll() {
        index.removeAll()
        slots.removeAll()
    }
}

/// The interactions alerting now. StartAlerting (and "none") upserts,
/// StopAlerting removes, isDelta false replaces everything.
public struct AlertingCache: Sendable {
    private var store = OrderedStore<InteractionAlertDetail>()

    public init() {}

    /// Applies a message; false when it changed nothing (a stop for an
    /// interaction that is not alerting, an empty delta).
    @discardableResult
    public mutating func apply(_ m: InteractionAlertingMessage) -> Bool {
        var changed = false
        if !m.isDelta {
            changed = store.count > 0 || !m.details.isEmpty
            store.removeAll()
        }
        for d in m.details {
            if d.alertAction == .stopAlerting {
                if store.remove(d.interactionId) { changed = true }
            } else {
                store.upsert(d.interactionId, d)
                changed = true
            }
        }
        return changed
    }

    public mutating func clear() { store.removeAll() }

    public var current: [InteractionAlertDetail] { store.values }
    public var count: Int { store.count }
}

/// The user directory. isDelta false replaces it with `added`; deltas add,
/// merge changed properties (a null removes one) and drop removed ids.
public struct UsersCache: Sendable {
    private var store = OrderedStore<UserEntry>()

    public init() {}

    public mutating func apply(_ m: UsersMessage) {
        if !m.isDelta { store.removeAll() }
        for u in m.added { upsert(u, merge: false) }
        for u in m.changed { upsert(u, merge: true) }
        for id in m.removed { store.remove(id) }
    }

    private mutating func upsert(_ u: UserEntry, merge: Bool) {
        guard merge, var existing = store[u.id] else {
            store.upsert(u.id, stripped(u))
            return
        }
        if let d = u.displayName { existing.displayName = d }
        for (k, v) in u.properties {
            existing.properties.removeAll { $0.0 == k }
            if !v.isNull { existing.properties.append((k, v)) }
        }
        store.upsert(u.id, existing)
    }

    private func stripped(_ u: UserEntry) -> UserEntry {
        var copy = u
        copy.properties.removeAll { $0.1.isNull }
        return copy
    }

    public mutating func clear() { store.removeAll() }

    public var count: Int { store.count }
    public var all: [UserEntry] { store.values }
    public func user(_ id: String) -> UserEntry? { store[id] }
}
