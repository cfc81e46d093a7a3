import HakoCLI
#if canImport(Glibc)
import Glibc
#endif
import HakoEngine
import HakoRuntime
import HakoSystem

struct Update: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "update", abstract: "Change the resource limits and restart policy of containers (live when they run).")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var resources: ResourceFlags
    @Option(name: .long("restart"), help: "Restart policy: no, on-failure[:N], always, unless-stopped.") var restart: String?
    @Argument(help: "CONTAINER...") var containers: [String]

    func run() throws {
        var o = RunFlags.Isolation()
        resources.fill(&o)
        let policy = try restart.map { try RestartPolicy(parsing: $0) }
        // Parsed once; a bad value is reported where the engine used to parse it, after the policy's change.
        let patch = Result { try o.limits() }
        let engine = try global.engine()
        try eachContainer(containers) { r in
            if let policy { try engine.updateRestartPolicy(r, policy) }
            if o.givesLimits || policy == nil { try engine.update(r, try patch.get()) }
            return r
        }
    }
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Show containers' CPU, memory, network, block I/O and process counts.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short("a"), .long("all")], help: "Show all containers (default: running ones).") var all = false
    @Flag(name: .long("no-stream"), help: "Print one result and exit.") var noStream = false
    @Flag(name: .long("no-trunc"), help: "Do not truncate output.") var noTrunc = false
    @Option(name: .long("format"), help: "Output format: table, json (one object per line), or a Go template (table TEMPLATE for columns).") var format = "table"
    @Argument(help: "CONTAINER...") var containers: [String] = []

    struct Row: Codable {
        var BlockIO: String, CPUPerc: String, Container: String, ID: String, MemPerc: String
        var MemUsage: String, Name: String, NetIO: String, PIDs: String
    }

    func run() throws {
        let output = try OutputFormat(parsing: format)
        let engine = try global.engine()
        let interval: Double = noStream ? 0.5 : 1.0
        var before = try sample(engine)
        let tty = isatty(1) == 1
        while true {
            usleep(UInt32(interval * 1_000_000))
            let after = try sample(engine)
            let rows = Engine.stats(before: before, after: after).map(row)
            if !noStream && tty, case .table = output { print("\u{1B}[2J\u{1B}[H", terminator: "") }
            try output.print(rows, headers: ["ID": "CONTAINER ID", "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
                                             "NetIO": "NET I/O", "BlockIO": "BLOCK I/O"]) {
                printTable(["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"],
                           rows.map { [$0.ID, $0.Name, $0.CPUPerc, $0.MemUsage, $0.MemPerc, $0.NetIO, $0.BlockIO, $0.PIDs] })
            }
            fflush(nil)
            if noStream { return }
            before = after
        }
    }

    func sample(_ engine: Engine) throws -> [StatsSample] {
        if !containers.isEmpty || !all { return try engine.statsSample(containers) }
        return try engine.statsSample(try engine.list().map(\.id))
    }

    func row(_ s: ContainerStats) -> Row {
        func pct(_ v: Double?) -> String {
            guard let v else { return "--" }
            let r = (v * 100).rounded() / 100
            var t = String(r)
            if let dot = t.firstIndex(of: ".") {
                let decimals = t.distance(from: dot, to: t.endIndex) - 1
                if decimals < 2 { t += String(repeating: "0", count: 2 - decimals) }
            }
            return t + "%"
        }
        func size(_ v: UInt64?) -> String { v.map { binarySize($0) } ?? "--" }
        func dec(_ v: UInt64?) -> String { v.map { humanSize(Int64(clamping: $0)) } ?? "--" }
        return Row(BlockIO: "\(dec(s.blockRead)) / \(dec(s.blockWrite))", CPUPerc: pct(s.cpuPercent),
                   Container: noTrunc ? s.id : String(s.id.prefix(12)), ID: noTrunc ? s.id : String(s.id.prefix(12)),
                   MemPerc: pct(s.memoryPercent), MemUsage: "\(size(s.memoryUsage)) / \(size(s.memoryLimit))",
                   Name: s.name, NetIO: "\(dec(s.netRx)) / \(dec(s.netTx))", PIDs: s.pids.map(String.init) ?? "--")
    }
}

/// Docker's memory sizes: binary units (KiB, MiB, GiB).
func binarySize(_ n: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n)
    var i = 0
    while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
    if i == 0 { return "\(n)B" }
    let r = (v * 100).rounded() / 100
    return "\(r)\(units[i])"
}
