import DBusKit
import Glibc
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
        /// The consults this daemon made, by original interaction id, while they last.
        var consults: [String: (consultId: String, legId: String)] = [:]
        /// Interactions whose entry names a conference parent.
        var parented: Set<String> = []
        /// The wrap-up code ids of a workgroup (by its id or name), when known.
        var wrapUpCodes: (@Sendable (String) -> [String]?)?

        func context(_ id: String) -> ContractMaps.InteractionContext {
            let parent = cache[id]?.conferenceParentId
            return .init(consultId: consults[id]?.consultId, parentKnown: parent.map { !$0.isEmpty && cache[$0] != nil } ?? false)
        }

        func properties(_ id: String, attributes: Bool = true) -> [(PropertySpec, DBusValue)]? {
            cache[id].map { ContractMaps.interactionProperties($0, context(id), attributes: attributes) }
        }

        /// The interactions whose properties may change when `named` change:
        /// those, the children of a conference parent among them, and the
        /// originals of a consult whose leg is among them.
        func affected(by named: Set<String>) -> Set<String> {
            var ids = named
            for c in parented where cache[c]?.conferenceParentId.map(named.contains) == true { ids.insert(c) }
            for (original, consult) in consults where named.contains(consult.legId) { ids.insert(original) }
            return ids
        }
    }

    init(connection: BusConnection, main: BusObject, supervisor: SessionSupervisor, logger: Logger) throws(BusError) {
        self.connection = connection
        self.main = main
        self.supervisor = supervisor
        self.logger = logger
        interfaces = try BridgeNames.interactionInterfaces()
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
            // What the interactions the message can change showed before it.
            var named = Set((m.added + m.changed).map(\.interactionId) + m.removed)
            if !m.isDelta { named.formUnion(s.cache.entries.map(\.id)) }
            var old: [String: [(PropertySpec, DBusValue)]] = [:]
            for id in s.affected(by: named) { old[id] = s.properties(id) }
            let changes = s.cache.apply(m)
            var removed: [BusObject] = []
            for id in changes.removed {
                if let o = s.objects.removeValue(forKey: id) { removed.append(o) }
                s.parented.remove(id)
                // A consult ends with its original or its leg.
                s.consults.removeValue(forKey: id)
                for (original, c) in s.consults where c.legId == id { s.consults.removeValue(forKey: original) }
            }
            for e in changes.added + changes.changed {
                if e.conferenceParentId?.isEmpty == false { s.parented.insert(e.id) } else { s.parented.remove(e.id) }
            }
            var added: [(BusObject, InteractionEntry)] = []
            for e in changes.added {
                guard let path = BridgeNames.interactionPath(e.id) else { continue }
                let object = BusObject(path: path, interfaces: interfaces)
                s.objects[e.id] = object
                added.append((object, e))
            }
            let addedIds = Set(changes.added.map(\.id))
            var changed: [(BusObject, [(PropertySpec, DBusValue)], [(PropertySpec, DBusValue)])] = []
            for (id, before) in old where !addedIds.contains(id) {
                guard let o = s.objects[id], let after = s.properties(id) else { continue }
                changed.append((o, before, after))
            }
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
        for (o, before, after) in changedObjects {
            // Only what changed goes out.
            try o.announce(Rendered.changes(from: before, to: after))
        }
    }

    /// Changes what this daemon knows of one interaction (a consult made or
    /// ended) and announces what that changed.
    private func update(_ id: String, _ change: (inout State) -> Void) {
        let (object, before, after) = state.withLock { s in
            let before = s.properties(id)
            change(&s)
            return (s.objects[id], before, s.properties(id))
        }
        guard let object, let before, let after else { return }
        do { try object.announce(Rendered.changes(from: before, to: after)) } catch {
            logger.warning("a property change could not be announced", metadata: ["dbus.error": "\(error)"])
        }
    }

    /// Where `SetWrapUpCode` finds the codes of a workgroup.
    func useWrapUpCodes(_ codes: @escaping @Sendable (String) -> [String]?) {
        state.withLock { $0.wrapUpCodes = codes }
    }

    /// An interaction object's properties, rendered from its cache entry when read.
    private func reader(_ id: String) -> BusObject.PropertyReader {
        { [weak self] interface, name in
            guard interface == BridgeNames.interaction,
                let p = self?.state.withLock({ $0.properties(id, attributes: name == Contract.Interaction.attributes.name) })
            else { return nil }
            return Rendered.value(p, interface, name)
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

    /// `GetManagedObjects` entries: every interaction object with its properties.
    func managedEntries() -> [DBusValue.DictEntry] {
        let objects = state.withLock { s in s.cache.entries.compactMap { s.objects[$0.id] } }
        return objects.map { .init(.objectPath($0.path), Self.interfacesValue($0)) }
    }

    var count: Int { state.withLock { $0.objects.count } }

    // MARK: Call control

    /// `Interactions` served with typed arguments (the generated `InteractionsHandler`).
    struct DialMethod: InteractionsHandler {
        let objects: InteractionObjects
        func dial(_ target: String, _ options: DBusValue) async throws(BusError) -> String { try await objects.dial(target, options) }
        func conference(_ interactions: [String]) async throws(BusError) -> String { try await objects.conference(interactions) }
        func addToConference(_ conferenceId: String, _ interactions: [String]) async throws(BusError) {
            try await objects.addToConference(conferenceId, interactions)
        }
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
        func setWrapUpCode(_ code: String) async throws(BusError) { try await objects.setWrapUpCode(id, code) }
        func setAccountCode(_ code: String) async throws(BusError) {
            try await objects.send(.setAttributes(id, [("Eic_AccountCode", try InteractionObjects.accountCode(code, name: "code"))]))
        }
        func consult(_ target: String) async throws(BusError) -> (String, String) { try await objects.consult(id, target) }
        func speakTo(_ party: String) async throws(BusError) {
            guard let audience = ICWSRequest.Audience(rawValue: party.lowercased()) else {
                throw .invalidArgs("party must be caller, consult or both")
            }
            try await objects.send(.changeAudience(id, consultId: try objects.consultId(id), audience))
        }
        func completeTransfer() async throws(BusError) {
            let consultId = try objects.consultId(id)
            try await objects.send(.concludeConsult(id, consultId: consultId))
            objects.update(id) { $0.consults.removeValue(forKey: id) }
        }
        func cancelConsult() async throws(BusError) {
            let consultId = try objects.consultId(id)
            try await objects.send(.cancelConsult(id, consultId: consultId))
            objects.update(id) { $0.consults.removeValue(forKey: id) }
        }
        func pauseRecording(_ seconds: UInt32) async throws(BusError) {
            let pause: ICWSRequest.SecurePause
            switch seconds {
            case 0: pause = .serverDefault
            case UInt32.max: pause = .untilResumed
            case 1...86_400: pause = .seconds(seconds)
            default: throw .invalidArgs("seconds must be 0 (the server's default), 1 to 86400, or 4294967295 (until resumed)")
            }
            try await objects.send(.securePause(id, pause))
        }
        func resumeRecording() async throws(BusError) { try await objects.send(.securePause(id, .resume)) }
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
        try await send(.interaction(id, action))
    }

    /// Sends a request about one interaction; its answer, or the contract's error.
    @discardableResult
    func send(_ request: ICWSRequest) async throws(BusError) -> JSONValue? {
        do throws(ICWSError) {
            return try await supervisor.request(request)
        } catch {
            throw Self.busError(error)
        }
    }

    /// An account code: 1 to 50 digits.
    static func accountCode(_ s: String, name: String) throws(BusError) -> String {
        guard (1...50).contains(s.utf8.count), s.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
            throw .invalidArgs("\(name) must be 1 to 50 digits")
        }
        return s
    }

    static let noConsult = BusError(name: BridgeNames.errorPrefix + "NoConsult", message: "this interaction is in no consult transfer")

    /// The interaction's `ConsultId`, or `NoConsult`.
    func consultId(_ id: String) throws(BusError) -> String {
        let consult = state.withLock { s in s.properties(id, attributes: false).flatMap { Rendered.value($0, BridgeNames.interaction, "ConsultId")?.stringValue } }
        guard let consult, !consult.isEmpty else { throw Self.noConsult }
        return consult
    }

    /// `Consult(s target) → (s consult_id, o consult_leg)`.
    private func consult(_ id: String, _ target: String) async throws(BusError) -> (String, String) {
        let target = try Self.target(target, name: "target")
        let answer = try await send(.consult(id, target: target))
        guard let consultId = answer?["consultId"]?.stringValue, !consultId.isEmpty, consultId.utf8.count <= 1024,
            let legId = answer?["consultInteractionId"]?.stringValue, let leg = BridgeNames.interactionPath(legId)
        else {
            throw BusError(name: BridgeNames.errorPrefix + "ServerError", message: "the ICWS server did not name the consult and its interaction")
        }
        update(id) { s in
            // Only while the original is on the queue (a late answer for a call that went keeps nothing).
            if s.cache[id] != nil { s.consults[id] = (consultId: consultId, legId: legId) }
        }
        return (consultId, leg)
    }

    /// `SetWrapUpCode(s code)`.
    private func setWrapUpCode(_ id: String, _ code: String) async throws(BusError) {
        let (workgroup, segments, lookup) = state.withLock { s in (s.cache[id]?["Eic_WorkgroupName"] ?? "", s.cache[id]?["Eic_WrapupConnectionSegments"], s.wrapUpCodes) }
        let shown = String(code.prefix(64)).debugDescription
        guard !workgroup.isEmpty else { throw .invalidArgs("wrap-up code \(shown): the interaction has no workgroup") }
        guard let codes = lookup?(workgroup) else {
            throw .invalidArgs("wrap-up code \(shown): the wrap-up codes of workgroup \(String(workgroup.prefix(64)).debugDescription) are not known")
        }
        guard codes.contains(code) else {
            throw .invalidArgs("wrap-up code \(shown) is not one of the codes of workgroup \(String(workgroup.prefix(64)).debugDescription)")
        }
        let now = Int64(time(nil))
        let segment = segments.flatMap(ContractMaps.lastSegmentId) ?? 1
        try await send(.wrapUpAssignment(id, code: code, segmentId: segment, time: ContractMaps.compactUTC(now), user: supervisor.status.userId))
    }

    /// The interaction ids of 1 to 16 (or `min` to 16) of this daemon's interaction objects.
    private func interactionIds(_ paths: [String], min: Int) throws(BusError) -> [String] {
        guard (min...16).contains(paths.count) else { throw .invalidArgs("interactions must name \(min) to 16 interaction objects") }
        let byPath = state.withLock { s in Dictionary(s.objects.map { ($0.value.path, $0.key) }, uniquingKeysWith: { a, _ in a }) }
        var ids: [String] = []
        for p in paths {
            guard let id = byPath[p] else { throw .invalidArgs("\(p) is not an interaction object of this daemon") }
            guard !ids.contains(id) else { throw .invalidArgs("\(p) is named twice") }
            ids.append(id)
        }
        return ids
    }

    /// `Conference(ao interactions) → s conference_id`.
    private func conference(_ paths: [String]) async throws(BusError) -> String {
        let ids = try interactionIds(paths, min: 2)
        let answer: JSONValue?
        do throws(ICWSError) { answer = try await supervisor.request(.createConference(ids)) } catch {
            throw Self.busError(error)
        }
        guard let conferenceId = answer?["conferenceId"]?.stringValue, !conferenceId.isEmpty, conferenceId.utf8.count <= 1024 else {
            throw BusError(name: BridgeNames.errorPrefix + "ServerError", message: "the ICWS server did not name the conference")
        }
        return conferenceId
    }

    /// `AddToConference(s conference_id, ao interactions)`.
    private func addToConference(_ conferenceId: String, _ paths: [String]) async throws(BusError) {
        let conferenceId = try Self.target(conferenceId, name: "conference_id")
        let ids = try interactionIds(paths, min: 1)
        do throws(ICWSError) { _ = try await supervisor.request(.addToConference(conferenceId, ids)) } catch {
            if error.status == 404 {
                throw BusError(name: BridgeNames.errorPrefix + "ServerError", message: "the ICWS server does not know conference or interaction (\(error.httpText))")
            }
            throw ContractMaps.busError(error, context: "the parties were not added")
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
        var accountCode: String?
        for (key, value) in options.dictEntries ?? [] {
            switch (key, value.unwrapped) {
            case ("workgroup", .string(let w)):
                workgroup = try Self.target(w, name: "workgroup")
            case ("accountCode", .string(let code)):
                accountCode = try Self.accountCode(code, name: "option accountCode")
            case ("attributes", .dict(key: "s", value: "s", let entries)):
                guard entries.count <= 256 else { throw .invalidArgs("option attributes holds more than 256 entries") }
                attributes = entries.map { ($0.key.stringValue ?? "", $0.value.stringValue ?? "") }
            case ("workgroup", _), ("attributes", _), ("accountCode", _):
                throw .invalidArgs("option \(key) has the wrong type (workgroup: s, attributes: a{ss}, accountCode: s)")
            default:
                throw .invalidArgs("unknown option \(String(key.prefix(64)).debugDescription) (workgroup, attributes, accountCode)")
            }
        }
        let answer: JSONValue?
        do throws(ICWSError) { answer = try await supervisor.request(.createCall(target: target, workgroup: workgroup, attributes: attributes, accountCode: accountCode)) } catch {
            throw Self.busError(error)
        }
        guard let id = answer?["interactionId"]?.stringValue, let path = BridgeNames.interactionPath(id) else {
            throw BusError(name: BridgeNames.errorPrefix + "ServerError", message: "the ICWS server did not name the new interaction")
        }
        return path
    }
}
