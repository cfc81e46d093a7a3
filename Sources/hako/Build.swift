#if canImport(Glibc)
import Glibc
#endif
import HakoBuild
import HakoCLI
import HakoEngine
import HakoSystem

struct Build: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "build", abstract: "Build an image from a Dockerfile.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short("t"), .long("tag")], help: "Name the image NAME[:TAG] (repeatable).") var tags: [String] = []
    @Option(name: [.short("f"), .long("file")], help: "The Dockerfile (default CONTEXT/Dockerfile; - for stdin).") var file: String?
    @Option(name: .long("build-arg"), help: "Set a build-time variable KEY=VALUE (KEY alone: from the environment).") var buildArgs: [String] = []
    @Option(name: .long("target"), help: "Build up to this stage.") var target: String?
    @Flag(name: .long("no-cache"), help: "Run every step, using no cached result.") var noCache = false
    @Flag(name: .long("pull"), help: "Pull the base images even when they are present.") var pull = false
    @Option(name: .long("platform"), help: "Platform of the base images (os/arch[/variant]).") var platform: String?
    @Option(name: .long("label"), help: "Set a label on the image KEY=VALUE (repeatable).") var labels: [String] = []
    @Option(name: .long("network"), help: "Network of the RUN steps: bridge (default), host or none.") var network: String = "bridge"
    @Flag(name: [.short("q"), .long("quiet")], help: "Print only the image ID (a failed step's output too).") var quiet = false
    @Option(name: .long("progress"), help: "Output: auto (tty on a terminal, else plain), plain (every step and all output, line by line) or tty (the running step redrawn in place with its clock and last output lines).") var progress: String = "auto"
    @OptionGroup var registry: RegistryFlags
    @Argument(help: "CONTEXT (a directory, or - for a Dockerfile on stdin)") var context: String

    func run() throws {
        guard progress == "plain" || progress == "tty" || progress == "auto" else {
            throw ValidationError("invalid --progress \"\(progress)\" (auto, plain or tty)")
        }
        let mode: NetworkMode
        switch network {
        case "bridge", "default": mode = .bridge
        case "host": mode = .host
        case "none": mode = .none
        default: throw ValidationError("invalid --network \"\(network)\" (bridge, host or none)")
        }
        let engine = try global.engine()
        var contextDir: String?
        var text: String
        var name = "Dockerfile"
        if context == "-" {
            guard file == nil || file == "-" else { throw ValidationError("with the context -, the Dockerfile is read from stdin: leave out -f") }
            text = try readStandardInput()
        } else {
            guard FS.isDirectory(context) else { throw HakoError(.failed, "unable to prepare the context: \(context) is not a directory") }
            contextDir = FS.absolute(context)
            if file == "-" {
                text = try readStandardInput()
            } else {
                let path = file ?? (context + "/Dockerfile")
                name = file.map { $0.split(separator: "/").last.map(String.init) ?? $0 } ?? "Dockerfile"
                do { text = try FS.readString(path) } catch {
                    throw HakoError(.failed, "cannot read the Dockerfile \(path)", cause: error)
                }
            }
        }
        var o = BuildOptions(context: contextDir, dockerfile: text, dockerfileName: name)
        o.tags = tags
        for a in buildArgs {
            let kv = a.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard let k = kv.first, !k.isEmpty else { throw ValidationError("invalid --build-arg \"\(a)\"") }
            if kv.count == 2 { o.buildArgs[k] = kv[1] } else if let v = getenv(k) { o.buildArgs[k] = String(cString: v) }
        }
        for l in labels {
            let kv = l.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard let k = kv.first, !k.isEmpty else { throw ValidationError("invalid --label \"\(l)\"") }
            o.labels[k] = kv.count == 2 ? kv[1] : ""
        }
        o.target = target
        o.noCache = noCache
        o.pull = pull
        o.platform = platform
        o.network = mode
        o.tlsVerify = registry.tlsVerify

        var captured: [UInt8] = []
        let quiet = self.quiet
        // Not on a terminal, tty falls back to plain lines (a file or pipe gets no escape sequences).
        let display = !quiet && BuildProgressTTY.wanted(progress, fd: 1) ? BuildProgressTTY(fd: 1) : nil
        display?.start()
        let builder = Builder(engine: engine, options: o) { event in
            if let display {
                display.handle(event)
                return
            }
            switch event {
            // Unbuffered, as a RUN step's own output is: the lines stay in order.
            case .step(let s): if !quiet { AttachSession.writeAll(1, Array((s + "\n").utf8)) }
            case .cached: if !quiet { AttachSession.writeAll(1, Array("--> CACHED\n".utf8)) }
            case .note(let n): writeStderr("hako: note: \(n)\n")
            case .output(let fd, let bytes):
                if quiet { captured += bytes } else { AttachSession.writeAll(fd, bytes) }
            case .done(let id): if !quiet { AttachSession.writeAll(1, Array("--> \(id)\n".utf8)) }
            }
        }
        do {
            let image = try builder.build()
            display?.finish(failed: false)
            if quiet {
                print("sha256:" + image.id)
            } else {
                print("Successfully built \(image.shortID)")
                for t in image.references where tags.contains(where: { ref in t == ref || t.hasPrefix(ref + ":") || t == ref + ":latest" }) {
                    print("Successfully tagged \(t)")
                }
            }
        } catch let interrupted as BuildInterrupted {
            display?.finish(failed: true)
            writeStderr("hako: build interrupted (\(Signals.name(interrupted.signal)))\n")
            throw ExitCode(128 + interrupted.signal)
        } catch {
            display?.finish(failed: true)
            if quiet && !captured.isEmpty { AttachSession.writeAll(2, captured) }
            // docker build exits 1 when a step fails.
            writeStderr("hako: \(error)\n")
            throw ExitCode(1)
        }
    }

    func readStandardInput() throws -> String {
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw SystemError("read stdin") }
            if n == 0 { break }
            bytes += buf[0..<n]
            guard bytes.count < 16 << 20 else { throw HakoError(.failed, "the Dockerfile on stdin is larger than 16 MiB") }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

struct BuilderGroup: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "builder", abstract: "Manage the build cache.",
                                                    subcommands: [BuilderPrune.self])
}

struct BuilderPrune: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prune", abstract: "Remove build cache entries whose layers are gone (-a: all).")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short("a"), .long("all")], help: "Remove every entry: the next build runs every step.") var all = false
    @Flag(name: [.short("f"), .long("force")], help: "Do not ask (hako never asks; accepted as docker's).") var force = false

    func run() throws {
        let engine = try global.engine()
        print("Deleted build cache entries: \(Builder.pruneCache(engine: engine, all: all))")
    }
}
