#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// docs/getting-started.md, run: every command of its `sh` code blocks is
/// either run in the cluster harness (three nodes in network namespaces, the
/// coordinator on the underlay) as written, after only the substitutions of
/// `GuideCommands.substitutions`, or named in `GuideCommands.notRun` with the
/// reason it cannot run here. A command that is neither fails the test, so
/// does a listed command the guide no longer has, and so does a run command
/// that does not work.
@Suite(.needsRoot, .serialized)
final class GettingStartedTests {
    let h = ClusterHarness("gs", nodes: 3, bootstrap: false)

    deinit {
        if h.failed { print(h.logs()) }
        h.teardown()
    }

    /// Steps 3 to 6 in order, then the failover the text of step 5 describes.
    @Test func theGuidesCommandsBuildAClusterAndRunItsService() throws {
        guard !h.failed else { return }
        let commands = try GuideCommands.read().filter { GuideCommands.notRun[$0] == nil }
        var tokenCommand: [String]?
        for command in commands {
            let argv = h.substitute(command)
            switch argv.first {
            case "hako" where argv.dropFirst().first == "doctor":
                let r = Subprocess.run([Binaries.hako] + argv.dropFirst(), env: ["HAKO_MONITOR": Binaries.monitor], timeout: 30)
                #expect([0, 1].contains(r.status), "\(command): \(r.stderr)")
                // "every line [ok], or a fix to apply"
                let lines = r.stdout.split(separator: "\n").map(String.init)
                let checks = lines.indices.filter { lines[$0].hasPrefix("[") }
                #expect(!checks.isEmpty, "\(command): \(r.stdout)")
                for i in checks where !lines[i].hasPrefix("[ok") {
                    #expect(i + 1 < lines.count && lines[i + 1].trimmed.hasPrefix("fix:"), "\(command): no fix for \(lines[i])")
                }
            case "hako" where argv.starts(with: ["hako", "cluster", "init"]):
                let r = h.runGuide(argv)
                #expect(r.status == 0, "\(command): \(r.stderr)")
                #expect(FileManager.default.fileExists(atPath: h.adminCredentials), "\(command) wrote the admin credentials to data_dir/admin")
            case "hako" where argv.starts(with: ["hako", "cluster", "token"]):
                tokenCommand = argv
                let r = h.runGuide(argv, inUnderlay: true)
                #expect(r.status == 0 && r.out.hasPrefix(String(GuideCommands.tokenPlaceholder.prefix(5))), "\(command): \(r.out) \(r.stderr)")
            case "hako" where argv.starts(with: ["hako", "agent"]) && argv.contains("--join-only"):
                // "On each node, with a fresh token from step 3 each time".
                let token = try #require(tokenCommand, "the guide's token command comes before the join")
                for n in h.nodes {
                    let t = h.runGuide(token, inUnderlay: true).out
                    let join = h.substitute(command, node: n, token: t)
                    let r = Subprocess.run(["/usr/bin/nsenter", "--net=/run/netns/\(n.netns)", "--", Binaries.hako] + join.dropFirst(),
                                           env: ["HAKO_MONITOR": Binaries.monitor], timeout: 60)
                    #expect(r.status == 0, "\(join): \(r.stderr)")
                    #expect(FileManager.default.fileExists(atPath: n.dir + "/state"), "\(n.name) keeps its key and certificate in state_dir")
                }
            case "systemctl" where argv.starts(with: ["systemctl", "enable", "--now"]):
                try startUnit(try #require(argv.last))
            case "systemctl" where argv.starts(with: ["systemctl", "restart"]):
                // KillMode=process: SIGTERM to the daemon alone, then its ExecStart again.
                let unit = try #require(argv.last)
                let before = h.running("web").map { $0.sorted() }
                if unit == "hako-coordinator" {
                    h.stop(h.coordinator)
                    h.coordinator = 0
                } else {
                    for i in h.nodes.indices {
                        h.stop(h.nodes[i].agent)
                        h.nodes[i].agent = 0
                    }
                }
                try startUnit(unit)
                var nodes = Output(status: -1, stdout: "", stderr: "")
                let ready = h.eventually(30) {
                    nodes = self.h.runGuide(["hako", "cluster", "node", "ls"], inUnderlay: true)
                    return nodes.status == 0 && nodes.stdout.split(separator: "\n").filter { $0.split(separator: " ").dropFirst(2).first == "Ready" }.count == 3
                }
                #expect(ready, "\(command): the nodes are ready again: \(nodes.stdout) \(nodes.stderr)")
                let after = h.running("web").map { $0.sorted() }
                #expect(before.allSatisfy { $0.count == 1 } && after == before, "\(command): the same containers run on: \(before) → \(after)")
            case "hako" where argv.starts(with: ["hako", "cluster", "service", "logs"]):
                let r = h.runGuide(argv, inUnderlay: true)
                #expect(r.status == 0, "\(command): \(r.stderr)")
                // httpd -f writes nothing until asked for a missing page; each line it does write names its task.
                for line in r.stdout.split(separator: "\n") {
                    #expect(line.hasPrefix("web."), "\(command): \(line)")
                }
            case "hako" where argv.starts(with: ["hako", "cluster", "node", "ls"]):
                // "three nodes, ready": the agents report within a few heartbeats.
                var r = Output(status: -1, stdout: "", stderr: "")
                let ready = h.eventually(20) {
                    r = self.h.runGuide(argv, inUnderlay: true)
                    return r.status == 0 && r.stdout.split(separator: "\n").filter { $0.split(separator: " ").dropFirst(2).first == "Ready" }.count == 3
                }
                #expect(ready, "\(command): \(r.stdout) \(r.stderr)")
            case "hako" where argv.starts(with: ["hako", "cluster", "service", "create"]):
                let options = argv.prefix { $0 != GuideCommands.testImage }
                let published = options.indices.filter { ["-p", "--publish"].contains(options[$0]) && $0 + 1 < options.endIndex }.map { options[$0 + 1] }
                #expect(options.contains("--ingress") && !published.contains { $0.contains(":") },
                        "the mesh and no fixed host port, so that a lost node's replica can run elsewhere: \(command)")
                let r = h.runGuide(argv, inUnderlay: true, timeout: 150)
                #expect(r.status == 0, "\(command): \(r.stderr)")
                guard r.status == 0 else { h.failed = true; return }
                #expect(h.runningCount("web") == [1, 1, 1], "one replica per node")
            case "hako" where argv.starts(with: ["hako", "cluster", "service", "ps"]):
                let r = h.runGuide(argv, inUnderlay: true)
                #expect(r.status == 0, "\(command): \(r.stderr)")
                let lines = r.stdout.split(separator: "\n").dropFirst()
                #expect(lines.count == 3 && h.nodes.allSatisfy { n in lines.contains { $0.contains(n.name) } },
                        "one per node: \(r.stdout)")
            case "hako" where argv.starts(with: ["hako", "cluster", "events"]) && argv.contains("-f"):
                // It follows until interrupted: bounded here, it has printed what happened.
                let r = h.runGuide(argv, inUnderlay: true, timeout: 3)
                #expect(r.status == -2, "\(command) still follows: \(r.status) \(r.stderr)")
                #expect(r.stdout.contains("web"), "\(command): \(r.stdout)")
            case "curl" where GuideCommands.runs(command):
                var r = Output(status: -1, stdout: "", stderr: "")
                let answered = h.eventually(15) {
                    r = self.h.underlay(argv, timeout: 5)
                    return r.status == 0
                }
                #expect(answered, "\(command): \(r.status) \(r.stderr)")
            default:
                Issue.record("no way to run \(command) (as \(argv))")
            }
            if h.failed { return }
        }
        try failover()
    }

    /// `systemctl enable --now UNIT` (or `restart`): the unit's ExecStart in the background,
    /// the coordinator in the underlay, an agent in each node's namespace.
    func startUnit(_ unit: String) throws {
        let exec = try GuideCommands.execStart(unit)
        let stamp = Int(monotonicSeconds() * 1000)
        if unit == "hako-coordinator" {
            let log = h.base + "/coordinator.log.\(stamp)"
            h.coordinator = Subprocess.spawn(h.inUnderlay(h.substitute(exec).replacingFirst(Binaries.hako)),
                                             stdout: h.base + "/coordinator.out", stderr: log)
            let listening = h.eventually(15) {
                ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
                    .contains("listening on \(self.h.coordinatorAddress) (mutual TLS 1.3)")
            }
            #expect(listening, "the log line the guide's journalctl shows: \(h.logs())")
        } else {
            for i in h.nodes.indices {
                let n = h.nodes[i]
                let run = h.substitute(exec, node: n).replacingFirst(Binaries.hako)
                h.nodes[i].agent = Subprocess.spawn(["/usr/bin/nsenter", "--net=/run/netns/\(n.netns)", "--"] + run,
                                                    env: ["HAKO_MONITOR": Binaries.monitor], stderr: n.dir + "/agent.log.\(stamp)")
            }
        }
    }

    /// Step 5's prose: "Unplug pi3: after the grace period its replica runs on
    /// pi1 or pi2, and http://pi1.local:8080/ keeps answering. Plug it back:
    /// the node is ready again, and the stale copy is stopped."
    func failover() throws {
        let port = try #require(GuideCommands.ingressPort(), "the guide's service has --ingress")
        func answers(_ node: Int) -> Bool {
            h.eventually(15) {
                let code = self.h.underlay(["/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2",
                                            "http://\(self.h.nodes[node].address):\(port)/"]).stdout
                return code.count == 3 && code != "000"
            }
        }
        h.killAgent(2)
        h.link(2, up: false)
        #expect(h.eventually(20) { let c = self.h.runningCount("web"); return c[0] + c[1] == 3 },
                "the lost replica runs on node1 or node2: \(h.runningCount("web"))")
        #expect(answers(0) && answers(1), "the ingress port still answers on the remaining nodes")
        h.link(2, up: true)
        h.startAgent(2)
        #expect(h.eventually(30) { self.h.runningCount("web").reduce(0, +) == 3 && self.h.runningCount("web")[2] == 0 },
                "the stale copy is stopped: \(h.runningCount("web"))")
    }
}

/// The guide's list of commands against the test's: no harness needed.
@Suite struct GettingStartedCommandListTests {
    @Test func everyCommandOfTheGuideIsRunOrListed() throws {
        let commands = try GuideCommands.read()
        #expect(commands.count > 10, "the guide's sh blocks: \(commands)")
        let unknown = commands.filter { GuideCommands.notRun[$0] == nil && !GuideCommands.runs($0) }
        #expect(unknown.isEmpty, "commands of the guide that the test neither runs nor lists as not run: \(unknown)")
        let gone = GuideCommands.notRun.keys.filter { !commands.contains($0) }
        #expect(gone.isEmpty, "listed as not run but no longer in the guide: \(gone)")
    }
}

/// The guide's commands, and how the test maps them onto the harness.
enum GuideCommands {
    static let path = Repo.root + "/docs/getting-started.md"
    static let tokenPlaceholder = "HKT1-…"
    static let testImage = "busybox:test"

    /// Every mechanical change the test makes to a command the guide shows,
    /// in the order applied (word by word; a word not here is run as written).
    /// Besides these, commands run as root (`sudo` dropped), `hako cluster …`
    /// with HAKO_CLUSTER_CREDENTIALS at the harness coordinator's
    /// `data_dir/admin` (what the default /var/lib/hako/coordinator/admin is on
    /// a Pi), in the underlay namespace where the coordinator listens;
    /// `hako agent` in each node's namespace; `curl` in the underlay.
    /// `systemctl enable --now UNIT` runs the unit's ExecStart (deploy/UNIT.service)
    /// in the background, `@BINDIR@/hako` being the build's and `@SYSCONFDIR@` /etc/hako;
    /// `systemctl restart UNIT` stops that process with SIGTERM (the units' KillMode=process) and runs it again.
    static func substitutions(_ h: ClusterHarness, node: ClusterHarness.Node?, token: String?) -> [(String, String)] {
        var s: [(String, String)] = [
            ("/etc/hako/coordinator.toml", h.coordinatorConfig),
            ("192.168.1.11:4270", h.coordinatorAddress),
            ("busybox", "--no-resolve-image \(testImage)"),     // the local test image, imported on each node, not on a registry
        ]
        if let node { s.append(("/etc/hako/agent.toml", node.config)) }
        if let token { s.append((tokenPlaceholder, token)) }
        for n in h.nodes { s.append(("http://pi\(n.index).local:", "http://\(n.address):")) }
        return s
    }

    /// Commands of the guide that this test does not run, each with why.
    static let notRun: [String: String] = [
        "sudo apt install -y git make gcc libc6-dev curl": "installs host packages; make build/deps-build do it for the tests",
        "curl -O https://download.swift.org/swiftly/linux/swiftly-$(uname -m).tar.gz && tar zxf swiftly-$(uname -m).tar.gz && ./swiftly init":
            "downloads from the internet; tests send traffic only inside their namespaces",
        ". ~/.local/share/swiftly/env.sh && swift --version": "a user's swiftly installation; the tests are built with the machine's toolchain",
        "git clone <hako repository> hako && cd hako": "the checkout the tests run in",
        "SWIFT=$(ls -d ~/.local/share/swiftly/toolchains/*/usr/bin/swift | tail -n1)": "a user's swiftly installation",
        "sudo make install SWIFT=\"$SWIFT\"": "installs into the host's /usr/local and /etc; DeployTests runs the installer into a DESTDIR",
        "sudo dphys-swapfile swapoff": "Raspberry Pi OS's swap file; changes the host",
        "sudo sed -i 's/^#\\?CONF_SWAPSIZE=.*/CONF_SWAPSIZE=2048/' /etc/dphys-swapfile": "Raspberry Pi OS's swap file; changes the host",
        "sudo dphys-swapfile setup && sudo dphys-swapfile swapon": "Raspberry Pi OS's swap file; changes the host",
        "free -h": "shows the host's swap",
        "for pi in pi2 pi3; do": "copies to other machines over ssh",
        "rsync -a --exclude .build --exclude .git ./ $pi:hako/": "copies to other machines over ssh",
        "rsync -aL .build/release/hako .build/release/hako-monitor .build/release/hako-runtime .build/release/version .build/release/completions $pi:hako/dist/":
            "copies to other machines over ssh; DeployTests installs from a BUILD_DIR with --no-build",
        "ssh -t $pi 'sudo apt install -y libmnl0 ca-certificates && cd hako && sudo BUILD_DIR=$PWD/dist deploy/install.sh --no-build'":
            "another machine; DeployTests runs install.sh --no-build from a BUILD_DIR into a DESTDIR",
        "done": "end of the copy loop",
        "sudo nano /etc/hako/coordinator.toml": "an editor; the harness writes the coordinator's configuration",
        "journalctl -u hako-coordinator -f": "no journal here; the test reads the same line from the coordinator's log",
        "sudo nano /etc/hako/agent.toml": "an editor; the harness writes each agent's configuration",
        "sudo hako pull busybox": "pulls from a public registry; tests reach no outside address, so the harness imports the test image into each node's store",
        "git pull && sudo make install": "fetches the checkout and installs into the host's /usr/local and /etc; DeployTests runs the installer into a DESTDIR",
        "journalctl -u hako-agent": "no journal here; the agents' logs are the harness's files",
    ]

    static func runs(_ command: String) -> Bool {
        let words = command.split(separator: " ").map(String.init)
        let w = words.first == "sudo" ? Array(words.dropFirst()) : words
        // curl only to one of the guide's nodes (the harness's addresses after substitution): nothing else is reached.
        let curlsANode = w.count == 2 && w[0] == "curl" && w[1].range(of: #"^http://pi[1-3]\.local:[0-9]+/"#, options: .regularExpression) != nil
        return w.first == "hako" || curlsANode || w.starts(with: ["systemctl", "enable", "--now"]) || w.starts(with: ["systemctl", "restart"])
    }

    /// The commands of the guide's `sh` blocks: continuation lines joined,
    /// comments (whole lines, or after two spaces and `#`) removed.
    static func read() throws -> [String] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var commands: [String] = []
        var inBlock = false
        var pending = ""
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("```") {
                inBlock = !inBlock && line == "```sh"
                continue
            }
            guard inBlock, !line.hasPrefix("#"), !line.isEmpty else { continue }
            var code = line
            if let comment = code.range(of: "  #") { code = String(code[..<comment.lowerBound]) }
            code = code.trimmingCharacters(in: .whitespaces)
            if code.hasSuffix("\\") {
                pending += code.dropLast().trimmingCharacters(in: .whitespaces) + " "
                continue
            }
            commands.append(pending + code)
            pending = ""
        }
        return commands
    }

    /// The unit's command line, with the installer's placeholders as installed.
    static func execStart(_ unit: String) throws -> String {
        let text = try String(contentsOfFile: Repo.root + "/deploy/\(unit).service", encoding: .utf8)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
        return line.dropFirst("ExecStart=".count)
            .replacingOccurrences(of: "@BINDIR@", with: "/usr/local/bin")
            .replacingOccurrences(of: "@SYSCONFDIR@", with: "/etc/hako")
    }

    static func ingressPort() -> String? {
        guard let create = try? read().first(where: { $0.contains("hako cluster service create") }) else { return nil }
        let words = create.split(separator: " ").map(String.init)
        return words.firstIndex(of: "--ingress").flatMap { $0 + 1 < words.count ? words[$0 + 1].split(separator: ":").first.map(String.init) : nil }
    }
}

extension ClusterHarness {
    /// The command as the test runs it: `GuideCommands.substitutions` applied word by word, `sudo` dropped.
    func substitute(_ command: String, node: Node? = nil, token: String? = nil) -> [String] {
        let table = GuideCommands.substitutions(self, node: node, token: token)
        var words = command.split(separator: " ").map(String.init)
        if words.first == "sudo" { words.removeFirst() }
        return words.flatMap { word -> [String] in
            for (from, to) in table where word == from || (from.hasSuffix(":") && word.hasPrefix(from)) {
                return (to + word.dropFirst(from.count)).split(separator: " ").map(String.init)
            }
            if word == "/usr/local/bin/hako" { return [Binaries.hako] }
            return [word]
        }
    }

    /// A `hako …` command of the guide: the build's binary, the harness coordinator's credentials.
    func runGuide(_ argv: [String], inUnderlay underlay: Bool = false, timeout: Double = 60) -> Output {
        let run = argv.replacingFirst(Binaries.hako)
        return Subprocess.run(underlay ? inUnderlay(run) : run,
                              env: adminEnv.merging(["HAKO_CLUSTER_CREDENTIALS": adminCredentials, "HAKO_MONITOR": Binaries.monitor]) { $1 },
                              timeout: timeout)
    }
}

extension Array where Element == String {
    /// The program replaced (`hako` or /usr/local/bin/hako → the build's).
    func replacingFirst(_ program: String) -> [String] { isEmpty ? self : [program] + dropFirst() }
}
