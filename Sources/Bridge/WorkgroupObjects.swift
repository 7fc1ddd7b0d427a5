import DBusKit
import ICWS
import Logging
import Synchronization

/// The workgroups of the session's user as bus objects (contract v1.2): one
/// `…Bridge1.Workgroup` object each, announced through the main object's
/// ObjectManager, read after every new session (membership, wrap-up codes
/// and their labels, activations), kept current by the activation and
/// statistics subscriptions.
final class WorkgroupObjects: Sendable {
    let connection: BusConnection
    let main: BusObject
    let interfaces: [InterfaceDescription]
    let supervisor: SessionSupervisor
    let logger: Logger
    /// Whether membership and codes are read at all (`workgroups-enabled`).
    let enabled: Bool
    private let state = Mutex(State())

    /// No user is in this many workgroups; past it the list is cut.
    static let maxWorkgroups = 1000
    /// Codes kept per workgroup (a list of 100,000 is cut here, with a warning).
    static let maxCodes = 10_000

    struct Entry: Sendable {
        var id: String
        var name: String
        var activated = false
        var codes: [(id: String, label: String)] = []
        var timeout: UInt32 = 0
        var statistics: [WorkgroupStatistic: DBusValue] = [:]
    }

    struct State {
        var entries: [Entry] = []
        var objects: [String: BusObject] = [:]
        /// The session the entries were read on (`SessionStatus.sessionSerial`).
        var session: UInt64 = 0
        var load: Task<Void, Never>?
        /// Activations a message brought before the membership was read.
        var pendingActivations: [String: Bool] = [:]
        /// Statistics keys whose error was logged on this session.
        var logged: Set<String> = []
        /// Workgroups whose Statistics changed and are not yet announced.
        var dirty: Set<String> = []
        var holds = 0
        var userId = ""

        func index(_ id: String) -> Int? { entries.firstIndex { $0.id == id } }
    }

    init(connection: BusConnection, main: BusObject, supervisor: SessionSupervisor, logger: Logger, enabled: Bool) throws(BusError) {
        self.connection = connection
        self.main = main
        self.supervisor = supervisor
        self.logger = logger
        self.enabled = enabled
        interfaces = try BridgeNames.workgroupInterfaces()
    }

    /// The objects that a method handler left without a handler (checked at start-up).
    var unboundMethods: [String] {
        let probe = BusObject(path: BridgeNames.workgroupPrefix + "probe", interfaces: interfaces)
        bind(probe, id: "probe")
        return probe.unboundMethods
    }

    var count: Int { state.withLock { $0.objects.count } }

    // MARK: Rendering

    static func properties(_ e: Entry) -> [(PropertySpec, DBusValue)] {
        typealias P = Contract.Workgroup
        return [
            P.Values.id(e.id), P.Values.name(e.name), P.Values.activated(e.activated),
            P.Values.wrapUpCodes(.array(element: "(ss)", e.codes.map { .structure([.string($0.id), .string($0.label)]) })),
            P.Values.wrapUpTimeout(e.timeout), P.Values.statistics(statistics(e)),
        ]
    }

    static func statistics(_ e: Entry) -> DBusValue {
        .vardict(WorkgroupStatistic.allCases.compactMap { s in e.statistics[s].map { (s.rawValue, $0) } })
    }

    private func reader(_ id: String) -> BusObject.PropertyReader {
        { [weak self] interface, name in
            guard interface == BridgeNames.workgroup, let e = self?.state.withLock({ s in s.index(id).map { s.entries[$0] } }) else { return nil }
            return Rendered.value(Self.properties(e), interface, name)
        }
    }

    static func interfacesValue(_ o: BusObject) -> DBusValue {
        .dict(key: "s", value: "a{sv}", [.init(.string(BridgeNames.workgroup), .vardict(o.propertyValues(BridgeNames.workgroup)))])
    }

    /// `GetManagedObjects` entries of the workgroup objects.
    func managedEntries() -> [DBusValue.DictEntry] {
        let objects = state.withLock { s in s.entries.compactMap { s.objects[$0.id] } }
        return objects.map { .init(.objectPath($0.path), Self.interfacesValue($0)) }
    }

    /// Where `SetWrapUpCode` checks a code: the code ids of the workgroup with
    /// this id or name (any case); nil when no such workgroup is known.
    func wrapUpCodes(of workgroup: String) -> [String]? {
        let lower = workgroup.lowercased()
        return state.withLock { s in
            s.entries.first { $0.id.lowercased() == lower || $0.name.lowercased() == lower }.map { $0.codes.map(\.id) }
        }
    }

    // MARK: The session

    /// Every session status: a new session reads the workgroups again; a
    /// stopped one has none.
    func sessionChanged(_ status: SessionStatus) {
        if status.state == .stopped {
            let load = state.withLock { s -> Task<Void, Never>? in
                defer { s.load = nil }
                return s.load
            }
            load?.cancel()
            replace(with: [], session: status.sessionSerial)
            return
        }
        guard enabled, status.state == .connected else { return }
        let (isNew, old) = state.withLock { s -> (Bool, Task<Void, Never>?) in
            guard s.session != status.sessionSerial else { return (false, nil) }
            s.session = status.sessionSerial
            s.userId = status.userId
            s.logged = []
            s.pendingActivations = [:]
            // The figures of the old session are dropped; the new subscription brings them again.
            for i in s.entries.indices where !s.entries[i].statistics.isEmpty {
                s.entries[i].statistics = [:]
                s.dirty.insert(s.entries[i].id)
            }
            return (true, s.load)
        }
        guard isNew else { return }
        old?.cancel()
        flushStatistics()
        let serial = status.sessionSerial
        let userId = status.userId
        let task = Task { [weak self] () async -> Void in await self?.load(userId: userId, session: serial) }
        state.withLock { s in if s.session == serial { s.load = task } }
    }

    /// One request, tried again after a backoff while the failure may pass
    /// (the network, a timeout, a 5xx), until it succeeds or the session
    /// changes; nil when it cannot succeed on this session.
    private func fetch(_ request: ICWSRequest, session: UInt64, what: String) async -> JSONValue?? {
        // The session's own backoff (full jitter, 1 s to 60 s) and the daemon's quiet sleep.
        var backoff = Backoff(policy: BackoffPolicy())
        let start = ContinuousClock.now
        while !Task.isCancelled, state.withLock({ $0.session == session }) {
            do throws(ICWSError) {
                return .some(try await supervisor.request(request))
            } catch {
                switch error.kind {
                case .notConnected: return nil  // the next session reads them again
                case .server(let status) where status < 500 && status != 408 && status != 429:
                    logger.warning("workgroup information refused", metadata: ["icws.what": "\(what)", "icws.error": "\(error.httpText)"])
                    return .some(nil)
                default: break
                }
                let delay = backoff.next(now: ContinuousClock.now - start, unit: Double.random(in: 0..<1))
                logger.warning("workgroup information failed; trying again", metadata: [
                    "icws.what": "\(what)", "icws.error": "\(error.httpText)", "icws.retry_in": "\(delay)",
                ])
                do { try await loopSleep(for: delay) } catch { return nil }
            }
        }
        return nil
    }

    /// Reads membership, wrap-up codes, their labels and the activations.
    private func load(userId: String, session: UInt64) async {
        guard let membership = await fetch(.userWorkgroups(userId), session: session, what: "membership") else { return }
        var entries: [Entry] = []
        var seen: Set<String> = []
        for item in membership?["workgroups"]?.arrayValue ?? [] {
            guard let id = (item["id"]?.stringValue ?? item["configurationId"]?["id"]?.stringValue), !id.isEmpty, id.utf8.count <= 1024,
                BridgeNames.workgroupPath(id) != nil, seen.insert(id).inserted
            else { continue }
            guard entries.count < Self.maxWorkgroups else {
                logger.warning("the user's workgroups are cut", metadata: ["icws.kept": "\(Self.maxWorkgroups)"])
                break
            }
            let name = item["displayName"]?.stringValue ?? item["configurationId"]?["displayName"]?.stringValue ?? ""
            entries.append(Entry(id: id, name: (name.isEmpty ? id : name).singleLine(maxBytes: 1024)))
        }
        // Wrap-up codes of each workgroup; their labels in one request.
        var referenced: Set<String> = []
        for i in entries.indices {
            guard let config = await fetch(.workgroupWrapUp(entries[i].id), session: session, what: "workgroup \(entries[i].id)") else { return }
            entries[i].timeout = config?["wrapUpTimeout"]?.intValue.map { UInt32(clamping: max(0, $0)) } ?? 0
            guard config?["isWrapUpActive"]?.boolValue == true else { continue }
            var codes: [(id: String, label: String)] = []
            var codeIds: Set<String> = []
            for c in config?["wrapUpCodes"]?.arrayValue ?? [] {
                guard let id = c["id"]?.stringValue ?? c.stringValue, !id.isEmpty, id.utf8.count <= 1024, codeIds.insert(id).inserted else { continue }
                guard codes.count < Self.maxCodes else {
                    logger.warning("a workgroup's wrap-up codes are cut", metadata: ["icws.workgroup": "\(entries[i].id)", "icws.kept": "\(Self.maxCodes)"])
                    break
                }
                codes.append((id: id, label: id))
                referenced.insert(id)
            }
            entries[i].codes = codes
        }
        if !referenced.isEmpty {
            guard let labels = await fetch(.wrapUpCodeLabels, session: session, what: "wrap-up code labels") else { return }
            var byId: [String: String] = [:]
            for item in labels?["items"]?.arrayValue ?? [] {
                guard let id = item["configurationId"]?["id"]?.stringValue ?? item["id"]?.stringValue, referenced.contains(id),
                    let label = item["label"]?["defaultValue"]?.stringValue ?? item["label"]?.stringValue, !label.isEmpty
                else { continue }
                byId[id] = label.singleLine(maxBytes: 1024)
            }
            for i in entries.indices { entries[i].codes = entries[i].codes.map { (id: $0.id, label: byId[$0.id] ?? $0.id) } }
        }
        if !entries.isEmpty, let answer = await fetch(.userActivations(userId), session: session, what: "activations") {
            for (id, on) in answer?["activations"]?.objectValue ?? [] {
                if let i = entries.firstIndex(where: { $0.id == id }), let on = on.boolValue { entries[i].activated = on }
            }
        }
        guard !Task.isCancelled else { return }
        replace(with: entries, session: session)
        await supervisor.setWorkgroups(entries.map(\.id), session: session)
    }

    /// Makes the objects say `entries`: gone ones removed, new ones added,
    /// kept ones announce what changed (their figures stay).
    private func replace(with new: [Entry], session: UInt64) {
        let (removed, added, changed) = state.withLock { s -> ([BusObject], [(BusObject, String)], [(BusObject, Entry, Entry)]) in
            guard s.session == session else { return ([], [], []) }
            var new = new
            // What a message said before the membership was read wins over the GET.
            for i in new.indices { if let on = s.pendingActivations[new[i].id] { new[i].activated = on } }
            s.pendingActivations = [:]
            let ids = Set(new.map(\.id))
            var removed: [BusObject] = []
            for e in s.entries where !ids.contains(e.id) { if let o = s.objects.removeValue(forKey: e.id) { removed.append(o) } }
            var added: [(BusObject, String)] = []
            var changed: [(BusObject, Entry, Entry)] = []
            for i in new.indices {
                if let old = s.index(new[i].id).map({ s.entries[$0] }) {
                    new[i].statistics = old.statistics
                    if let o = s.objects[new[i].id] { changed.append((o, old, new[i])) }
                } else if let path = BridgeNames.workgroupPath(new[i].id) {
                    let o = BusObject(path: path, interfaces: interfaces)
                    s.objects[new[i].id] = o
                    added.append((o, new[i].id))
                }
            }
            s.entries = new
            return (removed, added, changed)
        }
        do throws(BusError) {
            for o in removed {
                connection.unexport(o.path)
                try main.emit(Contract.ObjectManager.interfacesRemoved, [.objectPath(o.path), .strings([BridgeNames.workgroup])])
            }
            for (o, id) in added {
                o.readProperties(from: reader(id))
                bind(o, id: id)
                connection.export(o)
                try main.emit(Contract.ObjectManager.interfacesAdded, [.objectPath(o.path), Self.interfacesValue(o)])
            }
            for (o, old, new) in changed { try o.announce(Rendered.changes(from: Self.properties(old), to: Self.properties(new))) }
        } catch {
            logger.error("could not publish the workgroups on the bus", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Messages

    /// `userActivationMessage`.
    func apply(_ m: UserActivationMessage) throws(BusError) {
        let changed = state.withLock { s -> [(BusObject, Bool)] in
            guard m.userId.isEmpty || s.userId.isEmpty || m.userId.lowercased() == s.userId.lowercased() else { return [] }
            var out: [(BusObject, Bool)] = []
            for a in m.activationsChanged {
                guard let i = s.index(a.workgroupId) else {
                    s.pendingActivations[a.workgroupId] = a.activated
                    if s.pendingActivations.count > Self.maxWorkgroups { s.pendingActivations.removeValue(forKey: a.workgroupId) }
                    continue
                }
                guard s.entries[i].activated != a.activated else { continue }
                s.entries[i].activated = a.activated
                if let o = s.objects[a.workgroupId] { out.append((o, a.activated)) }
            }
            return out
        }
        for (o, on) in changed { try o.announce([Contract.Workgroup.Values.activated(on)]) }
    }

    /// `statisticValueMessage`: every change upserts (a null or an error value
    /// removes the key); the Statistics of each workgroup it touched go out
    /// once, at the end of the read it came in.
    func apply(_ m: StatisticValueMessage) {
        var problems: [(key: String, reason: String)] = []
        var strangers = 0
        state.withLock { s in
            for change in m.changes {
                guard let statistic = WorkgroupStatistic(key: change.key), let wg = change.key.parameter(WorkgroupStatistic.workgroupParameter),
                    let i = s.index(wg)
                else {
                    strangers += 1
                    continue
                }
                let value: DBusValue?
                switch Self.value(statistic, change.value) {
                case .success(let v): value = v
                case .failure(let reason):
                    value = nil
                    let key = "\(wg)/\(statistic.rawValue)"
                    if s.logged.insert(key).inserted || s.logged.count > 10_000 { problems.append((key, reason.text)) }
                }
                guard s.entries[i].statistics[statistic] != value else { continue }
                s.entries[i].statistics[statistic] = value
                s.dirty.insert(wg)
            }
        }
        for p in problems.prefix(16) {
            logger.warning("a workgroup statistic has no usable value", metadata: ["icws.statistic": "\(p.key)", "icws.reason": "\(p.reason)"])
        }
        if strangers > 0 {
            logger.debug("statistics for no workgroup of this user ignored", metadata: ["icws.ignored": "\(strangers)"])
        }
        if state.withLock({ $0.holds == 0 }) { flushStatistics() }
    }

    struct Unusable: Error { let text: String }

    /// A statistic's value as its `Statistics` entry (nil: no value now).
    static func value(_ s: WorkgroupStatistic, _ v: StatisticValue?) -> Result<DBusValue?, Unusable> {
        guard let v else { return .success(nil) }
        switch (s, v) {
        case (_, .error(let code)):
            let reasons: [Int64: String] = [1: "malformed statistic key", 2: "unknown statistic key", 3: "statistics provider too busy"]
            return .failure(Unusable(text: "the server answered error \(code) (\(reasons[code] ?? "other"))"))
        case (_, .unreadable(let reason)): return .failure(Unusable(text: reason))
        case (.longestWaitSince, .timestamp(let text, _)):
            guard let seconds = ContractMaps.unixSeconds(text) else { return .failure(Unusable(text: "not a date-time")) }
            return .success(.int64(seconds))
        case (.percentAvailable, .percent(let d)), (.percentAvailable, .double(let d)): return .success(.double(d))
        case (.percentAvailable, .int(let i)): return .success(.double(Double(i)))
        case (.longestWaitSince, _), (.percentAvailable, _): return .failure(Unusable(text: "a value of the wrong type"))
        case (_, .int(let i)):
            guard let u = UInt32(exactly: i) else { return .failure(Unusable(text: "a count out of range (\(i))")) }
            return .success(.uint32(u))
        default: return .failure(Unusable(text: "a value of the wrong type"))
        }
    }

    /// Runs `body` (one read's messages); the Statistics it changed go out once at its end.
    func holding(_ body: () -> Void) {
        state.withLock { $0.holds += 1 }
        body()
        let last = state.withLock { s -> Bool in
            s.holds -= 1
            return s.holds == 0
        }
        if last { flushStatistics() }
    }

    private func flushStatistics() {
        let out = state.withLock { s -> [(BusObject, DBusValue)] in
            defer { s.dirty = [] }
            return s.dirty.compactMap { id in s.index(id).flatMap { i in s.objects[id].map { ($0, Self.statistics(s.entries[i])) } } }
        }
        for (o, value) in out {
            do { try o.announce([Contract.Workgroup.Values.statistics(value)]) } catch {
                logger.error("could not publish workgroup statistics", metadata: ["error": "\(error)"])
            }
        }
    }

    // MARK: Methods

    struct Methods: WorkgroupHandler {
        let objects: WorkgroupObjects
        let id: String
        func setActivated(_ on: Bool) async throws(BusError) { try await objects.setActivated(id, on) }
    }

    private func bind(_ o: BusObject, id: String) {
        Contract.Workgroup.bind(Methods(objects: self, id: id), to: o)
    }

    private func setActivated(_ id: String, _ on: Bool) async throws(BusError) {
        let userId = state.withLock { $0.userId }
        let answer: JSONValue?
        do throws(ICWSError) { answer = try await supervisor.request(.setActivation(userId, workgroup: id, on)) } catch {
            throw ContractMaps.busError(error, context: "the activation was not changed")
        }
        // The answer is the user's activation set: take this workgroup's value now.
        let now = answer?["activations"]?[id]?.boolValue ?? on
        try apply(UserActivationMessage(isDelta: true, userId: userId, activationsChanged: [WorkgroupActivation(id, now)]))
    }
}
