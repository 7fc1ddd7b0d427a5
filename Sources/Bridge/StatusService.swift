import DBusKit
import ICWS
import Logging
import Synchronization

/// The agent's user status (contract v1.1): the `Status` properties from the
/// three status subscriptions, and `SetStatus` with its 202 / `requestId` /
/// `asyncOperationCompletedMessage` round trip.
final class StatusService: Sendable {
    let main: BusObject
    let supervisor: SessionSupervisor
    let logger: Logger
    /// How long a 202 waits for its completion message (`request-timeout`).
    let completionTimeout: Duration
    private let state = Mutex(State())

    struct State {
        var cache = StatusCache()
        /// `SetStatus` calls waiting for their completion, by requestId.
        var waiting: [String: CheckedContinuation<Result<Void, BusError>, Never>] = [:]
        /// Completions that came before their 202 was read (kept briefly, bounded).
        var early: [(String, ICWSError?)] = []
    }

    init(main: BusObject, supervisor: SessionSupervisor, logger: Logger, completionTimeout: Duration) {
        self.main = main
        self.supervisor = supervisor
        self.logger = logger
        self.completionTimeout = completionTimeout
        Contract.Status.bind(Methods(service: self), to: main)
    }

    /// A `Status` property now, rendered from the cache (the main object's reader asks here).
    func property(_ name: String) -> DBusValue? {
        Rendered.value(ContractMaps.statusProperties(state.withLock { $0.cache }), BridgeNames.status, name)
    }

    /// The session's user (status messages of other users are ignored).
    func setUser(_ userId: String) {
        state.withLock { $0.cache.userId = userId }
    }

    /// A status message or a completion; true when it was one.
    func handle(_ message: ICWSMessage) throws(BusError) -> Bool {
        /// The cache before and after `change`.
        func cache(_ change: (inout StatusCache) -> Void) -> (StatusCache, StatusCache) {
            state.withLock { s in
                let before = s.cache
                change(&s.cache)
                return (before, s.cache)
            }
        }
        let (before, after): (StatusCache, StatusCache)
        switch message {
        case .userStatus(let m): (before, after) = cache { $0.apply(m) }
        case .statusMessages(let m): (before, after) = cache { $0.apply(m) }
        case .statusAccess(let m): (before, after) = cache { $0.apply(m) }
        case .asyncOperationCompleted(let m):
            complete(m.requestId, error: m.error)
            return true
        default: return false
        }
        // Only what changed goes out.
        try main.announce(Rendered.changes(from: ContractMaps.statusProperties(before), to: ContractMaps.statusProperties(after)))
        return true
    }

    private func complete(_ requestId: String, error: ICWSError?) {
        let waiter = state.withLock { s -> CheckedContinuation<Result<Void, BusError>, Never>? in
            if let w = s.waiting.removeValue(forKey: requestId) { return w }
            s.early.append((requestId, error))
            if s.early.count > 64 { s.early.removeFirst(s.early.count - 64) }
            return nil
        }
        waiter?.resume(returning: Self.result(error))
    }

    static func result(_ error: ICWSError?) -> Result<Void, BusError> {
        guard let error else { return .success(()) }
        return .failure(ContractMaps.busError(error, context: "the ICWS server refused the status"))
    }

    /// `SetStatus(s status_id, a{sv} options)`.
    /// `Status` served with typed arguments (the generated `StatusHandler`).
    struct Methods: StatusHandler {
        let service: StatusService
        func setStatus(_ statusId: String, _ options: DBusValue) async throws(BusError) { try await service.setStatus(statusId, options) }
    }

    private func setStatus(_ requested: String, _ options: DBusValue) async throws(BusError) {
        let (selectable, userId) = state.withLock { ($0.cache.selectable, $0.cache.userId) }
        guard !selectable.isEmpty else { throw .invalidArgs("no selectable status is known yet (the status subscriptions have not answered)") }
        guard let status = selectable.first(where: { $0.statusId.lowercased() == requested.lowercased() }) else {
            throw .invalidArgs("status \(String(requested.prefix(64)).debugDescription) is not selectable (see Status.Selectable)")
        }
        var notes: String?
        var forwardNumber: String?
        for (key, value) in options.dictEntries ?? [] {
            switch (key, value.unwrapped) {
            case ("notes", .string(let s)):
                guard s.utf8.count <= 4096 else { throw .invalidArgs("notes must be at most 4096 bytes") }
                notes = s
            case ("forwardNumber", .string(let s)):
                guard (1...256).contains(s.count), !s.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                    throw .invalidArgs("forwardNumber must be 1 to 256 characters without control characters")
                }
                forwardNumber = s
            case ("notes", _), ("forwardNumber", _):
                throw .invalidArgs("option \(key) must be a string")
            default:
                throw .invalidArgs("unknown option \(String(key.prefix(64)).debugDescription) (notes, forwardNumber)")
            }
        }
        let answer: JSONValue?
        do throws(ICWSError) {
            answer = try await supervisor.request(.setUserStatus(userId: userId, statusId: status.statusId, notes: notes, forwardNumber: forwardNumber))
        } catch {
            throw ContractMaps.busError(error)
        }
        // A 2xx without a requestId: accepted as it is.
        guard let requestId = answer?["requestId"]?.stringValue, !requestId.isEmpty else { return }
        let result: Result<Void, BusError> = await withCheckedContinuation { c in
            let early = state.withLock { s -> (String, ICWSError?)? in
                if let i = s.early.firstIndex(where: { $0.0 == requestId }) { return s.early.remove(at: i) }
                // A server that repeats a requestId: the earlier call is not left hanging.
                s.waiting.updateValue(c, forKey: requestId)?.resume(
                    returning: .failure(BusError(name: BridgeNames.errorPrefix + "ServerError", message: "the ICWS server reused a requestId")))
                return nil
            }
            if let early {
                c.resume(returning: Self.result(early.1))
                return
            }
            // The Timeout clock starts at the 202.
            let timeout = completionTimeout
            Task {
                try? await loopSleep(for: timeout)
                let waiter = self.state.withLock { $0.waiting.removeValue(forKey: requestId) }
                waiter?.resume(returning: .failure(BusError(name: BridgeNames.errorPrefix + "Timeout", message: "the ICWS server did not complete the status change in time")))
            }
        }
        try result.get()
    }
}
