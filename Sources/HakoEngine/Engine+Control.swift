#if canImport(Glibc)
import Glibc
#endif
import HakoRuntime
import HakoSystem

extension Engine {
    /// Waits until the container's monitor has gone (bounded).
    func awaitMonitorExit(_ id: String, timeout: Double) throws {
        let deadline = monotonicSeconds() + timeout
        while monitorAlive(id) {
            if monotonicSeconds() > deadline {
                throw HakoError(.failed, "container \(id.prefix(12)) did not stop within \(Int(timeout)) s")
            }
            usleep(5000)
        }
    }

    /// `hako stop`: the stop signal, then SIGKILL after the timeout; no restart follows.
    public func stop(_ ref: String, timeout: Int? = nil, signal: Int32? = nil) throws {
        try stop(lookup(ref), timeout: timeout, signal: signal, keep: false)
    }

    /// `keep`: a `--rm` container stays at its end (`restart`).
    func stop(_ c: Container, timeout: Int?, signal: Int32? = nil, keep: Bool) throws {
        guard c.status == .running || c.status == .paused || c.status == .restarting else { return }
        let t = timeout ?? c.config.stopTimeout
        let wait = t < 0 ? 365 * 86400.0 : Double(t)
        if let conn = try MonitorConnection.connect(runDir: c.paths.runDir) {
            let sig = signal ?? c.config.stopSignal
            try conn.send(.stop(signal: sig, timeout: t < 0 ? UInt32.max / 1000 : UInt32(t), keep: keep))
            // The monitor answers, then reports the final exit and ends.
            let deadline = monotonicSeconds() + wait + 30
            while monotonicSeconds() < deadline {
                guard let f = try? conn.receive(timeout: max(0.1, deadline - monotonicSeconds())) else { break }
                if case .exit(_, true) = f { break }
            }
        }
        try awaitMonitorExit(c.id, timeout: 30)
        let after = try? load(c.id)  // settles a monitor that died on the way
        recordEvent("die", c.config, ["exitCode": String(after?.exitCode ?? 0)])
        recordEvent("stop", c.config)
    }

    /// `hako kill`: sends a signal to the container's init. SIGKILL (and the
    /// stop signal) end the container for good: no restart follows.
    public func kill(_ ref: String, signal: Int32 = SIGKILL) throws {
        let c = try lookup(ref)
        guard c.status == .running || c.status == .paused || c.status == .restarting,
              let conn = try MonitorConnection.connect(runDir: c.paths.runDir) else {
            throw HakoError(.conflict(.notRunning(c.name)), "cannot kill container \(ref): container \(c.id) is not running")
        }
        let e = try conn.request(.signal(signal))
        if e == ESRCH { throw HakoError(.conflict(.notRunning(c.name)), "cannot kill container \(ref): container \(c.id) is not running") }
        if e != 0 { throw HakoError.kernel("cannot kill container \(ref)", SystemError("kill", errno: e)) }
        recordEvent("kill", c.config, ["signal": String(signal)])
        if signal == SIGKILL {
            var code: Int32?
            while let f = try? conn.receive(timeout: 10) {
                if case .exit(let status, _) = f { code = status; break }
            }
            if let code { recordEvent("die", c.config, ["exitCode": String(code)]) }
        }
    }

    /// `hako rm`: removes a stopped container (with `force`, kills a running one first).
    public func remove(_ ref: String, force: Bool = false) throws {
        let id = try resolveID(ref)
        let c: Container
        do {
            c = try load(id)
        } catch {
            // Unreadable configuration: only --force removes what is there.
            guard force else { throw HakoError(.failed, "cannot remove container \(ref): its configuration is unreadable; use --force", cause: error) }
            try forceRemoveBroken(id)
            return
        }
        if c.status == .running || c.status == .paused || c.status == .restarting {
            guard force else {
                throw HakoError(.conflict(.running(c.name)), "cannot remove container \"\(c.name)\": container is \(c.status.rawValue): stop the container before removing or force remove")
            }
            if let conn = try MonitorConnection.connect(runDir: c.paths.runDir) {
                try? conn.send(.stop(signal: SIGKILL, timeout: 0))
                while let f = try? conn.receive(timeout: 10) {
                    if case .exit(_, true) = f { break }
                }
            }
            try awaitMonitorExit(id, timeout: 30)
        }
        try awaitFinalCleanup(id)
        guard FS.isDirectory(c.paths.dir) else { return }  // --rm: the monitor removed it
        let lock = try FileLock.acquire(c.paths.lock)
        defer { lock.release() }
        if monitorAlive(id) { throw HakoError(.conflict(.running(c.name)), "cannot remove container \"\(c.name)\": it was started again meanwhile") }
        try removeFiles(c.config)
        recordEvent("destroy", c.config)
    }

    func forceRemoveBroken(_ id: String) throws {
        let global = try FileLock.acquire(paths.lock)
        defer { global.release() }
        let cp = paths.container(id)
        if let pid = (try? FS.readString(cp.monitorLock)).flatMap({ Int32($0.trimmed) }), monitorAlive(id) { Glibc.kill(pid, SIGKILL) }
        for parent in Set([cgroupParent, "hako"]) {
            try? makeCgroupDriver(host: cgroupHost, parent: parent).remove(id)
        }
        try FS.removeTree(cp.runDir)
        let doomed = "\(paths.containers)/.removing-\(id)"
        if rename(cp.dir, doomed) == 0 { try FS.removeTree(doomed) }
        collectGarbage()
    }

    public func pause(_ ref: String) throws {
        let c = try lookup(ref)
        switch c.status {
        case .paused: throw HakoError(.conflict(.paused(c.name)), "container \(c.name) is already paused")
        case .running: try cgroups(for: c.config).setFrozen(c.id, true)
        default: throw HakoError(.conflict(.notRunning(c.name)), "container \(c.name) is not running")
        }
        recordEvent("pause", c.config)
    }

    public func unpause(_ ref: String) throws {
        let c = try lookup(ref)
        guard c.status == .paused else { throw HakoError(.conflict(.notPaused(c.name)), "container \(c.name) is not paused") }
        try cgroups(for: c.config).setFrozen(c.id, false)
        recordEvent("unpause", c.config)
    }

    /// `hako wait`: blocks until the container's current run ends; its exit code.
    public func wait(_ ref: String) throws -> Int32 {
        let c = try lookup(ref)
        guard c.status == .running || c.status == .paused || c.status == .restarting,
              let conn = try MonitorConnection.connect(runDir: c.paths.runDir) else {
            return c.exitCode
        }
        while let f = try conn.receive() {
            if case .exit(let code, _) = f { return code }
        }
        // The monitor ended without a report: read what it left.
        return (try? load(c.id))?.exitCode ?? 137
    }

    /// The first half of a restart: a `--rm` container is kept at this stop
    /// (as Docker's `restart` keeps it), to be started again. Only its stop
    /// says so: a monitor of an older hako refuses the longer frame.
    public func stopForRestart(_ ref: String, timeout: Int? = nil) throws -> Container {
        let c = try lookup(ref)
        try stop(c, timeout: timeout, keep: c.config.autoRemove)
        return c
    }

    /// `hako restart`: stop, then start. A `--rm` container is kept across
    /// it: only its own end, or `stop`, removes it.
    public func restart(_ ref: String, timeout: Int? = nil) throws {
        let c = try stopForRestart(ref, timeout: timeout)
        _ = try start(c.id)
        recordEvent("restart", c.config)
    }
}
