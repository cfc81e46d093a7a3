#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoRuntime
import HakoSystem

/// `create` (and the first half of `run`).
public struct CreateRequest: Sendable {
    public var id: String
    public var bundle: String
    public var pidFile: String?
    public var consoleSocket: String?
    public var options = BundlePlan.Options()

    public init(id: String, bundle: String) { self.id = id; self.bundle = bundle }
}

extension OCIRuntime {
    /// Creates the container: its cgroups, its init (which does everything up
    /// to exec and then waits on the exec FIFO), its state. A failure at any
    /// step leaves nothing behind: no cgroup, no state, no process.
    /// Returns the init's pid; `keep` receives the launch (for `run`).
    @discardableResult
    public func create(_ req: CreateRequest, keep: ((InitLaunch) -> Void)? = nil) throws -> Int32 {
        try OCIRuntime.validate(id: req.id)
        let bundle = FS.absolute(req.bundle)
        let configBytes: [UInt8]
        do { configBytes = try FS.readFile(bundle + "/config.json") } catch {
            throw HakoError(.failed, "cannot read the bundle's config.json", cause: error)
        }
        let spec = try OCI.decode(configBytes)
        guard let root = spec.root, !root.path.isEmpty else { throw HakoError(.invalidArgument("root.path"), "config.json: root.path: is required") }
        let rootfs = root.path.hasPrefix("/") ? FS.normalize(root.path) : FS.normalize(bundle + "/" + root.path)
        guard FS.isDirectory(rootfs) else { throw HakoError(.invalidArgument("root.path"), "config.json: root.path: \(rootfs) is not a directory") }
        let terminal = spec.process?.terminal ?? false
        if terminal && req.consoleSocket == nil {
            throw HakoError(.invalidArgument("process.terminal"), "config.json: process.terminal: a terminal needs --console-socket")
        }
        let (cgParent, cgLeaf) = try OCICgroupPath.resolve(spec.linux.cgroupsPath, id: req.id, systemd: systemdCgroup)

        try FS.makeDirectories(self.root, mode: 0o711)
        let dir = self.dir(req.id)
        if mkdir(dir, 0o711) != 0 {
            if errno == EEXIST { throw HakoError(.conflict(.nameInUse(.container, req.id)), "container \"\(req.id)\" already exists") }
            throw HakoError.kernel("cannot create the container's state directory", SystemError("mkdir", dir))
        }
        // Held until the state is written: other commands wait or see "creating".
        let lockFD = try FileDescriptor.open(dir, O_RDONLY | O_DIRECTORY)
        try sys("flock", dir) { flock(lockFD.rawValue, LOCK_EX) }
        let driver = self.driver(parent: cgParent)
        var launch: InitLaunch?
        var cgroupMade = false
        do {
            let fifo = fifoPath(req.id)
            try sys("mkfifo", fifo) { mkfifo(fifo, 0o622) }
            try sys("chmod", fifo) { chmod(fifo, 0o622) }
            let placement = try driver.create(cgLeaf)
            cgroupMade = true
            var plan = try BundlePlan.make(spec, id: req.id, bundle: bundle, rootfs: rootfs, placement: placement, cgroups: driver.view(of: cgLeaf),
                                           cgroupVersion: driver.version, compiler: seccompCompiler, options: req.options)
            for w in plan.warnings { log.warning(w) }
            try driver.apply(plan.cgroupWrites, to: cgLeaf)
            try driver.setDevices(plan.deviceRules, for: cgLeaf)
            plan.runtime.initOptions.execFifo = fifo

            let l = try InitLaunch(plan.runtime, stdio: [0, 1, 2])
            launch = l
            var record = ContainerRecord(id: req.id, bundle: bundle, rootfs: rootfs, pid: l.pid, startTime: 0,
                                         created: Timestamp.now().rfc3339, owner: "", annotations: spec.annotations,
                                         cgroupParent: cgParent, cgroupLeaf: cgLeaf, poststart: spec.hooks.poststart, poststop: spec.hooks.poststop)
            var event = l.firstEvent
            if event == .hooks {
                // runtime-tools and runc hand every hook before `start` the state "created".
                let state = Array(record.ociState(.created).serialized().utf8)
                do {
                    try HookRunner.run(spec.hooks.prestart, kind: "prestart", state: state)
                    try HookRunner.run(spec.hooks.createRuntime, kind: "createRuntime", state: state)
                } catch let f as HookRunner.Failure {
                    throw HakoError(.failed, "hook failed: \(f.description)")
                }
                event = try l.proceed(createState: state, startState: state)
            }
            guard event == .created else { throw HakoError(.failed, "the container's init did not wait for start") }
            if terminal, let socket = req.consoleSocket {
                let master = try l.takeTerminal()
                try ConsoleSocket.send(master, to: socket)
            }
            record.startTime = ProcessProbe.stat(l.pid)?.startTime ?? 0
            record.hasProcess = spec.process != nil
            try FS.writeFile(configPath(req.id), configBytes, mode: 0o600)
            try FS.writeAtomic(statePath(req.id), record.json().serialized(), mode: 0o600, durable: false)
            if let p = req.pidFile { try writePidFile(p, l.pid) }
        } catch {
            launch?.abort()
            if cgroupMade { try? driver.remove(cgLeaf) }
            try? FS.removeTree(dir)
            if let f = error as? StartFailure { throw OCIRuntime.describe(f) }
            throw error
        }
        guard let l = launch else { throw HakoError(.failed, "no init") }
        // The init holds a copy of this fd until it execs: unlock the file itself.
        flock(lockFD.rawValue, LOCK_UN)
        lockFD.close()
        if let keep { keep(l) } else { l.release() }
        return l.pid
    }

    func writePidFile(_ path: String, _ pid: Int32) throws {
        let abs = FS.absolute(path)
        do { try FS.writeAtomic(abs, "\(pid)", mode: 0o644, durable: false) } catch {
            throw HakoError(.failed, "cannot write the pid file \(abs)", cause: error)
        }
    }

    /// An init-path failure in the words podman and containerd look for
    /// ("executable file not found", "permission denied").
    static func describe(_ f: StartFailure) -> HakoError {
        if f.stage == Int32(HAKO_STAGE_HOOK.rawValue) { return HakoError(.failed, "hook failed: \(f.detail)") }
        return f.hakoError
    }
}

/// The pty master handed to the caller's console socket (SCM_RIGHTS), as runc does.
public enum ConsoleSocket {
    public static func send(_ master: FileDescriptor, to path: String) throws {
        let s = try sys("socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        let sock = FileDescriptor(s)
        // Through /proc/self/fd of the socket's directory: long paths never hit sun_path's 108 bytes.
        let abs = FS.absolute(path)
        let slash = abs.utf8.lastIndex(of: UInt8(ascii: "/")) ?? abs.startIndex
        let parent = String(abs[..<slash])
        let name = String(abs[abs.index(after: slash)...])
        let dirFD = try FileDescriptor.open(parent.isEmpty ? "/" : parent, HAKO_O_PATH | O_DIRECTORY)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let p = Array("/proc/self/fd/\(dirFD.rawValue)/\(name)".utf8)
        guard p.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw HakoError(.invalidArgument("--console-socket"), "console socket name too long: \(path)") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in p.enumerated() { raw[i] = b } }
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if r != 0 { throw HakoError.kernel("cannot connect to the console socket \(path)", SystemError("connect", path)) }
        if hako_send_fd(sock.rawValue, master.rawValue) != 0 {
            throw HakoError.kernel("cannot send the terminal to the console socket \(path)", SystemError("sendmsg", path))
        }
    }
}
