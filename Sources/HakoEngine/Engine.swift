#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import HakoImage
import HakoRuntime
import HakoSystem

/// The local runtime core: Docker-like operations composed from the facilities.
/// No daemon: every call reads and writes the state under the data root and
/// talks to monitors directly, so two hako commands can run at once.
public final class Engine: @unchecked Sendable {
    public let paths: EnginePaths
    public let images: ImageStore
    public let cgroupHost: CgroupHost
    /// The cgroup parent for new containers.
    public let cgroupParent: String
    public let monitorPath: String

    public init(paths: EnginePaths, cgroupParent: String? = nil, monitorPath: String? = nil) throws {
        self.paths = paths
        try paths.ensure()
        self.images = try ImageStore(dataRoot: paths.root)
        self.cgroupHost = CgroupHost.detect()
        self.cgroupParent = cgroupParent ?? Engine.environment("HAKO_CGROUP_PARENT") ?? "hako"
        self.monitorPath = monitorPath ?? Engine.defaultMonitorPath
        reconcileNetworks()
    }

    /// `run --init`'s PID 1, installed next to hako (HAKO_INIT to move it).
    public static var initBinary: String { environment("HAKO_INIT") ?? siblingExecutable("hako-init") }

    /// hako-monitor as this engine would run it.
    public static var defaultMonitorPath: String { environment("HAKO_MONITOR") ?? siblingExecutable("hako-monitor") }

    static func environment(_ key: String) -> String? {
        guard let v = getenv(key) else { return nil }
        let s = String(cString: v)
        return s.isEmpty ? nil : s
    }

    /// A program installed next to the running one (hako and hako-monitor ship together).
    static func siblingExecutable(_ name: String) -> String {
        // By bytes: a generic split and join of the path's components cost
        // every command ~0.1 ms of the runtime's witness-table lookups.
        let exe = FS.readLink("/proc/self/exe") ?? "/usr/local/bin/hako"
        let dir = FS.parentDirectory(exe)
        return dir == "/" ? "/\(name)" : "\(dir)/\(name)"
    }

    func cgroups(for config: ContainerConfig) throws -> any CgroupDriver {
        try makeCgroupDriver(host: cgroupHost, parent: config.cgroupParent)
    }

    // MARK: - reading containers

    static let decoder = JSONDecoding()
    /// The engine's records (config.json, state.json, endpoints, volumes),
    /// written with sorted keys and read back with `decoder`.
    static let encoder = JSONEncoding(sortedKeys: true)

    func readConfig(_ id: String) throws -> ContainerConfig {
        let p = paths.container(id).config
        do {
            return try Engine.decoder.decode(ContainerConfig.self, from: try FS.readFile(p))
        } catch let e as SystemError where e.errno == ENOENT {
            throw HakoError(.notFound(.container, id), "no such container: \(id)")
        } catch {
            throw HakoError(.failed, "container \(id): unreadable configuration", cause: error)
        }
    }

    func writeConfig(_ c: ContainerConfig) throws {
        try FS.writeAtomic(paths.container(c.id).config, try Engine.encoder.encode(c))
    }

    /// The monitor's state, its health the latest the monitor recorded.
    func readState(_ id: String) -> MonitorState? { withLiveHealth(id, readStateFile(id)) }

    /// `state.json` alone: its health is the one of the last change of status.
    func readStateFile(_ id: String) -> MonitorState? {
        guard let bytes = try? FS.readFile(paths.container(id).state) else { return nil }
        return try? Engine.decoder.decode(MonitorState.self, from: bytes)
    }

    /// `state` with the health of the live health file, which the monitor
    /// writes after every probe and with every state file (so it is never the
    /// older of the two); the state file's when there is none whole.
    func withLiveHealth(_ id: String, _ state: MonitorState?) -> MonitorState? {
        guard var s = state, s.health != nil, let body = MonitorHealthFile.read(paths.container(id).health),
              let health = try? Engine.decoder.decode(HealthState.self, from: Array(body)) else { return state }
        s.health = health
        return s
    }

    func writeState(_ id: String, _ s: MonitorState) throws {
        try FS.writeAtomic(paths.container(id).state, try Engine.encoder.encode(s))
    }

    func monitorAlive(_ id: String) -> Bool { FileLock.isHeld(paths.container(id).monitorLock) }

    /// Reads a container and derives its status. A container whose monitor has
    /// died while it ran is settled on the spot (see `settleLostMonitor`).
    /// `cache`: reuses what an earlier listing decoded from unchanged files.
    func load(_ id: String, cache: ContainerListCache? = nil) throws -> Container {
        let config = try cache?.config(id, engine: self) ?? readConfig(id)
        let cp = paths.container(id)
        var state = cache.map { $0.state(id, engine: self) } ?? readState(id)
        let alive = monitorAlive(id)
        var status: ContainerStatus
        if alive {
            if state?.status == "restarting" {
                status = .restarting
            } else if state?.status == "exited" {
                status = .exited  // the final exit is recorded; the monitor is running its clean-up
            } else {
                status = (try? cgroups(for: config).isFrozen(id)) == true ? .paused : .running
            }
        } else {
            switch state?.status {
            case nil: status = .created
            case "running", "restarting":
                try settleLostMonitor(config)
                state = readState(id)
                status = .exited
            default: status = .exited
            }
        }
        return Container(config: config, state: state, status: status, paths: cp)
    }

    /// The monitor is gone but the state says the container runs: the monitor was
    /// killed. Its container died with it (PR_SET_PDEATHSIG); remove what is
    /// left (processes, cgroups, runtime dir) and record the loss.
    func settleLostMonitor(_ config: ContainerConfig) throws {
        let cp = paths.container(config.id)
        guard let lock = try FileLock.tryAcquire(cp.lock) else { return }
        defer { lock.release() }
        guard !monitorAlive(config.id), var s = readState(config.id), s.status == "running" || s.status == "restarting" else { return }
        try? cgroups(for: config).remove(config.id)
        try? FS.removeTree(cp.runDir)
        FS.removeOrphanedTemporaries(in: cp.dir)  // a state file the monitor was writing when killed
        if config.autoRemove {
            try removeFiles(config)
            return
        }
        s.status = "exited"
        s.pid = 0
        s.exitCode = 137
        s.error = "the container's monitor exited unexpectedly"
        s.finishedAt = Timestamp.now().rfc3339
        try writeState(config.id, s)
    }

    /// Every container, newest first.
    public func list() throws -> [Container] { try list(cache: nil) }

    /// `list()` for a caller that lists again and again (the cluster agent):
    /// with a cache, unchanged configuration and state files are not read
    /// and decoded again.
    public func list(cache: ContainerListCache?) throws -> [Container] {
        var out: [Container] = []
        var seen: Set<String> = []
        for name in try FS.list(paths.containers) where name.count == 64 && !name.hasPrefix(".") {
            seen.insert(name)
            if let c = try? load(name, cache: cache) {
                out.append(c)
            } else if FS.isDirectory(paths.container(name).dir) {
                // A container whose configuration cannot be read still shows, so that `rm -f` can remove it.
                out.append(Container(config: Engine.placeholderConfig(id: name), state: nil, status: .dead, paths: paths.container(name)))
            }
        }
        cache?.keep(only: seen)
        return out.sorted { $0.config.created > $1.config.created }
    }

    static func placeholderConfig(id: String) -> ContainerConfig {
        ContainerConfig(id: id, name: "", created: Timestamp(seconds: 0), image: "", imageID: "", layerDirs: [],
                        args: [], entrypoint: [], cmd: [], env: [], workingDir: "/", user: "", hostname: "",
                        labels: [:], tty: false, openStdin: false, autoRemove: false, restartPolicy: "no",
                        pidMode: .private, utsMode: .private, ipcMode: .private, cgroupnsMode: .host,
                        networkMode: .none, stopSignal: SIGTERM, stopTimeout: 10, logMaxSize: 0, logMaxFiles: 1,
                        cgroupParent: "hako")
    }

    /// Finds a container by name, full id or unique id prefix.
    public func lookup(_ ref: String) throws -> Container {
        try load(resolveID(ref))
    }

    public func resolveID(_ ref: String) throws -> String {
        let r = ref.hasPrefix("/") ? String(ref.dropFirst()) : ref
        guard !r.isEmpty else { throw HakoError(.notFound(.container, ""), "no such container: \"\"") }
        if Names.isValid(r), let target = FS.readLink(paths.nameLink(r)) {
            let id = String(target.split(separator: "/").last ?? "")
            if FS.isDirectory(paths.container(id).dir) { return id }
        }
        if r.count == 64, FS.isDirectory(paths.container(r).dir) { return r }
        guard r.allSatisfy({ $0.isHexDigit }) else { throw HakoError(.notFound(.container, ref), "no such container: \(ref)") }
        let hits = try FS.list(paths.containers).filter { $0.count == 64 && $0.hasPrefix(r.lowercased()) }
        if hits.count == 1 { return hits[0] }
        if hits.isEmpty { throw HakoError(.notFound(.container, ref), "no such container: \(ref)") }
        throw HakoError(.invalidArgument("container"), "multiple containers match the prefix \(ref); use more characters")
    }

    // MARK: - removal

    /// Deletes a stopped container's files and name. Caller holds no monitor.
    func removeFiles(_ config: ContainerConfig) throws {
        let global = try FileLock.acquire(paths.lock)
        defer { global.release() }
        let cp = paths.container(config.id)
        try? cgroups(for: config).remove(config.id)
        try FS.removeTree(cp.runDir)
        if !config.name.isEmpty, let target = FS.readLink(paths.nameLink(config.name)),
           target.split(separator: "/").last.map(String.init) == config.id {
            try FS.unlinkIfPresent(paths.nameLink(config.name))
        }
        // Rename first so a half-removed container never looks like a whole one.
        let doomed = "\(paths.containers)/.removing-\(config.id)"
        if rename(cp.dir, doomed) != 0 && errno != ENOENT { throw SystemError("rename", cp.dir) }
        try FS.removeTree(doomed)
    }

    /// The monitor deleting a `.removing-<id>-<pid>` directory (container
    /// ids are hex: the last "-" starts the pid); nil for any other name.
    static func remover(_ name: String) -> pid_t? {
        guard name.hasPrefix(".removing-"), let dash = name.lastIndex(of: "-") else { return nil }
        return FS.pid(name[name.index(after: dash)...])
    }

    /// Leftovers of commands killed half-way: temporary container dirs, and
    /// names pointing at no container. Runs under the global lock.
    /// A `--rm` monitor's `.removing-<id>-<pid>` is left to it while it
    /// runs: it deletes the bytes after telling its client, and a next `run`
    /// deleting them too would pay for them on its own start.
    func collectGarbage() {
        // A create killed while it unpacked the init layer left it in the image
        // store's tmp/ (a live unpack holds its lock and is left alone).
        images.content.collectTemporaries()
        for name in (try? FS.list(paths.containers)) ?? [] where name.hasPrefix(".") {
            if let remover = Engine.remover(name), FS.processExists(remover) { continue }
            try? FS.removeTree("\(paths.containers)/\(name)")
        }
        for name in (try? FS.list(paths.names)) ?? [] {
            let link = paths.nameLink(name)
            if let target = FS.readLink(link), !FS.isDirectory(paths.container(String(target.split(separator: "/").last ?? "")).dir) {
                try? FS.unlinkIfPresent(link)
            }
        }
    }
}
