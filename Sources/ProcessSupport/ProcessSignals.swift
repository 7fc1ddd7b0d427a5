import DBusKit
import OwnThread

#if canImport(Glibc)
    import Glibc
#endif

/// SIGTERM, SIGINT and SIGHUP, taken by one thread that waits for them in
/// `sigwait` and handed on as a stream. No libdispatch signal source (whose
/// queue would start libdispatch's worker pool and its 1 s monitor), and no
/// code in a signal handler.
public enum ProcessSignals {
    static let handled: [Int32] = [SIGTERM, SIGINT, SIGHUP]

    /// Blocks the signals in the calling thread, and so in every thread made
    /// after it. Call first thing in `main`, before any other thread starts.
    public static func block() {
        var set = sigset_t()
        sigemptyset(&set)
        for s in handled { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// The signals as they come, from a thread of their own.
    public static func stream() -> AsyncStream<Int32> {
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        let started = startThread(name: "signals") {
            var set = sigset_t()
            sigemptyset(&set)
            for s in handled { sigaddset(&set, s) }
            while true {
                var signal: Int32 = 0
                guard sigwait(&set, &signal) == 0 else { continue }
                continuation.yield(signal)
            }
        }
        if !started {
            // No thread to take them: let the signals act as they would by
            // default (a stop without the logout beats a daemon deaf to SIGTERM).
            var set = sigset_t()
            sigemptyset(&set)
            for s in handled { sigaddset(&set, s) }
            pthread_sigmask(SIG_UNBLOCK, &set, nil)
            continuation.finish()
        }
        return stream
    }
}
