import HakoCLI
#if canImport(Glibc)
import Glibc
#endif
import HakoCluster
import HakoDockerAPI
import HakoEngine
import HakoSystem
import HakoTransport

/// `hako system service`: the Docker Engine API on a unix socket (and on TCP
/// with mutual TLS), for the docker CLI, docker-compose and the tools built on the API.
struct SystemService: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service",
        abstract: "Serve the Docker Engine API (1.41) on a unix socket or TCP with mutual TLS; containers outlive the service.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short("H"), .long("listen"), .long("host")],
            help: "Where to listen: unix:///PATH or tcp://HOST:PORT (with --tls), repeatable (default unix:///run/hako/docker.sock; ignored under systemd socket activation).")
    var listen: [String] = []
    @Option(name: .long("time"), help: "Exit after this long without a request or an open connection (e.g. 5s, 10m; 0: never).")
    var time = "0"
    @Flag(name: [.long("tls"), .long("tlsverify")], help: "Mutual TLS on tcp:// listeners: clients must present a certificate signed by --tlscacert.")
    var tls = false
    @Option(name: .long("tlscacert"), help: "PEM file of the CA that clients' certificates must be signed by.") var tlsCACert: String?
    @Option(name: .long("tlscert"), help: "PEM file of the service's certificate (and chain).") var tlsCert: String?
    @Option(name: .long("tlskey"), help: "PEM file of the service's private key.") var tlsKey: String?

    func run() throws {
        guard let idle = Durations.parse(time) else { throw ValidationError("invalid --time \"\(time)\" (e.g. 5s, 10m)") }
        let addresses = listen.isEmpty ? ["unix:///run/hako/docker.sock"] : listen
        // Under socket activation the socket systemd passes decides (a TCP one gets TLS too).
        let inherited = Listener.fromSystemd()
        let wantsTCP = inherited.map(Listener.isTCP) ?? addresses.contains { $0.hasPrefix("tcp://") }
        if wantsTCP && !tls {
            throw ValidationError("TCP is served only with mutual TLS: add --tls --tlscacert FILE --tlscert FILE --tlskey FILE")
        }
        if tls && !wantsTCP { throw ValidationError("--tls applies to tcp:// listeners; none was given (-H tcp://HOST:PORT)") }
        var context: HakoTransport.TLSContext?
        if tls {
            guard let ca = tlsCACert, let cert = tlsCert, let key = tlsKey else {
                throw ValidationError("--tls needs --tlscacert, --tlscert and --tlskey")
            }
            do {
                context = try HakoTransport.TLSContext(serverCertificateFile: cert, keyFile: key, clientCAFile: ca)
            } catch {
                throw HakoError(.failed, "\(error)")
            }
        }
        let engine = try global.engine()
        Daemon.blockStopSignals()
        var listeners: [HTTPListener] = []
        var madePaths: [String] = []
        defer { for path in madePaths { try? FS.unlinkIfPresent(path) } }
        if let inherited {
            listeners.append(HTTPListener(socket: inherited, tls: Listener.isTCP(inherited) ? context : nil))
        } else {
            for address in addresses {
                if address.hasPrefix("tcp://") {
                    listeners.append(HTTPListener(socket: try Listener.tcp(address), tls: context))
                } else {
                    let (fd, path) = try Listener.unix(address)
                    listeners.append(HTTPListener(socket: fd))
                    madePaths.append(path)
                }
            }
        }
        let api = DockerAPI(engine: engine)
        let server = HTTPServer(listeners: listeners, streamsBody: DockerAPI.streamsBody) { request, connection in
            try api.handle(request, connection)
        }
        Daemon.onStopSignal { _ in server.stop() }
        server.run(idleExit: idle > 0 ? idle : nil)
    }
}
