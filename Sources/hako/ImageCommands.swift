import HakoCLI
#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import HakoEngine
import HakoImage
import HakoSystem

/// `--tls-verify` and `--platform`, shared by the commands that reach registries.
struct RegistryFlags: ParsableArguments {
    @Option(name: .long("tls-verify"), help: "Verify the registry's certificate; false also allows plain HTTP.")
    var tlsVerify: Bool = true
}

struct Pull: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pull", abstract: "Download an image from a registry.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var registry: RegistryFlags
    @Option(name: .long("platform"), help: "Platform to pull from a multi-platform image (os/arch[/variant]; default: this host's).")
    var platform: String?
    @Flag(name: [.short("q"), .long("quiet")], help: "Print only the image name.") var quiet = false
    @Argument(help: "NAME[:TAG|@DIGEST]") var reference: String

    func run() throws {
        let engine = try global.engine()
        let view = ProgressView(fd: 1, quiet: quiet)
        let result = try engine.pull(reference, platform: platform, tlsVerify: registry.tlsVerify, progress: view)
        view.finish()
        let ref = try? ImageReference(parsing: reference).withDefaultTag()
        if !quiet {
            let shown = ref?.familiarString ?? reference
            print(result.downloadedLayers > 0 ? "Status: Downloaded newer image for \(shown)" : "Status: Image is up to date for \(shown)")
        }
        print(ref?.string ?? reference)
    }
}

struct Push: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "push", abstract: "Upload an image to its registry.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var registry: RegistryFlags
    @Flag(name: [.short("q"), .long("quiet")], help: "Print only the digest.") var quiet = false
    @Argument(help: "NAME[:TAG]") var reference: String

    func run() throws {
        let engine = try global.engine()
        let view = ProgressView(fd: 1, quiet: quiet)
        let digest = try engine.push(reference, tlsVerify: registry.tlsVerify, progress: view)
        view.finish()
        if quiet { print(digest.string) }
    }
}

struct Login: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "login", abstract: "Log in to a registry (credentials kept in <root>/auth.json, mode 0600).")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var registry: RegistryFlags
    @Option(name: [.short("u"), .long("username")], help: "Username.") var username: String?
    @Option(name: [.short("p"), .long("password")], help: "Password (prefer --password-stdin).") var password: String?
    @Flag(name: .long("password-stdin"), help: "Read the password from stdin.") var passwordStdin = false
    @Argument(help: "SERVER (default: Docker Hub)") var server: String?

    func run() throws {
        let engine = try global.engine()
        guard let user = username ?? prompt("Username: ") else { throw HakoError(.failed, "a username is required (-u)") }
        var secret = password
        if passwordStdin {
            guard password == nil else { throw HakoError(.failed, "--password and --password-stdin are mutually exclusive") }
            let bytes = (try? FileDescriptor(dup(0)).readAll()) ?? []
            secret = String(decoding: bytes, as: UTF8.self).trimmed
        }
        guard let pass = secret ?? prompt("Password: ", hidden: true) else { throw HakoError(.failed, "a password is required (-p or --password-stdin)") }
        _ = try engine.login(server: server, username: user, password: pass, tlsVerify: registry.tlsVerify)
        print("Login Succeeded")
    }

    /// Asks on the terminal; nil when stdin is not one.
    private func prompt(_ text: String, hidden: Bool = false) -> String? {
        guard isatty(0) == 1 else { return nil }
        writeStderr(text)
        var saved = termios()
        if hidden {
            tcgetattr(0, &saved)
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(0, TCSANOW, &quiet)
        }
        defer { if hidden { tcsetattr(0, TCSANOW, &saved); writeStderr("\n") } }
        return readLine(strippingNewline: true)
    }
}

struct Logout: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logout", abstract: "Forget the credentials of a registry.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "SERVER (default: Docker Hub)") var server: String?

    func run() throws {
        let engine = try global.engine()
        let (domain, removed) = try engine.logout(server: server)
        print(removed ? "Removing login credentials for \(domain)" : "Not logged in to \(domain)")
    }
}

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "import", abstract: "Make an image from a root file system tarball (plain, gzip or zstd; \"-\" reads stdin).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "TARBALL") var tarball: String
    @Argument(help: "NAME[:TAG]") var reference: String?

    func run() throws {
        let engine = try global.engine()
        let image = try engine.importImage(from: tarball, reference: reference)
        print("sha256:" + image.id)
    }
}

struct Images: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "images", abstract: "List images.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short("a"), .long("all")], help: "Show all images (hako keeps no intermediate images: the same as without).") var all = false
    @Flag(name: [.short("q"), .long("quiet")], help: "Only display image IDs.") var quiet = false
    @Flag(name: .long("digests"), help: "Show digests.") var digests = false
    @Flag(name: .long("no-trunc"), help: "Do not truncate IDs.") var noTrunc = false
    @Option(name: .long("format"), help: "Output format: table, json (one object per line), or a Go template (table TEMPLATE for columns).") var format = "table"
    @Option(name: [.short("f"), .long("filter")], help: "Filter: dangling=true|false, label=KEY[=VALUE], reference=PATTERN, before=IMAGE, since=IMAGE.") var filters: [String] = []
    @Argument(help: "REPOSITORY[:TAG]") var filter: String?

    struct Row: Codable {
        var Repository: String, Tag: String, ID: String, Digest: String, CreatedAt: String, CreatedSince: String, Size: String
    }

    func run() throws {
        let output = try OutputFormat(parsing: format)
        let engine = try global.engine()
        let admitted = try Filters.images(filters, engine: engine)
        var rows: [Row] = []
        for image in try engine.images.list() where admitted.admits(image) {
            let refs = image.references.isEmpty ? ["<none>:<none>"] : image.references
            for ref in refs {
                let colon = ref.lastIndex(of: ":").flatMap { ref[$0...].contains("/") ? nil : $0 }
                let repo = colon.map { String(ref[..<$0]) } ?? ref
                let tag = colon.map { String(ref[ref.index(after: $0)...]) } ?? "latest"
                if let filter, !matches(filter, repo: repo, tag: tag) { continue }
                let digest = image.repoDigests.first { $0.hasPrefix(repo + "@") }.map { String($0.split(separator: "@")[1]) } ?? "<none>"
                rows.append(Row(Repository: repo, Tag: tag, ID: noTrunc ? "sha256:" + image.id : String(image.id.prefix(12)),
                                Digest: digest, CreatedAt: image.created?.rfc3339 ?? "",
                                CreatedSince: image.created.map(ago) ?? "N/A", Size: humanSize(image.size)))
            }
        }
        if quiet {
            var seen: Set<String> = []
            for r in rows where seen.insert(r.ID).inserted { print(r.ID) }
            return
        }
        try output.print(rows, headers: ["ID": "IMAGE ID", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT"]) {
            if digests {
                printTable(["REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"],
                           rows.map { [$0.Repository, $0.Tag, $0.Digest, $0.ID, $0.CreatedSince, $0.Size] })
            } else {
                printTable(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows.map { [$0.Repository, $0.Tag, $0.ID, $0.CreatedSince, $0.Size] })
            }
        }
    }

    private func matches(_ filter: String, repo: String, tag: String) -> Bool {
        guard let ref = try? ImageReference(parsing: filter) else { return false }
        guard ref.familiarName == repo || ref.name == repo else { return false }
        return ref.tag.map { $0 == tag } ?? true
    }
}

struct Rmi: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rmi", abstract: "Remove images (refuses images containers use, unless -f).")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short("f"), .long("force")], help: "Remove even when containers use the image (never a running container's).") var force = false
    @Argument(help: "IMAGE...") var references: [String]

    func run() throws {
        let engine = try global.engine()
        var failure: (any Error)?
        for r in references {
            do {
                let report = try engine.removeImage(r, force: force)
                for u in report.untagged { print("Untagged: \(u)") }
                for d in report.deleted { print("Deleted: sha256:\(d)") }
            } catch {
                writeStderr("hako: \(error)\n")
                failure = failure ?? error
            }
        }
        if failure != nil { throw ExitCode(1) }
    }
}

struct Tag: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tag", abstract: "Give an image another name.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "SOURCE_IMAGE[:TAG]") var source: String
    @Argument(help: "TARGET_IMAGE[:TAG]") var target: String

    func run() throws {
        try global.engine().images.tag(source, target)
    }
}

struct History: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "Show the steps that made an image.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: .long("no-trunc"), help: "Do not truncate output.") var noTrunc = false
    @Flag(name: [.short("q"), .long("quiet")], help: "Only show IDs.") var quiet = false
    @Option(name: .long("format"), help: "Output format: table, json, or a Go template.") var format = "table"
    @Argument(help: "IMAGE") var reference: String

    func run() throws {
        let output = try OutputFormat(parsing: format)
        let rows = try global.engine().images.history(reference)
        if quiet { for r in rows { print(noTrunc || r.id == "<missing>" ? r.id : String(r.id.prefix(12))) }; return }
        try output.print(rows) { printTable(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], rows.map { r in
            let created = r.created.flatMap { Timestamp(rfc3339: $0) }.map(ago) ?? "N/A"
            let by = noTrunc || r.createdBy.count <= 45 ? r.createdBy : String(r.createdBy.prefix(44)) + "…"
            return [noTrunc || r.id == "<missing>" ? r.id : String(r.id.prefix(12)), created, by, humanSize(r.size), r.comment]
        }) }
    }
}

/// `hako image …`: the image commands under one name, as Docker has them.
struct ImageGroup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image", abstract: "Manage images.",
        subcommands: [ImageList.self, Pull.self, Push.self, ImageRemove.self, Tag.self, ImageInspectCommand.self,
                      History.self, ImagePrune.self, Import.self, Save.self, Load.self])
}

struct ImageList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List images.", aliases: ["list"])
    @OptionGroup var images: Images
    func run() throws { try images.run() }
}

struct ImageRemove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove images.")
    @OptionGroup var rmi: Rmi
    func run() throws { try rmi.run() }
}

struct ImageInspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show images' details as JSON.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short("f"), .long("format")], help: "A Go template applied to each image.") var format = ""
    @Argument(help: "IMAGE...") var references: [String]

    func run() throws {
        let engine = try global.engine()
        var out: [ImageInspect] = []
        var failure: (any Error)?
        for r in references {
            do { out.append(try engine.images.inspect(r)) } catch { failure = failure ?? error }
        }
        try printInspected(out, format: format)
        if let failure { throw failure }
    }
}

struct ImagePrune: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prune", abstract: "Remove unused images and unreferenced content.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short("a"), .long("all")], help: "Remove every image no container uses, not only unnamed ones.") var all = false
    @Flag(name: [.short("f"), .long("force")], help: "Do not ask for confirmation (hako never asks).") var force = false

    func run() throws {
        let report = try global.engine().pruneImages(all: all)
        if !report.untagged.isEmpty || !report.deleted.isEmpty {
            print("Deleted Images:")
            for u in report.untagged { print("untagged: \(u)") }
            for d in report.deleted { print("deleted: sha256:\(d)") }
            print("")
        }
        print("Total reclaimed space: \(humanSize(report.reclaimed))")
    }
}
