#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoRuntime
import HakoSystem

/// Runs hooks in the runtime's namespaces (prestart, createRuntime, poststart,
/// poststop): the container's state JSON on stdin, bounded by the hook's
/// timeout, its output kept for the error.
public enum HookRunner {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Runs the hooks in order and stops at the first failure (prestart,
    /// createRuntime, createContainer, startContainer: a failure fails the operation).
    public static func run(_ hooks: [OCI.Hook], kind: String, state: [UInt8]) throws {
        guard !hooks.isEmpty else { return }
        try withSIGPIPEIgnored {
            for (i, h) in hooks.enumerated() { try run(h, name: "\(kind)[\(i)] hook \(h.path)", state: state) }
        }
    }

    /// Runs every hook whatever the others did and returns the failures
    /// (poststart, poststop: the runtime spec has the runtime warn and run the
    /// remaining hooks).
    public static func runAll(_ hooks: [OCI.Hook], kind: String, state: [UInt8]) -> [Failure] {
        guard !hooks.isEmpty else { return [] }
        var failures: [Failure] = []
        withSIGPIPEIgnored {
            for (i, h) in hooks.enumerated() {
                do { try run(h, name: "\(kind)[\(i)] hook \(h.path)", state: state) } catch let f as Failure {
                    failures.append(f)
                } catch {
                    failures.append(Failure(description: "\(kind)[\(i)] hook \(h.path): \(error)"))
                }
            }
        }
        return failures
    }

    /// A hook need not read its stdin: writing the state to one that already
    /// exited must be EPIPE, not a SIGPIPE that kills the runtime mid-create.
    static func withSIGPIPEIgnored<T>(_ body: () throws -> T) rethrows -> T {
        var ignore = sigaction(), saved = sigaction()
        ignore.__sigaction_handler.sa_handler = SIG_IGN
        sigemptyset(&ignore.sa_mask)
        sigaction(SIGPIPE, &ignore, &saved)
        defer { sigaction(SIGPIPE, &saved, nil) }
        return try body()
    }

    static func run(_ h: OCI.Hook, name: String, state: [UInt8]) throws {
        let (inPipe, inW) = try makePipe()
        let (outR, outPipe) = try makePipe()
        // Above 0–2, where they are placed (a runtime run with stdin closed gets 0 for a pipe).
        let inR = try inPipe.numbered(atLeast: 3), outW = try outPipe.numbered(atLeast: 3)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inR.rawValue, 0)
        posix_spawn_file_actions_adddup2(&actions, outW.rawValue, 1)
        posix_spawn_file_actions_adddup2(&actions, outW.rawValue, 2)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let args = h.args.isEmpty ? [h.path] : h.args
        let argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = h.env.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, h.path, &actions, &attr, argv, envp)
        for fd in [inR, outW, inPipe, outPipe] { fd.close() }
        guard rc == 0 else { throw Failure(description: "\(name): \(String(cString: strerror(rc)))") }
        let pidfd = hako_pidfd_open(pid)
        defer { if pidfd >= 0 { close(pidfd) } }
        _ = fcntl(inW.rawValue, F_SETFL, O_NONBLOCK)
        _ = fcntl(outR.rawValue, F_SETFL, O_NONBLOCK)
        let deadline = h.timeout.map { monotonicSeconds() + Double($0) }
        var written = 0
        var output: [UInt8] = []
        var exited = false, inOpen = !state.isEmpty, outOpen = true
        if !inOpen { inW.close() }
        while !exited || outOpen {
            var fds: [pollfd] = []
            if !exited && pidfd >= 0 { fds.append(pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)) }
            if outOpen { fds.append(pollfd(fd: outR.rawValue, events: Int16(POLLIN), revents: 0)) }
            if inOpen && !exited { fds.append(pollfd(fd: inW.rawValue, events: Int16(POLLOUT), revents: 0)) }
            var timeout: Int32 = exited ? 0 : 200
            if let deadline, !exited {
                let left = deadline - monotonicSeconds()
                if left <= 0 {
                    kill(pid, SIGKILL)
                    var st: Int32 = 0
                    while waitpid(pid, &st, 0) < 0 && errno == EINTR {}
                    throw Failure(description: "\(name) timed out after \(h.timeout ?? 0)s")
                }
                timeout = Int32(min(left * 1000 + 1, 200))
            }
            let r = poll(&fds, nfds_t(fds.count), timeout)
            if r < 0 { if errno == EINTR { continue }; break }
            if r == 0 {
                if exited { break }
                if pidfd < 0 { var st: Int32 = 0; if waitpid(pid, &st, WNOHANG) == pid { return try verdict(st, name: name, output: output) } }
                continue
            }
            for f in fds where f.revents != 0 {
                if f.fd == pidfd { exited = true }
                if f.fd == outR.rawValue {
                    var buf = [UInt8](repeating: 0, count: 4096)
                    let n = buf.withUnsafeMutableBytes { read(outR.rawValue, $0.baseAddress, $0.count) }
                    if n > 0 { if output.count < 4096 { output += buf[0..<n] } } else if n == 0 || (errno != EAGAIN && errno != EINTR) { outOpen = false }
                }
                if f.fd == inW.rawValue {
                    let n = state[written...].withUnsafeBytes { write(inW.rawValue, $0.baseAddress, $0.count) }
                    if n > 0 { written += n }
                    if (n < 0 && errno != EAGAIN && errno != EINTR) || written == state.count { inOpen = false; inW.close() }
                }
            }
        }
        var st: Int32 = 0
        while waitpid(pid, &st, 0) < 0 && errno == EINTR {}
        try verdict(st, name: name, output: output)
    }

    static func verdict(_ st: Int32, name: String, output: [UInt8]) throws {
        let sig = st & 0x7f
        let code = (st >> 8) & 0xff
        if sig == 0 && code == 0 { return }
        let what = sig == 0 ? "exited with status \(code)" : "was killed by signal \(sig)"
        let out = String(decoding: output, as: UTF8.self).trimmed
        throw Failure(description: "\(name) \(what)" + (out.isEmpty ? "" : ": \(out)"))
    }
}
