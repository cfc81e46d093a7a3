#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoRuntime
import HakoSystem

/// The terminal of the calling process, put in raw mode while a container owns it.
public final class RawTerminal {
    private var saved = [UInt8](repeating: 0, count: 256)
    private let fd: Int32
    private var active = false

    public init?(fd: Int32) {
        guard isatty(fd) == 1 else { return nil }
        self.fd = fd
    }

    public func enter() {
        if hako_tty_raw(fd, &saved, saved.count) == 0 { active = true }
    }

    public func restore() {
        if active { hako_tty_restore(fd, saved); active = false }
    }

    deinit { restore() }

    public static func size(of fd: Int32) -> TerminalSize? {
        var rows: UInt16 = 0, cols: UInt16 = 0
        guard hako_tty_size(fd, &rows, &cols) == 0, rows > 0, cols > 0 else { return nil }
        return TerminalSize(rows: rows, cols: cols)
    }
}

/// Relays between this process's stdio and a container: a monitor connection
/// (run, start -a) or a terminal master (exec -t). Signals this process gets
/// are forwarded (Docker's sig-proxy); window size changes are passed on.
public enum AttachSession {
    static let forwarded: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH]

    /// Runs until the container's process exits; returns its exit code, or nil
    /// when the user typed `detachKeys` on stdin (the container runs on).
    /// `forwardSignals` false: only window size changes are passed on (`attach --sig-proxy=false`).
    public static func run(_ conn: MonitorConnection, stdin: Bool, tty: Bool, detachKeys: [UInt8] = [],
                           forwardSignals: Bool = true) throws -> Int32? {
        var oldMask = [UInt8](repeating: 0, count: 256)
        let signals = forwardSignals ? forwarded : [SIGWINCH]
        let sigfd = FileDescriptor(signals.withUnsafeBufferPointer { hako_signalfd_open($0.baseAddress, Int32($0.count), &oldMask, oldMask.count) })
        defer { hako_sigmask_restore(oldMask) }
        let raw = tty && stdin ? RawTerminal(fd: 0) : nil
        raw?.enter()
        defer { raw?.restore() }
        if tty, let s = RawTerminal.size(of: 0) ?? RawTerminal.size(of: 1) { try? conn.send(.resize(rows: s.rows, cols: s.cols)) }

        var stdinOpen = stdin
        var buf = [UInt8](repeating: 0, count: 32768)
        var detach = DetachMatcher(keys: tty ? detachKeys : [])  // as docker: only a terminal detaches
        while true {
            for f in try conn.pending() {
                switch f {
                case .stdout(let b): writeAll(1, b)
                case .stderr(let b): writeAll(2, b)
                case .exit(let code, _): return code
                default: break
                }
            }
            var fds = [pollfd(fd: conn.fd.rawValue, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: sigfd.rawValue, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: stdinOpen ? 0 : -1, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 3, -1) < 0 {
                if errno == EINTR { continue }
                throw SystemError("poll")
            }
            if fds[1].revents != 0 {
                while true {
                    let sig = hako_signalfd_read(sigfd.rawValue)
                    if sig <= 0 { break }
                    if sig == SIGWINCH {
                        if let s = RawTerminal.size(of: 0) ?? RawTerminal.size(of: 1) { try? conn.send(.resize(rows: s.rows, cols: s.cols)) }
                    } else {
                        try? conn.send(.signal(sig))
                    }
                }
            }
            if stdinOpen && fds[2].revents != 0 {
                let n = buf.withUnsafeMutableBytes { Glibc.read(0, $0.baseAddress, $0.count) }
                if n > 0 {
                    let (pass, detached) = detach.feed(Array(buf[0..<n]))
                    if !pass.isEmpty { try? conn.send(.stdin(pass)) }
                    if detached { return nil }
                } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                    stdinOpen = false
                    if !tty { try? conn.send(.closeStdin) }
                }
            }
            if fds[0].revents != 0 {
                if try !conn.fill() {
                    for f in try conn.pending() {
                        switch f {
                        case .stdout(let b): writeAll(1, b)
                        case .stderr(let b): writeAll(2, b)
                        case .exit(let code, _): return code
                        default: break
                        }
                    }
                    throw HakoError(.failed, "lost the connection to the container's monitor")
                }
            }
        }
    }

    /// Finds the detach sequence in what the user types: bytes that may begin
    /// it are held back until it is complete (detach) or broken (passed on).
    struct DetachMatcher {
        let keys: [UInt8]
        var held: [UInt8] = []

        mutating func feed(_ input: [UInt8]) -> (pass: [UInt8], detached: Bool) {
            guard !keys.isEmpty else { return (input, false) }
            var out: [UInt8] = []
            for b in input {
                held.append(b)
                while !held.isEmpty && !keys.starts(with: held) {
                    out.append(held.removeFirst())
                }
                if held == keys { return (out, true) }
            }
            return (out, false)
        }
    }

    /// Relays between this process's stdio and a terminal master until the
    /// process `pid` exits; returns its exit code.
    public static func runTerminal(master: FileDescriptor, pid: Int32, stdin: Bool) throws -> Int32 {
        var oldMask = [UInt8](repeating: 0, count: 256)
        let sigfd = FileDescriptor([SIGWINCH, SIGCHLD].withUnsafeBufferPointer { hako_signalfd_open($0.baseAddress, 2, &oldMask, oldMask.count) })
        defer { hako_sigmask_restore(oldMask) }
        let raw = stdin ? RawTerminal(fd: 0) : nil
        raw?.enter()
        defer { raw?.restore() }
        if let s = RawTerminal.size(of: 0) ?? RawTerminal.size(of: 1) { hako_tty_set_size(master.rawValue, s.rows, s.cols) }
        var stdinOpen = stdin
        var masterOpen = true
        var buf = [UInt8](repeating: 0, count: 32768)
        var status: Int32 = 0
        var exited = false
        while masterOpen || !exited {
            if !exited, waitpid(pid, &status, WNOHANG) == pid { exited = true }
            if exited && !masterOpen { break }
            var fds = [pollfd(fd: masterOpen ? master.rawValue : -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: sigfd.rawValue, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: stdinOpen ? 0 : -1, events: Int16(POLLIN), revents: 0)]
            let r = poll(&fds, 3, exited ? 50 : 1000)
            if r < 0 && errno != EINTR { throw SystemError("poll") }
            if exited && r == 0 { break }
            if fds[1].revents != 0 {
                while true {
                    let sig = hako_signalfd_read(sigfd.rawValue)
                    if sig <= 0 { break }
                    if sig == SIGWINCH, let s = RawTerminal.size(of: 0) ?? RawTerminal.size(of: 1) {
                        hako_tty_set_size(master.rawValue, s.rows, s.cols)
                    }
                }
            }
            if masterOpen && fds[0].revents != 0 {
                let n = buf.withUnsafeMutableBytes { Glibc.read(master.rawValue, $0.baseAddress, $0.count) }
                if n > 0 { writeAll(1, Array(buf[0..<n])) } else if n == 0 || errno != EINTR { masterOpen = false }
            }
            if stdinOpen && fds[2].revents != 0 {
                let n = buf.withUnsafeMutableBytes { Glibc.read(0, $0.baseAddress, $0.count) }
                if n > 0 { writeAll(master.rawValue, Array(buf[0..<n])) } else if n == 0 || errno != EINTR { stdinOpen = false }
            }
        }
        if !exited { while waitpid(pid, &status, 0) < 0 && errno == EINTR {} }
        return exitCode(status)
    }

    /// Waits for a child and returns Docker's exit code for it.
    public static func waitChild(_ pid: Int32) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 { if errno != EINTR { return 125 } }
        return exitCode(status)
    }

    static func exitCode(_ status: Int32) -> Int32 {
        let sig = status & 0x7f
        if sig == 0 { return (status >> 8) & 0xff }
        return 128 + sig
    }

    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { p in
            var off = 0
            while off < p.count {
                let n = Glibc.write(fd, p.baseAddress! + off, p.count - off)
                if n < 0 { if errno == EINTR { continue }; return }
                off += n
            }
        }
    }
}

extension Engine {
    /// `hako attach`: a stream of the running container's output from now on,
    /// carrying stdin, resizes and signals to it.
    public func attach(_ ref: String) throws -> (Container, MonitorConnection) {
        let c = try lookup(ref)
        guard c.isRunning || c.status == .restarting else {
            throw HakoError(.conflict(.notRunning(c.name)), "you cannot attach to a stopped container, start it first")
        }
        if c.status == .paused { throw HakoError(.conflict(.paused(c.name)), "you cannot attach to a paused container, unpause it first") }
        guard let conn = try MonitorConnection.connect(runDir: c.paths.runDir) else {
            throw HakoError(.conflict(.notRunning(c.name)), "container \(c.name) is not running")
        }
        try conn.send(.attach)
        return (c, conn)
    }
}

/// Docker's `--detach-keys` ("ctrl-p,ctrl-q", "ctrl-a,d"): the bytes they type.
public enum DetachKeys {
    public static let `default` = "ctrl-p,ctrl-q"

    public static func parse(_ text: String) throws -> [UInt8] {
        var out: [UInt8] = []
        for key in text.split(separator: ",", omittingEmptySubsequences: false) {
            let k = key.lowercased()
            if k.hasPrefix("ctrl-"), k.count == 6, let c = k.last?.asciiValue {
                switch c {
                case UInt8(ascii: "a")...UInt8(ascii: "z"): out.append(c - UInt8(ascii: "a") + 1)
                case UInt8(ascii: "@"): out.append(0)
                case UInt8(ascii: "["), UInt8(ascii: "\\"), UInt8(ascii: "]"), UInt8(ascii: "^"), UInt8(ascii: "_"): out.append(c - 64)
                default: throw HakoError(.invalidArgument("--detach-keys"), "invalid detach keys \"\(text)\": unknown key \(key)")
                }
            } else if key.count == 1, let c = key.first?.asciiValue {
                out.append(c)
            } else {
                throw HakoError(.invalidArgument("--detach-keys"), "invalid detach keys \"\(text)\": unknown key \(key)")
            }
        }
        return out
    }
}
