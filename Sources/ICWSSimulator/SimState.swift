import ICWSProtocol
import Synchronization

/// A queue of outgoing message texts whose waiters are only woken, never
/// handed data: a waiter that is cancelled loses nothing.
final class MessageQueue: Sendable {
    struct Item: Sendable {
        var sequence: UInt64
        var text: String
    }
    private struct State {
        var items: [Item] = []
        var waiter: CheckedContinuation<Void, Never>?
        var timer: Task<Void, Never>?
    }
    private let state = Mutex(State())

    func push(_ item: Item) {
        let w = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.items.append(item)
            s.timer?.cancel()
            s.timer = nil
            defer { s.waiter = nil }
            return s.waiter
        }
        w?.resume()
    }

    /// Queues `items` in order with one wake-up of the stream.
    func push(contentsOf items: [Item]) {
        let w = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.items.append(contentsOf: items)
            s.timer?.cancel()
            s.timer = nil
            defer { s.waiter = nil }
            return s.waiter
        }
        w?.resume()
    }

    func takeAll() -> [Item] {
        state.withLock { s in
            defer { s.items.removeAll(keepingCapacity: true) }
            return s.items
        }
    }

    var count: Int { state.withLock { $0.items.count } }

    func wake() {
        let w = state.withLock { s -> CheckedContinuation<Void, Never>? in
            defer { s.waiter = nil }
            return s.waiter
        }
        w?.resume()
    }

    /// Returns when items are queued, after `timeout`, on `wake()`, or on cancellation.
    func wait(timeout: Duration) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if !s.items.isEmpty || Task.isCancelled { return true }
                    s.waiter = c
                    s.timer?.cancel()
                    s.timer = Task { [weak self] in
                        try? await Task.sleep(for: timeout)
                        if !Task.isCancelled { self?.wake() }
                    }
                    return false
                }
                if resumeNow { c.resume() }
            }
        } onCancel: {
            wake()
        }
    }
}

/// One simulated ICWS session.
final class SimSession: Sendable {
    let id: String
    let csrf: String
    let cookieName: String
    let cookieValue: String
    let userId: String
    let host: String
    let queue = MessageQueue()
    struct Mutable: Sendable {
        var alive = true
        var downState: (reason: String, shouldReconnect: Bool?)?
        var station: StationSettings?
        var stationSubscribed = false
        var alertingAttributes: [String]?
        var usersSubscriptions: [String: UsersSubscription] = [:]
        /// Queue subscription id → attribute names.
        var queueSubscriptions: [String: [String]] = [:]
        /// `status/user-statuses`: the user ids watched (nil: no subscription).
        var userStatusUserIds: [String]?
        /// `status/status-messages`.
        var statusMessagesSubscribed = false
        /// `status/status-messages-user-access`: the user ids watched (nil: no subscription).
        var statusAccessUserIds: [String]?
        /// `activations/users/{id}`: its id and user.
        var activationSubscription: (id: String, userId: String)?
        /// `statistics/statistic-values`: the keys (nil: no subscription).
        var statisticKeys: [StatisticKey]?
        /// Bumped to end the streams of this session.
        var streamGeneration = 0
        var openStreams = 0
    }
    let mutable = Mutex(Mutable())

    /// The session is over: its streams close and its requests get 401.
    func end() {
        mutable.withLock {
            $0.alive = false
            $0.streamGeneration += 1
        }
        queue.wake()
    }

    init(id: String, csrf: String, cookieValue: String, userId: String, host: String) {
        self.id = id
        self.csrf = csrf
        self.cookieName = "icws_\(id)"
        self.cookieValue = cookieValue
        self.userId = userId
        self.host = host
    }
}

/// A request the simulator received, for tests to check.
public struct SimRequest: Sendable {
    public var method: String
    public var path: String
    public var host: String
    public var body: JSONValue?
    public var status: Int
    /// When the request arrived (its body read).
    public var receivedAt: ContinuousClock.Instant
}

/// A message the simulator handed to a client (written to a stream or returned by a poll).
public struct SimDelivery: Sendable {
    public var sequence: UInt64
    public var sessionId: String
    public var type: String
}

/// Faults that the admin endpoint (`POST /sim/fault`) or a test can inject.
public enum SimFault: Sendable, Equatable {
    /// Every session goes down with a connectionStateChangeMessage.
    case down(shouldReconnect: Bool?, reason: String)
    /// Every session becomes invalid: later calls get 401, with the ICWS
    /// challenge (location as given, default `/ICWS/connection`) or without.
    case expire(challenge: Bool, location: String?)
    /// Logins whose Host is not in `acceptHosts` get 503 with `alternates`
    /// (`count` times, or until cleared when nil).
    case unavailable(alternates: [String], acceptHosts: [String], count: Int?)
    /// End every message stream at once; sessions stay valid.
    case resetStreams
    /// Streams send nothing at all, not even keep-alives, for this long.
    case stall(Duration)
    /// Queue a message that is not valid JSON, and one with bad fields.
    case malformed
    /// Queue a usersMessage of about this many bytes.
    case huge(bytes: Int)
    /// Queue a message of a type the bridge does not know.
    case unknownMessage
    /// Forget every session and refuse logins with 503 for this long.
    case restart(downFor: Duration)
    /// The next queue snapshot (isDelta false) leaves out the first interaction.
    case queueSnapshotMissing
    /// Every queue subscription gets a queueSubscriptionStateMessage with state 3
    /// (Faulted) and delivers nothing more until it is made again.
    case queueFaulted
    /// Queue an interactionsChanged delta whose attribute values are not strings.
    case queueOddValues
    /// The next status PUT answers 202, and its asyncOperationCompletedMessage
    /// carries an error; the status does not change.
    case statusCompletionError
    /// The next status PUT answers 202 with a requestId and nothing follows;
    /// the status does not change.
    case statusNoCompletion
    /// The next status PUT answers 200 without a requestId and applies at once.
    case statusImmediate
    /// Every session with this subscription (the path after
    /// `messaging/subscriptions/`, e.g. `status/user-statuses`, `connection/station`,
    /// `configuration/users/{id}`, `queues/{id}`; `queues` or `configuration/users`
    /// alone: all of them) gets a state 3 (Faulted) message and loses it.
    case subscriptionFaulted(subscriptionPathSuffix: String)
    /// Every stream open now stops sending anything (no events, no keep-alives)
    /// and stays open, until `.clear`; streams opened later work.
    case silentStreams
    /// Every session goes down with `shouldReconnect: true`, and logins are
    /// answered 503 `error.server.notAcceptingConnections` (with this
    /// `Retry-After` when given) for `downFor`: a restart as a fleet sees it.
    case outage(downFor: Duration, retryAfter: String?)
    /// The next `count` requests (every one when nil) whose method matches
    /// (any when nil) and whose path after the session id contains
    /// `pathContains` (without case) fail with `status` and `body`.
    case failRequests(method: String?, pathContains: String, status: Int, count: Int?, body: SimErrorBody)
    /// The next status PUT answers 202 and its asyncOperationCompletedMessage
    /// carries this `error` value as it is (an object, `true`, a string...).
    case statusCompletionErrorValue(JSONValue)
    /// Remove every standing fault.
    case clear
}

/// The body of an injected error answer.
public enum SimErrorBody: Sendable, Equatable {
    /// An ICWS error object.
    case icws(errorId: String, message: String)
    /// Bytes that are not JSON.
    case text(String)
    /// No body at all.
    case empty
}

/// A standing `.failRequests` fault.
struct RequestFailure: Sendable {
    var method: String?
    var pathContains: String
    var status: Int
    var count: Int?
    var body: SimErrorBody
}
