#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoRuntime
import HakoSystem

public struct ExecOptions: Sendable {
    public var command: [String]
    public var env: [String] = []
    public var user: String?
    public var workingDir: String?
    public var tty = false
    public var interactive = false

    public init(command: [String]) { self.command = command }
}

/// A process started in a running container; a child of the caller.
public struct ExecProcess: Sendable {
    public var pid: Int32
    /// The terminal's master side when the process has a terminal.
    public var terminal: FileDescriptor?
}

extension Engine {
    /// `hako exec`: runs a process in every namespace and the cgroups of a running container.
    /// `stdio`: the process's stdin, stdout and stderr without a terminal (nil: this
    /// process's own, stdin only with `interactive`); the API service passes pipes.
    public func exec(_ ref: String, _ o: ExecOptions, terminal size: TerminalSize? = nil, stdio: [Int32]? = nil) throws -> ExecProcess {
        guard !o.command.isEmpty, !o.command[0].isEmpty else { throw HakoError(.invalidArgument("command"), "no command given to exec") }
        let c = try lookup(ref)
        switch c.status {
        case .running: break
        case .paused: throw HakoError(.conflict(.paused(c.name)), "container \(c.name) is paused, unpause the container before exec")
        default: throw HakoError(.conflict(.notRunning(c.name)), "container \(c.name) is not running")
        }
        guard let pid = c.state?.pid, pid > 0 else { throw HakoError(.conflict(.notRunning(c.name)), "container \(c.name) is not running") }
        if let w = o.workingDir, !w.hasPrefix("/") { throw HakoError(.invalidArgument("--workdir"), "the working directory \"\(w)\" is invalid: it needs to be an absolute path") }

        // The container's own root, as its init sees it.
        let root = try FileDescriptor.open("/proc/\(pid)/root", O_RDONLY | O_DIRECTORY)
        func read(_ path: String) -> String? {
            guard let f = try? FileDescriptor.openInRoot(root, path, O_RDONLY), let b = try? f.readAll() else { return nil }
            return String(decoding: b, as: UTF8.self)
        }
        let user = try UserResolver.resolve(o.user ?? c.config.user, passwd: read("/etc/passwd"), group: read("/etc/group"))
        for e in o.env where e.isEmpty || e.hasPrefix("=") { throw HakoError(.invalidArgument("--env"), "invalid environment variable \"\(e)\"") }
        let extra = o.env.compactMap { e -> String? in
            if e.contains("=") { return e }
            return getenv(e).map { "\(e)=\(String(cString: $0))" }
        }
        var process = ProcessSpec(args: o.command, env: SpecBuilder.environment(c.config, home: user.home, tty: o.tty, extra: extra))
        process.cwd = o.workingDir ?? c.config.workingDir
        process.uid = user.uid
        process.gid = user.gid
        process.groups = user.groups
        try hardening(c.config, user: user, devices: false).apply(to: &process)
        var spec = RuntimeSpec(id: c.id, rootfs: "", process: process)
        let placement = try cgroups(for: c.config).placement(for: c.id)
        spec.cgroup.unifiedDir = placement.unifiedDir
        spec.cgroup.procsFiles = placement.procsFiles

        var master: FileDescriptor?
        var slavePath: String?
        if o.tty {
            var m: Int32 = -1
            var buf = [CChar](repeating: 0, count: 64)
            try sys("open terminal in container") { hako_pty_open_in_root(root.rawValue, &m, &buf, buf.count) }
            master = FileDescriptor(m)
            slavePath = cString(buf)
            let s = size ?? TerminalSize(rows: 24, cols: 80)
            hako_tty_set_size(m, s.rows, s.cols)
            spec.process.terminal = s
        }
        let devnull = try FileDescriptor.open("/dev/null", O_RDONLY)
        let fds: [Int32] = stdio ?? [o.interactive ? 0 : devnull.rawValue, 1, 2]
        let started: ContainerExec.Started
        do {
            started = try ContainerExec.start(spec, targetPid: pid, terminalSlave: slavePath, stdio: fds)
        } catch let f as StartFailure {
            throw f.hakoError
        }
        if started.pidfd >= 0 { Glibc.close(started.pidfd) }
        return ExecProcess(pid: started.pid, terminal: master)
    }
}
