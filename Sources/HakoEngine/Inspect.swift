import HakoImage
import HakoRuntime
import HakoSystem

/// `hako inspect`: Docker's shape and key names, for the parts hako has.
public struct ContainerInspect: Codable, Sendable {
    public struct State: Codable, Sendable {
        public var Status: String
        public var Running: Bool
        public var Paused: Bool
        public var Restarting: Bool
        public var OOMKilled: Bool
        public var Dead: Bool
        public var Pid: Int32
        public var ExitCode: Int32
        public var Error: String
        public var StartedAt: String
        public var FinishedAt: String
        public var Health: Health? = nil
    }
    /// Docker's `.State.Health`: the last five probes.
    public struct Health: Codable, Sendable {
        public struct Result: Codable, Sendable {
            public var Start: String
            public var End: String
            public var ExitCode: Int32
            public var Output: String
        }
        public var Status: String
        public var FailingStreak: UInt32
        public var Log: [Result]
    }
    public struct Config: Codable, Sendable {
        public var Hostname: String
        public var User: String
        public var Tty: Bool
        public var OpenStdin: Bool
        public var Env: [String]
        public var Cmd: [String]
        public var Entrypoint: [String]
        public var Image: String
        public var WorkingDir: String
        public var Labels: [String: String]
        public var StopSignal: String
        public var StopTimeout: Int
        public var Healthcheck: HealthCheck? = nil
    }
    public struct RestartPolicy: Codable, Sendable {
        public var Name: String
        public var MaximumRetryCount: UInt32
    }
    public struct HostConfig: Codable, Sendable {
        public var AutoRemove: Bool
        public var RestartPolicy: RestartPolicy
        public var NetworkMode: String
        public var PidMode: String
        public var UTSMode: String
        public var IpcMode: String
        public var CgroupnsMode: String
        public var CgroupParent: String
        public var LogConfig: [String: String]
        // Resources and security (Isolation.swift); Docker's names, 0 meaning unset.
        public var Memory: Int64
        public var MemoryReservation: Int64
        public var MemorySwap: Int64
        public var NanoCpus: Int64
        public var CpuShares: Int64
        public var CpusetCpus: String
        public var CpusetMems: String
        public var PidsLimit: Int64?
        public var BlkioWeight: Int
        public var CapAdd: [String]?
        public var CapDrop: [String]?
        public var Privileged: Bool
        public var ReadonlyRootfs: Bool
        public var SecurityOpt: [String]?
        public var UsernsMode: String
        public var OomScoreAdj: Int
        public var Sysctls: [String: String]?
        public var Tmpfs: [String: String]?
    }
    public struct GraphDriver: Codable, Sendable {
        public var Name: String
        public var Data: [String: String]
    }

    public var Id: String
    public var Created: String
    public var Path: String
    public var Args: [String]
    public var State: State
    public var Image: String
    public var Name: String
    public var RestartCount: UInt32
    public var LogPath: String
    public var Driver: String
    public var Config: Config
    public var HostConfig: HostConfig
    public var GraphDriver: GraphDriver
    public var NetworkSettings: NetworkSettingsInfo? = nil
    public var Mounts: [MountPointInfo] = []
}

extension Engine {
    public func inspect(_ ref: String) throws -> ContainerInspect {
        var i = try inspectBase(ref)
        let c = try lookup(ref)
        i.Config.Healthcheck = c.config.healthCheck
        i.State.Health = c.state?.health.map { h in
            ContainerInspect.Health(Status: h.status, FailingStreak: h.failingStreak,
                                    Log: h.log.map { .init(Start: $0.start, End: $0.end, ExitCode: $0.exitCode, Output: $0.output) })
        }
        i.NetworkSettings = networkSettings(c)
        i.Mounts = mountPoints(c.config)
        return i
    }

    func inspectBase(_ ref: String) throws -> ContainerInspect {
        let c = try lookup(ref)
        let cfg = c.config
        let s = c.state
        let running = c.status == .running || c.status == .paused
        let policy = cfg.restart
        let iso = cfg.effectiveIsolation
        func mode(_ m: NamespaceMode) -> String { m == .host ? "host" : "private" }
        return ContainerInspect(
            Id: cfg.id, Created: cfg.created.rfc3339, Path: cfg.args.first ?? "", Args: Array(cfg.args.dropFirst()),
            State: .init(Status: c.status.rawValue, Running: running, Paused: c.status == .paused,
                         Restarting: c.status == .restarting, OOMKilled: s?.oomKilled ?? false, Dead: c.status == .dead,
                         Pid: running ? (s?.pid ?? 0) : 0, ExitCode: running ? 0 : (s?.exitCode ?? 0), Error: s?.error ?? "",
                         StartedAt: s?.startedAt.isEmpty == false ? s?.startedAt ?? "" : "0001-01-01T00:00:00Z",
                         FinishedAt: s?.finishedAt.isEmpty == false ? s?.finishedAt ?? "" : "0001-01-01T00:00:00Z"),
            Image: "sha256:" + cfg.imageID, Name: "/" + cfg.name, RestartCount: s?.restartCount ?? 0,
            LogPath: c.paths.log, Driver: "overlay",
            Config: .init(Hostname: cfg.hostname, User: cfg.user, Tty: cfg.tty, OpenStdin: cfg.openStdin, Env: cfg.env,
                          Cmd: cfg.cmd, Entrypoint: cfg.entrypoint, Image: cfg.image, WorkingDir: cfg.workingDir,
                          Labels: cfg.labels, StopSignal: Signals.name(cfg.stopSignal), StopTimeout: cfg.stopTimeout),
            HostConfig: .init(AutoRemove: cfg.autoRemove,
                              RestartPolicy: .init(Name: policy.name, MaximumRetryCount: policy.maximumRetryCount),
                              NetworkMode: cfg.networkMode.rawValue, PidMode: cfg.pidMode == .host ? "host" : "",
                              UTSMode: cfg.utsMode == .host ? "host" : "", IpcMode: mode(cfg.ipcMode),
                              CgroupnsMode: mode(cfg.cgroupnsMode), CgroupParent: cfg.cgroupParent,
                              LogConfig: ["Type": "hako-file", "max-size": String(cfg.logMaxSize), "max-file": String(cfg.logMaxFiles)]
                                  .merging(cfg.logAttributeOptions ?? [:]) { a, _ in a },
                              Memory: iso.limits.memory ?? 0, MemoryReservation: iso.limits.memoryReservation ?? 0,
                              MemorySwap: iso.limits.memorySwap ?? 0, NanoCpus: iso.limits.nanoCPUs ?? 0,
                              CpuShares: Int64(iso.limits.cpuShares ?? 0), CpusetCpus: iso.limits.cpusetCpus ?? "",
                              CpusetMems: iso.limits.cpusetMems ?? "", PidsLimit: iso.limits.pidsLimit,
                              BlkioWeight: Int(iso.limits.blkioWeight ?? 0),
                              CapAdd: iso.capAdd.isEmpty ? nil : iso.capAdd, CapDrop: iso.capDrop.isEmpty ? nil : iso.capDrop,
                              Privileged: iso.privileged, ReadonlyRootfs: iso.readOnlyRoot,
                              SecurityOpt: iso.securityOpt.isEmpty ? nil : iso.securityOpt,
                              UsernsMode: iso.userns.map { u in u.range.map { "auto:\($0)" } ?? "auto" } ?? "",
                              OomScoreAdj: Int(iso.oomScoreAdj ?? 0),
                              Sysctls: iso.sysctls.isEmpty ? nil : Dictionary(iso.sysctls.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 }),
                              Tmpfs: tmpfsMounts(cfg)),
            GraphDriver: .init(Name: "overlay", Data: [
                "LowerDir": cfg.layerDirs.reversed().joined(separator: ":"),
                "UpperDir": c.paths.upper, "WorkDir": c.paths.work, "MergedDir": c.paths.rootfs,
            ]))
    }
}

extension Engine {
    /// HostConfig.Tmpfs: mount point → options, for the container's --tmpfs mounts.
    func tmpfsMounts(_ cfg: ContainerConfig) -> [String: String]? {
        let t = (cfg.storage?.mounts ?? []).filter { $0.kind == .tmpfs }
        guard !t.isEmpty else { return nil }
        return Dictionary(t.map { m in
            var o: [String] = []
            if m.readOnly { o.append("ro") }
            if m.tmpfsExec { o.append("exec") }
            if m.tmpfsSize > 0 { o.append("size=\(m.tmpfsSize)") }
            if let mode = m.tmpfsMode { o.append("mode=\(String(mode, radix: 8))") }
            return (m.target, o.joined(separator: ","))
        }, uniquingKeysWith: { $1 })
    }
}
