import FuzzTargets

#if canImport(Glibc)
    import Glibc
#endif

/// One binary, four libFuzzer targets: ICWS_FUZZ_TARGET = sse | message | challenge | bus.
let target: @Sendable (UnsafeBufferPointer<UInt8>) -> Void = {
    switch getenv("ICWS_FUZZ_TARGET").map({ String(cString: $0) }) ?? "" {
    case "message": return FuzzEntries.message
    case "challenge": return FuzzEntries.challenge
    case "bus": return FuzzEntries.bus
    default: return FuzzEntries.sse
    }
}()

#if FUZZING
    /// libFuzzer entry (built by scripts/fuzz with -sanitize=fuzzer -D FUZZING).
    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        guard let data else { return 0 }
        target(UnsafeBufferPointer(start: data, count: size))
        return 0
    }

    @_silgen_name("LLVMFuzzerRunDriver")
    func LLVMFuzzerRunDriver(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    /// SwiftPM links an executable's entry as MODULE_main; hand it to libFuzzer's driver.
    @_cdecl("icws_fuzz_main")
    public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
        var count = argc
        var vector = argv
        return LLVMFuzzerRunDriver(&count, &vector, fuzzTestOneInput)
    }
#else
    /// Without the fuzzer: replays the files named on the command line.
    @main struct Replay {
        static func main() {
            for path in CommandLine.arguments.dropFirst() {
                guard let f = fopen(path, "rb") else { continue }
                var bytes: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 65536)
                while case let n = fread(&buffer, 1, buffer.count, f), n > 0 { bytes.append(contentsOf: buffer[0..<n]) }
                fclose(f)
                bytes.withUnsafeBufferPointer { target($0) }
            }
        }
    }
#endif
