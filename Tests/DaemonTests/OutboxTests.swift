import Foundation
import OwnThread
import Synchronization
import Systemd
import Testing

/// Calls that can block on another process run on a thread of their own:
/// the caller never waits, what waits is bounded or coalesced, and it all
/// goes out in order once the other side reads again.
@Suite struct OutboxTests {
    /// A gate the delivering thread waits on, as sd_notify waits on a full socket.
    final class Gate: Sendable {
        let open = Mutex(false)
        let delivered = Mutex<[[String]]>([])
        func wait() { while !open.withLock({ $0 }) { usleep(1000) } }
    }

    @Test func aBlockedReceiverNeverBlocksTheCaller() {
        let gate = Gate()
        let outbox = Outbox(name: "test-notify", empty: NotifyQueue()) { queue in
            gate.wait()
            gate.delivered.withLock { $0.append(contentsOf: queue.messages) }
        }
        let started = ContinuousClock.now
        outbox.submit(["READY=1", "STATUS=connecting"])
        for i in 0..<10_000 {
            outbox.submit(["STATUS=step \(i)"])
            if i % 100 == 0 { outbox.submit(["WATCHDOG=1"]) }
        }
        outbox.submit(["RELOADING=1", "MONOTONIC_USEC=1"])
        outbox.submit(["READY=1"])
        outbox.submit(["STATUS=last"])
        outbox.submit(["WATCHDOG=1"])
        // 10,000 submissions while nothing is read: none waited for the receiver.
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(!outbox.flush(timeout: .milliseconds(200)), "nothing goes while the receiver does not read")
        gate.open.withLock { $0 = true }
        #expect(outbox.flush(timeout: .seconds(10)))
        let sent = gate.delivered.withLock { $0 }
        // In order; the refreshes between state changes coalesced to the latest STATUS= and one WATCHDOG=1.
        #expect(sent.first == ["READY=1", "STATUS=connecting"] || sent.first == ["READY=1", "STATUS=connecting"])
        #expect(sent.count <= 6, "\(sent.count) messages: \(sent.prefix(8))")
        #expect(sent.contains(["RELOADING=1", "MONOTONIC_USEC=1"]) && sent.contains(["READY=1"]))
        let reloading = sent.firstIndex(of: ["RELOADING=1", "MONOTONIC_USEC=1"]) ?? 0
        let ready = sent.lastIndex(of: ["READY=1"]) ?? 0
        #expect(reloading < ready)
        #expect(sent.last?.contains("STATUS=last") == true && sent.last?.contains("WATCHDOG=1") == true)
        #expect(sent.flatMap { $0 }.filter { $0.hasPrefix("STATUS=step") }.count <= 2)
    }

    @Test func notifyQueueCoalescesRefreshesOnly() {
        var q = NotifyQueue()
        q.add(["STATUS=a"])
        q.add(["WATCHDOG=1"])
        q.add(["STATUS=b"])
        #expect(q.messages == [["WATCHDOG=1", "STATUS=b"]])
        q.add(["STOPPING=1", "STATUS=stopping"])
        q.add(["STATUS=c"])
        #expect(q.messages == [["WATCHDOG=1", "STATUS=b"], ["STOPPING=1", "STATUS=stopping"], ["STATUS=c"]])
        for i in 0..<100 { q.add(["RELOADING=1", "MONOTONIC_USEC=\(i)"]) }
        #expect(q.messages.count == NotifyQueue.limit)
    }

    /// A log that is not read drops what does not fit, counts it, and says
    /// so once it is read again; the lines that fit go out whole and in order.
    @Test func aStalledLogDropsAndCountsInsteadOfWaiting() {
        let gate = Gate()
        let written = Mutex<[String]>([])
        let log = LogOutbox(maxRecords: 50, maxBytes: 1 << 20) { record in
            gate.wait()
            if case .line(let bytes) = record { written.withLock { $0.append(String(decoding: bytes, as: UTF8.self)) } }
        }
        let started = ContinuousClock.now
        for i in 0..<5_000 { log.submit(.line(Array("line \(i)\n".utf8))) }
        #expect(ContinuousClock.now - started < .seconds(5))
        gate.open.withLock { $0 = true }
        #expect(log.flush(timeout: .seconds(10)))
        let lines = written.withLock { $0 }
        #expect(lines.first == "line 0\n")
        // At most one full batch in the writer's hands and one full buffer
        // waiting, each with its notice (the thread may take its first batch
        // after records were already dropped).
        #expect(lines.count <= 2 * (50 + 1), "\(lines.count)")
        #expect(lines.contains { $0.contains("log records dropped while the log was not read") })
        let kept = lines.filter { $0.hasPrefix("line ") }.compactMap { Int($0.dropFirst(5).dropLast()) }
        #expect(kept == kept.sorted())
    }
}
