#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// A second namespace wired to a test host's namespace by a veth pair: it plays
/// an outside client and "the internet". Host side 192.0.2.1, this side 192.0.2.2.
final class OutsideNamespace: @unchecked Sendable {
    let name: String
    var servers: [pid_t] = []
    let hostAddress = "192.0.2.1"
    let address = "192.0.2.2"

    init(for host: TestHost) {
        name = host.netns + "-out"
        Subprocess.run(["/usr/bin/ip", "netns", "add", name])
        for cmd in [["-n", host.netns, "link", "add", "vout", "type", "veth", "peer", "name", "vin", "netns", name],
                    ["-n", host.netns, "addr", "add", "192.0.2.1/24", "dev", "vout"],
                    ["-n", host.netns, "link", "set", "vout", "up"],
                    ["-n", name, "addr", "add", "192.0.2.2/24", "dev", "vin"],
                    ["-n", name, "link", "set", "vin", "up"],
                    ["-n", name, "link", "set", "lo", "up"]] {
            Subprocess.run(["/usr/bin/ip"] + cmd)
        }
    }

    /// Runs a program inside this namespace (not hako: iproute2's exec is fine for busybox).
    func run(_ args: [String], timeout: Double = 20) -> Output {
        Subprocess.run(["/usr/bin/ip", "netns", "exec", name] + args, timeout: timeout)
    }

    func serve(_ args: [String]) {
        servers.append(Subprocess.spawn(["/usr/bin/ip", "netns", "exec", name] + args))
    }

    deinit {
        for p in servers { kill(p, SIGKILL); _ = Subprocess.waitBounded(p, timeout: 5) }
        Subprocess.run(["/usr/bin/ip", "netns", "del", name])
    }
}

/// Containers on bridge networks, published ports and NAT. Every command runs in
/// the test host's own network namespace; nothing reaches the host's network.
@Suite(.needsRoot, .serialized) final class NetworkTests {
    let host = TestHost.make("net")
    lazy var outside = OutsideNamespace(for: host)

    func fetch(_ url: String) -> Output {
        Subprocess.run(host.prefix + ["/usr/bin/timeout", "5", "/bin/busybox", "wget", "-qO-", url], timeout: 10)
    }

    func ip(of container: String, on network: String) -> String {
        let r = host.hako("network", "inspect", network)
        guard let data = r.stdout.data(using: .utf8), let arr = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]],
              let members = arr.first?["Containers"] as? [String: [String: Any]] else { return "" }
        for (_, m) in members where m["Name"] as? String == container {
            return String((m["IPv4Address"] as? String ?? "").split(separator: "/").first ?? "")
        }
        return ""
    }

    func nftRules() -> String {
        Subprocess.run(["/usr/bin/ip", "netns", "exec", host.netns, "nft", "list", "ruleset"]).stdout
    }

    let web = "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www"

    @Test func defaultBridgeGivesAddressRouteAndOutboundNAT() throws {
        let r = host.hako("run", "--rm", host.busybox, "sh", "-c", "ip -o -4 addr show eth0; ip route")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("inet 172.17."), "\(r.stdout)")
        #expect(r.stdout.contains("default via 172.17.0.1 dev eth0"), "\(r.stdout)")
        // "The internet" sees the host's address as the source (masquerade).
        let dir = host.base + "/cgi"
        try FileManager.default.createDirectory(atPath: dir + "/cgi-bin", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir + "/cgi-bin/ip", contents: Data("#!/bin/sh\necho Content-Type: text/plain\necho\necho \"peer=$REMOTE_ADDR\"\n".utf8),
                                       attributes: [.posixPermissions: 0o755])
        outside.serve(["/bin/busybox", "httpd", "-f", "-p", "\(outside.address):9000", "-h", dir])
        var out = ""
        _ = host.eventually(10) {
            out = host.hako("run", "--rm", host.busybox, "sh", "-c", "timeout 5 wget -qO- http://\(outside.address):9000/cgi-bin/ip").stdout
            return out.contains("peer=")
        }
        #expect(out.contains("peer=\(outside.hostAddress)"), "outbound traffic leaves with the host's address: \(out)")
    }

    @Test func userNetworksResolveNamesAndIsolate() throws {
        #expect(host.hako("network", "create", "front").status == 0)
        #expect(host.hako("network", "create", "--subnet", "10.123.0.0/24", "--gateway", "10.123.0.254", "back").status == 0)
        defer { host.hako("rm", "-f", "ctr-a", "ctr-b"); host.hako("network", "rm", "front", "back") }
        #expect(host.hako("run", "-d", "--name", "ctr-a", "--network", "front", "--network-alias", "alpha", host.busybox, "sleep", "60").status == 0)
        #expect(host.hako("run", "-d", "--name", "ctr-b", "--network", "back", "--ip", "10.123.0.7", host.busybox, "sleep", "60").status == 0)
        let aIP = ip(of: "ctr-a", on: "front")
        #expect(aIP.hasPrefix("10.89."), "a user network gets a free /24 of 10.89.0.0/16: \(aIP)")
        #expect(ip(of: "ctr-b", on: "back") == "10.123.0.7")
        #expect(host.hako("exec", "ctr-b", "ip", "route").stdout.contains("default via 10.123.0.254"))
        // Same network: by address, by name, by alias.
        for target in [aIP, "ctr-a", "alpha"] {
            let r = host.hako("run", "--rm", "--network", "front", host.busybox, "ping", "-c", "1", "-W", "2", target)
            #expect(r.status == 0, "ping \(target): \(r.stdout) \(r.stderr)")
        }
        // Another network: neither the address nor the name.
        #expect(host.hako("exec", "ctr-b", "ping", "-c", "1", "-W", "1", aIP).status != 0, "networks are isolated")
        #expect(host.hako("exec", "ctr-b", "ping", "-c", "1", "-W", "1", "ctr-a").status != 0)
        // The default bridge does not resolve names (as Docker's).
        #expect(host.hako("run", "--rm", host.busybox, "ping", "-c", "1", "-W", "1", "ctr-a").status != 0)
        // rm is refused while containers use the network.
        let busy = host.hako("network", "rm", "front")
        #expect(busy.status == 125 && busy.stderr.contains("in use by container"), "\(busy.stderr)")

        // connect: b gains an interface on front, live; names resolve both ways.
        #expect(host.hako("network", "connect", "front", "ctr-b").status == 0)
        let links = host.hako("exec", "ctr-b", "sh", "-c", "ls /sys/class/net").stdout
        #expect(links.contains("eth1"), "\(links)")
        #expect(host.hako("exec", "ctr-b", "ping", "-c", "1", "-W", "2", "ctr-a").status == 0, "b reaches a by name after connect")
        #expect(host.hako("exec", "ctr-a", "ping", "-c", "1", "-W", "2", "ctr-b").status == 0, "a's hosts file learned b")
        // disconnect: the interface and the name go.
        #expect(host.hako("network", "disconnect", "front", "ctr-b").status == 0)
        #expect(!host.hako("exec", "ctr-b", "sh", "-c", "ls /sys/class/net").stdout.contains("eth1"))
        #expect(host.hako("exec", "ctr-b", "ping", "-c", "1", "-W", "1", aIP).status != 0)
        #expect(!host.hako("exec", "ctr-a", "cat", "/etc/hosts").stdout.contains("ctr-b"))
        // A restart keeps the name current.
        #expect(host.hako("restart", "-t", "0", "ctr-a").status == 0)
        let aAfter = ip(of: "ctr-a", on: "front")
        let r = host.hako("run", "--rm", "--network", "front", host.busybox, "ping", "-c", "1", "-W", "2", "ctr-a")
        #expect(r.status == 0 && r.stdout.contains(aAfter), "\(r.stdout)")
    }

    /// `--mtu` / `-o com.docker.network.driver.mtu`: both ends of the veth and the bridge, as the container sees it.
    @Test func aNetworksMTUReachesTheContainersInterface() throws {
        #expect(host.hako("network", "create", "-o", "com.docker.network.driver.mtu=1400", "slim").status == 0)
        defer { host.hako("network", "rm", "slim") }
        let inspect = host.hako("network", "inspect", "slim").stdout
        #expect(inspect.contains("\"com.docker.network.driver.mtu\"") && inspect.contains("\"1400\""), "\(inspect)")
        let inside = host.hako("run", "--rm", "--network", "slim", host.busybox, "cat", "/sys/class/net/eth0/mtu")
        #expect(inside.stdout.trimmed == "1400", "\(inside.stdout) \(inside.stderr)")
        // Bad values: one line, exit 125, no network left.
        for bad in [["--mtu", "40"], ["-o", "mtu=lots"], ["-o", "com.docker.network.bridge.name=x"], ["--mtu", "1400", "-o", "mtu=1300"]] {
            let r = host.hako(["network", "create"] + bad + ["nope"])
            #expect(r.status == 125 && r.stderr.split(separator: "\n").count == 1, "\(bad): \(r.status) \(r.stderr)")
        }
        #expect(!host.hako("network", "ls").stdout.contains("nope"))
    }

    @Test func publishedPortAnswersFromHostOutsideAndHairpin() throws {
        let id = host.hako("run", "-d", "--name", "web", "-p", "8080:80", host.busybox, "sh", "-c", web).out
        #expect(!id.isEmpty)
        #expect(host.eventually(10) { fetch("http://127.0.0.1:8080/").stdout.contains("hello-from-web") }, "localhost:8080 from the host")
        #expect(fetch("http://\(outside.hostAddress):8080/").stdout.contains("hello-from-web"), "the host's own address from the host")
        let o = outside.run(["/usr/bin/timeout", "5", "/bin/busybox", "wget", "-qO-", "http://\(outside.hostAddress):8080/"])
        #expect(o.stdout.contains("hello-from-web"), "an outside client: \(o.stderr)")
        let hairpin = host.hako("exec", "web", "timeout", "5", "wget", "-qO-", "http://\(outside.hostAddress):8080/")
        #expect(hairpin.stdout.contains("hello-from-web"), "the container reaches its own published port: \(hairpin.stderr)")
        #expect(host.hako("port", "web").out == "80/tcp -> 0.0.0.0:8080")
        #expect(host.hako("ps").stdout.contains("0.0.0.0:8080->80/tcp"))
        // Taken: a clear error, and nothing is created.
        let before = host.containerIDs().count
        let clash = host.hako("run", "-d", "-p", "8080:80", host.busybox, "true")
        #expect(clash.status == 125 && clash.stderr.contains("already published by container web"), "\(clash.stderr)")
        #expect(host.containerIDs().count == before)
        // Removed: the port stops answering and the rule is gone.
        #expect(host.hako("rm", "-f", "web").status == 0)
        #expect(fetch("http://127.0.0.1:8080/").status != 0)
        #expect(!nftRules().contains("dport 8080"))
    }

    @Test func udpAndFreeHostPorts() throws {
        // busybox has no UDP server: the built-in host image brings python3.
        let server = "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 53)); d, a = s.recvfrom(100); print(d.decode().strip(), flush=True)"
        let id = host.hako("run", "-d", "--name", "udp", "-p", "5353:53/udp", "-p", "127.0.0.1::80", "host", "python3", "-c", server).out
        defer { host.hako("rm", "-f", id) }
        let ports = host.hako("port", "udp").stdout
        #expect(ports.contains("53/udp -> 0.0.0.0:5353"), "\(ports)")
        #expect(ports.contains("80/tcp -> 127.0.0.1:"), "a free host port is picked: \(ports)")
        let client = "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'datagram-through', ('\(outside.hostAddress)', 5353))"
        _ = host.eventually(10) {
            _ = outside.run(["/usr/bin/python3", "-c", client])
            return host.hako("logs", "udp").stdout.contains("datagram-through")
        }
        #expect(host.hako("logs", "udp").stdout.contains("datagram-through"), "UDP is forwarded")
    }

    @Test func killNineOfMonitorAndCLILeavesNoStaleRules() throws {
        // The CLI of an attached run and the monitor, both killed with -9.
        let cli = Subprocess.spawn(host.prefix + [Binaries.hako, "run", "--name", "doomed", "-p", "8091:80", host.busybox, "sh", "-c", web], env: host.env)
        #expect(host.eventually(10) { nftRules().contains("dport 8091") })
        let id = host.hako("ps", "-q", "--no-trunc", "-a").stdout.split(separator: "\n").map(String.init).first { !$0.isEmpty } ?? ""
        let lock = "\(host.runRoot)/containers/\(id)/monitor.lock"
        // The rule can be in place before the monitor has written its pid (the
        // network is set up beside the monitor's own start).
        var monitor: Int32 = 0
        _ = host.eventually(5) {
            monitor = Int32((try? String(contentsOfFile: lock, encoding: .utf8))?.trimmed ?? "") ?? 0
            return monitor > 0
        }
        #expect(monitor > 0)
        kill(cli, SIGKILL)
        _ = Subprocess.waitBounded(cli, timeout: 5)
        if monitor > 0 { kill(monitor, SIGKILL) }
        _ = host.eventually(5) { !FileManager.default.fileExists(atPath: "/proc/\(monitor)") }
        #expect(nftRules().contains("dport 8091"), "nothing removed the rule yet")
        // The next hako command, whatever it is, removes it.
        host.hako("ps")
        #expect(!nftRules().contains("dport 8091"))
        #expect(!FileManager.default.fileExists(atPath: "\(host.runRoot)/netns/\(id)"))
        host.hako("rm", "-f", "doomed")
    }

    @Test func badValuesGiveOneClearErrorAndCreateNothing() {
        let before = host.containerIDs().count
        let nets = host.hako("network", "ls", "-q").stdout
        for (args, needle) in [(["run", "--rm", "-p", "99999:80", host.busybox, "true"], "invalid -p"),
                               (["run", "--rm", "-p", "abc", host.busybox, "true"], "invalid -p"),
                               (["run", "--rm", "-p", "1.2.3:80:80", host.busybox, "true"], "invalid -p"),
                               (["run", "--rm", "-p", "8000-8002:80-81", host.busybox, "true"], "invalid -p"),
                               (["run", "--rm", "--network", "nope", host.busybox, "true"], "network nope not found"),
                               (["run", "--rm", "--ip", "172.17.0.x", host.busybox, "true"], "invalid --ip"),
                               (["run", "--rm", "--network", "none", "-p", "80", host.busybox, "true"], "conflicting options"),
                               (["run", "--rm", "--mac-address", "01:00:00:00:00:01", host.busybox, "true"], "invalid --mac-address"),
                               (["run", "--rm", "--add-host", "x", host.busybox, "true"], "invalid --add-host"),
                               (["network", "create", "--subnet", "10.0.0.1/24", "n1"], "invalid --subnet"),
                               (["network", "create", "--subnet", "300.0.0.0/8", "n1"], "invalid --subnet"),
                               (["network", "create", "--subnet", "172.17.4.0/24", "n1"], "overlaps network bridge"),
                               (["network", "create", "--subnet", "10.124.0.0/24", "--gateway", "10.125.0.1", "n1"], "invalid --gateway"),
                               (["network", "create", "bridge"], "predefined")] {
            let r = host.hako(args)
            #expect(r.status == 125, "\(args): \(r.status)")
            #expect(r.stderr.contains(needle), "\(args): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
        }
        #expect(host.containerIDs().count == before)
        #expect(host.hako("network", "ls", "-q").stdout == nets)
        let links = Subprocess.run(["/usr/bin/ip", "-n", host.netns, "-o", "link"]).stdout
        #expect(!links.contains("veth"), "\(links)")
    }

    /// The veth pair, addresses and routes are made while the init mounts
    /// its root; the program runs only once they are. When they cannot be
    /// made (the network's bridge name is taken by a link that cannot be
    /// anyone's master: a veth), the start fails with that error and leaves nothing.
    @Test func aNetworkThatCannotBeSetUpFailsTheStartAndLeavesNothing() throws {
        #expect(host.hako("network", "create", "--subnet", "10.126.0.0/24", "broken").status == 0)
        let bridge = host.hako("network", "inspect", "-f", "{{.Bridge}}", "broken").out
        #expect(!bridge.isEmpty)
        #expect(Subprocess.run(["/usr/bin/ip", "-n", host.netns, "link", "add", bridge, "type", "veth", "peer", "name", "brokenpeer"]).status == 0)
        defer {
            Subprocess.run(["/usr/bin/ip", "-n", host.netns, "link", "del", bridge])
            host.hako("network", "rm", "broken")
        }
        let before = host.containerIDs().count
        let r = host.hako("run", "--rm", "--network", "broken", host.busybox, "echo", "must-not-run")
        #expect(r.status == 125, "\(r.status) \(r.stderr)")
        #expect(!r.stdout.contains("must-not-run"), "the program ran without its network")
        #expect(r.stderr.contains("create veth"), "the network's own error, not the init's: \(r.stderr)")
        #expect(host.containerIDs().count == before)
        let links = Subprocess.run(["/usr/bin/ip", "-n", host.netns, "-o", "link"]).stdout
        #expect(!links.contains("veth"), "no veth left: \(links)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: "\(host.runRoot)/netns")) ?? []).isEmpty, "no namespace pinned")
        #expect(host.hako("network", "inspect", "-f", "{{len .Containers}}", "broken").out == "0")
    }

    /// Descriptors 5 and 6 of the monitor are an attach client and a
    /// bridge's ready signal: ones the command inherited open (from a shell)
    /// reach neither the monitor nor the container, on either network.
    @Test func inheritedDescriptorsAreNotTakenForTheMonitorsOwn() {
        for network in ["none", "bridge"] {
            let line = "exec 5</dev/null 6</dev/null; exec \(Binaries.hako) run --rm --network \(network) \(host.busybox) sh -c 'echo ran; ls /proc/self/fd'"
            let r = Subprocess.run(host.prefix + ["/bin/sh", "-c", line], env: host.env, timeout: 30)
            #expect(r.status == 0 && r.stdout.hasPrefix("ran"), "\(network): \(r.status) \(r.stderr)")
            let fds = Set(r.stdout.split(separator: "\n").dropFirst().map(String.init))
            #expect(fds.isSubset(of: ["0", "1", "2", "3"]), "\(network): the container's descriptors: \(fds.sorted())")
        }
    }

    @Test func restartsByPolicyKeepTheAddressAndPruneRemovesWhatIsUnused() throws {
        let id = host.hako("run", "-d", "--restart", "on-failure:2", host.busybox, "sh", "-c",
                           "ip -o -4 addr show eth0 | awk '{print $4}'; sleep 0.2; exit 3").out
        #expect(host.eventually(15) { host.hako("logs", id).stdout.split(separator: "\n").count >= 3 })
        let addrs = Set(host.hako("logs", id).stdout.split(separator: "\n").map(String.init))
        #expect(addrs.count == 1 && addrs.first?.hasPrefix("172.17.") == true, "the namespace outlives restarts: \(addrs)")
        #expect(host.eventually(15) { host.state(id)["Status"] as? String == "exited" })
        host.hako("rm", id)
        // ls shows the predefined networks; prune removes unused user networks,
        // the unused default bridge and, with nothing left, the firewall table.
        #expect(host.hako("network", "create", "unused").status == 0)
        let ls = host.hako("network", "ls").stdout
        #expect(ls.contains("bridge") && ls.contains("host") && ls.contains("none") && ls.contains("unused"))
        #expect(host.hako("network", "prune").stdout.contains("unused"))
        #expect(!host.hako("network", "ls").stdout.contains("unused"))
        let links = Subprocess.run(["/usr/bin/ip", "-n", host.netns, "-o", "link"]).stdout
        #expect(!links.contains("hako0"), "\(links)")
        #expect(!nftRules().contains("table ip hako"))
        #expect(Subprocess.run(["/usr/bin/ip", "netns", "exec", host.netns, "cat", "/proc/sys/net/ipv4/ip_forward"]).out == "0",
                "IP forwarding is restored: hako turned it on")
    }

    @Test func dnsAddHostMacAddress() {
        let r = host.hako("run", "--rm", "--dns", "192.0.2.53", "--add-host", "db:192.0.2.10", "--add-host", "gw:host-gateway",
                          "--mac-address", "02:00:00:aa:bb:cc", host.busybox, "sh", "-c", "cat /etc/resolv.conf /etc/hosts; cat /sys/class/net/eth0/address")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("nameserver 192.0.2.53"))
        #expect(r.stdout.contains("192.0.2.10\tdb"))
        #expect(r.stdout.contains("172.17.0.1\tgw"))
        #expect(r.stdout.contains("02:00:00:aa:bb:cc"))
    }
}
