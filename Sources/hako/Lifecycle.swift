import HakoCLI
#if canImport(Glibc)
import Glibc
#endif
import HakoEngine
import HakoSystem

/// Runs `body` for each container, printing `ok(name)` on success; the first
/// error is reported after all were tried (as Docker does).
func eachContainer(_ refs: [String], _ body: (String) throws -> String?) throws {
    var failure: (any Error)?
    for r in refs {
        do {
            if let line = try body(r) { print(line) }
        } catch {
            if failure != nil {
                writeStderr("hako: \(error)\n")
            } else {
                failure = error
            }
        }
    }
    if let failure { throw failure }
}

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Start one or more stopped containers.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short("a"), .long("attach")], help: "Attach to the container's output and wait for it.") var attach = false
    @Flag(name: [.short("i"), .long("interactive")], help: "Attach the container's stdin.") var interactive = false
    @Option(name: .long("detach-keys"), help: "Keys that detach from the container (default ctrl-p,ctrl-q).") var detachKeys = DetachKeys.default
    @Flag(name: .long("all-restartable"),
          help: "Start every stopped container whose restart policy is always, or unless-stopped and not stopped by a person (at boot: deploy/hako-restart.service).")
    var allRestartable = false
    @Argument(help: "CONTAINER...") var containers: [String] = []

    func validate() throws {
        if allRestartable && !containers.isEmpty { throw ValidationError("--all-restartable takes no container names") }
        if !allRestartable && containers.isEmpty { throw ValidationError("\"start\" requires at least one container") }
    }

    func run() throws {
        let engine = try global.engine()
        if allRestartable {
            var failed = false
            for r in try engine.startRestartable() {
                if let e = r.error {
                    writeStderr("hako: cannot start \(r.name): \(e)\n")
                    failed = true
                } else {
                    print(r.name)
                }
            }
            if failed { throw ExitCode(125) }
            return
        }
        if attach || interactive {
            guard containers.count == 1 else { throw ValidationError("you cannot start and attach multiple containers at once") }
            let c = try engine.lookup(containers[0])
            let size = c.config.tty ? (RawTerminal.size(of: 0) ?? RawTerminal.size(of: 1)) : nil
            guard let conn = try engine.start(c.id, attach: true, terminal: size) else { return }
            guard let code = try AttachSession.run(conn, stdin: interactive && c.config.openStdin, tty: c.config.tty,
                                                   detachKeys: try DetachKeys.parse(detachKeys)) else { return }
            throw ExitCode(code)
        }
        try eachContainer(containers) { r in try engine.start(r); return r }
    }
}

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop running containers: the stop signal, then SIGKILL after a grace period.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short("t"), .long("time"), .long("timeout")], help: "Seconds to wait before killing.") var time: Int?
    @Option(name: [.short("s"), .long("signal")], help: "Signal to send instead of the container's stop signal.") var signal: String?
    @Argument(help: "CONTAINER...") var containers: [String]

    func run() throws {
        let engine = try global.engine()
        var sig: Int32?
        if let s = signal {
            guard let n = Signals.parse(s) else { throw HakoError(.failed, "invalid signal \"\(s)\"") }
            sig = n
        }
        if let t = time, t < -1 { throw HakoError(.failed, "invalid timeout \(t)") }
        try eachContainer(containers) { r in try engine.stop(r, timeout: time, signal: sig); return r }
    }
}

struct Kill: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kill", abstract: "Send a signal (default SIGKILL) to running containers.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short("s"), .long("signal")], help: "Signal to send.") var signal = "KILL"
    @Argument(help: "CONTAINER...") var containers: [String]

    func run() throws {
        guard let sig = Signals.parse(signal) else { throw HakoError(.failed, "invalid signal \"\(signal)\"") }
        let engine = try global.engine()
        try eachContainer(containers) { r in try engine.kill(r, signal: sig); return r }
    }
}

struct Restart: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "restart", abstract: "Restart containers.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short("t"), .long("time"), .long("timeout")], help: "Seconds to wait before killing.") var time: Int?
    @Argument(help: "CONTAINER...") var containers: [String]

    func run() throws {
        let engine = try global.engine()
        try eachContainer(containers) { r in try engine.restart(r, timeout: time); return r }
    }
}

struct Rm: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove containers.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short("f"), .long("force")], help: "Kill and remove a running container.") var force = false
    @Flag(name: [.short("v"), .long("volumes")], help: "Remove the container's anonymous volumes too.") var volumes = false
    @Argument(help: "CONTAINER...") var containers: [String]

    func run() throws {
        let engine = try global.engine()
        try eachContainer(containers) { r in try engine.remove(r, force: force, volumes: volumes); return r }
    }
}

struct Pause: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pause", abstract: "Freeze every process of containers.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "CONTAINER...") var containers: [String]

    func run() throws {
        let engine = try global.engine()
        try eachContainer(containers) { r in try engine.pause(r); return r }
    }
}

struct Unpause: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unpause", abstract: "Thaw paused containers.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "CONTAINER...") var containers: [String]

    func run() throws {
        let engine = try global.engine()
        try eachContainer(containers) { r in try engine.unpause(r); return r }
    }
}

struct Wait: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wait", abstract: "Block until containers stop; print their exit codes.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "CONTAINER...") var containers: [String]

    func run() throws {
        let engine = try global.engine()
        try eachContainer(containers) { r in String(try engine.wait(r)) }
    }
}

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "exec", abstract: "Run a command in a running container.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short("i"), .long("interactive")], help: "Keep stdin open.") var interactive = false
    @Flag(name: [.short("t"), .long("tty")], help: "Allocate a terminal.") var tty = false
    @Flag(name: [.short("d"), .long("detach")], help: "Run in the background.") var detach = false
    @Option(name: [.short("e"), .long("env")], help: "Set an environment variable.") var env: [String] = []
    @Option(name: [.short("w"), .long("workdir")], help: "Working directory inside the container.") var workdir: String?
    @Option(name: [.short("u"), .long("user")], help: "Username or UID (format: <name|uid>[:<group|gid>]).") var user: String?
    @Argument(parsing: .passthrough, help: "CONTAINER COMMAND [ARG...]") var containerAndCommand: [String] = []

    func run() throws {
        guard containerAndCommand.count >= 2 else { throw ValidationError("\"exec\" requires a container and a command") }
        let engine = try global.engine()
        var o = ExecOptions(command: Array(containerAndCommand.dropFirst()))
        o.env = env
        o.user = user
        o.workingDir = workdir
        o.tty = tty
        o.interactive = interactive && !detach
        let size = tty ? (RawTerminal.size(of: 0) ?? RawTerminal.size(of: 1)) : nil
        let p = try engine.exec(containerAndCommand[0], o, terminal: size)
        if detach { return }
        if let master = p.terminal {
            throw ExitCode(try AttachSession.runTerminal(master: master, pid: p.pid, stdin: interactive))
        }
        throw ExitCode(AttachSession.waitChild(p.pid))
    }
}
