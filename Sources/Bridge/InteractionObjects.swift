import DBusKit
import ICWS
import Logging
import Synchronization

/// The agent's own interactions as bus objects (contract v1.1): one
/// `…Bridge1.Interaction` object per interaction on the user queue, announced
/// through the main object's ObjectManager, with call control that replies
/// once the ICWS server answered.
final class InteractionObjects: Sendable {
    let connection: BusConnection
    let main: BusObject
    let interfaces: [InterfaceDescription]
    let supervisor: SessionSupervisor
    let logger: Logger
    private let state = Mutex(State())

    struct State {
        var cache = InteractionsCache()
        var objects: [String: BusObject] = [:]
    }

    init(connection: BusConnection, main: BusObject, supervisor: SessionSupervisor, logger: Logger) throws(BusError) {
        self.connection = connection
        self.main = main
        self.supervisor = supervisor
        self.logger = logger
        interfaces = try BridgeNames.interactionInterfaces()
        main.onMethod(Contract.ObjectManager.getManagedObjects) { _ throws(BusError) in [self.managedObjects()] }
        Contract.Interactions.bind(DialMethod(objects: self), to: main)
    }

    /// The objects that a method handler left without a handler (checked at start-up).
    var unboundMethods: [String] {
        let probe = BusObject(path: BridgeNames.interactionPrefix + "probe", interfaces: interfaces)
        bind(probe, id: "probe")
        return probe.unboundMethods
    }

    // MARK: Queue messages → objects

    func apply(_ m: QueueContentsMessage) throws(BusError) {
        guard m.subscriptionId == SubscriptionUnit.myInteractions else { return }
        // The cache and the set of objects change together, in message order.
        let (changes, removedObjects, addedObjects, changedObjects) = state.withLock { s in
            // The entries as they were, of the interactions the message names
            // (what their properties changed from).
            var old: [String: InteractionEntry] = [:]
            for q in m.added + m.changed { old[q.interactionId] = s.cache[q.interactionId] }
            let changes = s.cache.apply(m)
            var removed: [BusObject] = []
            for id in changes.removed { if let o = s.objects.removeValue(forKey: id) { removed.append(o) } }
            var added: [(BusObject, InteractionEntry)] = []
            for e in changes.added {
                guard let path = BridgeNames.interactionPath(e.id) else { continue }
                let object = BusObject(path: path, interfaces: interfaces)
                s.objects[e.id] = object
                added.append((object, e))
            }
            let changed = changes.changed.compactMap { e in s.objects[e.id].map { ($0, old[e.id], e) } }
            return (changes, removed, added, changed)
        }
        if changes.ignored > 0 {
            logger.warning("queue interactions ignored (empty id, or too many)", metadata: ["icws.ignored": "\(changes.ignored)"])
        }
        for o in removedObjects {
            connection.unexport(o.path)
            try main.emit(Contract.ObjectManager.interfacesRemoved, [.objectPath(o.path), .strings([BridgeNames.interaction])])
        }
        for (o, e) in addedObjects {
            // Its properties are read from the cache, in place before the object is announced.
            o.readProperties(from: reader(e.id))
            bind(o, id: e.id)
            connection.export(o)
            try main.emit(Contract.ObjectManager.interfacesAdded, [.objectPath(o.path), Self.interfacesValue(o)])
        }
        for (o, old, e) in changedObjects {
            // Only what changed goes out.
            try o.announce(Rendered.changes(from: old.map(ContractMaps.interactionProperties) ?? [], to: ContractMaps.interactionProperties(e)))
        }
    }

    /// An interaction object's properties, rendered from its cache entry when read.
    private func reader(_ id: String) -> BusObject.PropertyReader {
        { [weak self] interface, name in
            guard interface == BridgeNames.interaction, let e = self?.state.withLock({ $0.cache[id] }) else { return nil }
            return Rendered.value(ContractMaps.interactionProperties(e), interface, name)
        }
    }

    static func interfacesValue(_ o: BusObject) -> DBusValue {
        .dict(key: "s", value: "a{sv}", [.init(.string(BridgeNames.interaction), .vardict(o.propertyValues(BridgeNames.interaction)))])
    }

    /// The session stopped (logged out, credentials refused): no call is known
    /// any more. A new session's snapshot brings the set back.
    func removeAll() throws(BusError) {
        try apply(QueueContentsMessage(isDelta: false, subscriptionId: SubscriptionUnit.myInteractions))
    }

    /// `GetManagedObjects`: every interaction object with its properties.
    func managedObjects() -> DBusValue {
        let objects = state.withLock { s in s.cache.entries.compactMap { s.objects[$0.id] } }
        return .dict(key: "o", value: "a{sa{sv}}", objects.map { .init(.objectPath($0.path), Self.interfacesValue($0)) })
    }

    var count: Int { state.withLock { $0.objects.count } }

    // MARK: Call control

    /// `Interactions` served with typed arguments (the generated `InteractionsHandler`).
    struct DialMethod: InteractionsHandler {
        let objects: InteractionObjects
        func dial(_ target: String, _ options: DBusValue) async throws(BusError) -> String { try await objects.dial(target, options) }
    }

    /// One interaction's call control (the generated `InteractionHandler`).
    struct CallControl: InteractionHandler {
        let objects: InteractionObjects
        let id: String
        func pickup() async throws(BusError) { try await objects.action(id, .pickup) }
        func disconnect() async throws(BusError) { try await objects.action(id, .disconnect) }
        func hold(_ on: Bool) async throws(BusError) { try await objects.action(id, .hold(on)) }
        func mute(_ on: Bool) async throws(BusError) { try await objects.action(id, .mute(on)) }
        func sendDigits(_ digits: String) async throws(BusError) {
            try await objects.action(id, .sendDigits(try InteractionObjects.digits(digits)))
        }
        func blindTransfer(_ target: String) async throws(BusError) {
            try await objects.action(id, .blindTransfer(target: try InteractionObjects.target(target, name: "target")))
        }
        func sendToVoicemail() async throws(BusError) { try await objects.action(id, .sendToVoicemail) }
    }

    private func bind(_ o: BusObject, id: String) {
        Contract.Interaction.bind(CallControl(objects: self, id: id), to: o)
    }

    /// 1 to 64 of `0-9 * # A-D` (either case; sent upper-case).
    static func digits(_ s: String) throws(BusError) -> String {
        guard (1...64).contains(s.utf8.count), s.utf8.allSatisfy({ b in
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || b == UInt8(ascii: "*") || b == UInt8(ascii: "#")
                || (UInt8(ascii: "A")...UInt8(ascii: "D")).contains(b) || (UInt8(ascii: "a")...UInt8(ascii: "d")).contains(b)
        })
        else { throw .invalidArgs("digits must be 1 to 64 of 0-9, *, #, A-D") }
        return s.uppercased()
    }

    /// A transfer or dial target: 1 to 256 characters, no control character.
    static func target(_ s: String, name: String) throws(BusError) -> String {
        guard (1...256).contains(s.count) else { throw .invalidArgs("\(name) must be 1 to 256 characters") }
        guard !s.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .invalidArgs("\(name) must not contain control characters")
        }
        return s
    }

    private func action(_ id: String, _ action: ICWSRequest.InteractionAction) async throws(BusError) {
        do throws(ICWSError) {
            _ = try await supervisor.request(.interaction(id, action))
        } catch {
            throw Self.busError(error)
        }
    }

    static func busError(_ e: ICWSError) -> BusError {
        if e.status == 404 {
            return BusError(name: BridgeNames.errorPrefix + "NoSuchInteraction", message: "the ICWS server does not know this interaction (\(e.httpText))")
        }
        return ContractMaps.busError(e)
    }

    /// `Dial(s target, a{sv} options) → o`.
    private func dial(_ target: String, _ options: DBusValue) async throws(BusError) -> String {
        let target = try Self.target(target, name: "target")
        var workgroup: String?
        var attributes: [(String, String)]?
        for (key, value) in options.dictEntries ?? [] {
            switch (key, value.unwrapped) {
            case ("workgroup", .string(let w)):
                workgroup = try Self.target(w, name: "workgroup")
            case ("attributes", .dict(key: "s", value: "s", let entries)):
                guard entries.count <= 256 else { throw .invalidArgs("option attributes holds more than 256 entries") }
                attributes = entries.map { ($0.key.stringValue ?? "", $0.value.stringValue ?? "") }
            case ("workgroup", _), ("attributes", _):
                throw .invalidArgs("option \(key) has the wrong type (workgroup: s, attributes: a{ss})")
            default:
                throw .invalidArgs("unknown option \(String(key.prefix(64)).debugDescription) (workgroup, attributes)")
            }
        }
        let answer: JSONValue?
        do throws(ICWSError) { answer = try await supervisor.request(.createCall(target: target, workgroup: workgroup, attributes: attributes)) } catch {
            throw Self.busError(error)
        }
        guard let id = answer?["interactionId"]?.stringValue, let path = BridgeNames.interactionPath(id) else {
            throw BusError(name: BridgeNames.errorPrefix + "ServerError", message: "the ICWS server did not name the new interaction")
        }
        return path
    }
}
