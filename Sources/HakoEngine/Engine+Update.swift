#if canImport(Glibc)
import Glibc
#endif
import HakoRuntime
import HakoSystem

extension Engine {
    /// `hako update`: changes a container's resource limits — live in its cgroups
    /// when it runs, and in its configuration for every later start.
    @discardableResult
    public func update(_ ref: String, _ limits: ResourceLimits) throws -> String {
        let patch = try checkLimits(limits)
        guard !patch.isEmpty else { throw HakoError(.invalidArgument("flags"), "you must provide one or more flags when using this command") }
        let id = try resolveID(ref)
        let lock = try FileLock.acquire(paths.container(id).lock)
        defer { lock.release() }
        let c = try load(id)
        var iso = c.config.effectiveIsolation
        let merged = iso.limits.merging(patch)
        do {
            try validate(merged)
            let driver = try cgroups(for: c.config)
            try driver.check(merged)
            if c.isRunning || c.status == .restarting {
                try driver.apply(merged, to: id)
            }
        } catch let e as HakoError {
            throw HakoError(e.kind, "cannot update container \(c.name): \(e.message)", cause: e.cause)
        }
        iso.limits = merged
        var config = c.config
        config.isolation = iso
        try writeConfig(config)
        return id
    }
}

extension Engine {
    /// `hako update --restart`: the container's restart policy, in its
    /// configuration and — when it runs — in its monitor, from the next exit on.
    public func updateRestartPolicy(_ ref: String, _ policy: RestartPolicy) throws {
        let id = try resolveID(ref)
        let lock = try FileLock.acquire(paths.container(id).lock)
        defer { lock.release() }
        let c = try load(id)
        if c.config.autoRemove && policy != .no {
            throw HakoError(.invalidArgument("--restart"), "cannot update container \(c.name): a restart policy cannot be set on a container started with --rm")
        }
        var config = c.config
        config.restartPolicy = policy.description
        try writeConfig(config)
        if c.isRunning || c.status == .restarting, let conn = try MonitorConnection.connect(runDir: c.paths.runDir) {
            let e = try conn.request(.policy(policy))
            if e != 0 { throw HakoError.kernel("cannot update container \(c.name)'s monitor", SystemError("restart policy", errno: e)) }
        }
    }
}
