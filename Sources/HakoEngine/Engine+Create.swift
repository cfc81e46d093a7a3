#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import HakoImage
import HakoNetwork
import HakoRuntime
import HakoSystem

extension Engine {
    /// `hako create`: resolves the image and the spec into a stored configuration.
    /// Nothing is started. Everything is checked before anything is written;
    /// the container appears on disk whole or not at all.
    public func create(_ spec: ContainerSpec, pull: ImagePullOptions = ImagePullOptions()) throws -> ContainerConfig {
        try create(spec, image: try imageForRun(spec.image, pull: pull))
    }

    /// `create` on an image at hand rather than one named in the store: a
    /// build step's, whose layers are stored but not yet an image.
    public func create(_ spec: ContainerSpec, image: Image) throws -> ContainerConfig {
        var draft = try makeConfig(spec, image: image)
        draft.isolation = try makeIsolation(spec)
        draft.id = hexString(randomBytes(32))
        try checkNetworking(draft)
        try checkBindPropagation(draft)
        let config = try commit(draft)
        recordEvent("create", config)
        return config
    }

    /// Docker's cgroup namespace when none is asked for: private where the host
    /// has cgroup v2 only (the Pis), the host's on v1 and hybrid hosts.
    var defaultCgroupns: NamespaceMode { cgroupHost.mode == .unified ? .private : .host }

    /// Pure: spec + image → configuration (the id and name are still to be assigned).
    /// The spec's values are checked against each other and the image; no user text is parsed here.
    func makeConfig(_ spec: ContainerSpec, image: Image) throws -> ContainerConfig {
        let p = spec.process
        let entrypoint: [String]
        var cmd: [String]
        if let e = p.entrypoint {
            entrypoint = e
            cmd = p.command ?? []
        } else {
            entrypoint = image.config.entrypoint ?? []
            cmd = p.command ?? (image.config.cmd ?? [])
        }
        if let c = p.command, !c.isEmpty { cmd = c }
        let args = entrypoint + cmd
        guard !args.isEmpty else {
            throw HakoError(.invalidArgument("command"), "no command specified: the image \(spec.image) has no default command; give one after the image name")
        }

        if let e = p.env.first(where: { $0.isEmpty || $0.hasPrefix("=") || !$0.contains("=") }) {
            throw HakoError(.invalidArgument("--env"), "invalid environment variable \"\(e)\"")
        }
        let env = EnvFile.merge(image.config.env ?? [], p.env)
        try Engine.checkExecStrings(args: args, env: env)

        let restart = spec.restart
        if spec.autoRemove && restart != .no {
            throw HakoError(.invalidArgument("--restart"), "conflicting options: --restart \(restart) and --rm")
        }
        var stopSignal = SIGTERM
        if let n = spec.stopSignal {
            guard n > 0 && n < 65 else { throw HakoError(.invalidArgument("--stop-signal"), "invalid stop signal \(n)") }
            stopSignal = n
        } else if let s = image.config.stopSignal {
            guard let n = Signals.parse(s) else { throw HakoError(.invalidArgument("--stop-signal"), "invalid stop signal \"\(s)\"") }
            stopSignal = n
        }
        if let t = spec.stopTimeout, t < -1 { throw HakoError(.invalidArgument("--stop-timeout"), "invalid stop timeout \(t)") }
        if let v = spec.labels[""] { throw HakoError(.invalidArgument("--label"), "invalid label \"=\(v)\"") }
        let labels = (image.config.labels ?? [:]).merging(spec.labels) { _, new in new }
        if let h = spec.hostname, !Engine.isValidHostname(h) {
            throw HakoError(.invalidArgument("--hostname"), "invalid hostname \"\(h)\"")
        }
        if spec.hostname != nil && spec.namespaces.uts == .host {
            throw HakoError(.invalidArgument("--hostname"), "conflicting options: --hostname and --uts host")
        }
        if spec.log.maxSize < 4096 { throw HakoError(.invalidArgument("--log-opt"), "invalid log option max-size=\(spec.log.maxSize) (at least 4k)") }
        if !(1...100).contains(spec.log.maxFiles) { throw HakoError(.invalidArgument("--log-opt"), "invalid log option max-file=\(spec.log.maxFiles) (1 to 100)") }
        if let n = spec.name, !Names.isValid(n.hasPrefix("/") ? String(n.dropFirst()) : n) {
            throw HakoError(.invalidArgument("--name"), "invalid container name \"\(n)\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        }
        if let w = p.workingDir, !w.hasPrefix("/") {
            throw HakoError(.invalidArgument("--workdir"), "the working directory \"\(w)\" is invalid: it needs to be an absolute path")
        }
        if let u = p.user {
            // Only the form here; names are resolved against the container's own files at start.
            let parts = u.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            if u.isEmpty || parts.contains(where: { $0.isEmpty }) { throw HakoError(.invalidArgument("--user"), "invalid user \"\(u)\"") }
        }

        let ns = spec.namespaces
        var config = ContainerConfig(
            id: "", name: spec.name.map { $0.hasPrefix("/") ? String($0.dropFirst()) : $0 } ?? "",
            created: Timestamp.now(), image: spec.image, imageID: image.id, layerDirs: image.layerDirs,
            args: args, entrypoint: entrypoint, cmd: cmd, env: env,
            workingDir: p.workingDir ?? (image.config.workingDir.flatMap { $0.isEmpty ? nil : $0 } ?? "/"),
            user: p.user ?? (image.config.user ?? ""), hostname: spec.hostname ?? "", labels: labels,
            tty: p.tty, openStdin: p.openStdin, autoRemove: spec.autoRemove, restartPolicy: restart.description,
            pidMode: ns.pid, utsMode: ns.uts, ipcMode: ns.ipc, cgroupnsMode: ns.cgroupns ?? defaultCgroupns, networkMode: spec.network,
            stopSignal: stopSignal, stopTimeout: spec.stopTimeout ?? 10, logMaxSize: spec.log.maxSize, logMaxFiles: spec.log.maxFiles,
            cgroupParent: cgroupParent)
        for e in spec.expose where PortBinding.exposed(e) == nil {
            throw HakoError(.invalidArgument("--expose"), "invalid --expose \"\(e)\" (expected PORT[/tcp|/udp])")
        }
        if let s = spec.shmSize, s == 0 { throw HakoError(.invalidArgument("--shm-size"), "invalid --shm-size: it must be greater than 0") }
        if spec.shmSize != nil && ns.ipc == .host { throw HakoError(.invalidArgument("--shm-size"), "conflicting options: --shm-size and --ipc host (the host's /dev/shm is used)") }
        if p.groupAdd.contains(where: \.isEmpty) { throw HakoError(.invalidArgument("--group-add"), "invalid --group-add \"\"") }
        config.initProcess = p.initProcess ? true : nil
        config.logAttributeOptions = spec.log.attributes.isEmpty ? nil : spec.log.attributes
        config.shmSize = spec.shmSize
        config.groupAdd = p.groupAdd.isEmpty ? nil : p.groupAdd
        let exposed = (image.config.exposedPorts ?? []) + spec.expose
        config.networking = try ContainerNetworking.make(spec.networking, mode: spec.network, exposed: exposed)
        config.storage = try ContainerStorage.make(spec.mounts, imageVolumes: image.config.volumes ?? [])
        config.healthCheck = try Engine.healthCheck(spec.healthCheck, image: image.config.healthcheck)
        return config
    }

    /// Docker's merge of `--health-*` over the image's HEALTHCHECK: nil when
    /// neither has one, the check (test `.none`) when it is disabled.
    static func healthCheck(_ flags: HealthCheck?, image: HealthCheck?) throws -> HealthCheck? {
        guard let merged = flags.map({ $0.merged(over: image) }) ?? image else { return nil }
        do { try merged.validate() } catch { throw HakoError(.invalidArgument("--health-cmd"), "invalid health check: \(error.description)") }
        if case .inherit = merged.test {
            throw HakoError(.invalidArgument("--health-cmd"), "--health-* options need a test: --health-cmd, or an image with a HEALTHCHECK")
        }
        return merged
    }

    /// The kernel's one fixed limit on a command line: execve refuses (E2BIG)
    /// any single argument or variable longer than MAX_ARG_STRLEN (32 pages,
    /// NUL included). Refused here with a clear error rather than at the
    /// container's exec. The total is bounded by ARG_MAX (a quarter of the
    /// stack limit), which the container's own exec checks.
    static func checkExecStrings(args: [String], env: [String], pageSize: Int = Int(sysconf(Int32(_SC_PAGESIZE)))) throws {
        let limit = 32 * max(pageSize, 4096)
        if let a = args.first(where: { $0.utf8.count >= limit }) {
            throw HakoError(.invalidArgument("command"), "an argument of \(a.utf8.count) bytes is too long: the kernel passes at most \(limit - 1) bytes per argument (MAX_ARG_STRLEN)")
        }
        if let e = env.first(where: { $0.utf8.count >= limit }) {
            let name = e.split(separator: "=", maxSplits: 1).first.map(String.init) ?? e
            throw HakoError(.invalidArgument("--env"), "the environment variable \(name) is too long (\(e.utf8.count) bytes): the kernel passes at most \(limit - 1) bytes per variable, name and value together (MAX_ARG_STRLEN)")
        }
    }

    public static func isValidHostname(_ h: String) -> Bool {
        guard !h.isEmpty, h.utf8.count <= 64 else { return false }
        return h.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.first != "-" && label.last != "-" && label.allSatisfy { $0.isLetter && $0.isASCII || $0.isNumber && $0.isASCII || $0 == "-" || $0 == "_" }
        }
    }

    /// Assigns id and name and writes the container's directory: built under a
    /// temporary name and renamed into place, under the engine lock.
    func commit(_ draft: ContainerConfig) throws -> ContainerConfig {
        let global = try FileLock.acquire(paths.lock)
        defer { global.release() }
        collectGarbage()
        var config = draft
        if config.name.isEmpty {
            var candidate = Names.generate()
            var tries = 0
            while FS.exists(paths.nameLink(candidate)) && tries < 50 { candidate = Names.generate() + "\(tries)"; tries += 1 }
            config.name = candidate
        } else if let target = FS.readLink(paths.nameLink(config.name)) {
            let other = String(target.split(separator: "/").last ?? "")
            throw HakoError(.conflict(.nameInUse(.container, config.name)), "the container name \"/\(config.name)\" is already in use by container \"\(other)\"; remove (or rename) that container to reuse the name")
        }
        if config.hostname.isEmpty { config.hostname = config.shortID }
        // The runtime's mount points come from the init layer, below the image's
        // (made here, under the lock an image collection takes too).
        if config.imageID != ImageStore.hostImageID && !config.layerDirs.isEmpty {
            config.layerDirs.insert(try images.initLayer(), at: 0)
        }
        try assignUsernsRange(&config)

        let tmp = "\(paths.containers)/.tmp-\(config.id)"
        let final = paths.container(config.id)
        do {
            try FS.makeDirectories(tmp, mode: 0o711)
            for d in ["rootfs", "upper", "work"] { try FS.makeDirectories("\(tmp)/\(d)", mode: 0o755) }
            let hostName: String
            if config.utsMode == .host {
                var buf = [CChar](repeating: 0, count: 256)
                gethostname(&buf, buf.count)
                hostName = cString(buf)
            } else {
                hostName = config.hostname
            }
            // Plain writes: the directory becomes visible whole, by the rename below.
            try FS.writeFile("\(tmp)/hostname", Array((hostName + "\n").utf8))
            try FS.writeFile("\(tmp)/hosts", Array(hostsFile(config).utf8))
            try FS.writeFile("\(tmp)/resolv.conf", (try? FS.readFile("/etc/resolv.conf")) ?? [])
            try prepareUsernsFiles(&config, dir: tmp, final: final.dir)
            try FS.writeFile("\(tmp)/config.json", try Engine.encoder.encode(config))
            try FS.symlink("../containers/\(config.id)", at: paths.nameLink(config.name))
            do {
                try sys("rename", final.dir) { rename(tmp, final.dir) }
            } catch {
                try? FS.unlinkIfPresent(paths.nameLink(config.name))
                throw error
            }
        } catch {
            try? FS.removeTree(tmp)
            throw error
        }
        return config
    }

    func hostsFile(_ c: ContainerConfig) -> String {
        if c.networkMode == .host, let host = try? FS.readString("/etc/hosts") { return host }
        return """
        127.0.0.1\tlocalhost
        ::1\tlocalhost ip6-localhost ip6-loopback
        fe00::0\tip6-localnet
        ff00::0\tip6-mcastprefix
        ff02::1\tip6-allnodes
        ff02::2\tip6-allrouters

        """
    }
}
