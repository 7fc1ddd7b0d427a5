import CMalloc
import ICWS
import Synchronization

/// Gives memory back to the system after work.
///
/// A users snapshot of 10,000 entries, its signal and a `GetUsers` reply
/// allocate several megabytes for a moment, and so does one very large
/// message. glibc keeps freed memory in its arenas (one per thread that
/// allocated), so without help the daemon's resident size stays at its peak.
/// This calls `malloc_trim(0)`, which returns the free pages of every arena,
/// once the work has stopped for `quiet`: right then after bulk work (at least
/// `threshold` entries), and at most every `interval` after anything less.
public final class MemoryReclaimer: Sendable {
    private struct State {
        var pending = 0
        var lastNote: ContinuousClock.Instant?
        var lastTrim: ContinuousClock.Instant?
        var scheduled = false
        var trims = 0
    }
    private let state = Mutex(State())
    let threshold: Int
    let quiet: Duration
    let interval: Duration

    public init(threshold: Int = 500, quiet: Duration = .seconds(1), interval: Duration = .seconds(30)) {
        self.threshold = threshold
        self.quiet = quiet
        self.interval = interval
    }

    /// How many times memory was given back so far.
    public var trims: Int { state.withLock { $0.trims } }

    /// Work on `items` entries just happened.
    public func note(items: Int) {
        let start = state.withLock { s -> Bool in
            s.pending += max(items, 1)
            s.lastNote = .now
            guard !s.scheduled else { return false }
            s.scheduled = true
            return true
        }
        guard start else { return }
        Task.detached(priority: .background) { [self] in await self.trimWhenDue() }
    }

    private func trimWhenDue() async {
        while true {
            let wait = state.withLock { s -> Duration in
                let now = ContinuousClock.now
                var due = (s.lastNote ?? now) + quiet
                if s.pending < threshold, let last = s.lastTrim { due = max(due, last + interval) }
                return due - now
            }
            if wait <= .zero { break }
            try? await loopSleep(for: wait)
        }
        state.withLock {
            $0.pending = 0
            $0.scheduled = false
        }
        _ = malloc_trim(0)
        state.withLock {
            $0.trims += 1
            $0.lastTrim = .now
        }
    }
}
