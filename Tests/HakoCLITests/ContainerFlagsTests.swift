import HakoCLI
import HakoEngine
import HakoNetwork
import HakoRuntime
import HakoSystem
import Testing

/// `run`/`create`'s flags parsed once, at the edge, into the engine's typed spec.
@Suite struct IsolationFlagParsingTests {
    @Test func sizesAndCPUs() throws {
        #expect(try IsolationParser.bytes("512m", flag: "-m") == 512 << 20)
        #expect(try IsolationParser.bytes("1.5g", flag: "-m") == 3 << 29)
        #expect(try IsolationParser.bytes("64MiB", flag: "-m") == 64 << 20)
        #expect(try IsolationParser.bytes("4096", flag: "-m") == 4096)
        for bad in ["", "m", "-1", "1x", "1e3", "inf"] { #expect(throws: HakoError.self, "\(bad)") { try IsolationParser.bytes(bad, flag: "-m") } }
        #expect(try IsolationParser.cpus("0.5", online: 2) == 500_000_000)
        #expect(try IsolationParser.cpus("2", online: 2) == 2_000_000_000)
        for bad in ["0", "-1", "3", "x", "0.001", "nan"] { #expect(throws: HakoError.self, "\(bad)") { try IsolationParser.cpus(bad, online: 2) } }
        #expect(try IsolationParser.cpuset("0-1", flag: "--cpuset-cpus") == "0-1")
        for bad in ["2-1", "", "a", "0-"] { #expect(throws: HakoError.self, "\(bad)") { try IsolationParser.cpuset(bad, flag: "--cpuset-cpus") } }
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
        // A rate on something that is not a block device is refused with the user's text.
        do {
            _ = try IsolationParser.deviceRate(path: "/dev/null", rate: 1, flag: "--device-read-bps", text: "/dev/null:1")
            Issue.record("a character device took a block rate")
        } catch let e as HakoError {
            #expect(e.message == "invalid --device-read-bps \"/dev/null:1\": /dev/null is not a block device")
        }
    }

    @Test func sysctlUlimit() throws {
        #expect(try IsolationParser.sysctl("net.ipv4.ip_forward=1") == .init(key: "net.ipv4.ip_forward", value: "1"))
        #expect(try IsolationParser.sysctl("kernel/shmmax=1000").key == "kernel.shmmax")
        for bad in ["x", "=1"] { #expect(throws: HakoError.self, "\(bad)") { try IsolationParser.sysctl(bad) } }
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
        #expect(try UsernsRequest(parsing: "host") == .host)
        #expect(try UsernsRequest(parsing: "auto") == .auto(size: 65536))
        #expect(try UsernsRequest(parsing: "auto:size=2000") == .auto(size: 2000))
        for bad in ["keep-id", "auto:size=0", "auto:size=x"] { #expect(throws: HakoError.self) { try UsernsRequest(parsing: bad) } }
    }
}

@Suite struct NetworkFlagParsingTests {
    @Test func flagsBecomeAnAttachment() throws {
        var o = RunFlags.Network()
        o.network = "back"; o.ip = "10.1.0.5"; o.aliases = ["db"]; o.publish = ["8080:80", "53/udp"]; o.publishAll = true
        o.dns = ["192.0.2.53"]; o.addHosts = ["x:192.0.2.1", "gw=host-gateway"]
        let n = try o.attachment(mode: .bridge)
        #expect(n.network == "back" && n.ip == IPv4Address("10.1.0.5") && n.aliases == ["db"] && n.publishAll)
        #expect(n.ports.map(\.description) == ["0.0.0.0:8080->80/tcp", "0.0.0.0:0->53/udp"])
        #expect(n.dns == [IPv4Address("192.0.2.53")].compactMap { $0 })
        #expect(n.extraHosts == [.init(name: "x", address: "192.0.2.1"), .init(name: "gw", address: "host-gateway")])
    }

    @Test func refusals() {
        func fails(_ f: (inout RunFlags.Network) -> Void, mode: NetworkMode = .bridge, _ needle: String) {
            var o = RunFlags.Network()
            f(&o)
            do { _ = try o.attachment(mode: mode); Issue.record("accepted: \(needle)") } catch let e as HakoError {
                #expect(e.message.contains(needle), "\(e.message)")
            } catch {}
        }
        fails({ $0.publish = ["80"] }, mode: .host, "conflicting options: publishing ports and --network host")
        fails({ $0.ip = "bad" }, mode: .none, "conflicting options: --ip and --network none")
        fails({ $0.ip = "10.0.0.300" }, "invalid --ip")
        fails({ $0.mac = "ff:ff:ff:ff:ff:ff" }, "invalid --mac-address")
        fails({ $0.dns = ["dns.example"] }, "invalid --dns")
        fails({ $0.addHosts = ["bad host:1.2.3.4"] }, "bad host name")
        fails({ $0.addHosts = ["h:300.1.1.1"] }, "is not an IPv4 address")
        fails({ $0.publish = ["http"] }, "")
    }
}

@Suite struct StorageFlagParsingTests {
    @Test func volumeFlag() throws {
        let bind = try MountParser.parseVolume("/srv:/data:ro")
        #expect(bind.kind == .bind && bind.source == "/srv" && bind.target == "/data" && bind.readOnly && bind.createHostPath)
        let rel = try MountParser.parseVolume("./x:/y")
        #expect(rel.kind == .bind && rel.source == FS.absolute("x"))
        let named = try MountParser.parseVolume("cache:/var/cache/:nocopy")
        #expect(named.kind == .volume && named.source == "cache" && named.target == "/var/cache" && named.noCopy && !named.anonymous)
        let anon = try MountParser.parseVolume("/anon")
        #expect(anon.kind == .volume && anon.anonymous && anon.source.count == 64)
        for bad in [":/x", "rel", "/a:relative", "/a:/", "/a:/x:bogus", "a b:/x", "/a:/b:ro:rw", "x:"] {
            #expect(throws: HakoError.self, "\(bad)") { try MountParser.parseVolume(bad) }
        }
    }

    @Test func mountAndTmpfsFlags() throws {
        let t = try MountParser.parseMount("type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1777")
        #expect(t.kind == .tmpfs && t.tmpfsSize == 64 << 20 && t.tmpfsMode == 0o1777)
        let v = try MountParser.parseMount("type=volume,src=v1,dst=/v,readonly")
        #expect(v.kind == .volume && v.source == "v1" && v.readOnly)
        let ro = try MountParser.parseMount("type=bind,source=/,target=/host,readonly=false")
        #expect(ro.kind == .bind && !ro.readOnly && !ro.createHostPath)
        let f = try MountParser.parseTmpfs("/run:size=8m,mode=755,exec")
        #expect(f.tmpfsSize == 8 << 20 && f.tmpfsMode == 0o755 && f.tmpfsExec)
        #expect(try MountParser.parseTmpfs(target: "/run", options: "size=8m,mode=755,exec") == f, "the API's Tmpfs map, target and options apart")
        for bad in ["type=nfs,target=/x", "type=bind,target=/x", "type=tmpfs,source=x,target=/t", "type=volume,target=/x,tmpfs-mode=9",
                    "target=relative", "type=volume,target=/x,colour=blue", "type=bind,source=/no/such/path/here,target=/x"] {
            #expect(throws: HakoError.self, "\(bad)") { try MountParser.parseMount(bad) }
        }
        for bad in ["relative", "/t:size=big", "/t:mode=999", "/t:colour"] {
            #expect(throws: HakoError.self, "\(bad)") { try MountParser.parseTmpfs(bad) }
        }
    }

    @Test func propagations() throws {
        #expect(try MountParser.parseVolume("/srv:/data").propagation == nil)
        #expect(try MountParser.parseVolume("/srv:/data:ro,rshared").propagation == .rshared)
        #expect(try MountParser.parseVolume("/srv:/data:slave,z").propagation == .slave)
        #expect(try MountParser.parseMount("type=bind,source=/,target=/h,bind-propagation=rslave").propagation == .rslave)
        for bad in ["/srv:/data:rshared,rslave", "named:/data:rshared", "/srv:/data:bogus"] {
            #expect(throws: HakoError.self, "\(bad)") { try MountParser.parseVolume(bad) }
        }
        for bad in ["type=bind,source=/,target=/h,bind-propagation=sideways", "type=volume,target=/v,bind-propagation=shared",
                    "type=tmpfs,target=/t,bind-propagation=rshared"] {
            #expect(throws: HakoError.self, "\(bad)") { try MountParser.parseMount(bad) }
        }
    }
}

@Suite struct RunFlagsSpecTests {
    /// Every flag's text becomes a typed value; the engine gets no string to parse.
    @Test func flagsBecomeATypedSpec() throws {
        var f = RunFlags(image: "busybox")
        f.command = ["sh", "-c", "true"]
        f.entrypoint = ""
        f.env = ["A=1", "HAKO_SPEC_TEST_UNSET_VARIABLE"]
        f.labels = ["a=b", "flag"]
        f.restart = "on-failure:3"
        f.stopSignal = "SIGUSR1"
        f.logOptions = ["max-size=1m", "max-file=2", "labels=a"]
        f.expose = ["80", "53/UDP"]
        f.storage.volumes = ["data:/data"]
        f.storage.tmpfs = ["/run:size=1m"]
        f.isolation.memory = "1.5g"
        f.isolation.cpus = "0.5"
        f.isolation.pidsLimit = 0
        f.isolation.cpuShares = 0
        f.isolation.sysctls = ["net/core/somaxconn=1024"]
        f.isolation.ulimits = ["nofile=1024:2048", "nofile=10"]
        f.isolation.securityOpt = ["no-new-privileges"]
        f.isolation.deviceCgroupRules = ["c 189:* rwm"]
        let s = try f.spec()
        #expect(s.process.entrypoint == [] && s.process.command == ["sh", "-c", "true"])
        #expect(s.process.env == ["A=1"], "an unset variable passed through is dropped")
        #expect(s.labels == ["a": "b", "flag": ""])
        #expect(s.restart == .onFailure(maxRetries: 3) && s.stopSignal == 10)
        #expect(s.log.maxSize == 1 << 20 && s.log.maxFiles == 2 && s.log.attributes == ["labels": "a"])
        #expect(s.expose == ["80/tcp", "53/udp"])
        #expect(s.mounts.map(\.target) == ["/data", "/run"] && s.mounts[1].tmpfsSize == 1 << 20)
        #expect(s.resources.memory == 3 << 29 && s.resources.nanoCPUs == 500_000_000, "\"1.5g\" keeps ByteSize's rule")
        #expect(s.resources.pidsLimit == -1 && s.resources.cpuShares == nil)
        #expect(s.isolation.sysctls == [.init(key: "net.core.somaxconn", value: "1024")])
        #expect(s.isolation.ulimits.map(\.soft) == [1024, 10], "the engine keeps the last of a name")
        #expect(s.isolation.noNewPrivileges && s.isolation.securityOpt == ["no-new-privileges"] && s.isolation.seccomp == .default)
        #expect(s.isolation.deviceCgroupRules.count == 1 && s.isolation.userns == nil)
    }

    @Test func badTextIsRefusedWithTheFlagsWords() {
        func fails(_ change: (inout RunFlags) -> Void, _ message: String) {
            var f = RunFlags(image: "busybox")
            change(&f)
            do { _ = try f.spec(); Issue.record("accepted: \(message)") } catch let e as HakoError {
                #expect(e.message == message)
            } catch { Issue.record("\(error)") }
        }
        fails({ $0.env = ["=x"] }, "invalid environment variable \"=x\"")
        fails({ $0.labels = ["=x"] }, "invalid label \"=x\"")
        fails({ $0.stopSignal = "SIGNOPE" }, "invalid stop signal \"SIGNOPE\"")
        fails({ $0.logOptions = ["max-size=1"] }, "invalid log option max-size=1 (at least 4k)")
        fails({ $0.logOptions = ["colour=red"] }, "unknown log option \"colour\" (supported: max-size, max-file, labels, labels-regex, env, env-regex)")
        fails({ $0.expose = ["http"] }, "invalid --expose \"http\" (expected PORT[/tcp|/udp])")
        fails({ $0.isolation.memory = "lots" }, "invalid --memory \"lots\": expected a size such as 512m or 1g (below 8 EiB)")
        fails({ $0.isolation.cpuShares = -5 }, "invalid --cpu-shares -5: the range is 2 to 262144")
        fails({ $0.isolation.blkioWeight = 5 }, "invalid --blkio-weight 5: the range is 10 to 1000")
        fails({ $0.isolation.userns = "keep-id" }, "invalid --userns \"keep-id\": expected host, auto or auto:size=N")
        fails({ $0.isolation.securityOpt = ["seccomp=/no/such/profile.json"] }, "cannot read seccomp profile /no/such/profile.json")
        fails({ $0.envFiles = ["/no/such/env-file"] }, "cannot read env file /no/such/env-file")
    }
}
