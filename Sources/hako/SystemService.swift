import HakoCLI
#if canImport(Glibc)
import Glibc
#endif
import HakoCluster
import HakoDockerAPI
import HakoEngine
import HakoSystem

/// `hako system service`: the Docker Engine API on a unix socket, for the
/// docker CLI, docker-compose and the tools built on the API.
struct SystemService: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service",
        abstract: "Serve the Docker Engine API (1.41) on a unix socket; containers outlive the service.")
    @OptionGroup var global: GlobalOptions
    @Option(name: .long("listen"), help: "Where to listen (default unix:///run/hako/docker.sock; ignored under systemd socket activation).")
    var listen = "unix:///run/hako/docker.sock"
    @Option(name: .long("time"), help: "Exit after this long without a request or an open connection (e.g. 5s, 10m; 0: never).")
    var time = "0"

    func run() throws {
        guard let idle = Durations.parse(time) else { throw ValidationError("invalid --time \"\(time)\" (e.g. 5s, 10m)") }
        let engine = try global.engine()
        Daemon.blockStopSignals()
        let socket: FileDescriptor
        var madePath: String?
        if let inherited = Listener.fromSystemd() {
            socket = inherited
        } else {
            let (fd, path) = try Listener.unix(listen)
            socket = fd
            madePath = path
        }
        let api = DockerAPI(engine: engine)
        let server = HTTPServer(listener: socket) { request, connection in try api.handle(request, connection) }
        Daemon.onStopSignal { _ in server.stop() }
        server.run(idleExit: idle > 0 ? idle : nil)
        if let madePath { try? FS.unlinkIfPresent(madePath) }
    }
}
