import HakoCLI
import FoundationEssentials
import HakoEngine
import HakoSystem

struct VolumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "volume", abstract: "Manage volumes.",
        subcommands: [VolumeCreate.self, VolumeLs.self, VolumeInspectCmd.self, VolumeRm.self, VolumePrune.self])
}

struct VolumeCreate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a volume.")
    @OptionGroup var global: GlobalOptions
    @Option(name: .long("label"), help: "Set metadata (KEY=VALUE).") var label: [String] = []
    @Option(name: [.short("d"), .long("driver")], help: "Driver (local only).") var driver = "local"
    @Argument(help: "NAME (default: a random one)") var name: String?

    func run() throws {
        guard driver == "local" else { throw HakoError(.failed, "unsupported volume driver \"\(driver)\" (local)") }
        var labels: [String: String] = [:]
        for l in label {
            let kv = l.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            labels[kv[0]] = kv.count > 1 ? kv[1] : ""
        }
        print(try global.engine().createVolume(name, labels: labels, anonymous: false).Name)
    }
}

struct VolumeLs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List volumes.", aliases: ["list"])
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short("q"), .long("quiet")], help: "Only display volume names.") var quiet = false
    @Option(name: .long("format"), help: "Output format: table, json, or a Go template.") var format = "table"

    func run() throws {
        let output = try OutputFormat(parsing: format)
        let vols = try global.engine().volumes()
        if quiet { for v in vols { print(v.Name) }; return }
        try output.print(vols, headers: ["Name": "VOLUME NAME"]) { printTable(["DRIVER", "VOLUME NAME"], vols.map { [$0.Driver, $0.Name] }) }
    }
}

struct VolumeInspectCmd: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show volumes as JSON.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short("f"), .long("format")], help: "A Go template applied to each volume.") var format = ""
    @Argument(help: "VOLUME...") var volumes: [String]

    func run() throws {
        let engine = try global.engine()
        var out: [VolumeInfo] = []
        var failure: (any Error)?
        for v in volumes {
            do { out.append(try engine.inspectVolume(v)) } catch { failure = failure ?? error }
        }
        try printInspected(out, format: format)
        if let failure { throw failure }
    }
}

struct VolumeRm: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove volumes no container uses.", aliases: ["remove"])
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short("f"), .long("force")], help: "Accepted for Docker compatibility (a volume in use is still refused).") var force = false
    @Argument(help: "VOLUME...") var volumes: [String]

    func run() throws {
        let engine = try global.engine()
        try eachContainer(volumes) { v in try engine.removeVolume(v); return v }
    }
}

struct VolumePrune: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prune", abstract: "Remove unused anonymous volumes (all unused ones with -a).")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short("a"), .long("all")], help: "Remove every unused volume, named ones too.") var all = false
    @Flag(name: [.short("f"), .long("force")], help: "Do not ask (hako never asks).") var force = false

    func run() throws {
        let removed = try global.engine().pruneVolumes(all: all)
        if !removed.isEmpty { print("Deleted Volumes:\n" + removed.joined(separator: "\n")) }
    }
}
