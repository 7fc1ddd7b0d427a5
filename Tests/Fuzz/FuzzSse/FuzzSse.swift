import ICWSProtocol

#if canImport(Glibc)
    import Glibc
#endif

#if FUZZING
    /// libFuzzer entry (built by scripts/fuzz with -sanitize=fuzzer -D FUZZING).
    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        guard let data else { return 0 }
        FuzzEntries.sse(UnsafeBufferPointer(start: data, count: size))
        return 0
    }
#else
    /// Without the fuzzer: replays the files named on the command line.
    @main struct Replay {
        static func main() {
            for path in CommandLine.arguments.dropFirst() {
                guard let bytes = readFile(path) else { continue }
                bytes.withUnsafeBufferPointer { FuzzEntries.sse($0) }
            }
        }
    }
#endif

func readFile(_ path: String) -> [UInt8]? {
    guard let f = fopen(path, "rb") else { return nil }
    defer { fclose(f) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&buffer, 1, buffer.count, f)
        if n <= 0 { break }
        out.append(contentsOf: buffer[0..<n])
    }
    return out
}
