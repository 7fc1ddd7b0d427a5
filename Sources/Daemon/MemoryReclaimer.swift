import CMalloc
import Synchronization

/// Gives memory back to the system after bulk work.
///
/// A users snapshot of 10,000 entries, its signal and a `GetUsers` reply
/// allocate several megabytes for a moment. glibc keeps freed memory in its
/// arenas (one per thread that allocated), so without help the daemon's
/// resident size stays at its peak. Once bulk work of at least `threshold`
/// items has been reported and nothing more has come for `quiet`, this calls
/// `malloc_trim(0)`, which returns the free pages of every arena.
public final class MemoryReclaimer: Sendable {
    private struct State {
        var pending = 0
        var lastNote: ContinuousClock.Instant?
        var scheduled = false
        var trims = 0
    }
    private let state = Mutex(State())
    let threshold: Int
    let quiet: Duration

    public init(threshold: Int = 500, quiet: Duration = .seconds(1)) {
        self.threshold = threshold
        self.quiet = quiet
    }

    /// How many times memory was given back so far.
    public var trims: Int { state.withLock { $0.trims } }

    /// Bulk work of `items` entries just happened.
    public func note(items: Int) {
        let start = state.withLock { s -> Bool in
            s.pending += max(items, 0)
            s.lastNote = .now
            guard s.pending >= threshold, !s.scheduled else { return false }
            s.scheduled = true
            return true
        }
        guard start else { return }
        Task.detached(priority: .background) { [self] in await self.trimWhenQuiet() }
    }

    private func trimWhenQuiet() async {
        while true {
            let wait = state.withLock { s -> Duration in
                guard let last = s.lastNote else { return .zero }
                return last + quiet - .now
            }
            if wait <= .zero { break }
            try? await Task.sleep(for: wait)
        }
        state.withLock {
            $0.pending = 0
            $0.scheduled = false
        }
        _ = malloc_trim(0)
        state.withLock { $0.trims += 1 }
    }
}
