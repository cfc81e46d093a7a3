#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoSystem

/// Namespaces a container gets: each is new, shared with the host, or joined by path.
public struct Namespaces: Sendable, Equatable, Codable {
    public enum Mode: Sendable, Equatable, Codable {
        case new
        case host
        case path(String)
    }
    public var mount: Mode = .new
    public var pid: Mode = .new
    public var network: Mode = .new
    public var uts: Mode = .new
    public var ipc: Mode = .new
    public var cgroup: Mode = .host
    public var user: Mode = .host

    public init() {}
}

public struct Mount: Sendable, Equatable, Codable {
    public enum Kind: UInt32, Sendable, Codable { case filesystem = 0, bind = 1, symlink = 2, volume = 4 }
    public var kind: Kind
    public var source: String
    /// Absolute path inside the container.
    public var target: String
    public var fstype: String
    public var options: String
    public var flags: UInt64
    /// Attributes applied to the whole mount tree ("rro" …), LaunchSpec+Init.swift.
    public var recursiveAttributes: MountAttributes?
    /// Its propagation once mounted: HAKO_MS_{SHARED,SLAVE,PRIVATE,UNBINDABLE}, with HAKO_MS_REC for the tree; nil: as made.
    public var propagation: UInt64?

    public init(kind: Kind, source: String, target: String, fstype: String = "", options: String = "", flags: UInt64 = 0) {
        self.kind = kind; self.source = source; self.target = target
        self.fstype = fstype; self.options = options; self.flags = flags
    }

    public static func filesystem(_ fstype: String, at target: String, source: String = "", options: String = "", flags: UInt64 = 0) -> Mount {
        Mount(kind: .filesystem, source: source.isEmpty ? fstype : source, target: target, fstype: fstype, options: options, flags: flags)
    }

    public static func bind(_ source: String, at target: String, readOnly: Bool = false, recursive: Bool = true, flags: UInt64 = 0) -> Mount {
        var f = flags
        if readOnly { f |= HAKO_MS_RDONLY }
        if recursive { f |= HAKO_MS_REC }
        return Mount(kind: .bind, source: source, target: target, flags: f)
    }

    /// Changes the flags of the mount at `target` (made earlier in the list):
    /// a tmpfs that holds other mounts goes read-only only once they are made.
    public static func remount(_ target: String, flags: UInt64) -> Mount {
        Mount(kind: .filesystem, source: "", target: target, flags: HAKO_MS_REMOUNT | HAKO_MS_BIND | flags)
    }

    public static func symlink(_ target: String, pointingTo link: String) -> Mount {
        Mount(kind: .symlink, source: link, target: target)
    }
}

public struct DeviceNode: Sendable, Equatable, Codable {
    public var path: String
    public var type: UInt8  // ASCII "c" or "b"
    public var major: UInt32
    public var minor: UInt32
    public var mode: UInt32
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    /// The host node bound in instead when mknod is refused (inside a user namespace); nil: `path`.
    public var source: String?

    public init(path: String, type: UInt8, major: UInt32, minor: UInt32, mode: UInt32, uid: UInt32 = 0, gid: UInt32 = 0, source: String? = nil) {
        self.path = path; self.type = type; self.major = major; self.minor = minor
        self.mode = mode; self.uid = uid; self.gid = gid; self.source = source
    }

    /// The nodes every container's own /dev holds: Docker's defaults, which are
    /// also the OCI runtime spec's default devices.
    public static let standard: [DeviceNode] = [
        DeviceNode(path: "/dev/null", type: UInt8(ascii: "c"), major: 1, minor: 3, mode: 0o666),
        DeviceNode(path: "/dev/zero", type: UInt8(ascii: "c"), major: 1, minor: 5, mode: 0o666),
        DeviceNode(path: "/dev/full", type: UInt8(ascii: "c"), major: 1, minor: 7, mode: 0o666),
        DeviceNode(path: "/dev/random", type: UInt8(ascii: "c"), major: 1, minor: 8, mode: 0o666),
        DeviceNode(path: "/dev/urandom", type: UInt8(ascii: "c"), major: 1, minor: 9, mode: 0o666),
        DeviceNode(path: "/dev/tty", type: UInt8(ascii: "c"), major: 5, minor: 0, mode: 0o666),
    ]
}

/// A file the container gets from bytes held in memory (a cluster task's
/// secret or config): written by the init path into a tmpfs of the
/// container's own and bound read-only at `target`, so its content is never
/// on a disk, nor in a file of the engine's. Not Codable on purpose: it is
/// never stored.
public struct ContainerFile: Sendable, Equatable {
    /// Absolute and normalized, inside the container.
    public var target: String
    public var uid: UInt32
    public var gid: UInt32
    public var mode: UInt32
    public var content: [UInt8]

    public init(target: String, uid: UInt32 = 0, gid: UInt32 = 0, mode: UInt32 = 0o444, content: [UInt8]) {
        self.target = target
        self.uid = uid
        self.gid = gid
        self.mode = mode
        self.content = content
    }
}

public struct Rlimit: Sendable, Equatable, Codable {
    public var resource: UInt32
    public var soft: UInt64
    public var hard: UInt64
    public init(resource: UInt32, soft: UInt64, hard: UInt64) { self.resource = resource; self.soft = soft; self.hard = hard }
}

public struct Capabilities: Sendable, Equatable, Codable {
    public var bounding: UInt64, effective: UInt64, permitted: UInt64, inheritable: UInt64, ambient: UInt64
    public init(bounding: UInt64, effective: UInt64, permitted: UInt64, inheritable: UInt64, ambient: UInt64) {
        self.bounding = bounding; self.effective = effective; self.permitted = permitted
        self.inheritable = inheritable; self.ambient = ambient
    }
}

public struct IDMap: Sendable, Equatable, Codable {
    public var inside: UInt32, outside: UInt32, count: UInt32
    public init(inside: UInt32, outside: UInt32, count: UInt32) { self.inside = inside; self.outside = outside; self.count = count }
}

/// The process a container runs (its init, or an exec'd process).
public struct ProcessSpec: Sendable, Equatable, Codable {
    public var args: [String]
    public var env: [String]
    public var cwd: String = "/"
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public var groups: [UInt32] = []
    /// Terminal size (rows, cols) when the process gets a terminal.
    public var terminal: TerminalSize?
    public var keepStdin = false
    public var capabilities: Capabilities?
    public var noNewPrivileges = false
    /// A compiled seccomp filter (raw struct sock_filter[]).
    public var seccomp: [UInt8]?
    public var rlimits: [Rlimit] = []
    public var oomScoreAdj: Int32?
    /// The AppArmor profile the program is executed under (nil: the runtime's own).
    public var apparmorProfile: String?

    public init(args: [String], env: [String]) { self.args = args; self.env = env }
}

public struct TerminalSize: Sendable, Equatable, Codable {
    public var rows: UInt16, cols: UInt16
    public init(rows: UInt16, cols: UInt16) { self.rows = rows; self.cols = cols }
}

/// The overlay that becomes a container's root: lower layers top-most first.
public struct OverlayRoot: Sendable, Equatable, Codable {
    public var lower: [String]
    public var upper: String
    public var work: String
    /// Built by the parent as a detached mount and moved in by the child (a container
    /// in its own user namespace), the lower layers idmapped when `idmapLower`.
    public var detached = false
    public var idmapLower = false
    /// Mounted "volatile": the upper layer is never synced — not at each
    /// fsync inside, not when the overlay is unmounted (which otherwise
    /// syncs the whole file system under it). For a container deleted at its
    /// end (`--rm`, as podman does): the sync wrote and flushed its files
    /// only for them to be deleted a moment later. After a crash such an
    /// upper layer may be incomplete; overlay then refuses to mount it again
    /// (`Engine.clearVolatileMark`).
    public var volatile = false
    /// The init chdirs here before mounting, so `lower` may hold short relative
    /// names (the mount options must fit in a page).
    public var directory: String?
    public init(lower: [String], upper: String, work: String, directory: String? = nil) {
        self.lower = lower; self.upper = upper; self.work = work; self.directory = directory
    }

    /// Overlay mount data, escaping the separators overlay reserves.
    public var mountData: String {
        // By bytes: the three are ASCII, and walking Characters (grapheme
        // breaking) cost ~180 k instructions a start for a few paths; a
        // generic `joined(separator:)` another ~0.25 M of type metadata.
        var out: [UInt8] = []
        out.reserveCapacity(64 + lower.reduce(upper.utf8.count + work.utf8.count) { $0 + $1.utf8.count + 1 })
        func esc(_ p: String) {
            for b in p.utf8 {
                if b == UInt8(ascii: ":") || b == UInt8(ascii: ",") || b == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
                out.append(b)
            }
        }
        out.append(contentsOf: "lowerdir=".utf8)
        for (i, l) in lower.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ":")) }
            esc(l)
        }
        out.append(contentsOf: ",upperdir=".utf8)
        esc(upper)
        out.append(contentsOf: ",workdir=".utf8)
        esc(work)
        if volatile { out.append(contentsOf: ",volatile".utf8) }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Everything the init path in C needs to build the container.
public struct RuntimeSpec: Sendable, Equatable {
    public var id: String
    public var namespaces = Namespaces()
    /// The directory that becomes "/": the overlay is mounted on it when `overlay` is set.
    public var rootfs: String
    public var overlay: OverlayRoot?
    public var hostname: String?
    public var process: ProcessSpec
    public var mounts: [Mount] = []
    public var devices: [DeviceNode] = []
    public var maskedPaths: [String] = []
    public var readonlyPaths: [String] = []
    public var sysctls: [(String, String)] = []
    public var readonlyRoot = false
    public var propagation: UInt64 = HAKO_MS_REC | HAKO_MS_SLAVE
    public var cgroup = CgroupPlacement()
    public var uidMappings: [IDMap] = []
    public var gidMappings: [IDMap] = []
    /// Copy every device node of the host's /dev (--privileged).
    public var hostDevices = false
    /// Files written from memory onto a tmpfs, after the mounts and devices.
    public var files: [ContainerFile] = []
    /// What the OCI runtime adds to the init path (LaunchSpec+Init.swift).
    public var initOptions = InitOptions()

    public init(id: String, rootfs: String, process: ProcessSpec) {
        self.id = id; self.rootfs = rootfs; self.process = process
    }

    public static func == (a: RuntimeSpec, b: RuntimeSpec) -> Bool {
        LaunchSpecEncoder.encode(a, monitor: nil) == LaunchSpecEncoder.encode(b, monitor: nil)
    }
}

public enum RestartPolicy: Sendable, Equatable, Codable, CustomStringConvertible {
    case no
    case onFailure(maxRetries: UInt32)
    case always
    case unlessStopped

    /// The monitor's number for the policy (HAKO_RESTART_*).
    public var monitorCode: UInt32 {
        switch self {
        case .no: return UInt32(HAKO_RESTART_NO.rawValue)
        case .onFailure: return UInt32(HAKO_RESTART_ON_FAILURE.rawValue)
        case .always: return UInt32(HAKO_RESTART_ALWAYS.rawValue)
        case .unlessStopped: return UInt32(HAKO_RESTART_UNLESS_STOPPED.rawValue)
        }
    }

    /// The policy of a monitor's number and retry count (an unknown number is `no`).
    public init(monitorCode: UInt32, maximumRetryCount: UInt32) {
        switch monitorCode {
        case UInt32(HAKO_RESTART_ON_FAILURE.rawValue): self = .onFailure(maxRetries: maximumRetryCount)
        case UInt32(HAKO_RESTART_ALWAYS.rawValue): self = .always
        case UInt32(HAKO_RESTART_UNLESS_STOPPED.rawValue): self = .unlessStopped
        default: self = .no
        }
    }

    /// Docker's syntax: no | on-failure[:N] | always | unless-stopped
    public init(parsing s: String) throws {
        let parts = s.split(separator: ":", maxSplits: 1).map(String.init)
        switch parts.first ?? "" {
        case "no" where parts.count == 1: self = .no
        case "always" where parts.count == 1: self = .always
        case "unless-stopped" where parts.count == 1: self = .unlessStopped
        case "on-failure":
            if parts.count == 2 {
                guard let n = UInt32(parts[1]) else { throw HakoError(.invalidArgument("--restart"), "invalid restart policy \"\(s)\": maximum retry count must be a non-negative integer") }
                self = .onFailure(maxRetries: n)
            } else { self = .onFailure(maxRetries: 0) }
        default:
            throw HakoError(.invalidArgument("--restart"), "invalid restart policy \"\(s)\" (expected no, on-failure[:N], always or unless-stopped)")
        }
    }

    public var description: String {
        switch self {
        case .no: return "no"
        case .onFailure(let n): return n == 0 ? "on-failure" : "on-failure:\(n)"
        case .always: return "always"
        case .unlessStopped: return "unless-stopped"
        }
    }

    public var name: String {
        switch self {
        case .no: return "no"
        case .onFailure: return "on-failure"
        case .always: return "always"
        case .unlessStopped: return "unless-stopped"
        }
    }

    public var maximumRetryCount: UInt32 {
        if case .onFailure(let n) = self { return n }
        return 0
    }
}

/// What the monitor does around the container: logs, state, restarts, clean-up.
public struct MonitorSpec: Sendable, Equatable {
    public var logPath: String?
    public var logMaxSize: UInt64 = 0
    public var logMaxFiles: UInt32 = 1
    public var statePath: String
    public var runDir: String
    public var restart: RestartPolicy = .no
    public var restartCount: UInt32 = 0
    /// Removed after the final exit (`--rm`): directories (recursively) and links naming this container.
    public var removeDirs: [String] = []
    public var removeLinks: [String] = []
    public var stopSignal: Int32 = SIGTERM
    /// A command run after the final exit (e.g. network clean-up), argv[0] absolute.
    public var cleanupCommand: [String] = []
    /// The network release the monitor does itself after the final exit, in
    /// place of `cleanupCommand` unless the release's guard file exists then.
    public var networkRelease: NetworkRelease?
    /// The health check the monitor runs (nil: none).
    public var health: HealthProbe?
    /// Where the monitor records its events (health_status) and their attributes, a JSON object.
    public var eventLog: String?
    public var eventAttributes = "{}"

    public init(statePath: String, runDir: String) { self.statePath = statePath; self.runDir = runDir }
}

/// What the monitor removes to release a container's network itself, under
/// the network lock (a container that publishes no port on the predefined
/// networks): the pinned namespace (unmounted, then unlinked), the leases
/// (symbolic links to the container's id; one naming another container is
/// left alone), then the endpoint record. When `teardownGuard` exists the
/// monitor runs its clean-up command instead.
public struct NetworkRelease: Sendable, Equatable {
    public var lock: String
    public var teardownGuard: String
    public var namespace: String
    public var leases: [String]
    public var endpointRecord: String
    public init(lock: String, teardownGuard: String, namespace: String, leases: [String], endpointRecord: String) {
        self.lock = lock; self.teardownGuard = teardownGuard; self.namespace = namespace
        self.leases = leases; self.endpointRecord = endpointRecord
    }
}

/// The monitor's health probe: the program (run as `exec` runs one) and Docker's schedule.
public struct HealthProbe: Sendable, Equatable {
    public var command: [String]
    public var intervalMs: UInt64
    public var timeoutMs: UInt64
    public var startPeriodMs: UInt64
    public var startIntervalMs: UInt64
    public var retries: UInt32

    public init(command: [String], intervalMs: UInt64, timeoutMs: UInt64, startPeriodMs: UInt64, startIntervalMs: UInt64, retries: UInt32) {
        self.command = command
        self.intervalMs = intervalMs
        self.timeoutMs = timeoutMs
        self.startPeriodMs = startPeriodMs
        self.startIntervalMs = startIntervalMs
        self.retries = retries
    }
}

/// Writes the flat record blob that CHakoShim's hako_spec_parse reads.
public enum LaunchSpecEncoder {
    public static func encode(_ r: RuntimeSpec, monitor m: MonitorSpec?) -> [UInt8] {
        var w = RecordWriter()
        w.string(HAKO_T_ID, r.id)
        var flags: UInt64 = 0
        func ns(_ mode: Namespaces.Mode, _ flag: UInt64) {
            switch mode {
            case .new: flags |= flag
            case .host: break
            case .path(let p): w.nsJoin(UInt32(truncatingIfNeeded: flag), p)
            }
        }
        ns(r.namespaces.user, HAKO_CLONE_NEWUSER)
        ns(r.namespaces.mount, HAKO_CLONE_NEWNS)
        ns(r.namespaces.pid, HAKO_CLONE_NEWPID)
        ns(r.namespaces.network, HAKO_CLONE_NEWNET)
        ns(r.namespaces.uts, HAKO_CLONE_NEWUTS)
        ns(r.namespaces.ipc, HAKO_CLONE_NEWIPC)
        if case .new = r.namespaces.cgroup { w.empty(HAKO_T_CGROUPNS) }
        if case .path(let p) = r.namespaces.cgroup { w.nsJoin(UInt32(truncatingIfNeeded: HAKO_CLONE_NEWCGROUP), p) }
        w.u64(HAKO_T_CLONE_FLAGS, flags)
        w.string(HAKO_T_ROOTFS, r.rootfs)
        if let o = r.overlay, o.detached {
            var b = le32(o.idmapLower ? 1 : 0)
            for d in [o.upper, o.work] + o.lower { b += Array(d.utf8) + [0] }
            w.raw(HAKO_T_DETACHED_OVERLAY, b)
        } else if let o = r.overlay {
            w.string(HAKO_T_OVERLAY, o.mountData)
            if let d = o.directory { w.string(HAKO_T_OVERLAY_DIR, d) }
        }
        if let o = r.overlay, o.volatile { w.empty(HAKO_T_OVERLAY_VOLATILE) }
        if let h = r.hostname { w.string(HAKO_T_HOSTNAME, h) }
        let p = r.process
        for a in p.args { w.string(HAKO_T_ARG, a) }
        for e in p.env { w.string(HAKO_T_ENV, e) }
        w.string(HAKO_T_CWD, p.cwd)
        w.u32(HAKO_T_UID, p.uid)
        w.u32(HAKO_T_GID, p.gid)
        for g in p.groups { w.u32(HAKO_T_GROUP, g) }
        if let t = p.terminal { w.raw(HAKO_T_TTY, le32(UInt32(t.rows)) + le32(UInt32(t.cols))) }
        if p.keepStdin { w.empty(HAKO_T_STDIN) }
        for l in p.rlimits { w.raw(HAKO_T_RLIMIT, le32(l.resource) + le64(l.soft) + le64(l.hard)) }
        if let c = p.capabilities {
            w.raw(HAKO_T_CAPS, le64(c.bounding) + le64(c.effective) + le64(c.permitted) + le64(c.inheritable) + le64(c.ambient))
        }
        if p.noNewPrivileges { w.empty(HAKO_T_NO_NEW_PRIVS) }
        if let a = p.apparmorProfile, !a.isEmpty { w.string(HAKO_T_APPARMOR, a) }
        if let s = p.seccomp, !s.isEmpty { w.raw(HAKO_T_SECCOMP, s) }
        if let o = p.oomScoreAdj { w.raw(HAKO_T_OOM_SCORE_ADJ, le32(UInt32(bitPattern: o))) }
        for mnt in r.mounts {
            var b = le32(mnt.kind.rawValue) + le64(mnt.flags)
            for s in [mnt.source, mnt.target, mnt.fstype, mnt.options] { b += Array(s.utf8) + [0] }
            w.raw(HAKO_T_MOUNT, b)
            if let a = mnt.recursiveAttributes { w.raw(HAKO_T_MOUNT_ATTR, le64(a.set) + le64(a.clear)) }
            if let p = mnt.propagation, p != 0 { w.raw(HAKO_T_MOUNT_PROPAGATION, le64(p)) }
        }
        for d in r.devices {
            var b = le32(UInt32(d.type)) + le32(d.major) + le32(d.minor) + le32(d.mode) + le32(d.uid) + le32(d.gid)
            b += Array(d.path.utf8) + [0]
            if let source = d.source { b += Array(source.utf8) + [0] }
            w.raw(HAKO_T_DEVICE, b)
        }
        if r.hostDevices { w.empty(HAKO_T_HOST_DEVICES) }
        for f in r.files { w.raw(HAKO_T_FILE, le32(f.uid) + le32(f.gid) + le32(f.mode) + Array(f.target.utf8) + [0] + f.content) }
        for m in r.maskedPaths { w.string(HAKO_T_MASKED, m) }
        for m in r.readonlyPaths { w.string(HAKO_T_READONLY, m) }
        for (k, v) in r.sysctls { w.raw(HAKO_T_SYSCTL, Array(k.utf8) + [0] + Array(v.utf8) + [0]) }
        if r.readonlyRoot { w.empty(HAKO_T_READONLY_ROOT) }
        w.u64(HAKO_T_PROPAGATION, r.propagation)
        for m in r.uidMappings { w.raw(HAKO_T_USERNS_MAP, le32(0) + le32(m.inside) + le32(m.outside) + le32(m.count)) }
        for m in r.gidMappings { w.raw(HAKO_T_USERNS_MAP, le32(1) + le32(m.inside) + le32(m.outside) + le32(m.count)) }
        let cg = r.cgroup
        if let d = cg.unifiedDir { w.string(HAKO_T_CGROUP_DIR, d) }
        for f in cg.procsFiles { w.string(HAKO_T_CGROUP_PROCS, f) }
        w.initOptions(r.initOptions)

        if let m {
            if let l = m.logPath { w.string(HAKO_T_LOG_PATH, l) }
            w.u64(HAKO_T_LOG_MAX_SIZE, m.logMaxSize)
            w.u32(HAKO_T_LOG_MAX_FILES, m.logMaxFiles)
            w.string(HAKO_T_STATE_PATH, m.statePath)
            w.string(HAKO_T_RUN_DIR, m.runDir)
            w.raw(HAKO_T_RESTART, le32(m.restart.monitorCode) + le32(m.restart.maximumRetryCount))
            w.u32(HAKO_T_RESTART_COUNT, m.restartCount)
            for d in m.removeDirs { w.string(HAKO_T_REMOVE_DIR, d) }
            for f in m.removeLinks { w.string(HAKO_T_REMOVE_FILE, f) }
            w.u32(HAKO_T_STOP_SIGNAL, UInt32(bitPattern: m.stopSignal))
            for a in m.cleanupCommand { w.string(HAKO_T_CLEANUP_ARG, a) }
            if let r = m.networkRelease {
                w.string(HAKO_T_NET_LOCK, r.lock)
                w.string(HAKO_T_NET_GUARD, r.teardownGuard)
                w.string(HAKO_T_NET_UNPIN, r.namespace)
                for l in r.leases { w.string(HAKO_T_NET_LEASE, l) }
                w.string(HAKO_T_NET_RECORD, r.endpointRecord)
            }
            for d in cg.removeDirs { w.string(HAKO_T_CGROUP_RMDIR, d) }
            if let k = cg.killFile { w.string(HAKO_T_CGROUP_KILL, k) }
            if let f = cg.freezer { w.raw(HAKO_T_FREEZER, Array(f.utf8) + [0, cg.freezerIsV2 ? 2 : 1]) }
            if let o = cg.oomEvents { w.string(HAKO_T_OOM_EVENTS, o) }
            if let h = m.health, !h.command.isEmpty {
                w.raw(HAKO_T_HEALTH, le64(max(h.intervalMs, 1)) + le64(max(h.timeoutMs, 1)) + le64(h.startPeriodMs)
                      + le64(max(h.startIntervalMs, 1)) + le32(max(h.retries, 1)))
                for a in h.command { w.string(HAKO_T_HEALTH_ARG, a) }
            }
            if let e = m.eventLog {
                w.string(HAKO_T_EVENT_LOG, e)
                w.string(HAKO_T_EVENT_ATTRS, m.eventAttributes)
            }
        }
        return w.bytes
    }
}

func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
func le64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

/// Records in host byte order, as the C parser reads them (memcpy of native ints).
struct RecordWriter {
    var bytes: [UInt8] = Array("HAKOSPEC".utf8)

    // Appended in place (native byte order, as the monitor reads them): a
    // temporary array per field cost a spec ~0.2 M instructions.
    mutating func header(_ tag: hako_tag, _ count: Int) {
        withUnsafeBytes(of: UInt16(tag.rawValue)) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(count)) { bytes.append(contentsOf: $0) }
    }
    mutating func raw(_ tag: hako_tag, _ payload: [UInt8]) {
        header(tag, payload.count)
        bytes.append(contentsOf: payload)
    }
    mutating func empty(_ tag: hako_tag) { header(tag, 0) }
    mutating func string(_ tag: hako_tag, _ s: String) {
        header(tag, s.utf8.count + 1)
        bytes.append(contentsOf: s.utf8)
        bytes.append(0)
    }
    mutating func u32(_ tag: hako_tag, _ v: UInt32) {
        header(tag, 4)
        withUnsafeBytes(of: v) { bytes.append(contentsOf: $0) }
    }
    mutating func u64(_ tag: hako_tag, _ v: UInt64) {
        header(tag, 8)
        withUnsafeBytes(of: v) { bytes.append(contentsOf: $0) }
    }
    mutating func nsJoin(_ type: UInt32, _ path: String) {
        header(HAKO_T_NS_JOIN, 4 + path.utf8.count + 1)
        withUnsafeBytes(of: type) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: path.utf8)
        bytes.append(0)
    }
}
