import HakoCLI
#if canImport(Glibc)
import Glibc
#endif
import HakoCluster
import HakoEngine
import HakoSystem

/// Runs a cluster command, turning the cluster's errors into hako's one-line errors (exit 125).
func clusterCommand<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as ClusterError {
        throw e.hakoError
    } catch let e as WireError {
        throw HakoError(.failed, e.message)
    }
}

struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run the cluster coordinator (state in SQLite, mutual-TLS line protocol; stops on SIGTERM).")
    @Option(name: .long("config"), help: "The coordinator's configuration file (see config/coordinator.toml).") var config: String?
    @Option(name: .long("log-level"), help: "Log level, over the configuration's: debug, info, warn, error.") var logLevel: LogLevel?
    @Option(name: .long("join"), parsing: .upToNextOption,
            help: "Join a cluster as a coordinator first: TOKEN (hako cluster token --role coordinator) COORDINATOR_ADDRESS.") var join: [String] = []
    @Flag(name: .long("force-new-cluster"),
          help: "Start a cluster of this coordinator alone from its data, after a majority of the coordinators is lost for good.") var forceNewCluster = false

    func run() throws {
        try clusterCommand {
            var c = try config.map { try CoordinatorConfig.load($0) } ?? CoordinatorConfig()
            if let l = logLevel?.clusterLevel { c.logLevel = l }
            let log = ClusterLog(component: "coordinator", level: c.logLevel)
            if !join.isEmpty {
                guard join.count == 2 else { throw ValidationError("--join takes TOKEN COORDINATOR_ADDRESS") }
                try CoordinatorJoin.run(token: join[0], address: join[1], config: c, log: log)
            }
            if forceNewCluster {
                guard c.raft != nil else { throw ValidationError("--force-new-cluster needs raft_address and raft_id in the configuration") }
                c.raft?.forceNewCluster = true
                log.warning("--force-new-cluster: this coordinator alone is the cluster now; join the others again with new tokens")
            }
            Daemon.blockStopSignals()
            let coordinator = try Coordinator(config: c, log: log)
            Daemon.onStopSignal { sig in
                log.info("\(Signals.name(sig)): stopping")
                coordinator.stop()
            }
            if !join.isEmpty {
                let known = [join[1]]
                let address = coordinator.clientAddress
                Threads.detach { CoordinatorJoin.add(config: c, clientAddress: address, known: known, log: log) }
            }
            coordinator.run()
        }
    }
}

struct AgentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run a node's agent: joins the cluster once, then runs its tasks through the local engine (stops on SIGTERM; containers keep running).")
    @Option(name: .long("config"), help: "The agent's configuration file (see config/agent.toml).") var config: String?
    @Option(name: .long("join"), parsing: .upToNextOption, help: "Join first: TOKEN COORDINATOR_ADDRESS.") var join: [String] = []
    @Flag(name: .long("join-only"), help: "Join (with --join) and exit; the service then runs the agent.") var joinOnly = false
    @Option(name: .long("log-level"), help: "Log level, over the configuration's: debug, info, warn, error.") var logLevel: LogLevel?

    func run() throws {
        try clusterCommand {
            guard getuid() == 0 else { throw HakoError(.failed, "the agent needs root (it runs containers); run it with sudo") }
            var c = try config.map { try AgentConfig.load($0) } ?? AgentConfig()
            if let l = logLevel?.clusterLevel { c.logLevel = l }
            let log = ClusterLog(component: "agent", level: c.logLevel)
            if !join.isEmpty {
                guard join.count == 2 else { throw ValidationError("--join takes TOKEN COORDINATOR_ADDRESS") }
                let probe = ProcNodeProbe().capacity()
                let capacity = Resources(cpuMillis: c.cpuMillis > 0 ? c.cpuMillis : probe.cpuMillis, memory: c.memory > 0 ? c.memory : probe.memory)
                let id = try Agent.join(token: join[0], coordinator: join[1], config: c, capacity: capacity, log: log)
                if c.coordinator == nil { c.coordinator = id.coordinator }
                if joinOnly {
                    print("joined cluster \(id.clusterID.prefix(12)) as node \(id.nodeID.prefix(12)) (subnet \(id.subnet)); start the agent: systemctl enable --now hako-agent")
                    return
                }
            } else if joinOnly {
                throw ValidationError("--join-only needs --join TOKEN COORDINATOR_ADDRESS")
            }
            // Back after its certificate expired (a Pi that was off): renew it with its key, no new token.
            do { try Agent.renewExpiredCertificate(config: c, log: log) } catch {
                log.error("cannot renew the expired node certificate: \(error)")
            }
            Daemon.blockStopSignals()
            let engine = try Engine(paths: EnginePaths(root: c.root, runRoot: c.runRoot), cgroupParent: c.cgroupParent)
            let agent = try Agent(config: c, runtime: EngineTaskRuntime(engine: engine), overlay: c.overlay ? KernelOverlay(engine: engine) : nil, probe: c.makeProbe(), log: log)
            Daemon.onStopSignal { sig in
                log.info("\(Signals.name(sig)): stopping")
                agent.stop()
            }
            agent.run()
        }
    }
}

extension LogLevel {
    /// The daemons' levels (fatal reports errors only, as error does).
    var clusterLevel: ClusterLog.Level {
        switch self {
        case .debug: return .debug
        case .info: return .info
        case .warn: return .warning
        case .error, .fatal: return .error
        }
    }
}
