#if canImport(Glibc)
import Glibc
#endif
import HakoOCIRuntime
import HakoRuntime
import HakoSystem

// hako-runtime: the OCI runtime command line (runc's contract) over hako's
// runtime core. Parses, calls HakoOCIRuntime, prints; nothing else.

let usage = """
    hako-runtime — an OCI runtime (runc's command line) built on hako's runtime core

    usage: hako-runtime [global options] COMMAND [options] [arguments]

    global options:
      --root DIR            state directory (default /run/hako-runtime)
      --log FILE            also write messages to FILE
      --log-format text|json
      --debug               log debug messages
      --systemd-cgroup      cgroupsPath is slice:prefix:name (placed through cgroupfs)
      --version, -v         print the version

    commands:
      create   --bundle DIR [--pid-file F] [--console-socket S] [--no-pivot] [--no-new-keyring] [--preserve-fds N] ID
      start    ID
      run      [create's options] [--detach] ID
      state    ID
      kill     [--all] ID [SIGNAL]
      delete   [--force] ID
      exec     [--process FILE | --env K=V --cwd DIR --user UID[:GID] --tty --cap CAP] [--detach] [--pid-file F]
               [--console-socket S] ID [COMMAND [ARG...]]
      ps       [--format table|json] ID
      list     [--format table|json] [--quiet]
      pause    ID
      resume   ID
      update   --resources FILE|- ID
      features
      spec     [--bundle DIR]

    """

func printOut(_ s: String) {
    var bytes = Array(s.utf8)
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress! + off, $0.count - off) }
        if n <= 0 { if n < 0 && errno == EINTR { continue }; return }
        off += n
    }
}

struct Global {
    var root = OCIRuntime.defaultRoot
    var log = RuntimeLog()
    var systemd = false
}

/// Global options up to the command's name.
func parseGlobal(_ args: [String]) throws -> (Global, Int) {
    var g = Global()
    var i = 1
    while i < args.count, args[i].hasPrefix("-") {
        var name = args[i].hasPrefix("--") ? String(args[i].dropFirst(2)) : String(args[i].dropFirst())
        var inline: String?
        if let eq = name.firstIndex(of: "=") { inline = String(name[name.index(after: eq)...]); name = String(name[..<eq]) }
        func value() throws -> String {
            if let inline { return inline }
            i += 1
            guard i < args.count else { throw HakoError(.failed, "option --\(name) needs a value") }
            return args[i]
        }
        switch name {
        case "root": g.root = FS.absolute(try value())
        case "log": g.log.path = FS.absolute(try value())
        case "log-format":
            let v = try value()
            guard let f = RuntimeLog.Format(rawValue: v) else { throw HakoError(.failed, "--log-format must be text or json, not \"\(v)\"") }
            g.log.format = f
        case "debug": g.log.debug = inline != "false"
        case "systemd-cgroup": g.systemd = inline != "false"
        case "criu": _ = try value()
        case "rootless":
            let v = try value()
            if v == "true" { throw HakoError(.failed, "--rootless: hako-runtime runs containers as root only") }
        case "version", "v":
            printOut("hako-runtime version \(OCIRuntime.version)\nspec: \(OCI.specVersion)\n")
            exit(0)
        case "help", "h":
            printOut(usage)
            exit(0)
        default: throw HakoError(.failed, "unknown global option \(args[i])")
        }
        i += 1
    }
    return (g, i)
}

let argv = CommandLine.arguments
var global = Global()
do {
    let (g, index) = try parseGlobal(argv)
    global = g
    guard index < argv.count else {
        printOut(usage)
        exit(0)
    }
    let command = argv[index]
    let rest = argv[(index + 1)...]
    let runtime = OCIRuntime(root: g.root, systemdCgroup: g.systemd, log: g.log)
    g.log.debugMessage("\(argv.joined(separator: " "))")
    exit(try Commands.run(command, rest, runtime: runtime))
} catch let e as HakoError {
    global.log.error(e.description)
    exit(e.exitStatus)
} catch {
    global.log.error("\(error)")
    exit(125)
}
