#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoRuntime
import HakoSystem

extension OCIRuntime {
    /// `start`: only a created container starts. Opening the exec FIFO lets the
    /// init go on; it closes at exec (EOF), or carries the init's failure.
    public func start(_ id: String) throws {
        let l = try lock(id)
        defer { l.release() }
        let r = l.record
        let st = status(r)
        guard st == .created else { throw HakoError(.conflict(.state(.container, id)), "cannot start a container that is \(st.rawValue) (only a created container can be started)") }
        guard r.hasProcess else { throw HakoError(.invalidArgument("process"), "config.json: process: is required to start the container") }
        let fifo = FileDescriptor(try sys("open", fifoPath(id)) { open(fifoPath(id), O_RDONLY | O_NONBLOCK | O_CLOEXEC) })
        let pidfd = hako_pidfd_open(r.pid)
        defer { if pidfd >= 0 { close(pidfd) } }
        var data: [UInt8] = []
        var done = false, initGone = false
        let deadline = monotonicSeconds() + 600
        while !done {
            var fds = [pollfd(fd: fifo.rawValue, events: Int16(POLLIN), revents: 0)]
            if pidfd >= 0 && !initGone { fds.append(pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)) }
            let left = deadline - monotonicSeconds()
            if left <= 0 { throw HakoError(.failed, "the container's init did not start within 600s") }
            let n = poll(&fds, nfds_t(fds.count), Int32(min(left * 1000, 1000)))
            if n < 0 { if errno == EINTR { continue }; throw SystemError("poll") }
            if fds[0].revents != 0 {
                var buf = [UInt8](repeating: 0, count: 4096)
                let got = buf.withUnsafeMutableBytes { read(fifo.rawValue, $0.baseAddress, $0.count) }
                if got > 0 { data += buf[0..<got] } else if got == 0 || (errno != EAGAIN && errno != EINTR) { done = true }
                continue
            }
            if fds.count > 1 && fds[1].revents != 0 {
                // The init exited without ever opening its end: it was killed while created.
                initGone = true
                throw HakoError(.failed, "the container's init exited before it was started")
            }
            if pidfd < 0 && !ProcessProbe.isAlive(r.pid, startTime: r.startTime) {
                throw HakoError(.failed, "the container's init exited before it was started")
            }
        }
        try? FS.unlinkIfPresent(fifoPath(id))
        if data.count >= MemoryLayout<hako_failure>.size {
            var f = hako_failure()
            withUnsafeMutableBytes(of: &f) { dst in data.withUnsafeBytes { dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<dst.count])) } }
            throw OCIRuntime.describe(StartFailure(f))
        }
        // The runtime spec: a failing poststart hook is a warning; the other hooks run and the container goes on.
        for f in HookRunner.runAll(r.poststart, kind: "poststart", state: Array(r.ociState(.running).serialized().utf8)) {
            log.warning("\(f)")
        }
    }

    /// `kill ID [SIGNAL]`: to the init (through a pidfd), or with `all` to every process of the container.
    public func kill(_ id: String, signal: Int32, all: Bool) throws {
        let r = try load(id)
        let st = status(r)
        guard st == .created || st == .running || st == .paused else {
            throw HakoError(.conflict(.state(.container, id)), "cannot kill a container that is \(st.rawValue) (only created or running ones)")
        }
        if all {
            let driver = self.driver(for: r)
            for p in driver.processes(r.cgroupLeaf) { _ = Glibc.kill(p, signal) }
            if st == .paused && (signal == SIGKILL || signal == SIGTERM) { try? driver.setFrozen(r.cgroupLeaf, false) }
            return
        }
        let pidfd = hako_pidfd_open(r.pid)
        if pidfd >= 0 {
            defer { close(pidfd) }
            // The pidfd names this process for good; check it is still the init we started.
            guard ProcessProbe.isAlive(r.pid, startTime: r.startTime) else { throw HakoError(.conflict(.notRunning(id)), "container \"\(id)\" is not running") }
            try sys("kill", id) { hako_pidfd_send_signal(pidfd, signal) }
        } else {
            try sys("kill", id) { Glibc.kill(r.pid, signal) }
        }
    }

    /// `delete [--force] ID`: only a stopped container, unless forced (then it is killed first).
    public func delete(_ id: String, force: Bool) throws {
        try OCIRuntime.validate(id: id)
        let fd: FileDescriptor
        do { fd = try FileDescriptor.open(dir(id), O_RDONLY | O_DIRECTORY) } catch let e as SystemError where e.errno == ENOENT {
            if force { return }
            throw notFound(id)
        }
        try sys("flock", dir(id)) { flock(fd.rawValue, LOCK_EX) }
        defer { fd.close() }
        guard FS.isDirectory(dir(id)) else { if force { return }; throw notFound(id) }
        guard let r = try? load(id) else {
            // A create that died before writing its state: nothing runs, remove what is left.
            try FS.removeTree(dir(id))
            return
        }
        let st = status(r)
        if st != .stopped {
            guard force else { throw HakoError(.conflict(.state(.container, id)), "cannot delete a container that is \(st.rawValue) (stop it first, or --force)") }
            try killAndWait(r)
        }
        try destroy(r)
    }

    func killAndWait(_ r: ContainerRecord) throws {
        let driver = self.driver(for: r)
        let pidfd = hako_pidfd_open(r.pid)
        defer { if pidfd >= 0 { close(pidfd) } }
        if ProcessProbe.isAlive(r.pid, startTime: r.startTime) {
            if pidfd >= 0 { _ = hako_pidfd_send_signal(pidfd, SIGKILL) } else { _ = Glibc.kill(r.pid, SIGKILL) }
        }
        for p in driver.processes(r.cgroupLeaf) { _ = Glibc.kill(p, SIGKILL) }
        if driver.isFrozen(r.cgroupLeaf) { try? driver.setFrozen(r.cgroupLeaf, false) }
        let deadline = monotonicSeconds() + 10
        while ProcessProbe.isAlive(r.pid, startTime: r.startTime) && monotonicSeconds() < deadline {
            if pidfd >= 0 {
                var p = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
                _ = poll(&p, 1, 100)
            } else { usleep(10_000) }
        }
    }

    /// Removes a stopped container: leftovers in its cgroups, the cgroups, the
    /// state; then its poststop hooks.
    func destroy(_ r: ContainerRecord) throws {
        try driver(for: r).remove(r.cgroupLeaf)
        for f in HookRunner.runAll(r.poststop, kind: "poststop", state: Array(r.ociState(.stopped).serialized().utf8)) {
            log.warning("\(f)")
        }
        try FS.removeTree(dir(r.id))
    }

    public func pause(_ id: String) throws {
        let r = try load(id)
        let st = status(r)
        guard st == .running || st == .created else { throw HakoError(.conflict(.state(.container, id)), "cannot pause a container that is \(st.rawValue)") }
        try driver(for: r).setFrozen(r.cgroupLeaf, true)
    }

    public func resume(_ id: String) throws {
        let r = try load(id)
        let st = status(r)
        guard st == .paused else { throw HakoError(.conflict(.notPaused(id)), "cannot resume a container that is \(st.rawValue) (only a paused one)") }
        try driver(for: r).setFrozen(r.cgroupLeaf, false)
    }

    /// `update --resources`: linux.resources (JSON) written into the running container's cgroups.
    public func update(_ id: String, resources json: [UInt8]) throws {
        let r = try load(id)
        let st = status(r)
        guard st != .stopped else { throw HakoError(.conflict(.notRunning(id)), "cannot update a container that is stopped") }
        let res = try OCI.decodeResources(json)
        if !res.devices.isEmpty { throw HakoError(.invalidArgument("linux.resources.devices"), "linux.resources.devices: device rules cannot be changed by update") }
        let driver = self.driver(for: r)
        try driver.apply(try res.cgroupWrites(version: driver.version), to: r.cgroupLeaf)
    }

    /// `run`: create, start, wait for the init (this process is its parent) with
    /// signals forwarded, delete. Returns the container's exit status.
    public func run(_ req: CreateRequest, detach: Bool) throws -> Int32 {
        var launch: InitLaunch?
        try create(req) { launch = $0 }
        guard let l = launch else { return 125 }
        do { try start(req.id) } catch {
            l.abort()
            try? delete(req.id, force: true)
            throw error
        }
        if detach { l.release(); return 0 }
        let pidfd = l.takePidfd()
        l.release()
        let status = SignalForwarder.wait(pid: l.pid, pidfd: pidfd)
        try delete(req.id, force: true)
        return status
    }
}

/// Forwards the signals a foreground `run` or `exec` receives to the
/// container's process until it exits; returns its status as a shell reports it.
enum SignalForwarder {
    static let forwarded: [Int32] = [SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGTSTP]

    static func wait(pid: Int32, pidfd: FileDescriptor?) -> Int32 {
        var old = [UInt8](repeating: 0, count: 256)
        let sfd = forwarded.withUnsafeBufferPointer { hako_signalfd_open($0.baseAddress, Int32($0.count), &old, old.count) }
        defer { if sfd >= 0 { close(sfd); _ = hako_sigmask_restore(old) } }
        var st: Int32 = 0
        while true {
            let r = waitpid(pid, &st, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { return 255 }
            var fds = [pollfd(fd: sfd, events: Int16(POLLIN), revents: 0)]
            if let p = pidfd { fds.append(pollfd(fd: p.rawValue, events: Int16(POLLIN), revents: 0)) }
            _ = poll(&fds, nfds_t(fds.count), pidfd == nil ? 50 : -1)
            if sfd >= 0 && fds[0].revents != 0 {
                while case let sig = hako_signalfd_read(sfd), sig > 0 {
                    if let p = pidfd { _ = hako_pidfd_send_signal(p.rawValue, sig) } else { _ = Glibc.kill(pid, sig) }
                }
            }
        }
        let sig = st & 0x7f
        return sig == 0 ? (st >> 8) & 0xff : 128 + sig
    }
}
