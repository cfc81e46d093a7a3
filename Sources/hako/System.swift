import HakoCLI
#if canImport(Glibc)
import Glibc
#endif
import HakoCluster
import HakoEngine
import HakoImage
import HakoSystem

/// `hako info`: the engine's facts with the node's cluster membership.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Show what hako runs on and what it holds.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short("f"), .long("format")], help: "Output format: a Go template, or json.") var format = ""

    func run() throws {
        let output = try OutputFormat(parsing: format)
        let engine = try global.engine()
        let info = try engine.info()
        let identity = NodeIdentity.load(NodeCredentials(stateDir: engine.paths.root + "/agent"))
        switch output {
        case .json:
            print(try jsonLine(info))
            return
        case .template(let t, _):
            var value = try OutputFormat.value(info)
            if case .object(var o) = value {
                o["Cluster"] = try identity.map(OutputFormat.value) ?? .null
                value = .object(o)
            }
            do { print(try t.render(value)) } catch let e as TemplateError { throw HakoError(.failed, "--format: \(e)") }
            return
        case .table:
            break
        }
        print("""
        Client:
         Version:    \(EngineVersion.version)

        Server:
         Containers: \(info.Containers)
          Running: \(info.ContainersRunning)
          Paused: \(info.ContainersPaused)
          Stopped: \(info.ContainersStopped)
         Images: \(info.Images)
         Volumes: \(info.Volumes)
         Networks: \(info.Networks)
         Server Version: \(info.ServerVersion)
         Storage Driver: \(info.Driver)
          Backing Filesystem: \(info.BackingFilesystem)
         Logging Driver: \(info.LoggingDriver)
         Cgroup Driver: \(info.CgroupDriver)
         Cgroup Version: \(info.CgroupVersion) (\(info.CgroupMode))
         Cgroup Parent: \(info.CgroupParent)
         Runtimes: \(info.Runtimes.joined(separator: " "))
         Default Runtime: \(info.DefaultRuntime)
         Security Options:
        \(info.SecurityOptions.map { "  " + $0 }.joined(separator: "\n"))
         Kernel Version: \(info.KernelVersion)
         Operating System: \(info.OperatingSystem)
         OSType: \(info.OSType)
         Architecture: \(info.Architecture)
         CPUs: \(info.NCPU)
         Total Memory: \(ByteSize.format(Int64(info.MemTotal)))
         Name: \(info.Name)
         Data Root: \(info.DockerRootDir)
         Run Root: \(info.RunRoot)
        """)
        if let identity {
            print("""
             Cluster: active
              Node ID: \(identity.nodeID)
              Cluster ID: \(identity.clusterID)
              Coordinator: \(identity.coordinator)
              Node Subnet: \(identity.subnet)
            """)
        } else {
            print(" Cluster: inactive")
        }
    }
}

/// `hako version`: this binary's version and the API it follows.
struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Show hako's version.")
    @Option(name: [.short("f"), .long("format")], help: "Output format: a Go template, or json.") var format = ""

    struct Report: Codable {
        struct Side: Codable {
            var Version: String, ApiVersion: String, Os: String, Arch: String, KernelVersion: String?
        }
        var Client: Side
        var Server: Side
    }

    func run() throws {
        let output = try OutputFormat(parsing: format)
        var u = utsname()
        uname(&u)
        func field<T>(_ v: T) -> String { withUnsafeBytes(of: v) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } }
        let arch = Platform.architecture
        let side = Report.Side(Version: EngineVersion.version, ApiVersion: EngineVersion.apiVersion, Os: "linux", Arch: arch, KernelVersion: nil)
        var server = side
        server.KernelVersion = field(u.release)
        let report = Report(Client: side, Server: server)
        switch output {
        case .json:
            print(try jsonLine(report))
        case .template(let t, _):
            do { print(try t.render(try OutputFormat.value(report))) } catch let e as TemplateError { throw HakoError(.failed, "--format: \(e)") }
        case .table:
            print("""
            Client:
             Version:     \(side.Version)
             API version: \(side.ApiVersion)
             OS/Arch:     linux/\(arch)

            Server: hako engine (no daemon: every command is the engine)
             Version:     \(server.Version)
             API version: \(server.ApiVersion)
             OS/Arch:     linux/\(arch)
             Kernel:      \(server.KernelVersion ?? "")
            """)
        }
    }
}

struct SystemGroup: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "system", abstract: "Storage use, clean-up and facts of this host's engine.",
                                                    subcommands: [SystemDf.self, SystemPrune.self, SystemInfo.self])
}

struct SystemInfo: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Show what hako runs on and what it holds (as hako info).")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short("f"), .long("format")], help: "Output format: a Go template, or json.") var format = ""

    func run() throws {
        var i = Info()
        i.global = global
        i.format = format
        try i.run()
    }
}

struct SystemDf: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "df", abstract: "Show the disk space images, containers and volumes use.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short("v"), .long("verbose")], help: "Show each image, container and volume.") var verbose = false
    @Option(name: .long("format"), help: "Output format: table, json, or a Go template.") var format = ""

    struct Row: Codable {
        var kind: String, TotalCount: Int, Active: Int, Size: String, Reclaimable: String

        enum CodingKeys: String, CodingKey {
            case kind = "Type", TotalCount, Active, Size, Reclaimable
        }
    }

    func run() throws {
        let output = try OutputFormat(parsing: format)
        let usage = try global.engine().diskUsage()
        func percent(_ part: Int64, _ whole: Int64) -> String {
            whole > 0 ? "\(humanSize(part)) (\(Int((Double(part) / Double(whole) * 100).rounded()))%)" : humanSize(part)
        }
        let imageSize = usage.images.reduce(Int64(0)) { $0 + $1.image.size }
        let unusedImages = usage.images.filter { $0.containers == 0 }.reduce(Int64(0)) { $0 + $1.image.size }
        let containerSize = usage.containers.reduce(Int64(0)) { $0 + $1.size }
        let stopped = usage.containers.filter { !$0.container.isRunning && $0.container.status != .restarting }.reduce(Int64(0)) { $0 + $1.size }
        let volumeSize = usage.volumes.reduce(Int64(0)) { $0 + $1.size }
        let unusedVolumes = usage.volumes.filter { $0.containers == 0 }.reduce(Int64(0)) { $0 + $1.size }
        let rows = [
            Row(kind: "Images", TotalCount: usage.images.count, Active: usage.images.filter { $0.containers > 0 }.count,
                Size: humanSize(imageSize), Reclaimable: percent(unusedImages, imageSize)),
            Row(kind: "Containers", TotalCount: usage.containers.count, Active: usage.containers.filter(\.container.isRunning).count,
                Size: humanSize(containerSize), Reclaimable: percent(stopped, containerSize)),
            Row(kind: "Local Volumes", TotalCount: usage.volumes.count, Active: usage.volumes.filter { $0.containers > 0 }.count,
                Size: humanSize(volumeSize), Reclaimable: percent(unusedVolumes, volumeSize)),
            Row(kind: "Build Cache", TotalCount: 0, Active: 0, Size: humanSize(0), Reclaimable: humanSize(0)),
        ]
        guard verbose else {
            try output.print(rows, headers: ["TotalCount": "TOTAL", "Active": "ACTIVE"]) {
                printTable(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
                           rows.map { [$0.kind, String($0.TotalCount), String($0.Active), $0.Size, $0.Reclaimable] })
            }
            return
        }
        print("Images space usage:\n")
        printTable(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "CONTAINERS"], usage.images.map { u in
            let ref = u.image.references.first.map(ImageFilterNames.familiar) ?? "<none>:<none>"
            let colon = ref.lastIndex(of: ":")
            return [colon.map { String(ref[..<$0]) } ?? ref, colon.map { String(ref[ref.index(after: $0)...]) } ?? "<none>", u.image.shortID,
                    u.image.created.map(ago) ?? "", humanSize(u.image.size), String(u.containers)]
        })
        print("\nContainers space usage:\n")
        printTable(["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"], usage.containers.map { u in
            let c = u.container
            let cmd = c.config.args.joined(separator: " ")
            let volumes = (c.config.storage?.mounts ?? []).filter { $0.kind == .volume }.count
            return [c.config.shortID, c.config.image, "\"\(cmd.count <= 20 ? cmd : String(cmd.prefix(19)) + "…")\"", String(volumes),
                    humanSize(u.size), ago(c.config.created), c.status.rawValue, c.name]
        })
        print("\nLocal Volumes space usage:\n")
        printTable(["VOLUME NAME", "LINKS", "SIZE"], usage.volumes.map { [$0.volume.Name, String($0.containers), humanSize($0.size)] })
        print("\nBuild cache usage: 0B")
    }
}

struct SystemPrune: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prune", abstract: "Remove stopped containers, unused networks, dangling images (and more with -a, --volumes).")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short("a"), .long("all")], help: "Remove every unused image, not only dangling ones.") var all = false
    @Flag(name: .long("volumes"), help: "Remove unused anonymous volumes too (every unused one with -a).") var volumes = false
    @Flag(name: [.short("f"), .long("force")], help: "Do not ask for confirmation.") var force = false

    func run() throws {
        let engine = try global.engine()
        try confirm(force: force, """
        WARNING! This will remove:
          - all stopped containers
          - all networks not used by at least one container
        \(volumes ? "  - all \(all ? "" : "anonymous ")volumes not used by at least one container\n" : "")\
          - all \(all ? "images without at least one container associated to them" : "dangling images")
        """)
        let r = try engine.pruneSystem(allImages: all, volumes: volumes)
        report(r)
    }
}

/// `container prune` and `system prune` ask first unless forced; without a
/// terminal to ask on, they refuse rather than guess.
func confirm(force: Bool, _ warning: String) throws {
    guard !force else { return }
    print(warning)
    print("\nAre you sure you want to continue? [y/N] ", terminator: "")
    guard isatty(0) == 1, let answer = readLine() else {
        print("")
        throw HakoError(.failed, "not confirmed (no terminal to ask on): use --force")
    }
    guard answer.trimmed.lowercased() == "y" || answer.trimmed.lowercased() == "yes" else { throw ExitCode(1) }
}

func report(_ r: PruneReport) {
    if !r.containers.isEmpty { print("Deleted Containers:\n" + r.containers.joined(separator: "\n") + "\n") }
    if !r.networks.isEmpty { print("Deleted Networks:\n" + r.networks.joined(separator: "\n") + "\n") }
    if !r.volumes.isEmpty { print("Deleted Volumes:\n" + r.volumes.joined(separator: "\n") + "\n") }
    if !r.images.untagged.isEmpty || !r.images.deleted.isEmpty {
        print("Deleted Images:")
        for u in r.images.untagged { print("untagged: \(u)") }
        for d in r.images.deleted { print("deleted: sha256:\(d)") }
        print("")
    }
    print("Total reclaimed space: \(humanSize(r.reclaimed))")
}

struct ContainerGroup: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "container", abstract: "Manage containers.", subcommands: [ContainerPrune.self])
}

struct ContainerPrune: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prune", abstract: "Remove every stopped container.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short("f"), .long("force")], help: "Do not ask for confirmation.") var force = false
    @Option(name: .long("filter"), help: "until=TIME, label=KEY[=VALUE], label!=KEY[=VALUE].") var filter: [String] = []

    func run() throws {
        var f = ContainerPruneFilter()
        for a in filter {
            guard let eq = a.firstIndex(of: "=") else { throw HakoError(.failed, "bad format of filter (expected name=value): \(a)") }
            let key = String(a[..<eq]), value = String(a[a.index(after: eq)...])
            switch key {
            case "until": f.until = try TimeArgument.parse(value, flag: "until")
            case "label": f.labels.append(LabelMatch(parsing: value))
            case "label!": f.notLabels.append(LabelMatch(parsing: value))
            default: throw HakoError(.failed, "invalid filter '\(key)' (valid: label, label!, until)")
            }
        }
        let engine = try global.engine()
        try confirm(force: force, "WARNING! This will remove all stopped containers.")
        report(try engine.pruneContainers(f))
    }
}
