import HakoCLI
#if canImport(Glibc)
import Glibc
#endif
import HakoEngine
import HakoSystem

/// Entry point: parse, call the engine, print; exit codes as Docker's
/// (125 hako's own error, 126 cannot execute, 127 not found, else the container's).
@main
struct Main {
    static func main() {
        do {
            var command = try CommandLineParser.parse(Hako.self, Array(CommandLine.arguments.dropFirst()))
            try command.run()
            end(0)
        } catch let code as ExitCode {
            end(code.rawValue)
        } catch let request as CommandLineRequest {
            switch request {
            case .help(let path): print(Help.text(path), terminator: "")
            case .text(let text): print(text, terminator: "")
            }
            exit(0)
        } catch let e as UsageError {
            fail(e.message + " (see '\(e.commandPath) --help')", status: 125)
        } catch let e as HakoError {
            fail(e.description, status: e.exitStatus)
        } catch let e as SystemError {
            fail(e.description, status: 125)
        } catch let e as ValidationError {
            fail(e.message, status: 125)
        } catch {
            fail("\(error)", status: 125)
        }
    }

    /// The end of a command that has done its work: what it printed is
    /// flushed, and the process ends without running the C libraries' exit
    /// handlers (nothing of hako's is registered there; on `run --rm` they
    /// were ~80 µs of the container's critical path, their pages first
    /// touched on the way out).
    static func end(_ status: Int32) -> Never {
        fflush(nil)
        _exit(status)
    }

    static func fail(_ message: String, status: Int32) -> Never {
        var line = "hako: " + message
        if !line.hasSuffix("\n") { line += "\n" }
        writeStderr(line)
        exit(status)
    }
}

struct Hako: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hako",
        abstract: "Containers from the kernel's own parts, for Raspberry Pi clusters.",
        version: "hako version 0.1.0",
        subcommands: [
            Run.self, Create.self, Start.self, Stop.self, Kill.self, Restart.self, Rm.self, Ps.self,
            Logs.self, Inspect.self, Exec.self, Wait.self, Pause.self, Unpause.self,
            Import.self, Images.self, Doctor.self, Update.self, Stats.self,
            NetworkCommand.self, VolumeCommand.self, Port.self,
            Pull.self, Push.self, Login.self, Logout.self, Rmi.self, Tag.self, History.self, ImageGroup.self,
            Save.self, Load.self, Export.self, Commit.self, Build.self, BuilderGroup.self,
            Events.self, Cluster.self, CoordinatorCommand.self, AgentCommand.self, PurgeHostState.self,
            Cp.self, Top.self, Rename.self, Diff.self, Attach.self, Info.self, Version.self, SystemGroup.self, ContainerGroup.self,
        ],
        globalOptions: GlobalOptions.self)
}

/// --root, --run-root and --log-level, accepted by every command that uses the
/// engine, before the command too (`hako --root DIR ps`).
struct GlobalOptions: ParsableArguments {
    @Option(name: .long("root"), help: "Data root (default /var/lib/hako, or $HAKO_ROOT).")
    var root: String?

    @Option(name: .long("run-root"), help: "Runtime dir (default /run/hako, or $HAKO_RUN_ROOT).")
    var runRoot: String?

    @Option(name: .long("log-level"), help: "What hako itself reports on stderr: debug, info (default), warn, error or fatal.")
    var logLevel: LogLevel = .info

    func engine() throws -> Engine {
        guard getuid() == 0 else { throw HakoError(.failed, "hako needs root (namespaces, mounts and cgroups are root's); run it with sudo") }
        let engine = try Engine(paths: EnginePaths.resolve(root: root, runRoot: runRoot))
        if logLevel == .debug {
            writeStderr("hako: debug: data root \(engine.paths.root), run root \(engine.paths.runRoot), cgroup parent \(engine.cgroupParent) (\(engine.cgroupHost.mode.rawValue) cgroups), monitor \(engine.monitorPath)\n")
        }
        return engine
    }
}

/// docker's --log-level values.
enum LogLevel: String, ArgumentValue {
    case debug, info, warn, error, fatal

    init?(argument: String) { self.init(rawValue: argument.lowercased()) }
    static var expected: String { "debug, info, warn, error or fatal" }
    var description: String { rawValue }
}
