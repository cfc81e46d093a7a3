import CHakoShim
@testable import HakoEngine
@testable import HakoRuntime
import HakoSystem
import Testing

/// The engine's checks of a spec's typed limits and hardening (their text is
/// parsed in HakoCLI: Tests/HakoCLITests/ContainerFlagsTests.swift).
@Suite struct IsolationCheckTests {
    @Test func cpuListsAgainstTheHost() throws {
        #expect(ResourceLimits.idList("0-2,5") == [0, 1, 2, 5])
        #expect(ResourceLimits.idList("2-1") == nil && ResourceLimits.idList("") == nil && ResourceLimits.idList("a") == nil)
        try Engine.checkCPUSet("0-1", flag: "--cpuset-cpus", available: "0-1\n")
        do {
            try Engine.checkCPUSet("0-5", flag: "--cpuset-cpus", available: "0-1")
            Issue.record("unavailable CPUs accepted")
        } catch let e as HakoError {
            #expect(e.message.contains("requested 0-5, available: 0-1"))
        }
        #expect(ResourceLimits.decimalCPUs(500_000_000) == "0.5" && ResourceLimits.decimalCPUs(2_000_000_000) == "2")
        #expect(ResourceLimits.decimalCPUs(1_500_000) == "0.0015")
    }

    @Test func sysctlsBelongToTheContainersNamespaces() throws {
        func sysctl(_ k: String, _ v: String) -> IsolationConfig.Sysctl { .init(key: k, value: v) }
        #expect(try Engine.checkSysctl(sysctl("net.ipv4.ip_forward", "1"), ipcPrivate: true, utsPrivate: true, networkPrivate: true).key == "net.ipv4.ip_forward")
        #expect(throws: HakoError.self) { try Engine.checkSysctl(sysctl("net.ipv4.ip_forward", "1"), ipcPrivate: true, utsPrivate: true, networkPrivate: false) }
        #expect(throws: HakoError.self) { try Engine.checkSysctl(sysctl("kernel.msgmax", "1"), ipcPrivate: false, utsPrivate: true, networkPrivate: true) }
        for (k, v) in [("kernel.panic", "1"), ("vm.swappiness", "10"), ("fs.file-max", "5"), ("net.a", "1\n2"), ("", "1"), ("net..x", "1")] {
            #expect(throws: HakoError.self, "\(k)") { try Engine.checkSysctl(sysctl(k, v), ipcPrivate: true, utsPrivate: true, networkPrivate: true) }
        }
    }

    @Test func ulimitsFromTypedFillers() throws {
        try Engine.checkUlimit(.init(name: "nofile", soft: 1024, hard: 2048))
        try Engine.checkUlimit(.init(name: "core", soft: -1, hard: -1))
        for bad in [IsolationConfig.Ulimit(name: "files", soft: 1, hard: 1), .init(name: "nofile", soft: 2048, hard: 1024), .init(name: "nofile", soft: -2, hard: 1)] {
            #expect(throws: HakoError.self, "\(bad)") { try Engine.checkUlimit(bad) }
        }
    }
}

@Suite struct IsolationMiscTests {
    @Test func netDevParsing() {
        let text = """
        Inter-|   Receive                                                |  Transmit
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
            lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
          eth0:    2000      20    0    0    0     0          0         0     3000      30    0    0    0     0       0          0
        """
        let n = Engine.networkBytes(text)
        #expect(n?.rx == 2000 && n?.tx == 3000, "loopback is not counted")
    }

    /// The new launch-spec records reach the C parser intact.
    @Test func launchSpecRecords() {
        var r = RuntimeSpec(id: "x", rootfs: "/r", process: ProcessSpec(args: ["true"], env: []))
        var o = OverlayRoot(lower: ["/l2", "/l:1"], upper: "/u", work: "/w")
        o.detached = true
        o.idmapLower = true
        r.overlay = o
        r.devices = [DeviceNode(path: "/dev/xvda", type: UInt8(ascii: "b"), major: 254, minor: 0, mode: 0o660, source: "/dev/vda"),
                     DeviceNode(path: "/dev/null", type: UInt8(ascii: "c"), major: 1, minor: 3, mode: 0o666)]
        r.hostDevices = true
        let (ok, s, msg, _) = parseWithC(LaunchSpecEncoder.encode(r, monitor: nil))
        #expect(ok, "\(msg)")
        #expect(s.detached_overlay == 1 && s.idmap_layers == 1 && s.overlay == nil)
        #expect(str(s.dov_upper) == "/u" && str(s.dov_work) == "/w" && s.dov_nlower == 2)
        #expect(str(s.dov_lower.0) == "/l2" && str(s.dov_lower.1) == "/l:1")
        #expect(str(s.devices[0].path) == "/dev/xvda" && str(s.devices[0].source) == "/dev/vda" && s.devices[0].major == 254)
        #expect(s.devices[1].source == nil)
        #expect(s.host_devices == 1)
        // A detached overlay without lower layers, or with a relative one, is refused.
        var bad = Array("HAKOSPEC".utf8)
        let payload: [UInt8] = [1, 0, 0, 0] + Array("/u".utf8) + [0] + Array("/w".utf8) + [0]
        bad += [32, 0, UInt8(payload.count), 0, 0, 0] + payload
        #expect(!parseWithC(bad).ok)
        var rel = Array("HAKOSPEC".utf8)
        let p2: [UInt8] = [0, 0, 0, 0] + Array("/u".utf8) + [0] + Array("/w".utf8) + [0] + Array("lower".utf8) + [0]
        rel += [32, 0, UInt8(p2.count), 0, 0, 0] + p2
        #expect(!parseWithC(rel).ok)
    }
}
