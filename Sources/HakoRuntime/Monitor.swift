#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoSystem
import Synchronization

/// Frames on a monitor's attach socket: [u8 type][u32 big-endian length][payload].
/// The monitor side is C (Sources/hako-monitor/include/monitor.h); this is the client side.
public enum MonitorFrame: Equatable, Sendable {
    case stdin([UInt8])
    case closeStdin
    case resize(rows: UInt16, cols: UInt16)
    /// Send a signal; SIGKILL/SIGTERM/SIGINT or the stop signal make the exit that follows final.
    case signal(Int32)
    /// Stop: the signal now, SIGKILL after `timeout` seconds; no restart follows.
    /// `keep`: the container is not removed at its end even if it is a `--rm`
    /// one (`hako restart` starts it again at once, as Docker's does).
    case stop(signal: Int32, timeout: UInt32, keep: Bool = false)
    /// Ask for the container's output.
    case attach
    /// Replace the restart policy (`update --restart`): from the next exit on.
    case policy(RestartPolicy)
    case stdout([UInt8])
    case stderr([UInt8])
    /// The container exited with `code`; `final` when the monitor is ending (no restart follows).
    case exit(code: Int32, final: Bool)
    /// The monitor's answer to the last request: 0, or an errno.
    case reply(Int32)

    public func encode() -> [UInt8] {
        func frame<T: BinaryInteger>(_ t: T, _ p: [UInt8]) -> [UInt8] {
            let n = UInt32(p.count)
            return [UInt8(truncatingIfNeeded: t), UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)] + p
        }
        func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }
        switch self {
        case .stdin(let b): return frame(HAKO_MON_STDIN, b)
        case .closeStdin: return frame(HAKO_MON_STDIN_CLOSE, [])
        case .resize(let r, let c): return frame(HAKO_MON_RESIZE, [UInt8(r >> 8), UInt8(r & 0xff), UInt8(c >> 8), UInt8(c & 0xff)])
        case .signal(let s): return frame(HAKO_MON_SIGNAL, be32(UInt32(bitPattern: s)))
        case .stop(let s, let t, let keep): return frame(HAKO_MON_STOP, be32(UInt32(bitPattern: s)) + be32(t) + (keep ? [1] : []))
        case .attach: return frame(HAKO_MON_ATTACH, [])
        case .policy(let r): return frame(HAKO_MON_POLICY, be32(r.monitorCode) + be32(r.maximumRetryCount))
        case .stdout(let b): return frame(HAKO_MON_STDOUT, b)
        case .stderr(let b): return frame(HAKO_MON_STDERR, b)
        case .exit(let code, let final): return frame(HAKO_MON_EXIT, be32(UInt32(bitPattern: code)) + [final ? 1 : 0])
        case .reply(let e): return frame(HAKO_MON_REPLY, be32(UInt32(bitPattern: e)))
        }
    }

    /// Decodes one frame from the front of `buffer`; nil when it is incomplete.
    /// Throws on a frame that can never be valid.
    public static func decode(_ buffer: inout [UInt8]) throws -> MonitorFrame? {
        guard buffer.count >= 5 else { return nil }
        let n = Int(UInt32(buffer[1]) << 24 | UInt32(buffer[2]) << 16 | UInt32(buffer[3]) << 8 | UInt32(buffer[4]))
        guard n <= 1 << 20 else { throw HakoError(.failed, "monitor protocol: frame of \(n) bytes") }
        guard buffer.count >= 5 + n else { return nil }
        let type = buffer[0]
        let p = Array(buffer[5..<(5 + n)])
        buffer.removeFirst(5 + n)
        func be32(_ o: Int) -> UInt32 { UInt32(p[o]) << 24 | UInt32(p[o + 1]) << 16 | UInt32(p[o + 2]) << 8 | UInt32(p[o + 3]) }
        switch Int(type) {
        case Int(HAKO_MON_STDIN): return .stdin(p)
        case Int(HAKO_MON_STDIN_CLOSE): return .closeStdin
        case Int(HAKO_MON_RESIZE) where n == 4: return .resize(rows: UInt16(p[0]) << 8 | UInt16(p[1]), cols: UInt16(p[2]) << 8 | UInt16(p[3]))
        case Int(HAKO_MON_SIGNAL) where n == 4: return .signal(Int32(bitPattern: be32(0)))
        case Int(HAKO_MON_STOP) where n == 8 || n == 9: return .stop(signal: Int32(bitPattern: be32(0)), timeout: be32(4), keep: n == 9 && p[8] != 0)
        case Int(HAKO_MON_ATTACH): return .attach
        case Int(HAKO_MON_POLICY) where n == 8:
            return .policy(RestartPolicy(monitorCode: be32(0), maximumRetryCount: be32(4)))
        case Int(HAKO_MON_STDOUT): return .stdout(p)
        case Int(HAKO_MON_STDERR): return .stderr(p)
        case Int(HAKO_MON_EXIT) where n == 5: return .exit(code: Int32(bitPattern: be32(0)), final: p[4] != 0)
        case Int(HAKO_MON_REPLY) where n == 4: return .reply(Int32(bitPattern: be32(0)))
        default: throw HakoError(.failed, "monitor protocol: bad frame type \(type) (\(n) bytes)")
        }
    }
}

/// A client connection to a monitor.
public final class MonitorConnection: @unchecked Sendable {
    public let fd: FileDescriptor
    private var buffer: [UInt8] = []

    public init(fd: FileDescriptor) { self.fd = fd }

    /// Connects to the monitor whose runtime directory is `runDir`; nil when no monitor listens.
    public static func connect(runDir: String) throws -> MonitorConnection? {
        let dir = Glibc.open(runDir, HAKO_O_PATH | O_DIRECTORY | O_CLOEXEC)
        if dir < 0 { return nil }
        defer { Glibc.close(dir) }
        let s = try sys("socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        let sock = FileDescriptor(s)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let path = Array("/proc/self/fd/\(dir)/attach".utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.enumerated() where i < raw.count - 1 { raw[i] = b }
        }
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if r != 0 {
            if errno == ENOENT || errno == ECONNREFUSED { return nil }
            throw SystemError("connect", runDir + "/attach")
        }
        return MonitorConnection(fd: sock)
    }

    public func send(_ frame: MonitorFrame) throws {
        let bytes = frame.encode()
        try bytes.withUnsafeBytes { p in
            var off = 0
            while off < p.count {
                let n = Glibc.send(fd.rawValue, p.baseAddress! + off, p.count - off, Int32(MSG_NOSIGNAL))
                if n < 0 { if errno == EINTR { continue }; throw SystemError("send to monitor") }
                off += n
            }
        }
    }

    /// The next frame; nil when the monitor closed the connection.
    /// `timeout` in seconds (nil: wait forever); throws ETIMEDOUT when it passes.
    public func receive(timeout: Double? = nil) throws -> MonitorFrame? {
        let deadline = timeout.map { monotonicSeconds() + $0 }
        while true {
            if let f = try MonitorFrame.decode(&buffer) { return f }
            if let deadline {
                let left = deadline - monotonicSeconds()
                if left <= 0 { throw SystemError("wait for monitor", errno: ETIMEDOUT) }
                var pfd = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
                let r = poll(&pfd, 1, Int32(min(left * 1000 + 1, 60_000)))
                if r == 0 { continue }
            }
            guard try fill() else { return nil }
        }
    }

    /// Reads what is available into the buffer; false at end of stream.
    public func fill() throws -> Bool {
        try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 65536) { chunk in
            let n = Glibc.recv(fd.rawValue, chunk.baseAddress, chunk.count, 0)
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { return true }
                if errno == ECONNRESET { return false }
                throw SystemError("receive from monitor")
            }
            if n == 0 { return false }
            buffer.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[0..<n]))
            return true
        }
    }

    /// Frames already received and complete.
    public func pending() throws -> [MonitorFrame] {
        var out: [MonitorFrame] = []
        while let f = try MonitorFrame.decode(&buffer) { out.append(f) }
        return out
    }

    /// Sends a request and waits for the monitor's reply (errno, 0 = done).
    public func request(_ frame: MonitorFrame, timeout: Double = 10) throws -> Int32 {
        try send(frame)
        while let f = try receive(timeout: timeout) {
            if case .reply(let e) = f { return e }
            if case .exit = f { return 0 }
        }
        return ESRCH
    }
}

/// The health check's live state, which the monitor writes in place after
/// every probe, beside the state file (`HAKO_HEALTH_*` in hako_shim.h): a
/// header with the body's length and checksum, then the body, the JSON of
/// `.State.Health`. A read that races a write sees a checksum that does not
/// match, and reads again.
public enum MonitorHealthFile {
    /// Its name in the container's directory.
    public static let name = HAKO_HEALTH_FILE

    /// The body of `content`, nil unless it is one whole write.
    public static func body(of content: [UInt8]) -> ArraySlice<UInt8>? {
        let n = content.withUnsafeBytes { hako_health_body($0.baseAddress, $0.count) }
        guard n >= 0 else { return nil }
        let start = Int(HAKO_HEALTH_HEADER_LEN)
        return content[start ..< start + n]
    }

    /// The body of the file at `path`, read again while a write races the read
    /// (one write of a few hundred bytes: the next read nearly always sees it
    /// whole); nil when there is no such file, or none whole within ~50 ms.
    public static func read(_ path: String) -> ArraySlice<UInt8>? {
        for attempt in 0 ..< 50 {
            guard let content = try? FS.readFile(path) else { return nil }
            if let b = body(of: content) { return b }
            if attempt >= 2 { usleep(1000) }
        }
        return nil
    }
}

/// Why a container could not start: the stage of the init path and errno.
public struct StartFailure: Error, CustomStringConvertible, Sendable, KindedError {
    public var stage: Int32
    public var errno: Int32
    public var detail: String

    public var stageName: String { String(cString: hako_stage_name(stage)) }

    /// The init gave up waiting for the engine's set-up (`StartGate`): a part
    /// of it failed, and that part's error is the one to report.
    public var atStartGate: Bool { stage == Int32(HAKO_STAGE_READY.rawValue) }

    public var description: String {
        let reason = String(cString: strerror(errno))
        return detail.isEmpty ? "\(stageName): \(reason)" : "\(stageName) \(detail): \(reason)"
    }

    /// What went wrong: 127 not found and 126 cannot execute as Docker's, else
    /// the kernel's refusal at this stage of the init path.
    public var kind: HakoError.Kind {
        if stage == Int32(HAKO_STAGE_EXEC_NOT_FOUND.rawValue) { return .commandNotFound }
        if stage == Int32(HAKO_STAGE_EXEC.rawValue) || stage == Int32(HAKO_STAGE_CHDIR.rawValue) { return .cannotExecute }
        return .kernel(operation: stageName, errno: errno)
    }

    public var hakoError: HakoError {
        let what: String
        switch kind {
        case .commandNotFound: what = "\(detail): executable file not found in $PATH or the container (\(String(cString: strerror(errno))))"
        case .cannotExecute where stage == Int32(HAKO_STAGE_EXEC.rawValue): what = "cannot execute \(detail): \(String(cString: strerror(errno)))"
        default: what = description
        }
        return HakoError(kind, "cannot start container: \(what)")
    }
}

public struct MonitorLaunch: Sendable {
    public var monitorPid: Int32
    public var containerPid: Int32
}

/// The byte the first init waits for before its program runs (fd
/// HAKO_MONITOR_FD_READY): sent when each of the `parts` the engine sets up
/// beside the init's mounts (the cgroups' limits and device filter, a bridge
/// network) is `done`. The first part to `fail` closes the socket unwritten:
/// the init then fails at its "set-up" stage and the engine reports that
/// part's own error. Any thread may call either; each part calls one, once.
public final class StartGate: Sendable {
    private let state: Mutex<(fd: FileDescriptor?, left: Int)>

    public init(_ fd: FileDescriptor, parts: Int) {
        state = Mutex((fd, parts))
    }

    public func done() {
        state.withLock { s in
            s.left -= 1
            guard s.left == 0, let fd = s.fd else { return }
            // MSG_NOSIGNAL: an init that is gone (its start failed, and its
            // monitor says why) is no error of the set-up's, and must not end
            // this process with SIGPIPE.
            var one: UInt8 = 1
            _ = send(fd.rawValue, &one, 1, Int32(MSG_NOSIGNAL))
            fd.close()
            s.fd = nil
        }
    }

    public func fail() {
        state.withLock { s in
            s.fd?.close()
            s.fd = nil
        }
    }
}

/// Starts `hako-monitor` for one container and waits until the container's
/// program has been exec'd (or has failed to start).
public enum MonitorLauncher {
    /// - Parameters:
    ///   - attach: when set, this end of a socket pair is handed to the monitor as
    ///     its first client, streaming output from the very first byte.
    public static func launch(monitorPath: String, spec: [UInt8], attach: FileDescriptor?) throws -> MonitorLaunch {
        try spawn(monitorPath: monitorPath, attach: attach).start(spec: spec)
    }

    /// Starts the monitor before its launch spec exists: its exec and the
    /// dynamic loader run while the caller makes the cgroups and the spec,
    /// and it then waits for the spec on fd 3 (`PendingMonitor.start`).
    ///   - ready: one end of a socket pair a `StartGate` sends one byte on once
    ///     what the engine sets up beside the init is done; the first init
    ///     waits for it before its program runs (HAKO_MONITOR_FD_READY).
    public static func spawn(monitorPath: String, attach: FileDescriptor?, ready: FileDescriptor? = nil) throws -> PendingMonitor {
        // A socket, not a pipe: a send to a monitor that is gone fails with
        // EPIPE (MSG_NOSIGNAL) instead of killing the caller with SIGPIPE.
        let (specOurs, specPeer) = try makeSocketPair()
        // Every descriptor handed over starts above the numbers it is placed at (0–6).
        let lowest = Int32(max(HAKO_MONITOR_FD_SPEC, HAKO_MONITOR_FD_STATUS, HAKO_MONITOR_FD_ATTACH, HAKO_MONITOR_FD_READY)) + 1
        let specTheirs = try specPeer.numbered(atLeast: lowest)
        let (statusRead, statusPipe) = try makePipe()
        let statusWrite = try statusPipe.numbered(atLeast: lowest)
        let devnull = try FileDescriptor.open("/dev/null", O_RDWR).numbered(atLeast: lowest)
        let attach = try attach?.numbered(atLeast: lowest)
        let ready = try ready?.numbered(atLeast: lowest)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, devnull.rawValue, 0)
        posix_spawn_file_actions_adddup2(&actions, devnull.rawValue, 1)
        posix_spawn_file_actions_adddup2(&actions, devnull.rawValue, 2)
        posix_spawn_file_actions_adddup2(&actions, specTheirs.rawValue, Int32(HAKO_MONITOR_FD_SPEC))
        posix_spawn_file_actions_adddup2(&actions, statusWrite.rawValue, Int32(HAKO_MONITOR_FD_STATUS))
        // The optional ones are closed when not given: the monitor takes an
        // open fd 5 or 6 for them, and one this process inherited open (a
        // shell's `6</dev/null`) would be taken for a client or a gate.
        if let attach { posix_spawn_file_actions_adddup2(&actions, attach.rawValue, Int32(HAKO_MONITOR_FD_ATTACH)) }
        else { posix_spawn_file_actions_addclose(&actions, Int32(HAKO_MONITOR_FD_ATTACH)) }
        if let ready { posix_spawn_file_actions_adddup2(&actions, ready.rawValue, Int32(HAKO_MONITOR_FD_READY)) }
        else { posix_spawn_file_actions_addclose(&actions, Int32(HAKO_MONITOR_FD_READY)) }

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // The monitor must not inherit a blocked or ignored signal from us.
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(monitorPath), nil]
        defer { for a in argv { free(a) } }
        let envp: [UnsafeMutablePointer<CChar>?] = [strdup("PATH=/usr/sbin:/usr/bin:/sbin:/bin"), nil]
        defer { for e in envp { free(e) } }
        let rc = posix_spawn(&pid, monitorPath, &actions, &attr, argv, envp)
        statusWrite.close()
        statusPipe.close()
        specTheirs.close()
        if rc != 0 { throw HakoError.kernel("cannot start the monitor \(monitorPath)", SystemError("posix_spawn", errno: rc)) }
        return PendingMonitor(pid: pid, spec: specOurs, status: statusRead)
    }
}

/// A monitor spawned and waiting for its launch spec. Either `start` or
/// `abandon` settles it; one dropped unsettled is abandoned (it reads an
/// empty spec, exits, and is reaped here).
public final class PendingMonitor {
    let pid: pid_t
    let spec: FileDescriptor
    let status: FileDescriptor
    var settled = false

    init(pid: pid_t, spec: FileDescriptor, status: FileDescriptor) {
        self.pid = pid
        self.spec = spec
        self.status = status
    }

    deinit { if !settled { abandon() } }

    /// Hands the monitor its spec and waits for its report.
    public func start(spec bytes: [UInt8]) throws -> MonitorLaunch {
        settled = true
        let sendErrno: Int32 = bytes.withUnsafeBytes { p in
            guard let base = p.baseAddress else { return 0 }
            var off = 0
            while off < p.count {
                let n = send(spec.rawValue, base + off, p.count - off, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                off += n
            }
            return 0
        }
        spec.close()
        reapFirstProcess()
        // A monitor that stopped reading still says why on the status pipe.
        let line = String(decoding: (try? status.readAll()) ?? [], as: UTF8.self).trimmed
        status.close()
        let words = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
        if words.first == "OK", words.count >= 3, let m = Int32(words[1]), let c = Int32(words[2]) {
            return MonitorLaunch(monitorPid: m, containerPid: c)
        }
        if words.first == "ERR", words.count >= 3, let stage = Int32(words[1]), let e = Int32(words[2]) {
            throw StartFailure(stage: stage, errno: e, detail: words.count > 3 ? words[3] : "")
        }
        if sendErrno != 0 { throw HakoError.kernel("cannot hand the monitor its launch spec", SystemError("send", errno: sendErrno)) }
        throw HakoError(.failed, "the monitor exited without starting the container" + (line.isEmpty ? "" : ": \(line)"))
    }

    /// The start was given up before the spec: the monitor sees an empty one and exits.
    public func abandon() {
        guard !settled else { return }
        settled = true
        spec.close()
        reapFirstProcess()
        status.close()
    }

    /// The monitor forks once to detach; its first process exits at once.
    private func reapFirstProcess() {
        var st: Int32 = 0
        while waitpid(pid, &st, 0) < 0 && errno == EINTR {}
    }
}
