#if canImport(Glibc)
    import Glibc
#endif

/// A message's wire bytes in memory of their own, whose address stays put
/// while they wait to be written (a `sendmsg` takes many at once).
final class WireMessage: @unchecked Sendable {
    private let base: UnsafeMutableRawPointer
    private let count: Int

    /// A copy of `bytes` with `serial` set; nil when out of memory.
    init?(_ bytes: [UInt8], serial: UInt32) {
        guard let p = malloc(max(bytes.count, 12)) else { return nil }
        bytes.withUnsafeBytes { b in
            if let src = b.baseAddress { p.copyMemory(from: src, byteCount: b.count) }
        }
        p.storeBytes(of: serial.littleEndian, toByteOffset: 8, as: UInt32.self)
        base = p
        count = bytes.count
    }

    deinit { free(base) }

    var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}

/// The wire messages the bus thread has yet to write, in order: many go out
/// in one `sendmsg`, and a message the socket took only part of is finished
/// before anything else is written.
struct WireQueue {
    private var messages: [WireMessage] = []
    /// The first message not wholly written, and how much of it is.
    private var head = 0
    private var sent = 0
    /// Bytes left to write.
    private(set) var pendingBytes = 0
    /// The socket took no more; cleared when the bus thread wakes again.
    var blocked = false
    /// Messages written by one `sendmsg` at most.
    static let batch = 128

    var isEmpty: Bool { head == messages.count }
    /// The socket took part of a message: nothing else may be written before its rest.
    var isMidMessage: Bool { sent > 0 }

    mutating func append(_ m: WireMessage) {
        messages.append(m)
        pendingBytes += m.buffer.count
    }

    enum Outcome {
        case done
        case wouldBlock
        case failed(Int32)
    }

    /// Writes as much as the socket takes now.
    mutating func write(to socket: Int32) -> Outcome {
        defer { compact() }
        while !isEmpty {
            let (n, e) = messages.withUnsafeBufferPointer { msgs in
                withUnsafeTemporaryAllocation(of: iovec.self, capacity: Self.batch) { iov -> (Int, Int32) in
                    var count = 0
                    var i = head
                    while i < msgs.count, count < Self.batch {
                        let b = msgs[i].buffer
                        let skip = i == head ? sent : 0
                        iov[count] = iovec(iov_base: UnsafeMutableRawPointer(mutating: b.baseAddress.map { $0 + skip }), iov_len: b.count - skip)
                        count += 1
                        i += 1
                    }
                    var h = msghdr()
                    h.msg_iov = iov.baseAddress
                    h.msg_iovlen = count
                    let n = sendmsg(socket, &h, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                    return (n, n < 0 ? errno : 0)
                }
            }
            if n > 0 {
                advance(by: n)
                continue
            }
            if n < 0, e == EINTR { continue }
            if n < 0, e == EAGAIN || e == EWOULDBLOCK {
                blocked = true
                return .wouldBlock
            }
            discard()
            return .failed(e)
        }
        discard()
        return .done
    }

    private mutating func advance(by n: Int) {
        var left = n
        pendingBytes -= n
        while left > 0, !isEmpty {
            let rest = messages[head].buffer.count - sent
            if left < rest {
                sent += left
                return
            }
            left -= rest
            head += 1
            sent = 0
        }
    }

    /// Drops written messages once they are half of the queue (so memory
    /// stays within twice the backlog, at amortized constant cost).
    private mutating func compact() {
        if head >= Self.batch, head * 2 >= messages.count {
            messages.removeFirst(head)
            head = 0
        }
    }

    /// Empties the queue (all written, or dropped with the connection).
    mutating func discard() {
        messages.removeAll(keepingCapacity: messages.capacity <= 4096)
        head = 0
        sent = 0
        pendingBytes = 0
    }
}
