import HakoImage
import HakoRuntime
import HakoSystem

/// Namespace choices as Docker spells them.
public enum NamespaceMode: String, Codable, Sendable {
    case `private`, host
}

public enum NetworkMode: String, Codable, Sendable {
    /// none: a namespace with lo only; host: the host's; bridge: hako networks (the default).
    case none, host, bridge
}

/// A container's configuration as stored in `config.json`: fixed at create.
public struct ContainerConfig: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var created: Timestamp
    public var image: String
    public var imageID: String
    /// Snapshot directories of the image, lowest layer first.
    public var layerDirs: [String]
    /// The program and its arguments (entrypoint + command, resolved).
    public var args: [String]
    public var entrypoint: [String]
    public var cmd: [String]
    public var env: [String]
    public var workingDir: String
    public var user: String
    public var hostname: String
    public var labels: [String: String]
    public var tty: Bool
    public var openStdin: Bool
    public var autoRemove: Bool
    public var restartPolicy: String
    public var pidMode: NamespaceMode
    public var utsMode: NamespaceMode
    public var ipcMode: NamespaceMode
    public var cgroupnsMode: NamespaceMode
    public var networkMode: NetworkMode
    public var stopSignal: Int32
    public var stopTimeout: Int
    public var logMaxSize: UInt64
    public var logMaxFiles: UInt32
    /// The cgroup parent the container's cgroups live under (relative to each hierarchy's root).
    public var cgroupParent: String
    /// Limits and hardening; nil in configurations written before they existed (Isolation.swift).
    public var isolation: IsolationConfig?
    /// Networks, published ports, DNS and extra hosts (nil: the defaults).
    public var networking: ContainerNetworking? = nil
    /// Binds, volumes and tmpfs mounts (nil: none).
    public var storage: ContainerStorage? = nil
    /// The size of its /dev/shm in bytes (nil: 64 MiB).
    public var shmSize: UInt64? = nil
    /// Supplementary groups besides the user's own (--group-add).
    public var groupAdd: [String]? = nil
    /// --init: hako-init, bound in read-only at `initPath`, runs `args` as its child.
    public var initProcess: Bool? = nil
    /// The `--log-opt` keys choosing the log's extra attributes (labels,
    /// labels-regex, env, env-regex) as given; `logAttributes` (Logs.swift) are
    /// what `logs --details` shows (nil: none asked).
    public var logAttributeOptions: [String: String]? = nil

    /// Where --init's PID 1 appears inside the container.
    public static let initPath = "/sbin/hako-init"

    public static let defaultShmSize: UInt64 = 64 << 20
    /// The health check, merged over the image's (nil: none; a test of `.none`: disabled).
    public var healthCheck: HealthCheck? = nil

    /// The probe the monitor runs, with Docker's defaults filled in (nil: no check).
    public var healthProbe: HealthProbe? {
        guard let h = healthCheck, let command = h.command else { return nil }
        func ms(_ d: Duration) -> UInt64 { UInt64(max(d.milliseconds, 1)) }
        return HealthProbe(command: command, intervalMs: ms(h.effectiveInterval), timeoutMs: ms(h.effectiveTimeout),
                           startPeriodMs: UInt64(max(h.startPeriod.milliseconds, 0)), startIntervalMs: ms(h.effectiveStartInterval),
                           retries: UInt32(clamping: h.effectiveRetries))
    }

    public var restart: RestartPolicy { (try? RestartPolicy(parsing: restartPolicy)) ?? .no }
    public var shortID: String { String(id.prefix(12)) }
}

/// What the monitor writes to `state.json`.
public struct MonitorState: Codable, Sendable, Equatable {
    public var status: String
    public var pid: Int32
    public var monitorPid: Int32
    public var exitCode: Int32
    public var oomKilled: Bool
    public var restartCount: UInt32
    public var manualStop: Bool
    public var startedAt: String
    public var finishedAt: String
    public var error: String
    /// The monitor's health check state (nil: the container has no check).
    public var health: HealthState?

    public init(status: String, exitCode: Int32 = 0, error: String = "", startedAt: String = "", finishedAt: String = "", restartCount: UInt32 = 0) {
        self.status = status
        self.pid = 0
        self.monitorPid = 0
        self.exitCode = exitCode
        self.oomKilled = false
        self.restartCount = restartCount
        self.manualStop = false
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.error = error
    }
}

/// The health check's state as the monitor records it (Docker's `.State.Health`).
public struct HealthState: Codable, Sendable, Equatable {
    /// starting, healthy or unhealthy.
    public var status: String
    public var failingStreak: UInt32
    /// The last five probes, oldest first.
    public var log: [HealthResult]

    public struct HealthResult: Codable, Sendable, Equatable {
        public var start: String
        public var end: String
        public var exitCode: Int32
        public var output: String
    }
}

/// A container's status as `ps` shows it, derived from the state file, the
/// monitor's lock and the freezer.
public enum ContainerStatus: String, Codable, Sendable {
    case created, running, paused, restarting, exited, dead
}

/// A container as read from disk: its configuration and where it stands.
public struct Container: Sendable {
    public var config: ContainerConfig
    public var state: MonitorState?
    public var status: ContainerStatus
    public var paths: ContainerPaths

    public var id: String { config.id }
    public var name: String { config.name }
    public var isRunning: Bool { status == .running || status == .paused }
    public var exitCode: Int32 { state?.exitCode ?? 0 }
}
