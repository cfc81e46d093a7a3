import HakoCLI
import Testing

// Global options before the command (`hako --root DIR ps`), as docker and podman take them.

struct GRun: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run.")
    @OptionGroup var shared: Shared
    @Flag(name: .long("rm"), help: "Remove after.") var autoRemove = false
    @Argument(parsing: .passthrough, help: "IMAGE [COMMAND] [ARG...]") var imageAndCommand: [String] = []
}

struct GList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List.")
    @OptionGroup var shared: Shared
}

struct GBare: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bare", abstract: "No shared options.")
}

struct GGroup: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "net", abstract: "Networks.", subcommands: [GList.self])
}

struct GRoot: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tool", abstract: "A tool.",
                                                    subcommands: [GRun.self, GGroup.self, GBare.self], globalOptions: Shared.self)
}

@Suite struct GlobalOptionTests {
    @Test func beforeTheCommandAsAfterIt() throws {
        let a = try #require(try CommandLineParser.parse(GRoot.self, ["--root", "/d", "run", "--rm", "img", "--root", "x"]) as? GRun)
        #expect(a.shared.root == "/d")
        #expect(a.autoRemove)
        #expect(a.imageAndCommand == ["img", "--root", "x"])
        let b = try #require(try CommandLineParser.parse(GRoot.self, ["--root=/e", "net", "ls"]) as? GList)
        #expect(b.shared.root == "/e")
        let c = try #require(try CommandLineParser.parse(GRoot.self, ["net", "--root", "/f", "ls"]) as? GList)
        #expect(c.shared.root == "/f")
    }

    @Test func badUses() {
        func message(_ args: [String]) -> String? {
            do { _ = try CommandLineParser.parse(GRoot.self, args); return nil } catch let e as UsageError { return e.message } catch { return "\(error)" }
        }
        #expect(message(["--root"]) == "flag needs an argument: --root")
        #expect(message(["--root", "/d", "bare"]) == "--root does not apply to \"tool bare\"")
        #expect(message(["--nope", "run"]) == "unknown flag: --nope")
    }
}
