/// One server-sent event.
public struct SSEEvent: Sendable, Equatable {
    public var type: String
    /// The data lines as received (joined by LF): the message is decoded from
    /// these bytes once, never turned into a String on the way.
    public var data: [UInt8]
    public var id: String?

    public init(type: String = "message", bytes: [UInt8], id: String? = nil) {
        self.type = type
        self.data = bytes
        self.id = id
    }

    public init(type: String = "message", data: String, id: String? = nil) {
        self.init(type: type, bytes: Array(data.utf8), id: id)
    }
}

public struct SSEParseError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// A streaming parser for `text/event-stream` (the WHATWG rules): lines end in
/// LF, CR or CRLF (a CRLF split across chunks included), `data:` lines join with
/// LF, a blank line dispatches, comments (`:ping`) count as keep-alives. It
/// holds only the current line and the current event, never the stream.
public struct SSEParser: Sendable {
    public enum Output: Sendable, Equatable {
        case event(SSEEvent)
        case comment
    }

    /// Largest event accepted; a larger one is an error, not an allocation.
    public var maxEventBytes: Int
    private var line: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false
    private var eventType = ""
    private var lastEventId: String?
    private var skipLF = false
    private var sawBOMCheck = false

    public init(maxEventBytes: Int = 64 << 20) {
        self.maxEventBytes = maxEventBytes
    }

    /// Feeds a chunk; calls `emit` for every complete event or comment in it.
    public mutating func feed<Bytes: Sequence<UInt8>>(
        _ bytes: Bytes, _ emit: (Output) throws -> Void
    ) throws {
        let done: Void? = try bytes.withContiguousStorageIfAvailable { b in try feed(UnsafeRawBufferPointer(b), emit) }
        if done == nil {
            try Array(bytes).withUnsafeBytes { try feed($0, emit) }
        }
    }

    /// The same for a raw buffer (what the HTTP client hands over): each line's
    /// bytes are found by one scan for CR or LF and appended as one run.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ emit: (Output) throws -> Void) throws {
        let n = bytes.count
        var i = 0
        while i < n {
            if skipLF {
                skipLF = false
                if bytes[i] == 0x0A {
                    i += 1
                    continue
                }
            }
            var j = i
            while j < n, bytes[j] != 0x0A, bytes[j] != 0x0D { j += 1 }
            if j > i {
                if line.count + (j - i) + data.count > maxEventBytes {
                    throw SSEParseError(description: "event larger than \(maxEventBytes) bytes")
                }
                line.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[i..<j]))
            }
            guard j < n else { return }
            if bytes[j] == 0x0D { skipLF = true }
            try processLine(emit)
            line.removeAll(keepingCapacity: true)
            i = j + 1
        }
    }

    private mutating func processLine(_ emit: (Output) throws -> Void) throws {
        if !sawBOMCheck {
            sawBOMCheck = true
            if line.starts(with: [0xEF, 0xBB, 0xBF]) { line.removeFirst(3) }
        }
        if line.isEmpty {
            if hasData && !data.isEmpty {
                let event = SSEEvent(type: eventType.isEmpty ? "message" : eventType, bytes: data, id: lastEventId)
                data = []
                hasData = false
                eventType = ""
                try emit(.event(event))
            } else {
                data.removeAll(keepingCapacity: true)
                hasData = false
                eventType = ""
            }
            return
        }
        if line[0] == UInt8(ascii: ":") {
            try emit(.comment)
            return
        }
        var field: ArraySlice<UInt8>
        var value: ArraySlice<UInt8>
        if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            field = line[..<colon]
            value = line[(colon + 1)...]
            if value.first == 0x20 { value = value.dropFirst() }
        } else {
            field = line[...]
            value = []
        }
        // Field names compared as bytes: no String per line.
        if field.elementsEqual("data".utf8) {
            if hasData { data.append(0x0A) }
            data.append(contentsOf: value)
            hasData = true
        } else if field.elementsEqual("event".utf8) {
            eventType = String(decoding: value, as: UTF8.self)
        } else if field.elementsEqual("id".utf8) {
            if !value.contains(0) { lastEventId = String(decoding: value, as: UTF8.self) }
        }  // retry and unknown fields are ignored
    }
}
