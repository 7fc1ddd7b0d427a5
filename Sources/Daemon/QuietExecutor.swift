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
/// and the two delayed forms); NIO installs the first, this installs the
/// other two. Like NIO's, it is `unsafe`: it relies on the hooks' C
/// signatures, and must run once, at start, before any task sleeps.
public enum QuietExecutor {
    typealias DelayOriginal = @convention(thin) (UInt64, UnownedJob) -> Void
    typealias DelayHook = @convention(thin) (UInt64, UnownedJob, DelayOriginal) -> Void
    typealias DeadlineOriginal = @convention(thin) (Int64, Int64, Int64, Int64, Int32, UnownedJob) -> Void
    typealias DeadlineHook = @convention(thin) (Int64, Int64, Int64, Int64, Int32, UnownedJob, DeadlineOriginal) -> Void

    /// True when all three hooks are in place (false: the default executor stays, nothing else changes).
    @discardableResult
    public static func install() -> Bool {
        guard let handle = dlopen(nil, RTLD_NOW),
            let delaySlot = dlsym(handle, "swift_task_enqueueGlobalWithDelay_hook"),
            let deadlineSlot = dlsym(handle, "swift_task_enqueueGlobalWithDeadline_hook")
        else { return false }
        guard NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor() else { return false }
        // The closures are written where they become thin function pointers:
        // the compiler makes a thin reference only of a literal in place.
        withUnsafeTemporaryAllocation(of: DelayHook.self, capacity: 1) { slot in
            slot.baseAddress!.initialize(to: { nanoseconds, job, _ in QuietExecutor.schedule(job, in: nanoseconds) })
            slot.baseAddress!.withMemoryRebound(to: UnsafeRawPointer?.self, capacity: 1) { fn in
                delaySlot.assumingMemoryBound(to: UnsafeRawPointer?.self).pointee = fn.pointee
            }
        }
        withUnsafeTemporaryAllocation(of: DeadlineHook.self, capacity: 1) { slot in
            slot.baseAddress!.initialize(to: { seconds, nanoseconds, toleranceSeconds, toleranceNanoseconds, clock, job, original in
                guard let now = QuietExecutor.now(clock: clock) else {
                    original(seconds, nanoseconds, toleranceSeconds, toleranceNanoseconds, clock, job)
                    return
                }
                let due = seconds &* 1_000_000_000 &+ nanoseconds
                QuietExecutor.schedule(job, in: UInt64(max(0, due &- now)))
            })
            slot.baseAddress!.withMemoryRebound(to: UnsafeRawPointer?.self, capacity: 1) { fn in
                deadlineSlot.assumingMemoryBound(to: UnsafeRawPointer?.self).pointee = fn.pointee
            }
        }
        return true
    }

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

