import Synchronization

/// Where a supervisor's events go: the bridge in the daemon, an event log in
/// tests. One path, called in order on the supervisor for every event, with
/// no task hop per message.
public protocol SupervisorEventSink: AnyObject, Sendable {
    /// One event, in order.
    func handle(_ event: SupervisorEvent)
    /// Runs `body` (the handling of one read's messages); what it publishes may be sent on together.
    func coalescing(_ body: () -> Void)
    /// Returns once the sink has room for more (the message source waits here between reads).
    func waitForRoom() async
}

extension SupervisorEventSink {
    public func coalescing(_ body: () -> Void) { body() }
    public func waitForRoom() async {}
}

/// The supervisor's sink when the real one is made after the supervisor (the
/// bridge needs the supervisor): events that come before `connect` wait here,
/// and reach the sink first and in order once it is connected.
public final class EventRelay: SupervisorEventSink {
    // The sink itself, not a closure: a closure behind a Mutex is re-wrapped
    // in a pair of reabstraction thunks by every `withLock` that passes it
    // inout, so one read per message grew a chain that overflowed the stack
    // after some 12,000 messages.
    private struct State {
        var target: (any SupervisorEventSink)?
        /// Events before the sink was connected (or while those are handed on).
        var early: [SupervisorEvent] = []
        var draining = false
    }
    private let state = Mutex(State())

    public init() {}

    /// Connects the sink; events held so far go to it first.
    public func connect(_ sink: any SupervisorEventSink) {
        state.withLock {
            $0.target = sink
            $0.draining = true
        }
        while true {
            let early = state.withLock { s -> [SupervisorEvent] in
                defer { s.early.removeAll() }
                if s.early.isEmpty { s.draining = false }
                return s.early
            }
            if early.isEmpty { return }
            for e in early { sink.handle(e) }
        }
    }

    public func handle(_ event: SupervisorEvent) {
        let target = state.withLock { s -> (any SupervisorEventSink)? in
            guard let t = s.target, !s.draining else {
                s.early.append(event)
                return nil
            }
            return t
        }
        target?.handle(event)
    }

    public func coalescing(_ body: () -> Void) {
        if let target = state.withLock({ $0.target }) { target.coalescing(body) } else { body() }
    }

    public func waitForRoom() async { await state.withLock({ $0.target })?.waitForRoom() }
}
