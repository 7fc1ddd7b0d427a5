import BridgeContract
import DBusKit

/// The notifier's logic as a plain state machine: events in (what the bridge
/// and the notification server said), actions out (what to call). No I/O, no
/// clock, no task: `NotifierService` performs the actions and feeds back their
/// answers, and the tests drive it without a bus.
///
/// Rules:
/// - An interaction that rings (offering or alerting, inbound) gets one
///   notification while the server is there, the agent is not on a Do Not
///   Disturb status, and the user did not dismiss it.
/// - It is replaced in place when what it says changes, and closed when the
///   interaction stops ringing, goes away, or the bridge goes away.
/// - Do Not Disturb closes what is shown and shows nothing new; when it ends,
///   the interactions still ringing are shown (they were not dismissed by the user).
/// - A notification the server closed by itself or the user dismissed is not
///   shown again for that interaction.
/// - At most `maxShown` at once (the oldest ringing first): a flood of calls
///   from the server cannot flood the desktop.
public struct NotifierMachine: Sendable {
    /// One interaction object's properties (from `GetManagedObjects`).
    public struct ObjectProperties: Sendable, Equatable {
        public var path: String
        public var properties: DBusValue
        public init(path: String, properties: DBusValue) {
            self.path = path
            self.properties = properties
        }
    }

    public enum Event: Sendable, Equatable {
        /// The notification server answered `GetCapabilities`.
        case serverAppeared(ServerCapabilities)
        /// The notification server left the bus: its ids mean nothing now.
        case serverVanished
        /// The bridge's whole state after it (re)appeared: its interaction
        /// objects and `Status.IsDoNotDisturb`. Replaces what was known.
        case bridgeSynced([ObjectProperties], doNotDisturb: Bool)
        /// The bridge left the bus.
        case bridgeVanished
        case interactionAdded(path: String, properties: DBusValue)
        case interactionChanged(path: String, properties: DBusValue)
        case interactionRemoved(path: String)
        case doNotDisturbChanged(Bool)
        /// The answer to an `.notify` action: the id, or nil when the call failed.
        case notifyReplied(path: String, generation: UInt64, id: UInt32?)
        case actionInvoked(id: UInt32, key: String)
        case notificationClosed(id: UInt32, reason: UInt32)
        /// The notifier stops: close what it shows.
        case stopping
    }

    public enum Action: Sendable, Equatable {
        /// Call `Notify`; feed the answer back as `.notifyReplied` with the same path and generation.
        case notify(path: String, generation: UInt64, NotificationRequest)
        /// Call `CloseNotification(id)`.
        case close(id: UInt32)
        /// Call the interaction's `Pickup()`.
        case pickup(path: String)
        /// Call the interaction's `Disconnect()`.
        case disconnect(path: String)
    }

    enum Note: Sendable, Equatable {
        case none
        /// `Notify` is out; `replacing` is the id it replaces (still on screen).
        case pending(replacing: UInt32?, content: NotificationRequest)
        /// On screen; `content` is what it says (with `replacesId` 0).
        case shown(id: UInt32, content: NotificationRequest)
    }

    struct Tracked: Sendable {
        var info: InteractionInfo
        var order: UInt64
        var note: Note = .none
        /// Closed by the user or the server: not shown again.
        var dismissed = false
    }

    public let style: NotificationStyle
    /// Notifications shown (or being shown) at once, at most.
    public let maxShown: Int
    /// Interaction objects followed, at most (the bridge itself keeps 10,000).
    public let maxTracked: Int

    var tracked: [String: Tracked] = [:]
    /// Paths whose note is pending or shown.
    var active: Set<String> = []
    /// Notification ids on screen → interaction path (also while a replace is out).
    var paths: [UInt32: String] = [:]
    var server: ServerCapabilities?
    /// Changes with every server (dis)appearance: answers of an older server are stale.
    public private(set) var generation: UInt64 = 0
    public private(set) var doNotDisturb = false
    var nextOrder: UInt64 = 0

    public init(style: NotificationStyle = NotificationStyle(), maxShown: Int = 4, maxTracked: Int = 10_000) {
        self.style = style
        self.maxShown = max(1, maxShown)
        self.maxTracked = max(1, maxTracked)
    }

    // MARK: What the tests (and logs) look at

    /// The notification ids on screen now.
    public var shownIds: Set<UInt32> { Set(paths.keys) }
    /// The interaction paths followed.
    public var interactionPaths: Set<String> { Set(tracked.keys) }
    /// The notification id shown for an interaction, if any.
    public func notificationId(for path: String) -> UInt32? {
        if case .shown(let id, _) = tracked[path]?.note { return id }
        return nil
    }

    // MARK: Events

    public mutating func handle(_ event: Event) -> [Action] {
        switch event {
        case .serverAppeared(let capabilities):
            let first = server == nil
            server = capabilities
            if first { generation &+= 1 }
            return fillSlots()
        case .serverVanished:
            guard server != nil else { return [] }
            server = nil
            generation &+= 1
            for path in active { tracked[path]?.note = .none }
            active.removeAll()
            paths.removeAll()
            return []
        case .bridgeSynced(let objects, let dnd):
            var actions: [Action] = []
            let present = Set(objects.map(\.path))
            for path in tracked.keys.sorted() where !present.contains(path) { actions += remove(path) }
            doNotDisturb = dnd
            for o in objects {
                if tracked[o.path] != nil {
                    // A snapshot is the whole state: start from a blank info.
                    var info = InteractionInfo()
                    info.apply(o.properties)
                    tracked[o.path]?.info = info
                } else {
                    add(o.path, o.properties)
                }
            }
            for path in active.sorted() { actions += reconcile(path) }
            return actions + fillSlots()
        case .bridgeVanished:
            var actions: [Action] = []
            for path in tracked.keys.sorted() { actions += remove(path, refill: false) }
            return actions
        case .interactionAdded(let path, let properties):
            if tracked[path] != nil {
                tracked[path]?.info.apply(properties)
            } else {
                guard add(path, properties) else { return [] }
            }
            return reconcile(path)
        case .interactionChanged(let path, let properties):
            guard tracked[path] != nil else { return [] }
            tracked[path]?.info.apply(properties)
            return reconcile(path)
        case .interactionRemoved(let path):
            return remove(path)
        case .doNotDisturbChanged(let on):
            guard on != doNotDisturb else { return [] }
            doNotDisturb = on
            if on {
                var actions: [Action] = []
                for path in active.sorted() { actions += reconcile(path) }
                return actions
            }
            return fillSlots()
        case .notifyReplied(let path, let replyGeneration, let id):
            return notifyReplied(path: path, replyGeneration: replyGeneration, id: id)
        case .actionInvoked(let id, let key):
            // Only a call that still rings here is answered or declined: a
            // button pressed on a stale notification must not hang up (or
            // take off hold) a call the agent answered elsewhere.
            guard let path = paths[id], tracked[path]?.info.isAlerting == true else { return [] }
            switch key {
            case NotificationRequest.Key.default, NotificationRequest.Key.answer: return [.pickup(path: path)]
            case NotificationRequest.Key.decline: return [.disconnect(path: path)]
            default: return []
            }
        case .notificationClosed(let id, _):
            // Whatever the reason (expired, dismissed, closed by someone):
            // that interaction's notification is over. Our own closes were
            // forgotten when they were sent, so they do not come here.
            guard let path = paths.removeValue(forKey: id), var t = tracked[path] else { return [] }
            t.dismissed = true
            var close: [Action] = []
            switch t.note {
            case .shown(let shownId, _) where shownId == id:
                t.note = .none
                active.remove(path)
                // A dismiss can cross a replace: the server closed X, then showed
                // our Notify(replaces: X) anew under the same id X. Closing X
                // again takes that one down too (an error if it is gone: ignored).
                close = [.close(id: id)]
            case .pending(let replacing, let content) where replacing == id:
                t.note = .pending(replacing: nil, content: content)
            default: break
            }
            tracked[path] = t
            return close + fillSlots()
        case .stopping:
            var actions: [Action] = []
            for path in tracked.keys.sorted() {
                tracked[path]?.dismissed = true
                actions += reconcile(path)
            }
            return actions
        }
    }

    // MARK: Internals

    @discardableResult
    mutating func add(_ path: String, _ properties: DBusValue) -> Bool {
        guard tracked.count < maxTracked else { return false }
        var info = InteractionInfo()
        info.apply(properties)
        nextOrder += 1
        tracked[path] = Tracked(info: info, order: nextOrder)
        return true
    }

    func wants(_ t: Tracked) -> Bool {
        server != nil && !doNotDisturb && !t.dismissed && t.info.isAlerting
    }

    /// Brings one interaction's notification in line with what it should say.
    mutating func reconcile(_ path: String) -> [Action] {
        guard var t = tracked[path], let capabilities = server else { return [] }
        let want = wants(t)
        switch t.note {
        case .none:
            guard want, active.count < maxShown else { return [] }
            let request = style.request(for: t.info, capabilities: capabilities)
            t.note = .pending(replacing: nil, content: request)
            tracked[path] = t
            active.insert(path)
            return [.notify(path: path, generation: generation, request)]
        case .pending:
            return []  // settled when the answer comes
        case .shown(let id, let content):
            guard want else {
                t.note = .none
                tracked[path] = t
                active.remove(path)
                paths[id] = nil
                return [.close(id: id)] + fillSlots()
            }
            let request = style.request(for: t.info, capabilities: capabilities)
            guard request != content else { return [] }
            var replacing = request
            replacing.replacesId = id
            t.note = .pending(replacing: id, content: request)
            tracked[path] = t
            return [.notify(path: path, generation: generation, replacing)]
        }
    }

    mutating func notifyReplied(path: String, replyGeneration: UInt64, id: UInt32?) -> [Action] {
        // An answer of a server that has gone since: its notification went with it.
        guard replyGeneration == generation else { return [] }
        guard var t = tracked[path], case .pending(let replacing, let content) = t.note else {
            // The interaction went while Notify was out: take the notification down.
            return id.map { [.close(id: $0)] } ?? []
        }
        guard let id else {
            // The server refused: no retry loop; this interaction is not shown again.
            var actions: [Action] = []
            if let replacing, paths.removeValue(forKey: replacing) != nil { actions.append(.close(id: replacing)) }
            t.note = .none
            t.dismissed = true
            tracked[path] = t
            active.remove(path)
            return actions + fillSlots()
        }
        if let replacing, replacing != id { paths[replacing] = nil }
        paths[id] = path
        t.note = .shown(id: id, content: content)
        tracked[path] = t
        // What changed while the call was out (stopped ringing, new text) is applied now.
        return reconcile(path)
    }

    /// Forgets an interaction and takes its notification down.
    mutating func remove(_ path: String, refill: Bool = true) -> [Action] {
        guard let t = tracked.removeValue(forKey: path) else { return [] }
        active.remove(path)
        var actions: [Action] = []
        switch t.note {
        case .shown(let id, _):
            paths[id] = nil
            actions.append(.close(id: id))
        case .pending(let replacing?, _):
            paths[replacing] = nil
            actions.append(.close(id: replacing))
        default: break
        }
        return refill ? actions + fillSlots() : actions
    }

    /// Shows waiting interactions, oldest first, while there is room.
    mutating func fillSlots() -> [Action] {
        guard server != nil, !doNotDisturb, active.count < maxShown else { return [] }
        let waiting = tracked.filter { $0.value.note == .none && wants($0.value) }.sorted { $0.value.order < $1.value.order }
        var actions: [Action] = []
        for (path, _) in waiting {
            guard active.count < maxShown else { break }
            actions += reconcile(path)
        }
        return actions
    }
}
