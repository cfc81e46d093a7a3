#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// Where a container's processes go and what its monitor needs to clean up:
/// the output of a cgroup driver, consumed by the launch spec.
public struct CgroupPlacement: Sendable, Equatable, Codable {
    /// A cgroup2 directory: the init is cloned straight into it (CLONE_INTO_CGROUP).
    public var unifiedDir: String?
    /// v1 `cgroup.procs` files the init joins before it continues.
    public var procsFiles: [String] = []
    /// The container's directories, removed after its final exit. The parent
    /// stays (as Docker's /docker does): creating it for every container would
    /// double the cgroup work on the start path.
    public var removeDirs: [String] = []
    /// `cgroup.kill` (v2) or a `cgroup.procs` whose members are killed one by one (v1).
    public var killFile: String?
    /// The freezer file and whether it is v2's `cgroup.freeze` ("1"/"0") or v1's `freezer.state`.
    public var freezer: String?
    public var freezerIsV2: Bool = false
    /// Where OOM kills are counted (`memory.events` or `memory.oom_control`).
    public var oomEvents: String?

    public init() {}
}

/// The cgroup hierarchies of this host, read from /proc/self/mountinfo.
public struct CgroupHost: Sendable, Equatable {
    public enum Mode: String, Sendable { case unified, hybrid, legacy, none }
    /// The cgroup2 mount, if any (/sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones).
    public var unified: String?
    /// v1 hierarchies: mount point → controllers ("cpu", "cpuacct", "name=systemd" …).
    public var v1: [(mount: String, controllers: [String])]

    public static func == (a: CgroupHost, b: CgroupHost) -> Bool {
        a.unified == b.unified && a.v1.map(\.mount) == b.v1.map(\.mount) && a.v1.map(\.controllers) == b.v1.map(\.controllers)
    }

    public var mode: Mode {
        if v1.isEmpty { return unified == nil ? .none : .unified }
        return unified == nil ? .legacy : .hybrid
    }

    public func v1Mount(_ controller: String) -> String? {
        v1.first { $0.controllers.contains(controller) }?.mount
    }

    public static func detect(mountinfo: String? = nil) -> CgroupHost {
        let text = mountinfo ?? ((try? FS.readString("/proc/self/mountinfo")) ?? "")
        var host = parse(mountinfo: text)
        if mountinfo == nil {
            // A hierarchy mounted over (a private view of /sys/fs/cgroup) stays in
            // mountinfo but cannot be reached: keep only the ones its path shows.
            if let u = host.unified, !FS.exists(u + "/cgroup.procs") { host.unified = nil }
            host.v1 = host.v1.filter { FS.exists($0.mount + "/cgroup.procs") }
        }
        return host
    }

    /// Pure: parses mountinfo text. Each line is scanned as bytes for its
    /// file-system type first, and only a cgroup line is split into fields:
    /// splitting every line (50 here) cost each hako command ~1.2 M
    /// instructions, and a multi-character String split ~1 ms.
    public static func parse(mountinfo text: String) -> CgroupHost {
        var unified: String?
        var v1: [(String, [String])] = []
        let bytes = Array(text.utf8)
        let space = UInt8(ascii: " ")
        var start = 0
        while start < bytes.count {
            let end = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
            defer { start = end + 1 }
            // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL…] - FSTYPE SOURCE SUPEROPTS"
            guard let sep = separator(bytes, start, end) else { continue }
            // The type first, in place: only a cgroup line is split.
            var typeEnd = sep + 3
            while typeEnd < end && bytes[typeEnd] != space { typeEnd += 1 }
            let isV2 = bytes[(sep + 3)..<typeEnd].elementsEqual("cgroup2".utf8)
            guard isV2 || bytes[(sep + 3)..<typeEnd].elementsEqual("cgroup".utf8) else { continue }
            let tail = bytes[(sep + 3)..<end].split(separator: space, omittingEmptySubsequences: false)
            guard tail.count >= 3 else { continue }
            let head = bytes[start..<sep].split(separator: space)
            guard head.count >= 5 else { continue }
            let mountPoint = unescapeMountinfo(String(decoding: head[4], as: UTF8.self))
            if isV2 {
                if unified == nil || mountPoint == "/sys/fs/cgroup" { unified = mountPoint }
                continue
            }
            let ctrls = tail[2].split(separator: UInt8(ascii: ",")).map { String(decoding: $0, as: UTF8.self) }
                .filter { !isMountOption($0) && !$0.hasPrefix("release_agent") }
            if !ctrls.isEmpty && !v1.contains(where: { $0.0 == mountPoint }) { v1.append((mountPoint, ctrls)) }
        }
        return CgroupHost(unified: unified, v1: v1)
    }

    /// Super options of a v1 cgroup mount that are not controllers.
    private static func isMountOption(_ o: String) -> Bool {
        switch o {
        case "rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "clone_children", "xattr": return true
        default: return false
        }
    }

    /// Where " - " (the end of the optional fields) starts in bytes[start..<end].
    private static func separator(_ b: [UInt8], _ start: Int, _ end: Int) -> Int? {
        var i = start
        while i + 2 < end {
            if b[i] == UInt8(ascii: " "), b[i + 1] == UInt8(ascii: "-"), b[i + 2] == UInt8(ascii: " ") { return i }
            i += 1
        }
        return nil
    }

    private static func unescapeMountinfo(_ s: String) -> String {
        guard s.utf8.contains(UInt8(ascii: "\\")) else { return s }
        var out = [UInt8]()
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "\\"), i + 3 < b.count,
               let v = UInt8(String(decoding: b[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(v); i += 4
            } else { out.append(b[i]); i += 1 }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// One container's cgroups: created before its process starts, removed after it ends.
/// Two implementations (v2 and v1) behind one protocol.
public protocol CgroupDriver: Sendable {
    var host: CgroupHost { get }
    /// The cgroup parent, relative to each hierarchy's root (e.g. "hako").
    var parent: String { get }
    /// Where the container's cgroups are (pure: no file is touched).
    func placement(for id: String) -> CgroupPlacement
    /// Creates the container's cgroups; idempotent.
    func create(_ id: String) throws -> CgroupPlacement
    /// Kills whatever still runs in the container's cgroups and removes them.
    func remove(_ id: String) throws
    func setFrozen(_ id: String, _ frozen: Bool) throws
    func isFrozen(_ id: String) -> Bool
    /// PIDs (host numbering) in the container's cgroup.
    func processes(_ id: String) -> [Int32]

    // Resources (Cgroup+V2Resources.swift, Cgroup+V1Resources.swift).
    /// Refuses limits this host cannot enforce: one error naming the flag, the
    /// missing controller and the fix. Never ignores a limit silently.
    func check(_ limits: ResourceLimits) throws
    /// Writes the limits into the container's cgroups (at start, and live for `update`).
    func apply(_ limits: ResourceLimits, to id: String) throws
    /// The device rules' first step (`setDevices` is both): v1's
    /// devices.deny/allow, which pass through "deny all" and so must be in
    /// place before any process is in the cgroup. Nothing on v2.
    func setDeviceList(_ rules: [DeviceRule], for id: String) throws
    /// The device rules' second step: the eBPF program (v2, and a v1 host's
    /// cgroup2 hierarchy), attached whole in one step, so it may come after a
    /// process joined the cgroup and before that process runs its program.
    func attachDeviceFilter(_ rules: [DeviceRule], for id: String) throws
    /// Usage counters of the container's cgroups.
    func stats(_ id: String) -> CgroupStats
}

extension CgroupDriver {
    /// Installs the device rules (v2: an eBPF program; v1: devices.allow/deny).
    public func setDevices(_ rules: [DeviceRule], for id: String) throws {
        try setDeviceList(rules, for: id)
        try attachDeviceFilter(rules, for: id)
    }
}

public func makeCgroupDriver(host: CgroupHost = .detect(), parent: String = "hako") throws -> any CgroupDriver {
    // Components by bytes: the generic `joined(separator:)` cost a fresh
    // process ~0.25 M instructions of type metadata.
    var components: [String] = []
    for part in parent.utf8.split(separator: UInt8(ascii: "/")) { components.append(String(decoding: part, as: UTF8.self)) }
    var parent = ""
    for c in components {
        if !parent.isEmpty { parent += "/" }
        parent += c
    }
    guard !parent.isEmpty, !components.contains("..") else {
        throw HakoError(.invalidArgument("cgroup parent"), "invalid cgroup parent \"\(parent)\"")
    }
    switch host.mode {
    case .unified: return CgroupV2Driver(host: host, parent: parent)
    case .hybrid, .legacy: return CgroupV1Driver(host: host, parent: parent)
    case .none: throw HakoError(.unsupported(missing: "a cgroup file system"), "no cgroup file system is mounted (expected /sys/fs/cgroup); run `hako doctor`")
    }
}

// MARK: - shared file work

enum CgroupFS {
    static func write(_ path: String, _ value: String) throws {
        let fd = try FileDescriptor.open(path, O_WRONLY)
        try fd.write(value)
    }

    static func read(_ path: String) -> String? {
        (try? FS.readString(path))?.trimmed
    }

    /// mkdir with retries: a parent removed by another container's monitor at
    /// the same moment is simply created again.
    static func makeDir(_ path: String, prepare: (String) throws -> Void = { _ in }) throws {
        for attempt in 0..<5 {
            do {
                try createChain(path, prepare: prepare)
                return
            } catch let e as SystemError where e.errno == ENOENT && attempt < 4 {
                continue
            }
        }
    }

    private static func createChain(_ path: String, prepare: (String) throws -> Void) throws {
        // An existing directory is prepared too: another process may have made
        // it a moment ago and not prepared it yet (an empty cpuset refuses tasks).
        if FS.isDirectory(path) { try prepare(path); return }
        // By byte: a Character-wise search from the end cost ~23 k instructions a path.
        let parent = String(path[..<(path.utf8.lastIndex(of: UInt8(ascii: "/")) ?? path.startIndex)])
        if !parent.isEmpty { try createChain(parent, prepare: prepare) }
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw SystemError("mkdir", path) }
        try prepare(path)
    }

    static func pids(_ procs: String) -> [Int32] {
        guard let text = read(procs) else { return [] }
        return text.split(separator: "\n").compactMap { Int32($0) }
    }

    /// rmdir, waiting briefly for exiting tasks to leave.
    static func removeDir(_ path: String) throws {
        for _ in 0..<200 {
            if rmdir(path) == 0 || errno == ENOENT { return }
            if errno != EBUSY { throw SystemError("rmdir", path) }
            usleep(5000)
        }
        throw SystemError("rmdir", path, errno: EBUSY)
    }

    /// Kills every process listed in a cgroup.procs until it stays empty.
    static func killAll(procs: String, thaw: () -> Void) {
        for _ in 0..<100 {
            let list = pids(procs)
            if list.isEmpty { return }
            for p in list { kill(p, SIGKILL) }
            thaw()
            usleep(5000)
        }
    }
}
