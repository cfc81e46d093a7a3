#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoRuntime
import HakoSystem

extension Engine {
    /// Starts a created or stopped container under a new monitor.
    /// With `attach`, returns a connection that streams the container's output
    /// from its first byte and carries stdin, resizes and signals. `files`:
    /// files the container gets from memory (`ContainerFile`; a cluster
    /// task's secrets and configs), for this start only — nothing stores them.
    @discardableResult
    public func start(_ ref: String, attach: Bool = false, terminal: TerminalSize? = nil, files: [ContainerFile] = []) throws -> MonitorConnection? {
        try Engine.checkFiles(files)
        let id = try resolveID(ref)
        let lock = try FileLock.acquire(paths.container(id).lock)
        defer { lock.release() }
        let c = try load(id)
        if c.status == .running || c.status == .paused || c.status == .restarting {
            if attach { throw HakoError(.conflict(.running(c.name)), "container \(c.name) is already running") }
            return nil
        }
        try awaitFinalCleanup(id)
        FS.removeOrphanedTemporaries(in: paths.container(id).dir)  // of a killed monitor or command
        clearVolatileMark(paths.container(id))
        let conn: MonitorConnection?
        do { conn = try launch(c.config, attach: attach, terminal: terminal, files: files) } catch {
            // A --rm container that cannot start is removed, as Docker's is,
            // with its anonymous volumes (what its own end would have done).
            if c.config.autoRemove, (try? removeFiles(c.config)) != nil {
                removeAnonymousVolumes(c.config)
                recordEvent("destroy", c.config)
            }
            throw error
        }
        recordEvent("start", c.config)
        return conn
    }

    /// Starts a container this process has just created (`hako run`): the
    /// configuration is at hand, nothing needs reading back.
    public func start(created config: ContainerConfig, attach: Bool = false, terminal: TerminalSize? = nil,
                      files: [ContainerFile] = []) throws -> MonitorConnection? {
        try Engine.checkFiles(files)
        let lock = try FileLock.acquire(paths.container(config.id).lock)
        defer { lock.release() }
        if monitorAlive(config.id) { throw HakoError(.conflict(.running(config.name)), "container \(config.name) is already running") }
        let conn = try launch(config, attach: attach, terminal: terminal, files: files)
        recordEvent("start", config)
        return conn
    }

    /// Creates the cgroups and hands the container to a new monitor. Caller holds the container lock.
    func launch(_ config: ContainerConfig, attach: Bool, terminal: TerminalSize?, files: [ContainerFile] = []) throws -> MonitorConnection? {
        let id = config.id
        let cp = paths.container(id)
        let driver = try cgroups(for: config)
        try? FS.removeTree(cp.runDir)
        try FS.makeDirectories(cp.runDir, mode: 0o700)
        var ours: FileDescriptor?
        var theirs: FileDescriptor?
        var monitorProcess: PendingMonitor?
        var network: BackgroundJob<EndpointRecord?>?
        var cgroups: BackgroundJob<Void>?
        // What the init needs only before its program runs is set up while it
        // builds its root (~4 ms of mounts here, when the other core is idle):
        // the cgroups' limits and eBPF device filter (attached in one step),
        // and a bridge's interfaces, addresses, routes, firewall and name
        // files. The init waits for the gate's byte; the spec waits only for
        // the cgroups to be joinable (their directories, and v1's device
        // list, which passes through "deny all") and a bridge's pinned namespace.
        var ready: FileDescriptor?
        defer { ready?.close() }
        var pinned: Handoff<EndpointRecord?>?
        let cgroupsJoinable = Handoff<Void>()
        do {
            if attach { (ours, theirs) = try makeSocketPair() }
            let (readyRead, readyWrite) = try makeSocketPair()
            let gate = StartGate(readyWrite, parts: config.networkMode == .bridge ? 2 : 1)
            ready = readyRead
            // The parts of a start that do not need each other run at once,
            // so that on two cores the start waits for the longest, not for
            // their sum; the longest first. A bridge's leases and namespace,
            // on a thread that goes on with its veth pair, addresses, routes,
            // firewall and name files while the init mounts. The cgroups on
            // another (their paths are known without them; ten v1 hierarchies
            // here): their directories and v1 device list, then their limits
            // and device filter while the init mounts. The monitor: its exec
            // and loading, then it waits for its spec (every file of ours is
            // opened close-on-exec, so none of the threads' can leak into it).
            // This thread builds the spec meanwhile.
            if config.networkMode == .bridge {
                let handoff = Handoff<EndpointRecord?>()
                pinned = handoff
                network = BackgroundJob { [self] in
                    do {
                        let record = try prepareNetwork(config, pinned: { handoff.fulfil(.success($0)) })
                        gate.done()
                        handoff.fulfil(.success(record))
                        return record
                    } catch {
                        gate.fail()
                        handoff.fulfil(.failure(error))
                        throw error
                    }
                }
            }
            let user = try resolveUser(config)
            let hardening = try hardening(config, user: user)
            let limits = config.effectiveIsolation.limits, deviceRules = hardening.deviceRules
            cgroups = BackgroundJob {
                do {
                    _ = try driver.create(id)
                    // v1's device list passes through "deny all": complete
                    // before the init joins (its /dev is made then).
                    try driver.setDeviceList(deviceRules, for: id)
                    cgroupsJoinable.fulfil(.success(()))
                    try driver.apply(limits, to: id)
                    try driver.attachDeviceFilter(deviceRules, for: id)
                    gate.done()
                } catch {
                    gate.fail()
                    cgroupsJoinable.fulfil(.failure(error))  // ignored once they were reported joinable
                    throw error
                }
            }
            monitorProcess = try MonitorLauncher.spawn(monitorPath: monitorPath, attach: theirs, ready: ready)
            ready?.close()
            ready = nil
            var (runtime, monitor) = SpecBuilder.build(config: config, paths: cp, nameLink: paths.nameLink(config.name), user: user,
                                                       cgroup: driver.placement(for: id), cgroupView: driver.view(of: id), terminal: terminal)
            try prepareNetworkAndStorage(config, runtime: &runtime, monitor: &monitor, network: pinned)
            Engine.addFiles(files, to: &runtime)
            if monitor.health != nil {
                monitor.eventLog = eventLog.path
                monitor.eventAttributes = eventAttributes(config).serialized()
            }
            runtime = SpecBuilder.harden(runtime, config: config, hardening)
            // A detached overlay (user namespaces) is built layer by layer; the classic mount data must fit in a page.
            if let o = runtime.overlay, !o.detached { runtime.overlay = try fitOverlay(o) }
            let spec = LaunchSpecEncoder.encode(runtime, monitor: monitor)
            try cgroupsJoinable.wait()
            do { _ = try monitorProcess?.start(spec: spec) } catch {
                // A part that failed says why the init did. The network's
                // failure can stop the init before the gate too (its
                // namespace is gone when the init would join it): its error
                // comes first, whatever the init's. The cgroups' can stop it
                // only at the gate (the init needs nothing else of theirs);
                // an init that failed on its own has its cgroups removed by
                // its monitor, maybe under the job still writing them, and
                // then its own error is the one.
                _ = try network?.join()
                if let f = error as? StartFailure, f.atStartGate { try cgroups?.join() }
                throw error
            }
            try cgroups?.join()
            _ = try network?.join()
            theirs?.close()
        } catch {
            monitorProcess?.abandon()
            theirs?.close()
            // Each part done before it is undone.
            _ = try? network?.join()
            _ = try? cgroups?.join()
            undoNetworkAndStorage(config)
            try? driver.remove(id)
            try? FS.removeTree(cp.runDir)
            if let f = error as? StartFailure { throw f.hakoError }
            throw error
        }
        return ours.map { MonitorConnection(fd: $0) }
    }

    /// A `--rm` container's overlay is mounted "volatile" (`OverlayRoot.volatile`),
    /// and overlay marks its work dir so: it refuses to mount that upper layer
    /// again, lest an upper layer a crash left unsynced be used. A container
    /// started again (a `create --rm` whose start failed) or copied into
    /// (`hako cp`) has no mount of it left: its monitor is gone. The mark goes.
    func clearVolatileMark(_ cp: ContainerPaths) {
        let mark = cp.work + "/work/incompat"
        if FS.exists(mark) { try? FS.removeTree(mark) }
    }

    /// The container's user from its own /etc/passwd and /etc/group (upper dir first).
    func resolveUser(_ config: ContainerConfig) throws -> ResolvedUser {
        let layers = [paths.container(config.id).upper] + config.layerDirs.reversed()
        let needsFiles = config.user.split(separator: ":").contains { UInt32($0) == nil }
        let passwd = UserResolver.readFromLayers("/etc/passwd", layers: layers)
        let extra = config.groupAdd ?? []
        let group = needsFiles || config.user.isEmpty || !config.user.contains(":") || extra.contains(where: { UInt32($0) == nil })
            ? UserResolver.readFromLayers("/etc/group", layers: layers) : nil
        var user = try UserResolver.resolve(config.user, passwd: passwd, group: group)
        for g in try UserResolver.groups(extra, group: group) where !user.groups.contains(g) { user.groups.append(g) }
        return user
    }
}

/// Pure: a stored configuration → the specs the init path and the monitor run from.
public enum SpecBuilder {
    static let defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// The environment a container process sees: the configured one plus PATH,
    /// HOSTNAME, HOME and TERM where missing (as Docker does).
    public static func environment(_ config: ContainerConfig, home: String, tty: Bool, extra: [String] = []) -> [String] {
        var base: [String] = [defaultPath, "HOSTNAME=\(config.hostname)"]
        if tty { base.append("TERM=xterm") }
        var env = EnvFile.merge(base, config.env, extra)
        if !env.contains(where: { $0.hasPrefix("HOME=") }) { env.append("HOME=\(home)") }
        return env
    }

    public static func build(config: ContainerConfig, paths cp: ContainerPaths, nameLink: String,
                             user: ResolvedUser, cgroup: CgroupPlacement, cgroupView: CgroupView, terminal: TerminalSize?) -> (RuntimeSpec, MonitorSpec) {
        // --init: hako-init is PID 1 and runs the command (inspect still shows the command).
        let args = config.initProcess == true ? [ContainerConfig.initPath, "--"] + config.args : config.args
        var process = ProcessSpec(args: args, env: environment(config, home: user.home, tty: config.tty))
        process.cwd = config.workingDir
        process.uid = user.uid
        process.gid = user.gid
        process.groups = user.groups
        if config.tty { process.terminal = terminal ?? TerminalSize(rows: 24, cols: 80) }
        process.keepStdin = config.openStdin && !config.tty

        var r = RuntimeSpec(id: config.id, rootfs: cp.rootfs, process: process)
        r.namespaces.pid = config.pidMode == .host ? .host : .new
        r.namespaces.uts = config.utsMode == .host ? .host : .new
        r.namespaces.ipc = config.ipcMode == .host ? .host : .new
        r.namespaces.network = config.networkMode == .host ? .host : .new
        r.namespaces.cgroup = config.cgroupnsMode == .private ? .new : .host
        r.hostname = config.utsMode == .host ? nil : config.hostname
        let lower = config.layerDirs.reversed().map { $0 }
        r.overlay = OverlayRoot(lower: lower, upper: cp.upper, work: cp.work)
        r.overlay?.volatile = config.autoRemove
        r.mounts = defaultMounts(config, paths: cp, cgroups: cgroupView)
        r.devices = DeviceNode.standard
        r.cgroup = cgroup

        var m = MonitorSpec(statePath: cp.state, runDir: cp.runDir)
        m.logPath = cp.log
        m.logMaxSize = config.logMaxSize
        m.logMaxFiles = config.logMaxFiles
        m.restart = config.restart
        m.stopSignal = config.stopSignal
        m.health = config.healthProbe
        if config.autoRemove {
            m.removeDirs = [cp.dir]
            m.removeLinks = [nameLink]
        }
        return (r, m)
    }

    /// Docker's default file systems and /dev, in mount order. The container's
    /// own cgroups are at /sys/fs/cgroup, read-only unless it is privileged.
    static func defaultMounts(_ c: ContainerConfig, paths cp: ContainerPaths, cgroups: CgroupView) -> [Mount] {
        let nosuid = HAKO_MS_NOSUID, nodev = HAKO_MS_NODEV, noexec = HAKO_MS_NOEXEC
        var m: [Mount] = [
            .filesystem("proc", at: "/proc", flags: nosuid | noexec | nodev),
            .filesystem("tmpfs", at: "/dev", options: "mode=755,size=65536k", flags: nosuid | HAKO_MS_STRICTATIME),
            .filesystem("devpts", at: "/dev/pts", options: "newinstance,ptmxmode=0666,mode=0620,gid=5", flags: nosuid | noexec),
            .filesystem("sysfs", at: "/sys", flags: nosuid | noexec | nodev | HAKO_MS_RDONLY),
        ]
        m += cgroups.mounts(at: "/sys/fs/cgroup", readOnly: !c.effectiveIsolation.privileged, ownNamespace: c.cgroupnsMode == .private)
        if c.ipcMode == .host {
            m.append(.bind("/dev/shm", at: "/dev/shm"))
        } else {
            let shmKiB = max(4, (c.shmSize ?? ContainerConfig.defaultShmSize) / 1024)
            m.append(.filesystem("tmpfs", at: "/dev/shm", source: "shm", options: "mode=1777,size=\(shmKiB)k", flags: nosuid | noexec | nodev))
            m.append(.filesystem("mqueue", at: "/dev/mqueue", flags: nosuid | noexec | nodev))
        }
        if c.initProcess == true {
            m.append(.bind(Engine.initBinary, at: ContainerConfig.initPath, readOnly: true, recursive: false))
        }
        m += [
            .symlink("/dev/fd", pointingTo: "/proc/self/fd"),
            .symlink("/dev/stdin", pointingTo: "/proc/self/fd/0"),
            .symlink("/dev/stdout", pointingTo: "/proc/self/fd/1"),
            .symlink("/dev/stderr", pointingTo: "/proc/self/fd/2"),
            .symlink("/dev/ptmx", pointingTo: "pts/ptmx"),
            .symlink("/dev/core", pointingTo: "/proc/kcore"),
            .bind(cp.hostname, at: "/etc/hostname", recursive: false),
            .bind(cp.hosts, at: "/etc/hosts", recursive: false),
            .bind(cp.resolvConf, at: "/etc/resolv.conf", recursive: false),
        ]
        return m
    }
}
