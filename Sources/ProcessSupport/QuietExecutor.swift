import CConcurrencyHooks
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// Runs the daemon's Swift tasks, and their timers, on SwiftNIO's event
/// loops instead of libdispatch's worker pool.
///
/// Why: on Linux, libdispatch's own work queue wakes once a second for as
/// long as the process lives (`_dispatch_workq_monitor_pools`, a 1 s timer
/// created with the first worker thread), which alone is 60 wake-ups a
/// minute for a daemon that should sleep. NIO's loops sleep in `epoll_wait`
/// until an fd is ready or the earliest timer is due. It also saves the
/// thread hop from an I/O loop to the cooperative pool on every message.
///
/// The Swift runtime offers hooks for exactly this (`swift_task_enqueueGlobal`
/// and the two delayed forms); this sets all three, as NIO's own
/// `unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor`
/// sets the first (which finds it with `dlsym`, and so fails in the shipped
/// binary, linked statically without exported symbols). It is unsafe in the
/// same way: it relies on the hooks' C signatures, and must run once, at
/// start, before any task exists.
public enum QuietExecutor {
    typealias GlobalOriginal = @convention(thin) (UnownedJob) -> Void
    typealias GlobalHook = @convention(thin) (UnownedJob, GlobalOriginal) -> Void
    typealias DelayOriginal = @convention(thin) (UInt64, UnownedJob) -> Void
    typealias DelayHook = @convention(thin) (UInt64, UnownedJob, DelayOriginal) -> Void
    typealias DeadlineOriginal = @convention(thin) (Int64, Int64, Int64, Int64, Int32, UnownedJob) -> Void
    typealias DeadlineHook = @convention(thin) (Int64, Int64, Int64, Int64, Int32, UnownedJob, DeadlineOriginal) -> Void

    /// Installs the three hooks; false (and nothing changed) when another
    /// hook is already in place. Call once, first thing in `main`.
    @discardableResult
    public static func install() -> Bool {
        // The closures are written where they become thin function pointers:
        // the compiler makes a thin reference only of a literal in place.
        withUnsafeTemporaryAllocation(of: GlobalHook.self, capacity: 1) { global in
            global.baseAddress!.initialize(to: { job, _ in QuietExecutor.schedule(job, in: 0) })
            return withUnsafeTemporaryAllocation(of: DelayHook.self, capacity: 1) { delay in
                delay.baseAddress!.initialize(to: { nanoseconds, job, _ in QuietExecutor.schedule(job, in: nanoseconds) })
                return withUnsafeTemporaryAllocation(of: DeadlineHook.self, capacity: 1) { deadline in
                    deadline.baseAddress!.initialize(to: { seconds, nanoseconds, toleranceSeconds, toleranceNanoseconds, clock, job, original in
                        guard let now = QuietExecutor.now(clock: clock) else {
                            original(seconds, nanoseconds, toleranceSeconds, toleranceNanoseconds, clock, job)
                            return
                        }
                        let due = seconds &* 1_000_000_000 &+ nanoseconds
                        QuietExecutor.schedule(job, in: UInt64(max(0, due &- now)))
                    })
                    guard let g = pointer(global.baseAddress!), let d = pointer(delay.baseAddress!), let dl = pointer(deadline.baseAddress!)
                    else { return false }
                    return icws_set_concurrency_hooks(g, d, dl) == 1
                }
            }
        }
    }

    /// The function pointer stored at `slot`, as the runtime's hook variables hold it.
    private static func pointer<F>(_ slot: UnsafeMutablePointer<F>) -> UnsafeMutableRawPointer? {
        slot.withMemoryRebound(to: UnsafeMutableRawPointer?.self, capacity: 1) { $0.pointee }
    }

    /// Runs `job` on an event loop of NIO's singleton group (the caller's own
    /// loop when it runs on one), now or after `nanoseconds`.
    static func schedule(_ job: UnownedJob, in nanoseconds: UInt64) {
        let loop = MultiThreadedEventLoopGroup.singleton.any()
        let executor = loop.executor
        if nanoseconds == 0 {
            executor.enqueue(job)
            return
        }
        loop.scheduleTask(in: .nanoseconds(Int64(clamping: nanoseconds))) { executor.enqueue(job) }
    }

    /// Now on the runtime's clock `id` (1 continuous: CLOCK_BOOTTIME, 2
    /// suspending: CLOCK_MONOTONIC), in nanoseconds; nil for another clock.
    static func now(clock id: Int32) -> Int64? {
        var ts = timespec()
        switch id {
        case 1: clock_gettime(CLOCK_BOOTTIME, &ts)
        case 2: clock_gettime(CLOCK_MONOTONIC, &ts)
        default: return nil
        }
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}
