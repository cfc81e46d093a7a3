#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoRuntime
import HakoSystem

/// `exec`: a process started in every namespace and the cgroups of a container.
public struct ExecRequest: Sendable {
    public var id: String
    /// The whole process (`--process FILE`); nil: `args` laid over config.json's process.
    public var process: OCI.Process?
    public var args: [String] = []
    public var env: [String] = []
    public var cwd: String?
    /// "UID[:GID]"
    public var user: String?
    public var additionalGids: [UInt32] = []
    public var tty = false
    public var capabilities: [String] = []
    public var noNewPrivileges = false
    /// `--apparmor PROFILE`: the profile the process runs under.
    public var apparmorProfile: String?
    public var detach = false
    public var pidFile: String?
    public var consoleSocket: String?
    public var preserveFds: UInt32 = 0

    public init(id: String) { self.id = id }
}

extension OCIRuntime {
    /// The container's process description: `--process`, or config.json's with the request's changes.
    func execProcess(_ req: ExecRequest, config: OCI.Spec) throws -> OCI.Process {
        if let p = req.process { return p }
        var p = config.process ?? OCI.Process()
        guard !req.args.isEmpty else { throw HakoError(.invalidArgument("command"), "exec needs a command (or --process)") }
        p.args = req.args
        p.terminal = req.tty
        p.consoleSize = nil
        for e in req.env {
            let key = e.split(separator: "=", maxSplits: 1).first.map(String.init) ?? e
            p.env.removeAll { $0 == key || $0.hasPrefix(key + "=") }
            p.env.append(e)
        }
        if let c = req.cwd { p.cwd = c }
        if let u = req.user {
            let f = u.split(separator: ":", maxSplits: 1)
            guard let uid = f.first.flatMap({ UInt32($0) }), f.count == 1 || UInt32(f[1]) != nil else {
                throw HakoError(.invalidArgument("--user"), "invalid --user \"\(u)\" (expected UID[:GID], numbers)")
            }
            p.user.uid = uid
            p.user.gid = f.count == 2 ? UInt32(f[1]) ?? 0 : 0
        }
        p.user.additionalGids += req.additionalGids
        if !req.capabilities.isEmpty {
            var c = p.capabilities ?? OCI.Capabilities()
            for cap in req.capabilities {
                for keyPath in [\OCI.Capabilities.bounding, \.effective, \.permitted, \.ambient] where !c[keyPath: keyPath].contains(cap) {
                    c[keyPath: keyPath].append(cap)
                }
            }
            p.capabilities = c
        }
        if req.noNewPrivileges { p.noNewPrivileges = true }
        if let a = req.apparmorProfile { p.apparmorProfile = a }
        return p
    }

    /// Returns the process's exit status, or 0 at once with `detach`.
    public func exec(_ req: ExecRequest) throws -> Int32 {
        let r = try load(req.id)
        let st = status(r)
        guard st == .running || st == .created else {
            throw HakoError(.conflict(.state(.container, req.id)), "cannot exec in a container that is \(st.rawValue)")
        }
        let config = try OCI.decode(try FS.readFile(configPath(req.id)))
        let p = try execProcess(req, config: config)
        guard p.cwd.hasPrefix("/") else { throw HakoError(.invalidArgument("process.cwd"), "process.cwd: must be an absolute path") }
        if p.terminal && req.consoleSocket == nil { throw HakoError(.invalidArgument("--console-socket"), "a terminal needs --console-socket") }
        var process = try BundlePlan.processSpec(p, seccomp: config.linux.seccomp, compiler: seccompCompiler)
        let driver = self.driver(for: r)
        let placement = driver.placement(for: r.cgroupLeaf)
        var master: FileDescriptor?
        var slave: String?
        if p.terminal {
            let rootFD = try FileDescriptor.open("/proc/\(r.pid)/root", O_RDONLY | O_DIRECTORY)
            var m: Int32 = -1
            var buf = [CChar](repeating: 0, count: 64)
            try sys("open a terminal in the container") { hako_pty_open_in_root(rootFD.rawValue, &m, &buf, buf.count) }
            master = FileDescriptor(m)
            slave = cString(buf)
            if let size = p.consoleSize, size.height > 0, size.width > 0 {
                hako_tty_set_size(m, UInt16(clamping: size.height), UInt16(clamping: size.width))
            }
            process.terminal = TerminalSize(rows: 0, cols: 0)
        }
        var spec = RuntimeSpec(id: r.id, rootfs: "", process: process)
        spec.cgroup.unifiedDir = placement.unifiedDir
        spec.cgroup.procsFiles = placement.procsFiles
        spec.initOptions.umask = p.user.umask ?? 0o022
        spec.initOptions.preserveFds = req.preserveFds
        let started: ContainerExec.Started
        do { started = try ContainerExec.start(spec, targetPid: r.pid, terminalSlave: slave, stdio: [0, 1, 2]) } catch let f as StartFailure {
            throw OCIRuntime.describe(f)
        }
        let pidfd = started.pidfd >= 0 ? FileDescriptor(started.pidfd) : nil
        if let master, let socket = req.consoleSocket { try ConsoleSocket.send(master, to: socket) }
        master?.close()
        if let f = req.pidFile { try writePidFile(f, started.pid) }
        if req.detach { return 0 }
        return SignalForwarder.wait(pid: started.pid, pidfd: pidfd)
    }
}
