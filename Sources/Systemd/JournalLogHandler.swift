import CSystemd
import FoundationEssentials
import Glibc
import Logging

/// A swift-log handler that writes to the journal with structured fields
/// (`MESSAGE`, `PRIORITY`, `SYSLOG_IDENTIFIER`, and one field per metadata key).
public struct JournalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String
    let identifier: String

    public init(label: String, identifier: String) {
        self.label = label
        self.identifier = identifier
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
