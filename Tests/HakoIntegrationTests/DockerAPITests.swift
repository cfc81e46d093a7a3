#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import Synchronization
import HakoTestSupport
import Testing

/// `hako system service` on a unix socket of the test's own, run in the test
/// host's network namespace (published ports and the registry are on its
/// loopback); started and stopped by its PID.
final class APIService: @unchecked Sendable {
    let host: TestHost
    let dir: String
    let socket: String
    let log: String
    private(set) var pid: pid_t = -1

    init(_ host: TestHost, extra: [String] = []) throws {
        self.host = host
        dir = try TestFiles.tempDir("hako-api")
        socket = dir + "/docker.sock"
        log = dir + "/service.log"
        try FileManager.default.createDirectory(atPath: dir + "/config", withIntermediateDirectories: true)
        pid = Subprocess.spawn(host.prefix + [Binaries.hako, "system", "service", "--listen", "unix://" + socket] + extra,
                               env: host.env, stdout: log, stderr: log)
        let deadline = monotonicSeconds() + 30
        while !FileManager.default.fileExists(atPath: socket) {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                pid = -1
                throw TestFiles.failure("hako system service exited: \(serviceLog)")
            }
            if monotonicSeconds() > deadline { stop(); throw TestFiles.failure("no socket after 30 s: \(serviceLog)") }
            usleep(20_000)
        }
    }

    var serviceLog: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// Whether the service still runs (it never exits on its own without --time).
    var alive: Bool {
        guard pid > 0 else { return false }
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == 0
    }

    func stop() {
        if pid > 0 {
            kill(pid, SIGTERM)
            if Subprocess.waitBounded(pid, timeout: 10) == -2 { kill(pid, SIGKILL) }
            pid = -1
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    deinit { stop() }

    /// The environment a client needs: the socket, and a config dir of the test's (no user config read).
    var clientEnv: [String: String] {
        ["DOCKER_HOST": "unix://" + socket, "DOCKER_CONFIG": dir + "/config", "HOME": dir, "DOCKER_CLI_HINTS": "false"]
    }

    @discardableResult
    func docker(_ client: String, _ args: [String], stdin: String? = nil, timeout: Double = 60) -> Output {
        Subprocess.run([client] + args, env: clientEnv, stdin: stdin, timeout: timeout)
    }

    /// A command under a pseudo-terminal (util-linux `script`), its stdin fed from `input`.
    func underTerminal(_ command: String, input: String, timeout: Double = 60) -> Output {
        Subprocess.run(["/usr/bin/script", "-q", "-e", "-c", command, "/dev/null"], env: clientEnv.merging(["TERM": "xterm"]) { $1 },
                       stdin: input, timeout: timeout)
    }

    /// A raw HTTP exchange on the socket (curl), for what no client sends.
    func curl(_ args: [String], timeout: Double = 30) -> Output {
        Subprocess.run(["/usr/bin/curl", "-sS", "--unix-socket", socket] + args, timeout: timeout)
    }
}

enum DockerClients {
    /// Debian's docker.io (20.10) and the newer CLI, where installed.
    static let all: [String] = ["/usr/bin/docker", "/usr/local/bin/docker"].filter { FileManager.default.isExecutableFile(atPath: $0) }
}

@Suite(.needsRoot, .serialized)
struct DockerAPITests {
    let host = TestHost.make("api")

    func fetch(_ url: String) -> Output {
        Subprocess.run(host.prefix + ["/usr/bin/timeout", "5", "/bin/busybox", "wget", "-qO-", url], timeout: 10)
    }

    @Test(arguments: DockerClients.all)
    func runPsLogsInspectStopStartRm(client: String) throws {
        let api = try APIService(host)
        defer { api.stop() }
        let b = host.busybox

        // Debian's docker.io never started its own daemon (policy-rc.d): the client talks to hako alone.
        #expect(Subprocess.run(["/usr/bin/pgrep", "-x", "dockerd"]).stdout.isEmpty, "a dockerd runs")
        let v = api.docker(client, ["version", "--format", "{{.Server.APIVersion}}"])
        #expect(v.status == 0 && v.out == "1.41", "version: \(v.stdout) \(v.stderr)")

        // run --rm: output, exit code, nothing left.
        let hi = api.docker(client, ["run", "--rm", b, "sh", "-c", "echo out-line; echo err-line >&2; exit 3"])
        #expect(hi.status == 3, "run --rm: \(hi.status) \(hi.stderr)")
        #expect(hi.stdout == "out-line\n" && hi.stderr.contains("err-line"), "\(hi.stdout) | \(hi.stderr)")
        #expect(host.containerIDs().isEmpty, "run --rm left \(host.containerIDs())")

        // run -d -p: the server answers on the published port, ps shows it, hako sees the same container.
        let id = api.docker(client, ["run", "-d", "--name", "web", "-p", "18080:80", b, "sh", "-c",
                                     "mkdir -p /www && echo hello-api > /www/index.html && echo started && exec httpd -f -p 80 -h /www"]).out
        #expect(id.count == 64, "run -d: \(id)")
        #expect(host.eventually(10) { fetch("http://127.0.0.1:18080/").stdout.contains("hello-api") }, "the published port")
        let ps = api.docker(client, ["ps", "--format", "{{.ID}} {{.Names}} {{.Status}} {{.Ports}}"])
        #expect(ps.stdout.contains("\(id.prefix(12)) web Up") && ps.stdout.contains("18080->80/tcp"), "ps: \(ps.stdout) \(ps.stderr)")
        #expect(host.hako("ps").stdout.contains(" web"), "hako ps sees the container")

        // inspect: the pid is the container's init as hako sees it.
        let pid = api.docker(client, ["inspect", "--format", "{{.State.Pid}}", "web"]).out
        #expect(Int(pid) ?? 0 > 0 && Int(pid) == host.state("web")["Pid"] as? Int, "inspect pid \(pid)")

        // logs, and logs -f that ends when the container does.
        #expect(api.docker(client, ["logs", "web"]).stdout == "started\n")
        let talker = api.docker(client, ["run", "-d", b, "sh", "-c", "for i in 1 2 3; do echo line-$i; sleep 0.3; done"]).out
        let follow = api.docker(client, ["logs", "-f", talker], timeout: 30)
        #expect(follow.status == 0 && follow.stdout == "line-1\nline-2\nline-3\n", "logs -f: \(follow.stdout) \(follow.stderr)")

        // exec: output and exit code; a missing command is Docker's 126/127.
        let ex = api.docker(client, ["exec", "web", "sh", "-c", "cat /www/index.html; exit 4"])
        #expect(ex.status == 4 && ex.stdout == "hello-api\n", "exec: \(ex.status) \(ex.stdout) \(ex.stderr)")
        let stdinExec = api.docker(client, ["exec", "-i", "web", "sh", "-c", "tr a-z A-Z"], stdin: "piped\n")
        #expect(stdinExec.stdout == "PIPED\n", "exec -i: \(stdinExec.stdout) \(stdinExec.stderr)")
        #expect(api.docker(client, ["exec", "web", "no-such-command"]).status != 0)

        // exec -it and run -it under a terminal.
        let tty = api.underTerminal("\(client) exec -it web sh -c 'tty; exit 6'", input: "")
        #expect(tty.status == 6 && tty.stdout.contains("/dev/pts/"), "exec -it: \(tty.status) \(tty.stdout) \(tty.stderr)")
        let interactive = api.underTerminal("\(client) run -it --rm \(b) sh", input: "echo $((6*7))-answer\nexit 7\n")
        #expect(interactive.status == 7 && interactive.stdout.contains("42-answer"), "run -it: \(interactive.status) \(interactive.stdout)")

        // stats, stop, start, rm -f.
        let stats = api.docker(client, ["stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", "web"])
        #expect(stats.status == 0 && stats.stdout.hasPrefix("web "), "stats: \(stats.stdout) \(stats.stderr)")
        #expect(api.docker(client, ["stop", "-t", "1", "web"]).out == "web")
        #expect(host.state("web")["Running"] as? Bool == false)
        #expect(api.docker(client, ["start", "web"]).out == "web")
        #expect(host.eventually(10) { fetch("http://127.0.0.1:18080/").stdout.contains("hello-api") }, "started again")
        #expect(api.docker(client, ["rm", "-f", "web", talker]).status == 0)
        #expect(host.containerIDs().isEmpty)

        // restart keeps a --rm container (Docker's daemon does); its stop then removes it.
        let kept = api.docker(client, ["run", "-d", "--rm", b, "sleep", "1000"]).out
        #expect(api.docker(client, ["restart", "-t", "1", kept]).status == 0)
        #expect(api.docker(client, ["inspect", "--format", "{{.State.Running}}", kept]).out == "true", "running again after restart")
        #expect(api.docker(client, ["stop", "-t", "1", kept]).status == 0)
        #expect(host.eventually(10) { host.containerIDs().isEmpty }, "stopped, the --rm container is removed")

        // Errors are Docker's: a missing container, and a name in use.
        let missing = api.docker(client, ["inspect", "nope"])
        #expect(missing.status != 0 && missing.stderr.contains("No such"), "\(missing.stderr)")
        #expect(api.alive, "the service runs: \(api.serviceLog)")
    }

    @Test(arguments: DockerClients.all)
    func imagesNetworksVolumesEventsInfo(client: String) throws {
        let api = try APIService(host)
        defer { api.stop() }
        let registry = try TestRegistry(in: host)
        defer { registry.stop() }
        let since = String(Int(Date().timeIntervalSince1970) - 1)

        // pull from the loopback registry (hako pushes the test image there first).
        let remote = "\(registry.address)/test/busybox:api"
        #expect(host.hako("tag", host.busybox, remote).status == 0)
        #expect(host.hako("push", remote).status == 0)
        #expect(host.hako("rmi", remote).status == 0)
        let pull = api.docker(client, ["pull", remote], timeout: 120)
        #expect(pull.status == 0 && pull.stdout.contains("Downloaded newer image"), "pull: \(pull.stdout) \(pull.stderr)")
        let images = api.docker(client, ["images", "--format", "{{.Repository}}:{{.Tag}}"])
        #expect(images.stdout.contains(remote) && images.stdout.contains("busybox:test"), "images: \(images.stdout)")
        #expect(api.docker(client, ["tag", remote, "retagged:v1"]).status == 0)
        #expect(host.hako("images").stdout.contains("retagged"), "hako sees the tag")
        let rmi = api.docker(client, ["rmi", "retagged:v1"])
        #expect(rmi.status == 0 && rmi.stdout.contains("Untagged"), "rmi: \(rmi.stdout) \(rmi.stderr)")

        // networks: create, connect, disconnect, rm.
        #expect(api.docker(client, ["network", "create", "apinet"]).status == 0)
        #expect(api.docker(client, ["network", "ls", "--format", "{{.Name}}"]).stdout.contains("apinet"))
        let sleeper = api.docker(client, ["run", "-d", "--name", "sleeper", host.busybox, "sleep", "60"]).out
        #expect(sleeper.count == 64)
        let connect = api.docker(client, ["network", "connect", "apinet", "sleeper"])
        #expect(connect.status == 0, "connect: \(connect.stderr)")
        let members = api.docker(client, ["network", "inspect", "--format", "{{range .Containers}}{{.Name}}{{end}}", "apinet"])
        #expect(members.out == "sleeper", "network inspect: \(members.stdout) \(members.stderr)")
        #expect(api.docker(client, ["network", "disconnect", "apinet", "sleeper"]).status == 0)
        #expect(api.docker(client, ["network", "rm", "apinet"]).status == 0)
        #expect(!host.hako("network", "ls").stdout.contains("apinet"))

        // volumes.
        #expect(api.docker(client, ["volume", "create", "apivol"]).out == "apivol")
        #expect(api.docker(client, ["volume", "ls", "--format", "{{.Name}}"]).stdout.contains("apivol"))
        #expect(api.docker(client, ["volume", "rm", "apivol"]).status == 0)
        #expect(!host.hako("volume", "ls").stdout.contains("apivol"))

        // events since the test began: the container's create and start.
        #expect(api.docker(client, ["rm", "-f", "sleeper"]).status == 0)
        let until = String(Int(Date().timeIntervalSince1970) + 1)
        let events = api.docker(client, ["events", "--since", since, "--until", until, "--filter", "container=sleeper",
                                         "--format", "{{.Action}}"], timeout: 30)
        #expect(events.stdout.contains("create") && events.stdout.contains("start") && events.stdout.contains("destroy"),
                "events: \(events.stdout) \(events.stderr)")

        let info = api.docker(client, ["info", "--format", "{{.Containers}} {{.OSType}} {{.ServerVersion}}"])
        #expect(info.status == 0 && info.out.hasSuffix("linux 0.1.0"), "info: \(info.stdout) \(info.stderr)")
        #expect(api.alive)
    }

    /// cp both ways, rename, top, diff, logs --since, container prune, system df
    /// (the engine operations of issue 18, through the API).
    @Test(arguments: DockerClients.all)
    func copyRenameTopDiffLogsPruneDF(client: String) throws {
        let api = try APIService(host)
        defer { api.stop() }
        #expect(api.docker(client, ["run", "-d", "--name", "files", host.busybox, "sleep", "60"]).out.count == 64)
        let local = api.dir + "/in.txt"
        try "copied-in\n".write(toFile: local, atomically: true, encoding: .utf8)
        let cpIn = api.docker(client, ["cp", local, "files:/tmp/in.txt"])
        #expect(cpIn.status == 0, "cp in: \(cpIn.stderr)")
        #expect(api.docker(client, ["exec", "files", "cat", "/tmp/in.txt"]).stdout == "copied-in\n")
        let cpOut = api.docker(client, ["cp", "files:/etc/passwd", api.dir + "/passwd"])
        #expect(cpOut.status == 0 && ((try? String(contentsOfFile: api.dir + "/passwd", encoding: .utf8)) ?? "").hasPrefix("root:"), "cp out: \(cpOut.stderr)")
        #expect(api.docker(client, ["rename", "files", "renamed"]).status == 0)
        #expect(host.hako("ps").stdout.contains(" renamed"), "hako sees the new name")
        let top = api.docker(client, ["top", "renamed"])
        #expect(top.status == 0 && top.stdout.contains("sleep 60"), "top: \(top.stdout) \(top.stderr)")
        // ps_args as the docker CLI sends them: aux's columns (the CLI needs the PID one).
        let aux = api.docker(client, ["top", "renamed", "aux"])
        #expect(aux.status == 0 && aux.stdout.hasPrefix("USER") && aux.stdout.contains("%MEM") && aux.stdout.contains("sleep 60"),
                "top aux: \(aux.stdout) \(aux.stderr)")
        let diff = api.docker(client, ["diff", "renamed"])
        #expect(diff.stdout.contains("A /tmp/in.txt"), "diff: \(diff.stdout) \(diff.stderr)")

        let talker = api.docker(client, ["run", "-d", host.busybox, "sh", "-c", "echo early; sleep 2; echo late; sleep 60"]).out
        usleep(1_000_000)
        let mark = String(Int(Date().timeIntervalSince1970))
        #expect(host.eventually(10) { api.docker(client, ["logs", talker]).stdout.contains("late") })
        let since = api.docker(client, ["logs", "--since", mark, talker])
        #expect(since.stdout == "late\n", "logs --since: \(since.stdout) \(since.stderr)")
        let until = api.docker(client, ["logs", "--until", mark, talker])
        #expect(until.stdout == "early\n", "logs --until: \(until.stdout) \(until.stderr)")

        #expect(api.docker(client, ["rm", "-f", "renamed", talker]).status == 0)
        let done = api.docker(client, ["create", host.busybox, "true"]).out
        let prune = api.docker(client, ["container", "prune", "-f"])
        #expect(prune.status == 0 && prune.stdout.contains(done), "prune: \(prune.stdout) \(prune.stderr)")
        #expect(host.containerIDs().isEmpty)
        let df = api.docker(client, ["system", "df"])
        #expect(df.status == 0 && df.stdout.contains("Images"), "system df: \(df.stdout) \(df.stderr)")
        #expect(api.alive)
    }

    /// docker-compose 1.29: a web server with a published port and a named
    /// volume, a client on the project's network that reaches it by name.
    @Test func composeProject() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/docker-compose") else { return }
        let api = try APIService(host)
        defer { api.stop() }
        let project = api.dir + "/project"
        try FileManager.default.createDirectory(atPath: project, withIntermediateDirectories: true)
        try """
        version: "3.7"
        services:
          web:
            image: \(host.busybox)
            command: ["sh", "-c", "mkdir -p /data/www && echo compose-web > /data/www/index.html && exec httpd -f -p 80 -h /data/www"]
            ports: ["18090:80"]
            volumes: ["data:/data"]
          client:
            image: \(host.busybox)
            command: ["sh", "-c", "while true; do wget -qO- http://web/ && sleep 1 || sleep 0.2; done"]
        volumes:
          data: {}

        """.write(toFile: project + "/docker-compose.yml", atomically: true, encoding: .utf8)
        func compose(_ args: String..., timeout: Double = 120) -> Output {
            Subprocess.run(["/usr/bin/docker-compose", "--project-directory", project, "-p", "apitest", "-f", project + "/docker-compose.yml"] + args,
                           env: api.clientEnv, timeout: timeout)
        }
        let up = compose("up", "-d")
        #expect(up.status == 0, "up -d: \(up.stdout) \(up.stderr)")
        let ps = compose("ps")
        #expect(ps.stdout.contains("apitest_web_1") && ps.stdout.contains("apitest_client_1") && ps.stdout.components(separatedBy: " Up ").count == 3,
                "ps: \(ps.stdout) \(ps.stderr)")
        #expect(host.eventually(15) { fetch("http://127.0.0.1:18090/").stdout.contains("compose-web") }, "the published port")
        #expect(host.eventually(15) { compose("logs", "client").stdout.contains("compose-web") }, "the client reaches web by name")
        let ex = compose("exec", "-T", "web", "cat", "/data/www/index.html")
        #expect(ex.status == 0 && ex.stdout == "compose-web\n", "exec: \(ex.stdout) \(ex.stderr)")
        let restart = compose("restart", "-t", "1")
        #expect(restart.status == 0, "restart: \(restart.stderr)")
        #expect(host.eventually(15) { fetch("http://127.0.0.1:18090/").stdout.contains("compose-web") }, "serves after the restart")
        let down = compose("down", "-v", "-t", "1")
        #expect(down.status == 0, "down -v: \(down.stdout) \(down.stderr)")
        #expect(host.containerIDs().isEmpty, "containers left: \(host.containerIDs())")
        #expect(!host.hako("network", "ls").stdout.contains("apitest"), "network left")
        #expect(!host.hako("volume", "ls").stdout.contains("apitest"), "volume left")
        #expect(api.alive)
    }

    /// Socket activation as systemd does it (systemd-socket-activate passes the
    /// listening socket as fd 3 on the first connection), and the exit after
    /// --time idle; a container started through it outlives it.
    @Test func socketActivationAndIdleExit() throws {
        let dir = try TestFiles.tempDir("hako-api-activate")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let socket = dir + "/docker.sock"
        var argv = host.prefix + ["/usr/bin/systemd-socket-activate", "-l", socket]
        for (k, v) in host.env { argv += ["-E", "\(k)=\(v)"] }
        argv += ["-E", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", Binaries.hako, "system", "service", "--time", "2s"]
        let pid = Subprocess.spawn(argv, env: host.env, stdout: dir + "/log", stderr: dir + "/log")
        #expect(pid > 0)
        #expect(host.eventually(10) { FileManager.default.fileExists(atPath: socket) }, "the activator's socket")
        let env = ["DOCKER_HOST": "unix://" + socket, "DOCKER_CONFIG": dir]
        let run = Subprocess.run(["/usr/bin/docker", "run", "-d", "--name", "outlives", host.busybox, "sleep", "60"], env: env, timeout: 60)
        #expect(run.status == 0 && run.out.count == 64, "run through the activated service: \(run.stderr)")
        // Idle for 2 s: the service exits by itself, cleanly.
        let status = Subprocess.waitBounded(pid, timeout: 20)
        #expect(status == 0, "the service's exit: \(status), \((try? String(contentsOfFile: dir + "/log", encoding: .utf8)) ?? "")")
        #expect(host.state("outlives")["Running"] as? Bool == true, "the container outlives the service")
        #expect(host.hako("rm", "-f", "outlives").status == 0)
    }

    @Test func badInput() throws {
        let api = try APIService(host)
        defer { api.stop() }
        #expect(api.curl(["http://d/_ping"]).stdout == "OK")
        let fdsBefore = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(api.pid)/fd").count) ?? 0
        @Sendable func status(_ r: Output) -> String { String(r.stdout.suffix(3)) }
        // Malformed JSON, an unknown endpoint, a wrong method, an oversized body, a too-new version.
        let bad = api.curl(["-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json", "-d", "{\"Image\":", "http://d/v1.41/containers/create"])
        #expect(status(bad) == "400" && bad.stdout.contains("\"message\""), "malformed: \(bad.stdout)")
        #expect(status(api.curl(["-w", "%{http_code}", "http://d/v1.41/nothing/here"])) == "404")
        #expect(status(api.curl(["-w", "%{http_code}", "-X", "DELETE", "http://d/v1.41/containers/json"])) == "405")
        let big = String(repeating: "x", count: 9 << 20)
        let bigFile = api.dir + "/big.json"
        try ("{\"Image\":\"" + big + "\"}").write(toFile: bigFile, atomically: true, encoding: .utf8)
        let huge = api.curl(["-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", "@" + bigFile,
                             "http://d/v1.41/containers/create"])
        #expect(status(huge) == "413", "oversized: \(huge.stdout.suffix(200)) \(huge.stderr)")
        #expect(status(api.curl(["-w", "%{http_code}", "http://d/v9.99/_ping"])) == "400")
        let missingImage = api.curl(["-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json", "-d", "{\"Image\":\"not-here:1\"}",
                                     "http://d/v1.41/containers/create"])
        #expect(status(missingImage) == "404" && missingImage.stdout.contains("No such image"), "\(missingImage.stdout)")
        let unsupported = api.curl(["-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json",
                                    "-d", "{\"Image\":\"\(host.busybox)\",\"HostConfig\":{\"VolumesFrom\":[\"x\"]}}", "http://d/v1.41/containers/create"])
        #expect(status(unsupported) == "400" && unsupported.stdout.contains("VolumesFrom"), "\(unsupported.stdout)")

        // A client that goes away in the middle of a followed log, and an attach cut mid-way.
        let id = host.hako("run", "-d", "--name", "chatty", host.busybox, "sh", "-c", "while true; do echo tick; sleep 0.1; done").out
        #expect(id.count == 64)
        _ = api.curl(["--max-time", "1", "http://d/v1.41/containers/chatty/logs?stdout=1&follow=1"])
        _ = api.curl(["--max-time", "1", "-X", "POST", "http://d/v1.41/containers/chatty/attach?stream=1&stdout=1"])

        // The engine's typed errors: what does not exist is 404 (in dockerd's words), a
        // conflict with the current state 409, bad input 400 — by kind, not by message.
        let ghost = api.curl(["-w", "%{http_code}", "http://d/v1.41/containers/ghost/json"])
        #expect(status(ghost) == "404" && ghost.stdout.contains("No such container: ghost"), "\(ghost.stdout)")
        #expect(status(api.curl(["-w", "%{http_code}", "http://d/v1.41/volumes/nothing"])) == "404")
        #expect(status(api.curl(["-w", "%{http_code}", "http://d/v1.41/networks/nothing"])) == "404")
        let running = api.curl(["-w", "%{http_code}", "-X", "DELETE", "http://d/v1.41/containers/chatty"])
        #expect(status(running) == "409" && running.stdout.contains("stop the container before removing"), "\(running.stdout)")
        #expect(status(api.curl(["-w", "%{http_code}", "-X", "POST", "http://d/v1.41/containers/chatty/unpause"])) == "409")
        let taken = api.curl(["-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json", "-d", "{\"Image\":\"\(host.busybox)\",\"Cmd\":[\"true\"]}",
                              "http://d/v1.41/containers/create?name=chatty"])
        #expect(status(taken) == "409" && taken.stdout.contains("already in use"), "\(taken.stdout)")
        let badName = api.curl(["-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json", "-d", "{\"Name\":\"bad name\"}",
                                "http://d/v1.41/volumes/create"])
        #expect(status(badName) == "400" && badName.stdout.contains("invalid volume name"), "\(badName.stdout)")
        let badLimit = api.curl(["-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json",
                                 "-d", "{\"Image\":\"\(host.busybox)\",\"Cmd\":[\"true\"],\"HostConfig\":{\"Memory\":1024}}", "http://d/v1.41/containers/create"])
        #expect(status(badLimit) == "400" && badLimit.stdout.contains("--memory"), "\(badLimit.stdout)")

        // Concurrent creates with one name: one wins, the others get 409.
        let body = "{\"Image\":\"\(host.busybox)\",\"Cmd\":[\"true\"]}"
        let results = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            let r = api.curl(["-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json", "-d", body,
                              "http://d/v1.41/containers/create?name=same"])
            results.withLock { $0.append(status(r)) }
        }
        let codes = results.withLock { $0 }.sorted()
        #expect(codes == ["201", "409", "409", "409"], "concurrent creates: \(codes)")

        #expect(api.alive, "the service survived: \(api.serviceLog)")
        #expect(api.curl(["http://d/_ping"]).stdout == "OK")
        // Nothing leaked: once the cut streams have noticed, the service holds the fds it held before.
        var fds = 0
        #expect(host.eventually(10) {
            fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(api.pid)/fd").count) ?? 0
            return fds <= fdsBefore + 1
        }, "open fds: \(fds), before: \(fdsBefore)")
        #expect(host.hako("rm", "-f", "chatty", "same").status == 0)
    }
}
