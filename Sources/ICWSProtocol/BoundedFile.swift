#if canImport(Glibc)
    import Glibc
#endif

/// Why a file could not be read by `BoundedFile.read`.
public struct FileReadError: Error, CustomStringConvertible, Equatable {
    public var description: String
}

/// Reads small files that come from outside (configuration, password,
/// credential, CA file) with a size limit, refusing anything that is not a
/// regular file: `/dev/zero` or a FIFO given as a path must not hang the
/// daemon or fill its memory.
public enum BoundedFile {
    public static func read(path: String, limit: Int) throws(FileReadError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else {
            let e = errno
            throw FileReadError(description: e == ENOENT ? "does not exist" : e == EACCES ? "cannot be read (permissions?)" : "cannot be opened (errno \(e))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileReadError(description: "cannot be examined (errno \(errno))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FileReadError(description: "is not a regular file") }
        guard st.st_size <= limit else {
            throw FileReadError(description: "is \(st.st_size) bytes; at most \(limit) are read")
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileReadError(description: "cannot be read (errno \(errno))")
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            // The file may grow after fstat: the limit holds for what is read.
            guard bytes.count <= limit else { throw FileReadError(description: "is larger than \(limit) bytes") }
        }
        return bytes
    }
}
