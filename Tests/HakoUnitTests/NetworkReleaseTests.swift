import CHakoShim
@testable import HakoEngine
import HakoNetwork
@testable import HakoRuntime
import HakoSystem
import Testing

/// Which containers' monitors release their network themselves (issue 19:
/// no `hako network teardown` process after a quiet container), and the
/// record that tells the C monitor so.
@Suite struct NetworkReleaseTests {
    func config(_ networking: ContainerNetworking?) -> ContainerConfig {
        var c = ContainerConfig(id: "abc", name: "web", created: Timestamp.now(), image: "busybox", imageID: "0", layerDirs: [],
                                args: ["sh"], entrypoint: [], cmd: ["sh"], env: [], workingDir: "/", user: "", hostname: "abc", labels: [:],
                                tty: false, openStdin: false, autoRemove: false, restartPolicy: "no", pidMode: .private, utsMode: .private,
                                ipcMode: .private, cgroupnsMode: .private, networkMode: .bridge, stopSignal: 15, stopTimeout: 10,
                                logMaxSize: 1 << 20, logMaxFiles: 1, cgroupParent: "hako")
        c.networking = networking
        return c
    }

    @Test func onlyAContainerWithoutPortsOnPredefinedNetworksReleasesAlone() {
        #expect(Engine.releasesNetworkAlone(config(nil)), "the default bridge, nothing published")
        var n = ContainerNetworking()
        n.networks = [NetworkJoin(name: "bridge", ip: IPv4Address("172.17.0.9"))]
        #expect(Engine.releasesNetworkAlone(config(n)))
        n.ports = [PortBinding(proto: .tcp, hostIP: nil, hostPort: 8080, containerPort: 80)]
        #expect(!Engine.releasesNetworkAlone(config(n)), "a published port: the firewall changes at the teardown")
        n.ports = []
        n.publishAll = true
        n.exposed = ["80/tcp"]
        #expect(!Engine.releasesNetworkAlone(config(n)), "-P publishes the exposed ports")
        n.publishAll = false
        n.networks = [NetworkJoin(name: "front")]
        #expect(!Engine.releasesNetworkAlone(config(n)), "a user network: peers' name files list the container")
        n.networks = [NetworkJoin(name: "bridge"), NetworkJoin(name: "front")]
        #expect(!Engine.releasesNetworkAlone(config(n)))
    }

    @Test func theReleaseReachesTheCParser() {
        var (r, m) = LaunchSpecTests().sample()
        m.cleanupCommand = ["/usr/local/bin/hako", "network", "teardown", "abc"]
        m.networkRelease = NetworkRelease(namespace: "/run/hako/netns/abc", endpointRecord: "/run/hako/networks/endpoints/abc.json")
        let (ok, s, msg, keep) = parseWithC(LaunchSpecEncoder.encode(r, monitor: m))
        withExtendedLifetime(keep) {
            #expect(ok, "\(msg)")
            #expect(str(s.net_unpin) == "/run/hako/netns/abc" && str(s.net_record) == "/run/hako/networks/endpoints/abc.json")
            #expect(s.ncleanup == 4, "the clean-up command stays: a frame can ask for it")
        }
        m.networkRelease = nil
        r.process.args = ["/bin/true"]
        let (plain, p, _, keep2) = parseWithC(LaunchSpecEncoder.encode(r, monitor: m))
        withExtendedLifetime(keep2) { #expect(plain && p.net_unpin == nil && p.net_record == nil) }
    }
}
