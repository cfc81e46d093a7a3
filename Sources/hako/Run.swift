import HakoCLI
#if canImport(Glibc)
import Glibc
#endif
import HakoEngine
import HakoRuntime
import HakoSystem

/// The options `run` and `create` share.
struct ContainerOptions: ParsableArguments {
    @Option(name: .long("name"), help: "Assign a name to the container.") var name: String?
    @Option(name: [.short("e"), .long("env")], help: "Set an environment variable (KEY=VALUE, or KEY to pass hako's own).") var env: [String] = []
    @Option(name: .long("env-file"), help: "Read environment variables from a file.") var envFile: [String] = []
    @Option(name: .long("entrypoint"), help: "Overwrite the image's entrypoint.") var entrypoint: String?
    @Option(name: [.short("w"), .long("workdir")], help: "Working directory inside the container.") var workdir: String?
    @Option(name: [.short("u"), .long("user")], help: "Username or UID (format: <name|uid>[:<group|gid>]).") var user: String?
    @Option(name: [.short("h"), .long("hostname")], help: "Container host name.") var hostname: String?
    @Option(name: [.short("l"), .long("label")], help: "Set metadata (KEY=VALUE).") var label: [String] = []
    @Flag(name: [.short("i"), .long("interactive")], help: "Keep stdin open.") var interactive = false
    @Flag(name: [.short("t"), .long("tty")], help: "Allocate a terminal.") var tty = false
    @Flag(name: .long("rm"), help: "Remove the container when it exits.") var autoRemove = false
    @Option(name: .long("restart"), help: "Restart policy: no, on-failure[:N], always, unless-stopped.") var restart = "no"
    @Option(name: .long("pid"), help: "PID namespace: host or private.") var pid: String?
    @Option(name: .long("uts"), help: "UTS namespace: host or private.") var uts: String?
    @Option(name: .long("ipc"), help: "IPC namespace: host or private.") var ipc: String?
    @Option(name: [.long("network"), .long("net")], help: "Network: bridge (default), none, host, or a network's name.") var network: String?
    @Option(name: .long("cgroupns"), help: "Cgroup namespace: host or private (default: private on cgroup v2 hosts, host on v1).") var cgroupns: String?
    @Option(name: .long("stop-signal"), help: "Signal that stops the container.") var stopSignal: String?
    @Option(name: .long("stop-timeout"), help: "Seconds to wait before killing on stop.") var stopTimeout: Int?
    @Option(name: .long("log-opt"), help: "Log options: max-size=SIZE, max-file=N; labels=K,…, labels-regex=RE, env=K,…, env-regex=RE (the attributes logs --details shows).") var logOpt: [String] = []
    @Option(name: .long("expose"), help: "Expose a port (PORT[/PROTO]) besides the image's, for -P.") var expose: [String] = []
    @Option(name: .long("shm-size"), help: "Size of /dev/shm (e.g. 128m; default 64m).") var shmSize: String?
    @Option(name: .long("group-add"), help: "Add a supplementary group (a name in the container's /etc/group, or a number).") var groupAdd: [String] = []
    @Option(name: .long("cidfile"), help: "Write the container ID to this file (which must not exist).") var cidfile: String?
    @Flag(name: .long("init"), help: "Run hako-init as PID 1: it passes signals on to the command and reaps orphaned processes.") var initProcess = false
    @OptionGroup(title: "Health check") var health: HealthFlags
    @OptionGroup(title: "Resources and security") var isolation: IsolationFlags
    @OptionGroup var net: NetworkFlags
    @OptionGroup var storage: StorageFlags

    /// The flags' text; `spec()` parses it (HakoCLI's `RunFlags`).
    func runFlags(image: String, command: [String]) throws -> RunFlags {
        var o = RunFlags(image: image)
        o.command = command.isEmpty ? nil : command
        o.entrypoint = entrypoint
        o.env = env
        o.envFiles = envFile
        o.workingDir = workdir
        o.user = user
        o.hostname = hostname
        o.labels = label
        o.name = name
        o.tty = tty
        o.interactive = interactive
        o.autoRemove = autoRemove
        o.restart = restart
        o.pid = try namespace(pid, "--pid")
        o.uts = try namespace(uts, "--uts")
        o.ipc = try namespace(ipc, "--ipc", allowShareable: true)
        o.cgroupns = try cgroupns.map { try namespace($0, "--cgroupns") }
        net.apply(network: network, to: &o)
        storage.apply(to: &o)
        o.stopSignal = stopSignal
        o.stopTimeout = stopTimeout
        o.logOptions = logOpt
        o.expose = expose
        o.initProcess = initProcess
        o.groupAdd = groupAdd
        if let s = shmSize {
            guard let n = ByteSize.parse(s), n > 0 else { throw HakoError(.failed, "invalid --shm-size \"\(s)\"") }
            o.shmSize = n
        }
        o.isolation = isolation.flags()
        o.healthCheck = try health.healthCheck()
        return o
    }

    /// --cidfile: docker refuses a file that exists (another container's, maybe).
    func checkCidfile() throws {
        guard let f = cidfile else { return }
        if FS.exists(f) { throw HakoError(.failed, "container ID file found, make sure the other container isn't running or delete \(f)") }
    }

    /// Writes the ID; a file that cannot be written removes the new container.
    func writeCidfile(_ config: ContainerConfig, engine: Engine) throws {
        guard let f = cidfile else { return }
        let fd = open(f, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            let e = SystemError("open", f)
            try? engine.remove(config.id, force: true)
            throw HakoError(.failed, "cannot write the container ID file \(f)", cause: e)
        }
        let file = FileDescriptor(fd)
        do { try file.write(config.id) } catch {
            try? engine.remove(config.id, force: true)
            try? FS.unlinkIfPresent(f)
            throw HakoError(.failed, "cannot write the container ID file \(f)", cause: error)
        }
    }

    func namespace(_ v: String?, _ flag: String, allowShareable: Bool = false) throws -> NamespaceMode {
        switch v {
        case nil, "", "private": return .private
        case "shareable" where allowShareable: return .private
        case "host": return .host
        case let x?: throw HakoError(.failed, "invalid \(flag) \"\(x)\" (expected host or private)")
        }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Create and start a container.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: ContainerOptions
    @OptionGroup var pullFlags: PullFlags
    @Flag(name: [.short("d"), .long("detach")], help: "Run in the background and print the container ID.") var detach = false
    @Option(name: .long("detach-keys"), help: "Keys that detach from the container (default ctrl-p,ctrl-q).") var detachKeys = DetachKeys.default
    @Argument(parsing: .passthrough, help: "IMAGE [COMMAND] [ARG...]") var imageAndCommand: [String] = []

    func run() throws {
        guard let image = imageAndCommand.first else { throw ValidationError("\"run\" requires an image") }
        _ = try DetachKeys.parse(detachKeys)
        let engine = try global.engine()
        let spec = try options.runFlags(image: image, command: Array(imageAndCommand.dropFirst())).spec()
        let pull = try pullFlags.options()
        try options.checkCidfile()
        let config = try engine.create(spec, pull: pull)
        try options.writeCidfile(config, engine: engine)
        if detach {
            do { _ = try engine.start(created: config) } catch {
                try? engine.remove(config.id, force: true)
                throw error
            }
            print(config.id)
            return
        }
        let size = spec.process.tty ? (RawTerminal.size(of: 0) ?? RawTerminal.size(of: 1)) : nil
        let connection: MonitorConnection?
        do { connection = try engine.start(created: config, attach: true, terminal: size) } catch {
            try? engine.remove(config.id, force: true)
            throw error
        }
        guard let connection else { return }
        guard let code = try AttachSession.run(connection, stdin: spec.process.openStdin, tty: spec.process.tty, detachKeys: try DetachKeys.parse(detachKeys)) else {
            return  // detached: the container runs on
        }
        throw ExitCode(code)
    }
}

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a container without starting it.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: ContainerOptions
    @OptionGroup var pullFlags: PullFlags
    @Argument(parsing: .passthrough, help: "IMAGE [COMMAND] [ARG...]") var imageAndCommand: [String] = []

    func run() throws {
        guard let image = imageAndCommand.first else { throw ValidationError("\"create\" requires an image") }
        let engine = try global.engine()
        let spec = try options.runFlags(image: image, command: Array(imageAndCommand.dropFirst())).spec()
        let pull = try pullFlags.options()
        try options.checkCidfile()
        let config = try engine.create(spec, pull: pull)
        try options.writeCidfile(config, engine: engine)
        print(config.id)
    }
}
