import HakoCLI
#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import HakoCluster
import HakoSystem

struct Cluster: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Manage a cluster through its coordinator.",
        subcommands: [ClusterInitCommand.self, ClusterToken.self, ClusterNode.self, ClusterService.self, ClusterStack.self, ClusterNetworkCommand.self, ClusterSecret.self, ClusterConfig.self, ClusterEvents.self, ClusterCredentials.self, ClusterCA.self, ClusterCoordinator.self])
}

/// Where the admin credentials are and which coordinator to talk to.
struct ClusterOptions: ParsableArguments {
    @Option(name: .long("credentials"), help: "Admin credentials written by `cluster init` (default: $HAKO_CLUSTER_CREDENTIALS, else /var/lib/hako/coordinator/admin).")
    var credentials: String?
    @Option(name: .long("coordinator"), help: "Coordinator HOST:PORT (default: the address saved with the credentials).")
    var coordinator: String?
    @Option(name: .long("format"), help: "Output format: table, json, or a Go template (table TEMPLATE for columns).") var format = "table"

    static let defaultCredentials = CoordinatorConfig().dataDir + "/admin"

    var credentialsDir: String {
        if let c = credentials { return c }
        if let e = getenv("HAKO_CLUSTER_CREDENTIALS"), !String(cString: e).isEmpty { return String(cString: e) }
        return ClusterOptions.defaultCredentials
    }

    func validateFormat() throws { _ = try output() }

    func output() throws -> OutputFormat { try OutputFormat(parsing: format) }

    func client() throws -> ClusterClient {
        try validateFormat()
        return try ClusterClient.admin(AdminCredentials(dir: credentialsDir), address: coordinator ?? env("HAKO_COORDINATOR"))
    }

    var json: Bool { (try? output())?.isJSON ?? false }

    func env(_ k: String) -> String? {
        guard let v = getenv(k) else { return nil }
        let s = String(cString: v)
        return s.isEmpty ? nil : s
    }
}

/// JSON as the CLI prints it: one object per line.
func printJSON<T: Encodable>(_ value: T) throws {
    print(try jsonLine(value))
}

func since(_ t: Double) -> String {
    humanDuration(Timestamp.now().secondsSince1970 - t) + " ago"
}

struct ClusterInitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create the cluster: its CA, the coordinator's certificate, an admin certificate for this CLI, and the database.")
    @Option(name: .long("config"), help: "The coordinator's configuration file.") var config: String?
    @Option(name: .long("credentials"), help: "Where to write the admin credentials (default: <data_dir>/admin).") var credentials: String?

    func run() throws {
        try clusterCommand {
            let c = try config.map { try CoordinatorConfig.load($0) } ?? CoordinatorConfig()
            let dir = credentials ?? c.dataDir + "/admin"
            let r = try ClusterInit.run(c, adminDir: FS.absolute(dir), now: Timestamp.now().secondsSince1970)
            print("cluster \(r.clusterID) created")
            print("CA fingerprint (sha256): \(r.caFingerprint)")
            print("admin credentials: \(r.adminDir) (the CLI reaches the coordinator at \(r.coordinatorAddress))")
            print("next: hako coordinator --config \(config ?? "FILE"), then `hako cluster token` for each node")
        }
    }
}

struct ClusterToken: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "token", abstract: "Print a new single-use join token.")
    @OptionGroup var options: ClusterOptions
    @Option(name: .long("ttl"), help: "How long the token is valid (default: the coordinator's join_token_ttl, 1h).") var ttl: String?
    @Flag(name: [.short("q"), .long("quiet")], help: "Print only the token.") var quiet = false
    @Option(name: .long("role"), help: "node (default) or coordinator: who joins with it.") var role = "node"

    func run() throws {
        try clusterCommand {
            let joining = try PKIRole.joining(role)
            var seconds: Double?
            if let t = ttl {
                guard let s = Durations.parse(t) else { throw HakoError(.failed, "invalid --ttl \"\(t)\" (e.g. 30m, 2h)") }
                seconds = s
            }
            let client = try options.client()
            let r = try client.request(MessageType.tokenCreate, TokenCreateRequest(ttl: seconds, role: joining.rawValue), as: TokenReply.self)
            if options.json { try printJSON(r); return }
            if quiet { print(r.token); return }
            print(r.token)
            let how = joining == .coordinator ? "on the new coordinator: hako coordinator --config FILE --join TOKEN" : "on the node: hako agent --config FILE --join TOKEN"
            writeStderr("single use, valid until \(Timestamp(seconds: Int64(r.expires)).rfc3339); \(how) \(client.endpoint)\n")
        }
    }
}

struct ClusterCredentials: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credentials", abstract: "Manage the admin credentials.", subcommands: [ClusterCredentialsRenew.self])
}

struct ClusterCredentialsRenew: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "renew",
        abstract: "Replace the admin key and certificate with new ones from the coordinator, valid for a year (the old certificate stays valid until it expires).")
    @OptionGroup var options: ClusterOptions

    func run() throws {
        try clusterCommand {
            let creds = AdminCredentials(dir: options.credentialsDir)
            let cert = try creds.renew(with: try options.client())
            print("admin credentials in \(creds.dir) renewed: valid until \(Timestamp(seconds: Int64(cert.notAfter)).rfc3339)")
        }
    }
}

struct ClusterCA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca", abstract: "Manage the cluster's certificate authority.", subcommands: [ClusterCARotate.self, ClusterCAStatus.self])
}

struct ClusterCARotate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate",
        abstract: "Replace the cluster CA: every node and these admin credentials get certificates of a new root over their sessions, then the old root is no longer trusted.")
    @OptionGroup var options: ClusterOptions
    @Option(name: .long("timeout"), help: "How long to wait for every node to renew (default 2m); the rotation goes on after it.") var timeout = "2m"

    func run() throws {
        try clusterCommand {
            guard let bound = Durations.parse(timeout) else { throw HakoError(.failed, "invalid --timeout \"\(timeout)\"") }
            let creds = AdminCredentials(dir: options.credentialsDir)
            let status = try creds.rotateCA(with: try options.client(), timeout: bound) { s in
                if s.rotating {
                    print("rotating to CA \(s.fingerprint.prefix(16)): \(s.pending.isEmpty ? "no node" : "\(s.pending.count) node\(s.pending.count == 1 ? "" : "s")") left to renew\(s.pending.isEmpty ? "" : " (\(s.pending.joined(separator: ", ")))")")
                }
            }
            print("admin credentials in \(creds.dir) now hold a certificate of CA \(status.fingerprint.prefix(16))")
            guard !status.rotating else {
                throw HakoError(.failed, "the rotation has not finished after \(timeout): \(status.pending.joined(separator: ", ")) still hold (or, coordinators, present) certificates of the old CA (a node that is down renews when its agent reconnects, a coordinator when it starts again; `hako cluster node rm --force` or `hako cluster coordinator rm` one that will not come back); the old CA stays trusted until then — see `hako cluster ca status`")
            }
            print("CA rotation complete: every node holds a certificate of \(status.fingerprint.prefix(16)); the old CA is no longer trusted")
        }
    }
}

struct ClusterCAStatus: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show the cluster CA and a rotation in progress.")
    @OptionGroup var options: ClusterOptions

    func run() throws {
        try clusterCommand {
            let s = try options.client().request(MessageType.caStatus, EmptyBody(), as: CAStatus.self)
            if options.json {
                print(String(decoding: try Wire.encodeJSON(s), as: UTF8.self))
                return
            }
            print("CA:        \(s.fingerprint)")
            guard s.rotating else {
                print("rotation:  none")
                return
            }
            print("rotating from \(s.previous ?? "?") since \(Timestamp(seconds: Int64(s.started ?? 0)).rfc3339)")
            print("pending:   \(s.pending.isEmpty ? "none (finishing)" : s.pending.joined(separator: ", "))")
        }
    }
}

struct ClusterEvents: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "events", abstract: "Show what happened in the cluster (the coordinator keeps the last 1,000 events).")
    @OptionGroup var options: ClusterOptions
    @Flag(name: [.short("f"), .long("follow")], help: "Keep printing new events.") var follow = false
    @Option(name: .long("since"), help: "Only events of the last DURATION (e.g. 10m).") var since: String?

    func run() throws {
        try clusterCommand {
            var from: Double?
            if let s = since {
                guard let d = Durations.parse(s) else { throw HakoError(.failed, "invalid --since \"\(s)\"") }
                from = Timestamp.now().secondsSince1970 - d
            }
            let client = try options.client()
            let r = try client.request(MessageType.events, EventsRequest(follow: follow, since: from), as: EventList.self)
            for e in r.events { try show(e) }
            guard follow else { return }
            while let env = try client.receive(timeout: 365 * 86400) {
                if env.type == MessageType.event, let e = try? env.body(ClusterEvent.self) { try show(e) }
            }
        }
    }

    func show(_ e: ClusterEvent) throws {
        if options.json { try printJSON(e); return }
        let t = Timestamp(seconds: Int64(e.time), nanoseconds: Int32((e.time - e.time.rounded(.down)) * 1e9)).rfc3339
        let name = e.name.isEmpty ? String(e.id.prefix(12)) : e.name
        print("\(t) \(e.kind) \(e.action) \(name)\(e.message.isEmpty ? "" : " (\(e.message))")")
        fflush(nil)  // with -f into a pipe or file, each event as it comes, not when a buffer fills
    }
}
