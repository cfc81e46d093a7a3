#if canImport(Glibc)
import Glibc
#endif
import CHakoShim

/// An owned file descriptor: closed exactly once, when the owner is done or on deinit.
public final class FileDescriptor: @unchecked Sendable {
    public private(set) var rawValue: Int32

    public init(_ raw: Int32) { rawValue = raw }

    deinit { if rawValue >= 0 { Glibc.close(rawValue) } }

    public func close() {
        if rawValue >= 0 { Glibc.close(rawValue); rawValue = -1 }
    }

    /// This descriptor, or a close-on-exec copy of it numbered `lowest` or
    /// more. For one handed to a child at a fixed number (dup2 in spawn file
    /// actions): a source already among those numbers — a process started
    /// with stdin or stderr closed gets them for its own files — would be
    /// overwritten by an earlier dup2, or stay close-on-exec through a dup2
    /// onto itself.
    public func numbered(atLeast lowest: Int32) throws -> FileDescriptor {
        if rawValue >= lowest { return self }
        return FileDescriptor(try sys("fcntl") { fcntl(rawValue, F_DUPFD_CLOEXEC, lowest) })
    }

    /// Gives up ownership: the caller closes the returned fd.
    public func release() -> Int32 {
        let r = rawValue
        rawValue = -1
        return r
    }

    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws -> FileDescriptor {
        let fd = try sys("open", path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
        return FileDescriptor(fd)
    }

    public static func openAt(_ dir: FileDescriptor, _ path: String, _ flags: Int32, mode: mode_t = 0o644) throws -> FileDescriptor {
        let fd = try sys("open", path) { Glibc.openat(dir.rawValue, path, flags | O_CLOEXEC, mode) }
        return FileDescriptor(fd)
    }

    /// Opens `path` with every component resolved inside the directory `root`
    /// (openat2 RESOLVE_IN_ROOT): "..", absolute and relative symlinks cannot leave it.
    public static func openInRoot(_ root: FileDescriptor, _ path: String, _ flags: Int32, mode: mode_t = 0o644) throws -> FileDescriptor {
        let fd = try sys("open", path) { hako_open_in_root(root.rawValue, path, flags, Int32(mode)) }
        return FileDescriptor(fd)
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write(UnsafeRawBufferPointer($0)) }
    }

    public func write(_ string: String) throws {
        try write(Array(string.utf8))
    }

    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < buffer.count {
            let n = Glibc.write(rawValue, buffer.baseAddress! + off, buffer.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("write")
            }
            off += n
        }
    }

    /// Reads up to `count` bytes; an empty result means end of file.
    public func read(upTo count: Int) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: count)
        let n = try buf.withUnsafeMutableBytes { p in
            try sys("read") { Glibc.read(rawValue, p.baseAddress, count) }
        }
        buf.removeSubrange(n...)
        return buf
    }

    public func readAll() throws -> [UInt8] {
        var out: [UInt8] = []
        // An uninitialised chunk: a zeroed 64 KiB array cost every small read a
        // 64 KiB memset and the page faults of it (~65,000 instructions each).
        try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 65536) { chunk in
            while true {
                let n = try sys("read") { Glibc.read(rawValue, chunk.baseAddress, chunk.count) }
                if n == 0 { return }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[0..<n]))
            }
        }
        return out
    }
}

/// A pipe: both ends close-on-exec.
public func makePipe() throws -> (read: FileDescriptor, write: FileDescriptor) {
    var fds: [Int32] = [-1, -1]
    try sys("pipe") { hako_pipe2(&fds, O_CLOEXEC) }
    return (FileDescriptor(fds[0]), FileDescriptor(fds[1]))
}

/// A connected pair of unix stream sockets, both close-on-exec: unlike a
/// pipe's, a send to a peer that is gone fails (EPIPE with MSG_NOSIGNAL)
/// instead of raising SIGPIPE.
public func makeSocketPair() throws -> (FileDescriptor, FileDescriptor) {
    var fds: [Int32] = [-1, -1]
    try sys("socketpair") { socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) }
    return (FileDescriptor(fds[0]), FileDescriptor(fds[1]))
}

/// Writes a message to standard error (fd 2), unbuffered.
public func writeStderr(_ s: String) {
    var bytes = Array(s.utf8)
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress! + off, $0.count - off) }
        if n <= 0 { if n < 0 && errno == EINTR { continue }; return }
        off += n
    }
}
