import CSystemd
import FoundationEssentials
import Glibc
import Logging
import OwnThread

/// A swift-log handler that writes to the journal with structured fields
/// (`MESSAGE`, `PRIORITY`, `SYSLOG_IDENTIFIER`, and one field per metadata key).
/// The record is built here and sent by `LogOutbox`'s thread: a stalled
/// journald blocks that thread, never the task that logged.
public struct JournalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String
    let identifier: String
    let outbox: LogOutbox

    public init(label: String, identifier: String, outbox: LogOutbox = .shared) {
        self.label = label
        self.identifier = identifier
        self.outbox = outbox
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Journal field names: upper case letters, digits and underscores.
    static func fieldName(_ key: String) -> String {
        var out = ""
        for c in key.uppercased().unicodeScalars {
            out.unicodeScalars.append(("A"..."Z").contains(c) || ("0"..."9").contains(c) ? c : "_")
        }
        while out.hasPrefix("_") { out.removeFirst() }
        return out.isEmpty ? "FIELD" : String(out.prefix(64))
    }

    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    public func log(event: LogEvent) {
        var fields = [
            "MESSAGE=\(event.message)", "PRIORITY=\(Self.priority(event.level))", "SYSLOG_IDENTIFIER=\(identifier)",
            "LOGGER=\(label)",
        ]
        var merged = metadata
        if let m = event.metadata { merged.merge(m) { $1 } }
        for (k, v) in merged.sorted(by: { $0.key < $1.key }) { fields.append("\(Self.fieldName(k))=\(v)") }
        outbox.submit(.journal(fields))
    }

    /// Sends one record's fields with `sd_journal_sendv` (blocks while journald does not read).
    static func send(_ fields: [String]) {
        // One buffer for all fields; the iovecs point into it only inside the closure.
        var storage: [UInt8] = []
        var ranges: [Range<Int>] = []
        for f in fields {
            let start = storage.count
            storage.append(contentsOf: f.utf8)
            ranges.append(start..<storage.count)
        }
        storage.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            let iovecs = ranges.map { iovec(iov_base: base + $0.lowerBound, iov_len: $0.count) }
            _ = sd_journal_sendv(iovecs, Int32(iovecs.count))
        }
    }
}

/// A swift-log handler that writes lines to standard error in
/// `StreamLogHandler`'s format, through `LogOutbox`'s thread: a full pipe
/// (journald's stream stalled, a terminal paused) blocks that thread only.
public struct StderrLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String
    let outbox: LogOutbox

    public init(label: String, outbox: LogOutbox = .shared) {
        self.label = label
        self.outbox = outbox
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let m = event.metadata { merged.merge(m) { $1 } }
        let pretty = merged.isEmpty ? "" : " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let line = "\(Self.timestamp()) \(event.level)\(label.isEmpty ? "" : " ")\(label):\(pretty) [\(event.source)] \(event.message)\n"
        outbox.submit(.line(Array(line.utf8)))
    }

    static func timestamp() -> String {
        var now = time(nil)
        var local = tm()
        localtime_r(&now, &local)
        var buffer = [Int8](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &local)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Writes all of `bytes` to standard error (blocks while the pipe is full).
    static func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            guard var base = raw.baseAddress else { return }
            var left = raw.count
            while left > 0 {
                let n = Glibc.write(2, base, left)
                if n < 0 {
                    if errno == EINTR { continue }
                    return
                }
                base += n
                left -= n
            }
        }
    }
}

/// The log records not yet written, and the thread that writes them.
public final class LogOutbox: Sendable {
    public enum Record: Sendable {
        case journal([String])
        case line([UInt8])

        var isJournal: Bool {
            if case .journal = self { return true }
            return false
        }

        var size: Int {
            switch self {
            case .journal(let fields): return fields.reduce(0) { $0 + $1.utf8.count }
            case .line(let bytes): return bytes.count
            }
        }
    }

    /// Records in order, bounded: while the log is not read, records past
    /// the bound are counted and dropped, and a line says how many once it
    /// is read again. Memory stays bounded; nothing that logs ever waits.
    public struct Queue: OutboxBuffer {
        var records: [Record] = []
        var bytes = 0
        var dropped = 0
        let maxRecords: Int
        let maxBytes: Int

        public var isEmpty: Bool { records.isEmpty && dropped == 0 }

        public mutating func add(_ record: Record) {
            let size = record.size
            guard records.count < maxRecords, bytes + size <= maxBytes else {
                dropped += 1
                return
            }
            records.append(record)
            bytes += size
        }

        public mutating func take() -> Queue {
            defer {
                records = []
                bytes = 0
                dropped = 0
            }
            return self
        }
    }

    /// The process's one log thread.
    public static let shared = LogOutbox(maxRecords: 4096, maxBytes: 4 << 20)

    let outbox: Outbox<Queue>

    /// `write` replaces the real writers in tests.
    public init(maxRecords: Int, maxBytes: Int, write: (@Sendable (Record) -> Void)? = nil) {
        let write = write ?? LogOutbox.write
        outbox = Outbox(name: "log", empty: Queue(maxRecords: maxRecords, maxBytes: maxBytes)) { queue in
            for record in queue.records { write(record) }
            if queue.dropped > 0 {
                let text = "\(queue.dropped) log records dropped while the log was not read"
                // Records are dropped only while others wait, so the batch says where they go.
                let toJournal = queue.records.first?.isJournal ?? LogDestination.stderrIsJournal
                write(toJournal ? .journal(["MESSAGE=\(text)", "PRIORITY=4", "SYSLOG_IDENTIFIER=icws-bridged"]) : .line(Array("\(text)\n".utf8)))
            }
        }
    }

    public func submit(_ record: Record) { outbox.submit(record) }

    /// Waits until the records so far are written, or `timeout` passed (for
    /// the main thread before the process exits; never on Swift's pool).
    @discardableResult
    public func flush(timeout: Duration) -> Bool { outbox.flush(timeout: timeout) }

    static func write(_ record: Record) {
        switch record {
        case .journal(let fields): JournalLogHandler.send(fields)
        case .line(let bytes): StderrLogHandler.write(bytes)
        }
    }
}

/// Picks the journal when systemd connected stderr to it, stderr otherwise.
public enum LogDestination {
    public static var stderrIsJournal: Bool {
        guard let stream = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] else { return false }
        let parts = stream.split(separator: ":")
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]) else { return false }
        var st = stat()
        guard fstat(2, &st) == 0 else { return false }
        return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino
    }
}
