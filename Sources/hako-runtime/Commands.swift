#if canImport(Glibc)
import Glibc
#endif
import HakoOCIRuntime
import HakoRuntime
import HakoSystem

/// One function per command: its options, the call, the output.
enum Commands {
    static let createOptions: [Options.Spec] = [
        .value("bundle", "b"), .value("console-socket"), .value("pid-file"), .flag("no-pivot"), .flag("no-new-keyring"),
        .value("preserve-fds"),
    ]

    static func run(_ command: String, _ args: ArraySlice<String>, runtime: OCIRuntime) throws -> Int32 {
        if args.contains("--help") || args.contains("-h") {
            printOut(usage)
            return 0
        }
        switch command {
        case "create":
            let o = try Options(args, createOptions, command: command)
            try runtime.create(try createRequest(o, command))
        case "run":
            let o = try Options(args, createOptions + [.flag("detach", "d"), .flag("keep"), .flag("no-subreaper")], command: command)
            return try runtime.run(try createRequest(o, command), detach: o.has("detach"))
        case "start":
            try runtime.start(try Options(args, [], command: command).id(command))
        case "state":
            printOut(try runtime.state(try Options(args, [], command: command).id(command)).serialized(pretty: true) + "\n")
        case "kill":
            let o = try Options(args, [.flag("all", "a"), .value("signal", "s")], command: command)
            let name = o.positionals.count > 1 ? o.positionals[1] : (o.value("signal") ?? "SIGTERM")
            guard let sig = Signals.parse(name) else { throw HakoError(.failed, "kill: unknown signal \"\(name)\"") }
            try runtime.kill(try o.id(command), signal: sig, all: o.has("all"))
        case "delete":
            let o = try Options(args, [.flag("force", "f")], command: command)
            try runtime.delete(try o.id(command), force: o.has("force"))
        case "pause":
            try runtime.pause(try Options(args, [], command: command).id(command))
        case "resume":
            try runtime.resume(try Options(args, [], command: command).id(command))
        case "exec":
            return try exec(args, runtime: runtime)
        case "ps":
            let o = try Options(args, [.value("format", "f")], command: command)
            let pids = try runtime.processes(try o.id(command))
            switch o.value("format") ?? "table" {
            case "json": printOut(JSON.array(pids.map { .int(Int64($0)) }).serialized() + "\n")
            case "table": printOut(OCIRuntime.processTable(pids).joined(separator: "\n") + "\n")
            case let f: throw HakoError(.failed, "ps: unknown format \"\(f)\" (table or json)")
            }
        case "list":
            let o = try Options(args, [.value("format", "f"), .flag("quiet", "q")], command: command)
            let states = try runtime.list()
            if o.has("quiet") {
                for s in states { printOut((s["id"]?.string ?? "") + "\n") }
            } else {
                switch o.value("format") ?? "table" {
                case "json": printOut(JSON.array(states).serialized() + "\n")
                case "table":
                    var out = "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n"
                    for s in states {
                        let f = ["id", "pid", "status", "bundle", "created", "owner"].map { k in s[k]?.string ?? s[k].map { $0.serialized() } ?? "" }
                        out += f.joined(separator: "\t") + "\n"
                    }
                    printOut(out)
                case let f: throw HakoError(.failed, "list: unknown format \"\(f)\" (table or json)")
                }
            }
        case "update":
            let o = try Options(args, [.value("resources", "r")], command: command)
            guard let source = o.value("resources") else { throw HakoError(.failed, "update: --resources FILE (or - for stdin) is required") }
            let bytes = source == "-" ? try FileDescriptor(dup(0)).readAll() : try FS.readFile(source)
            try runtime.update(try o.id(command), resources: bytes)
        case "features":
            _ = try Options(args, [], command: command)
            printOut(runtime.features().serialized(pretty: true) + "\n")
        case "spec":
            let o = try Options(args, [.value("bundle", "b"), .flag("rootless")], command: command)
            if o.has("rootless") { throw HakoError(.failed, "spec: --rootless: hako-runtime runs containers as root only") }
            let path = (o.value("bundle").map(FS.absolute) ?? FS.absolute(".")) + "/config.json"
            if FS.exists(path) { throw HakoError(.failed, "spec: \(path) exists; remove it first") }
            try FS.writeAtomic(path, OCIRuntime.defaultSpec().serialized(pretty: true) + "\n", mode: 0o644, durable: false)
        default:
            throw HakoError(.failed, "unknown command \"\(command)\" (see hako-runtime --help)")
        }
        return 0
    }

    static func createRequest(_ o: Options, _ command: String) throws -> CreateRequest {
        var r = CreateRequest(id: try o.id(command), bundle: o.value("bundle") ?? ".")
        r.pidFile = o.value("pid-file")
        r.consoleSocket = o.value("console-socket")
        r.options.noPivot = o.has("no-pivot")
        r.options.noNewKeyring = o.has("no-new-keyring")
        r.options.preserveFds = try o.uint32("preserve-fds", command) ?? 0
        return r
    }

    static func exec(_ args: ArraySlice<String>, runtime: OCIRuntime) throws -> Int32 {
        let o = try Options(args, [
            .value("console-socket"), .value("cwd"), .value("env", "e"), .flag("tty", "t"), .value("user", "u"),
            .value("additional-gids", "g"), .value("process", "p"), .flag("detach", "d"), .value("pid-file"),
            .value("process-label"), .value("apparmor"), .flag("no-new-privs"), .value("cap", "c"), .value("preserve-fds"),
            .flag("ignore-paused"), .value("cgroup"),
        ], stopAtPositional: true, command: "exec")
        var r = ExecRequest(id: try o.id("exec"))
        if let label = o.value("process-label"), !label.isEmpty { throw HakoError(.failed, "exec: --process-label: SELinux is not supported") }
        r.apparmorProfile = o.value("apparmor")
        if let c = o.value("cgroup"), !c.isEmpty { throw HakoError(.failed, "exec: --cgroup: sub-cgroups are not supported") }
        if let p = o.value("process") {
            let bytes = p == "-" ? try FileDescriptor(dup(0)).readAll() : try FS.readFile(p)
            r.process = try OCI.decodeProcess(bytes)
        } else {
            r.args = Array(o.positionals.dropFirst())
        }
        r.env = o.all("env")
        r.cwd = o.value("cwd")
        r.user = o.value("user")
        for g in o.all("additional-gids") {
            guard let n = UInt32(g) else { throw HakoError(.failed, "exec: --additional-gids must be numbers, not \"\(g)\"") }
            r.additionalGids.append(n)
        }
        r.tty = o.has("tty")
        r.capabilities = o.all("cap")
        r.noNewPrivileges = o.has("no-new-privs")
        r.detach = o.has("detach")
        r.pidFile = o.value("pid-file")
        r.consoleSocket = o.value("console-socket")
        r.preserveFds = try o.uint32("preserve-fds", "exec") ?? 0
        return try runtime.exec(r)
    }
}
