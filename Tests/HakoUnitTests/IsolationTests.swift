import CHakoShim
@testable import HakoEngine
@testable import HakoRuntime
import HakoSystem
import Testing

@Suite struct IsolationParsingTests {
    @Test func sizesAndCPUs() throws {
        #expect(try IsolationParser.bytes("512m", flag: "-m") == 512 << 20)
        #expect(try IsolationParser.bytes("1.5g", flag: "-m") == 3 << 29)
        #expect(try IsolationParser.bytes("64MiB", flag: "-m") == 64 << 20)
        #expect(try IsolationParser.bytes("4096", flag: "-m") == 4096)
        for bad in ["", "m", "-1", "1x", "1e3", "inf"] { #expect(throws: HakoError.self, "\(bad)") { try IsolationParser.bytes(bad, flag: "-m") } }
        #expect(try IsolationParser.cpus("0.5", online: 2) == 500_000_000)
        #expect(try IsolationParser.cpus("2", online: 2) == 2_000_000_000)
        for bad in ["0", "-1", "3", "x", "0.001", "nan"] { #expect(throws: HakoError.self, "\(bad)") { try IsolationParser.cpus(bad, online: 2) } }
        #expect(IsolationParser.idList("0-2,5") == [0, 1, 2, 5])
        #expect(IsolationParser.idList("2-1") == nil && IsolationParser.idList("") == nil && IsolationParser.idList("a") == nil)
        #expect(try IsolationParser.cpuset("0-1", flag: "--cpuset-cpus", available: "0-1\n") == "0-1")
        do {
            _ = try IsolationParser.cpuset("0-5", flag: "--cpuset-cpus", available: "0-1")
            Issue.record("unavailable CPUs accepted")
        } catch let e as HakoError {
            #expect(e.message.contains("requested 0-5, available: 0-1"))
        }
    }

    @Test func devicesAndRates() throws {
        #expect(try IsolationParser.device("/dev/gpiomem") == .init(host: "/dev/gpiomem", container: "/dev/gpiomem", permissions: "rwm"))
        #expect(try IsolationParser.device("/dev/i2c-1:r") == .init(host: "/dev/i2c-1", container: "/dev/i2c-1", permissions: "r"))
        #expect(try IsolationParser.device("/dev/sda:/dev/xvda") == .init(host: "/dev/sda", container: "/dev/xvda", permissions: "rwm"))
        #expect(try IsolationParser.device("/dev/sda:/dev/xvda:rw") == .init(host: "/dev/sda", container: "/dev/xvda", permissions: "rw"))
        for bad in ["dev/sda", "/dev/sda:/dev/x:q", "/dev/sda:/dev", "/dev/a:/dev/../x:r", "/a:/b:r:w"] {
            #expect(throws: HakoError.self, "\(bad)") { try IsolationParser.device(bad) }
        }
        #expect(try IsolationParser.rate("/dev/sda:1mb", flag: "--device-read-bps", bytes: true) == ("/dev/sda", 1 << 20))
        #expect(try IsolationParser.rate("/dev/sda:100", flag: "--device-read-iops", bytes: false) == ("/dev/sda", 100))
        for bad in ["/dev/sda", "sda:1m", "/dev/sda:0", "/dev/sda:-1"] {
            #expect(throws: HakoError.self, "\(bad)") { try IsolationParser.rate(bad, flag: "--device-read-bps", bytes: true) }
        }
    }

    @Test func sysctlUlimit() throws {
        #expect(try IsolationParser.sysctl("net.ipv4.ip_forward=1", ipcPrivate: true, utsPrivate: true, networkPrivate: true) == .init(key: "net.ipv4.ip_forward", value: "1"))
        #expect(try IsolationParser.sysctl("kernel/shmmax=1000", ipcPrivate: true, utsPrivate: true, networkPrivate: true).key == "kernel.shmmax")
        #expect(throws: HakoError.self) { try IsolationParser.sysctl("net.ipv4.ip_forward=1", ipcPrivate: true, utsPrivate: true, networkPrivate: false) }
        #expect(throws: HakoError.self) { try IsolationParser.sysctl("kernel.msgmax=1", ipcPrivate: false, utsPrivate: true, networkPrivate: true) }
        for bad in ["kernel.panic=1", "vm.swappiness=10", "fs.file-max=5", "x", "=1", "net.a=1\n2"] {
            #expect(throws: HakoError.self, "\(bad)") { try IsolationParser.sysctl(bad, ipcPrivate: true, utsPrivate: true, networkPrivate: true) }
        }
        #expect(try IsolationParser.ulimit("nofile=1024:2048") == .init(name: "nofile", soft: 1024, hard: 2048))
        #expect(try IsolationParser.ulimit("core=-1") == .init(name: "core", soft: -1, hard: -1))
        for bad in ["nofile", "files=1", "nofile=2048:1024", "nofile=a", "nofile=-1:10"] {
            #expect(throws: HakoError.self, "\(bad)") { try IsolationParser.ulimit(bad) }
        }
    }

    @Test func securityOptionsAndUserns() throws {
        #expect(try IsolationParser.securityOptions([]) == .init())
        let s = try IsolationParser.securityOptions(["seccomp=unconfined", "no-new-privileges", "systempaths=unconfined", "apparmor=unconfined"])
        #expect(s.seccomp == .unconfined && s.noNewPrivileges && s.unmaskedPaths)
        #expect(try IsolationParser.securityOptions(["seccomp:/etc/p.json", "no-new-privileges:true"]).seccomp == .file("/etc/p.json"))
        #expect(try IsolationParser.securityOptions(["no-new-privileges=true", "no-new-privileges=false"]).noNewPrivileges == false)
        for bad in ["seccomp", "apparmor=docker-default", "label=type:x", "magic=1", "no-new-privileges=maybe"] {
            #expect(throws: HakoError.self, "\(bad)") { try IsolationParser.securityOptions([bad]) }
        }
        #expect(try IsolationParser.userns("host") == nil)
        #expect(try IsolationParser.userns("auto")?.size == 65536)
        #expect(try IsolationParser.userns("auto:size=2000")?.size == 2000)
        for bad in ["keep-id", "auto:size=0", "auto:size=x"] { #expect(throws: HakoError.self) { try IsolationParser.userns(bad) } }
    }

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
