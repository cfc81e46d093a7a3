import HakoCLI
import Testing

// A small command tree shaped like hako's: a group, a passthrough command
// with an option group, and commands with required and optional arguments.

struct Shared: ParsableArguments {
    @Option(name: .long("root"), help: "Data root.") var root: String?
}

struct Limits: ParsableArguments {
    @Option(name: [.short("m"), .long("memory")], help: "Memory limit.") var memory: String?
    @Option(name: .long("pids-limit"), help: "Process limit.") var pidsLimit: Int?
    @Option(name: .long("cpus"), help: "CPUs.") var cpus: Double?
}

struct RunLike: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run a thing.")
    @OptionGroup var shared: Shared
    @Option(name: [.short("e"), .long("env")], help: "Environment.") var env: [String] = []
    @Option(name: [.short("p"), .long("publish")], help: "Ports.") var publish: [String] = []
    @Option(name: [.short("h"), .long("hostname")], help: "Host name.") var hostname: String?
    @Option(name: .long("restart"), help: "Restart policy.") var restart = "no"
    @Flag(name: [.short("i"), .long("interactive")], help: "Keep stdin open.") var interactive = false
    @Flag(name: [.short("t"), .long("tty")], help: "A terminal.") var tty = false
    @Flag(name: [.short("d"), .long("detach")], help: "Background.") var detach = false
    @Flag(name: .long("rm"), help: "Remove after.") var autoRemove = false
    @OptionGroup(title: "Limits") var limits: Limits
    @Argument(parsing: .passthrough, help: "IMAGE [COMMAND] [ARG...]") var imageAndCommand: [String] = []
}

struct UpdateLike: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "update", abstract: "Update a thing.", shouldDisplay: false)
    @OptionalFlag(name: .long("read-only"), help: "Read-only.") var readOnly: Bool?
    @Argument(help: "SERVICE") var service: String
}

struct RmLike: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove things.", aliases: ["remove"])
    @Flag(name: [.short("f"), .long("force")], help: "Force.") var force = false
    @Argument(help: "CONTAINER...") var containers: [String]
}

struct TagLike: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tag", abstract: "Tag.")
    @Argument(help: "SOURCE") var source: String
    @Argument(help: "TARGET") var target: String?
}

struct JoinLike: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "agent", abstract: "Agent.", shouldDisplay: false)
    @Option(name: .long("join"), parsing: .upToNextOption, help: "TOKEN ADDRESS.") var join: [String] = []
    @Option(name: .long("tls-verify"), help: "Verify.") var tlsVerify: Bool = true
}

struct Group: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "net", abstract: "Networks.", subcommands: [RmLike.self, TagLike.self])
}

struct Root: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tool", abstract: "A tool.", version: "tool 1",
                                                    subcommands: [RunLike.self, Group.self, JoinLike.self, UpdateLike.self])
}

func parse<T>(_ args: String..., as: T.Type) throws -> T {
    let c = try CommandLineParser.parse(Root.self, args)
    guard let t = c as? T else { throw ValidationError("parsed \(type(of: c))") }
    return t
}

func usageError(_ args: String...) -> String? {
    do {
        _ = try CommandLineParser.parse(Root.self, args)
        return nil
    } catch let e as UsageError {
        return e.message
    } catch {
        return "\(error)"
    }
}

@Suite struct ParserTests {
    @Test func optionsBeforeTheImageAndEverythingAfterIt() throws {
        let r = try parse("run", "-e", "A=1", "--env=B=2", "-eC=3", "--rm", "img", "sh", "-c", "--rm", as: RunLike.self)
        #expect(r.env == ["A=1", "B=2", "C=3"])
        #expect(r.autoRemove)
        #expect(r.imageAndCommand == ["img", "sh", "-c", "--rm"])
        #expect(r.restart == "no")
    }

    @Test func clusteredShortFlagsWithAValueLast() throws {
        let r = try parse("run", "-itdp", "8080:80", "-p=53:53/udp", "img", as: RunLike.self)
        #expect(r.interactive && r.tty && r.detach)
        #expect(r.publish == ["8080:80", "53:53/udp"])
        let off = try parse("run", "-d=false", "--tty=false", "img", as: RunLike.self)
        #expect(!off.detach && !off.tty)
    }

    @Test func anOptionalFlagTellsAbsentFromFalse() throws {
        #expect(try parse("update", "web", as: UpdateLike.self).readOnly == nil)
        #expect(try parse("update", "--read-only", "web", as: UpdateLike.self).readOnly == true)
        #expect(try parse("update", "--read-only=false", "web", as: UpdateLike.self).readOnly == false)
    }

    @Test func valuesAreTakenEvenWhenTheyStartWithADash() throws {
        let r = try parse("run", "--pids-limit", "-1", "-m", "64m", "--cpus", "0.5", "img", as: RunLike.self)
        #expect(r.limits.pidsLimit == -1 && r.limits.memory == "64m" && r.limits.cpus == 0.5)
    }

    @Test func groupsOptionGroupsAndAliases() throws {
        let r = try parse("net", "remove", "a", "-f", "b", as: RmLike.self)
        #expect(r.force && r.containers == ["a", "b"])
        let t = try parse("net", "tag", "x", as: TagLike.self)
        #expect(t.source == "x" && t.target == nil)
        let s = try parse("run", "--root", "/tmp/r", "img", as: RunLike.self)
        #expect(s.shared.root == "/tmp/r")
    }

    @Test func doubleDashEndsTheOptions() throws {
        let r = try parse("net", "rm", "--", "-weird-name", as: RmLike.self)
        #expect(r.containers == ["-weird-name"] && !r.force)
    }

    @Test func upToNextOptionAndBoolOptions() throws {
        let j = try parse("agent", "--join", "TOKEN", "10.0.0.1:7946", "--tls-verify=false", as: JoinLike.self)
        #expect(j.join == ["TOKEN", "10.0.0.1:7946"] && j.tlsVerify == false)
        #expect(try parse("agent", as: JoinLike.self).tlsVerify == true)
    }

    @Test func badInputIsAClearError() {
        #expect(usageError("run", "--bogus", "img") == "unknown flag: --bogus")
        #expect(usageError("run", "-x", "img") == "unknown shorthand flag: 'x' in -x")
        #expect(usageError("run", "-itx", "img") == "unknown shorthand flag: 'x' in -itx")
        #expect(usageError("run", "--pids-limit", "many", "img") == "invalid value \"many\" for --pids-limit: expected an integer")
        #expect(usageError("run", "--cpus", "inf", "img") == "invalid value \"inf\" for --cpus: expected a number")
        #expect(usageError("run", "-d=maybe", "img") == "invalid value \"maybe\" for --detach: expected true or false")
        #expect(usageError("run", "--env") == "flag needs an argument: --env")
        #expect(usageError("net", "rm") == "\"tool net rm\" requires at least 1 argument (CONTAINER...)")
        #expect(usageError("net", "tag") == "\"tool net tag\" requires SOURCE")
        #expect(usageError("net", "tag", "a", "b", "c") == "unexpected argument \"c\" for \"tool net tag\"")
        #expect(usageError("nope") == "unknown command \"nope\" for \"tool\"")
        #expect(usageError("agent", "--join") == "flag needs an argument: --join")
    }

    @Test func helpVersionAndCompletionsAreRequests() throws {
        func request(_ args: String...) -> CommandLineRequest? {
            do { _ = try CommandLineParser.parse(Root.self, args) } catch let r as CommandLineRequest { return r } catch {}
            return nil
        }
        guard case .help(let p1)? = request("run", "--help") else { Issue.record("run --help"); return }
        #expect(p1.count == 2)
        // -h is the command's own option where it declares one.
        #expect(request("run", "-h", "box", "img") == nil)
        guard case .help(let p2)? = request("help", "net", "rm") else { Issue.record("help net rm"); return }
        #expect(p2.count == 3)
        guard case .help? = request("net") else { Issue.record("a group alone shows its help"); return }
        guard case .text(let v)? = request("--version") else { Issue.record("--version"); return }
        #expect(v == "tool 1\n")
        guard case .text(let bash)? = request("--generate-completion-script", "bash") else { Issue.record("bash"); return }
        #expect(bash.contains("complete -o default -F _tool tool") && bash.contains("local cmd=tool i") && bash.contains("\"tool net\") subcommands=\"rm tag remove\"; options=\"--help\" ;;"))
        guard case .text(let paths)? = request("help", "--commands") else { Issue.record("--commands"); return }
        #expect(paths == "tool\ntool run\ntool net\ntool net rm\ntool net tag\n", "hidden commands are left out")
    }

    @Test func helpShowsUsageOptionsGroupsAndDefaults() {
        let run = Help.text([Root.self, RunLike.self])
        #expect(run.hasPrefix("Usage: tool run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun a thing.\n"))
        #expect(run.contains("  -e, --env <env> ...           Environment.\n"))
        #expect(run.contains("      --restart <restart>       Restart policy. (default: no)\n"))
        #expect(run.contains("\nLimits:\n  -m, --memory <memory>"))
        #expect(run.contains("      --help                    Show this help.\n"), "-h is --hostname here")
        let group = Help.text([Root.self, Group.self])
        #expect(group.contains("Commands:\n  rm, remove                    Remove things.\n"))
        #expect(Help.text([Root.self, Group.self, TagLike.self]).hasPrefix("Usage: tool net tag [OPTIONS] SOURCE [TARGET]\n"))
    }
}
