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
    var keys: Dictionary<String, Int>.Keys { index.keys }

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
            } else if m.isDelta, var existing = store[d.interactionId] {
                existing.apply(delta: d)
                store.upsert(d.interactionId, existing)
                changed = true
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
        existing.apply(delta: u)
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

/// One interaction on the agent's own queue: its id and attributes, in the
/// order the server first sent them.
public struct InteractionEntry: Sendable, Equatable {
    public var id: String
    public var attributes: [(String, String)]
    /// The queue entry's `conferenceParentId` (only added entries carry it; a
    /// delta that does not name it keeps it).
    public var conferenceParentId: String?

    public init(id: String, attributes: [(String, String)], conferenceParentId: String? = nil) {
        self.id = id
        self.attributes = attributes
        self.conferenceParentId = conferenceParentId
    }

    /// An attribute by name (ICWS attribute names are case-insensitive).
    public subscript(name: String) -> String? {
        if let v = attributes.first(where: { $0.0 == name }) { return v.1 }
        let lower = name.lowercased()
        return attributes.first(where: { $0.0.lowercased() == lower })?.1
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.id == b.id && a.conferenceParentId == b.conferenceParentId && a.attributes.elementsEqual(b.attributes, by: { $0 == $1 })
    }
}

/// What one queue message did to the set of interactions.
public struct InteractionChanges: Sendable, Equatable {
    public var added: [InteractionEntry] = []
    public var changed: [InteractionEntry] = []
    public var removed: [String] = []
    /// Interactions left out: empty ids, or past `InteractionsCache.maxInteractions`.
    public var ignored = 0
}

/// The agent's own interactions. An isDelta:false message replaces the set
/// (a surviving interaction keeps its place and gets the new attributes);
/// deltas merge attribute by attribute and remove what they name.
public struct InteractionsCache: Sendable {
    private var store = OrderedStore<InteractionEntry>()
    /// No agent has this many interactions; past it a server's list is cut.
    public static let maxInteractions = 10_000

    public init() {}

    public var entries: [InteractionEntry] { store.values }
    public var count: Int { store.count }
    public subscript(id: String) -> InteractionEntry? { store[id] }

    public mutating func apply(_ m: QueueContentsMessage) -> InteractionChanges {
        var changes = InteractionChanges()
        func take(_ q: QueueInteraction, merge: Bool) {
            guard !q.interactionId.isEmpty else {
                changes.ignored += 1
                return
            }
            var attributes: [(String, String)] = []
            for (k, v) in q.attributes where !attributes.contains(where: { $0.0 == k }) { attributes.append((k, v)) }
            if var existing = store[q.interactionId] {
                if merge {
                    mergeAttributes(&existing.attributes, attributes, cleared: q.clearedAttributes)
                    if let parent = q.conferenceParentId { existing.conferenceParentId = parent }
                } else {
                    existing.attributes = attributes
                    existing.conferenceParentId = q.conferenceParentId
                }
                store.upsert(q.interactionId, existing)
                changes.changed.removeAll { $0.id == q.interactionId }
                changes.changed.append(existing)
            } else if store.count < Self.maxInteractions {
                let entry = InteractionEntry(id: q.interactionId, attributes: attributes, conferenceParentId: q.conferenceParentId)
                store.upsert(q.interactionId, entry)
                changes.added.append(entry)
            } else {
                changes.ignored += 1
            }
        }
        if !m.isDelta {
            let listed = Set((m.added + m.changed).map(\.interactionId))
            for id in Array(store.keys) where !listed.contains(id) {
                store.remove(id)
                changes.removed.append(id)
            }
            for q in m.added + m.changed { take(q, merge: false) }
            return changes
        }
        for q in m.added + m.changed { take(q, merge: true) }
        for id in m.removed where store.remove(id) {
            changes.added.removeAll { $0.id == id }
            changes.changed.removeAll { $0.id == id }
            changes.removed.append(id)
        }
        return changes
    }
}

/// The agent's status: the catalogue, the statuses the user may select, and
/// the current one (from the three status subscriptions).
public struct StatusCache: Sendable {
    private var catalogue = OrderedStore<StatusMessage>()
    /// Lower-cased ids of the statuses the user may select.
    private var access: Set<String> = []
    public private(set) var current: UserStatus?
    /// The session's user: status messages of other users are ignored.
    public var userId = ""

    public init() {}

    public mutating func apply(_ m: UserStatusMessage) {
        for s in m.statuses where userId.isEmpty || s.userId.lowercased() == userId.lowercased() {
            if m.isDelta, var merged = current, merged.userId.lowercased() == s.userId.lowercased() {
                merged.apply(delta: s)
                current = merged
            } else {
                current = s
            }
        }
    }

    public mutating func apply(_ m: StatusMessagesMessage) {
        if !m.isDelta { catalogue.removeAll() }
        for s in m.added + m.changed {
            let key = s.statusId.lowercased()
            if m.isDelta, var merged = catalogue[key] {
                merged.apply(delta: s)
                catalogue.upsert(key, merged)
            } else {
                catalogue.upsert(key, s)
            }
        }
        for id in m.removed { catalogue.remove(id.lowercased()) }
    }

    public mutating func apply(_ m: StatusAccessMessage) {
        if !m.isDelta { access.removeAll() }
        for c in m.changes where userId.isEmpty || c.userId.lowercased() == userId.lowercased() {
            for id in c.added { access.insert(id.lowercased()) }
            for id in c.removed { access.remove(id.lowercased()) }
        }
    }

    /// The statuses the user may select, in the catalogue's order.
    public var selectable: [StatusMessage] {
        catalogue.values.filter { access.contains($0.statusId.lowercased()) && $0.flag("isSelectableStatus") != false }
    }

    public func status(_ id: String) -> StatusMessage? { catalogue[id.lowercased()] }
}
