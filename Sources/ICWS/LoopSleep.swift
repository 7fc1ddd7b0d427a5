import NIOCore
import NIOPosix

/// Waits `duration` on one of NIO's event loops: a single timer that exists
/// only while something waits on it, cancelled with the task.
///
/// The daemon sleeps with this rather than `Task.sleep`, whose timers on
/// Linux go through libdispatch's worker pool; that pool's monitor wakes the
/// process every second for as long as it lives (see `QuietExecutor`).
public func loopSleep(for duration: Duration) async throws {
    let (seconds, attoseconds) = duration.components
    let nanoseconds = seconds.multipliedReportingOverflow(by: 1_000_000_000)
    let amount: TimeAmount =
        nanoseconds.overflow ? .nanoseconds(.max) : .nanoseconds(max(0, nanoseconds.partialValue &+ attoseconds / 1_000_000_000))
    try Task.checkCancellation()
    let scheduled = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: amount) {}
    do {
        try await withTaskCancellationHandler {
            try await scheduled.futureResult.get()
        } onCancel: {
            scheduled.cancel()
        }
    } catch {
        throw CancellationError()
    }
}

/// `loopSleep` until an instant of the continuous clock.
public func loopSleep(until deadline: ContinuousClock.Instant) async throws {
    try await loopSleep(for: max(.zero, deadline - .now))
}
