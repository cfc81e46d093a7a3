import CHakoShim
@testable import HakoOCIRuntime
@testable import HakoRuntime
import HakoSecurity
import HakoSystem
import Testing

@Suite struct OCICgroupTests {
    @Test func cgroupsPathsResolveLikeRunc() throws {
        #expect(try OCICgroupPath.resolve("/default/abc", id: "abc", systemd: false) == ("default", "abc"))
        #expect(try OCICgroupPath.resolve(nil, id: "abc", systemd: false) == ("", "abc"))
        #expect(try OCICgroupPath.resolve("a/b/", id: "x", systemd: false) == ("a", "b"))
        #expect(try OCICgroupPath.resolve("machine-pods.slice:libpod:abc", id: "abc", systemd: true)
                == ("machine.slice/machine-pods.slice", "libpod-abc.scope"))
        #expect(try OCICgroupPath.resolve(nil, id: "abc", systemd: true) == ("system.slice", "hako-runtime-abc.scope"))
        #expect(try OCICgroupPath.resolve(":p:n", id: "n", systemd: true) == ("system.slice", "p-n.scope"))
        #expect(throws: HakoError.self) { try OCICgroupPath.resolve("/a/../b", id: "x", systemd: false) }
        #expect(throws: HakoError.self) { try OCICgroupPath.resolve("no-colons", id: "x", systemd: true) }
        #expect(throws: HakoError.self) { try OCICgroupPath.expandSlice("a--b.slice") }
        #expect(try OCICgroupPath.expandSlice("-.slice") == "")
    }

    func resources(_ text: String) throws -> OCI.Resources { try OCI.decodeResources(Array(text.utf8)) }

    @Test func resourcesBecomeV1Files() throws {
        let r = try resources(#"""
        {"memory":{"limit":67108864,"reservation":33554432,"swap":134217728,"swappiness":10,"disableOOMKiller":true},
         "cpu":{"shares":512,"quota":50000,"period":100000,"realtimePeriod":1000000,"realtimeRuntime":950000,"cpus":"0","mems":"0"},
         "pids":{"limit":32},
         "blockIO":{"weight":300,"leafWeight":200,"weightDevice":[{"major":8,"minor":0,"weight":500}],
                    "throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}]}}
        """#)
        let w = try r.cgroupWrites(version: 1).map(\.description)
        #expect(w == [
            "linux.resources.memory.reservation: memory.soft_limit_in_bytes=33554432",
            "linux.resources.memory.limit: memory.limit_in_bytes=67108864",
            "linux.resources.memory.swap: memory.memsw.limit_in_bytes=134217728",
            "linux.resources.memory.swappiness: memory.swappiness=10",
            "linux.resources.memory.disableOOMKiller: memory.oom_control=1",
            "linux.resources.cpu.shares: cpu.shares=512",
            "linux.resources.cpu.period: cpu.cfs_period_us=100000",
            "linux.resources.cpu.quota: cpu.cfs_quota_us=50000",
            "linux.resources.cpu.realtimePeriod: cpu.rt_period_us=1000000",
            "linux.resources.cpu.realtimeRuntime: cpu.rt_runtime_us=950000",
            "linux.resources.cpu.cpus: cpuset.cpus=0",
            "linux.resources.cpu.mems: cpuset.mems=0",
            "linux.resources.pids.limit: pids.max=32",
            "linux.resources.blockIO.weight: blkio.weight=300",
            "linux.resources.blockIO.leafWeight: blkio.leaf_weight=200",
            "linux.resources.blockIO.weightDevice: blkio.weight_device=8:0 500",
            "linux.resources.blockIO.throttleReadBpsDevice: blkio.throttle.read_bps_device=8:0 1048576",
        ])
    }

    @Test func resourcesBecomeV2FilesOrNamedRefusals() throws {
        let r = try resources(#"{"memory":{"limit":67108864,"swap":134217728},"cpu":{"shares":1024,"quota":50000,"period":100000},"pids":{"limit":-1},"unified":{"memory.high":"50000000"}}"#)
        #expect(try r.cgroupWrites(version: 2).map(\.description) == [
            "linux.resources.memory.limit: memory.max=67108864",
            "linux.resources.memory.swap: memory.swap.max=67108864",
            "linux.resources.cpu.shares: cpu.weight=39",
            "linux.resources.cpu.quota: cpu.max=50000 100000",
            "linux.resources.pids.limit: pids.max=max",
            "linux.resources.unified.memory.high: memory.high=50000000",
        ])
        func refusal(_ text: String) -> String {
            do { _ = try resources(text).cgroupWrites(version: 2); return "" } catch { return "\(error)" }
        }
        #expect(refusal(#"{"memory":{"swappiness":5}}"#).contains("linux.resources.memory.swappiness"))
        #expect(refusal(#"{"memory":{"kernel":5}}"#).contains("linux.resources.memory.kernel"))
        #expect(refusal(#"{"network":{"classID":5}}"#).contains("linux.resources.network.classID"))
        #expect(refusal(#"{"unified":{"../x":"1"}}"#).contains("unified"))
    }

    @Test func deviceRulesKeepOrderAndWildcards() throws {
        let r = try resources(#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"},{"allow":true,"type":"b","major":8,"access":"m"}]}"#)
        #expect(try r.deviceRules().map(\.description) == ["a", "c 1:3 rw", "b 8:* m"])
        #expect(try r.deviceRules().first?.allow == false)
    }
}

@Suite struct OCIBundleTests {
    @Test func mountOptionsSplitIntoFlagsPropagationAttributesAndData() throws {
        let p = try MountOptions.parse(["nosuid", "noexec", "ro", "rw", "rprivate", "rro", "mode=755", "size=64k"], field: "m")
        #expect(p.flags == MountOptions.MS_NOSUID | MountOptions.MS_NOEXEC)
        #expect(p.propagation == MountOptions.MS_PRIVATE | MountOptions.MS_REC)
        #expect(p.attributes == MountAttributes(set: MountAttributes.readOnly, clear: 0))
        #expect(p.data == ["mode=755", "size=64k"])
        #expect(try MountOptions.parse(["rbind"], field: "m").bind)
        #expect(throws: HakoError.self) { try MountOptions.parse(["idmap"], field: "m") }
        #expect(throws: HakoError.self) { try MountOptions.parse(["tmpcopyup"], field: "m") }
    }

    func plan(_ text: String, cgroupVersion: Int = 1) throws -> BundlePlan {
        let spec = try OCI.decode(Array(text.utf8))
        return try BundlePlan.make(spec, id: "c1", bundle: "/b", rootfs: "/b/rootfs", placement: CgroupPlacement(),
                                   cgroups: CgroupView(hierarchies: [.init(name: "memory", directory: "/sys/fs/cgroup/memory/c1")],
                                                      aliases: [.init(name: "cpuacct", target: "cpu,cpuacct")]),
                                   cgroupVersion: cgroupVersion, compiler: SeccompCompiler(cacheDirectory: nil), options: options)
    }

    /// Planned as by a runtime holding every capability, whatever this test process holds.
    private var options: BundlePlan.Options {
        var o = BundlePlan.Options()
        o.ownBounding = UInt64.max >> (64 - UInt64(CapabilityNames.count))
        return o
    }

    @Test func anAppArmorProfileIsAppliedWhereAppArmorIsOn() throws {
        var p = OCI.Process()
        p.args = ["sh"]
        p.apparmorProfile = "docker-default"
        let compiler = SeccompCompiler(cacheDirectory: nil)
        #expect(try BundlePlan.processSpec(p, seccomp: nil, compiler: compiler, appArmorEnabled: true).apparmorProfile == "docker-default")
        do {
            _ = try BundlePlan.processSpec(p, seccomp: nil, compiler: compiler, appArmorEnabled: false)
            Issue.record("a profile was accepted on a host without AppArmor")
        } catch {
            #expect("\(error)".contains("process.apparmorProfile") && "\(error)".contains("not enabled"), "\(error)")
        }
        p.apparmorProfile = "unconfined"
        #expect(try BundlePlan.processSpec(p, seccomp: nil, compiler: compiler, appArmorEnabled: false).apparmorProfile == nil,
                "unconfined is what every process is without AppArmor")
        p.apparmorProfile = ""
        #expect(try BundlePlan.processSpec(p, seccomp: nil, compiler: compiler, appArmorEnabled: true).apparmorProfile == nil)
    }

    @Test func configBecomesTheLaunchSpec() throws {
        let p = try plan(#"""
        {"ociVersion":"1.0.2","process":{"args":["sh"],"cwd":"/","user":{"uid":1,"gid":2,"additionalGids":[3],"umask":63},
          "capabilities":{"bounding":["CAP_KILL","CAP_CHOWN"],"effective":["CAP_KILL"],"permitted":["CAP_KILL"],"ambient":["CAP_KILL"]},
          "rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":512}],"noNewPrivileges":true},
         "root":{"path":"rootfs","readonly":true},"hostname":"h",
         "mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["ro"]}],
         "hooks":{"createContainer":[{"path":"/bin/true","timeout":3}]},
         "linux":{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"uts"},{"type":"network","path":"/run/netns/n"},{"type":"time"}],
           "timeOffsets":{"monotonic":{"secs":10,"nanosecs":5}},
           "devices":[{"type":"c","path":"/dev/fuse","major":10,"minor":229}],"rootfsPropagation":"rshared",
           "personality":{"domain":"LINUX32"},"resources":{"devices":[{"allow":false,"access":"rwm"}]}}}
        """#)
        let r = p.runtime
        #expect(r.process.uid == 1 && r.process.gid == 2 && r.process.groups == [3])
        #expect(r.process.capabilities?.bounding == UInt64(1) << 5 | UInt64(1) << 0)
        #expect(r.process.capabilities?.ambient == 0, "ambient needs inheritable")
        #expect(r.process.rlimits == [Rlimit(resource: 7, soft: 512, hard: 1024)])
        #expect(r.namespaces.pid == .new && r.namespaces.ipc == .host && r.namespaces.network == .path("/run/netns/n"))
        #expect(r.hostname == "h" && r.readonlyRoot)
        #expect(r.propagation == MountOptions.MS_SHARED | MountOptions.MS_REC)
        #expect(r.initOptions.umask == 63 && r.initOptions.personality == 8 && r.initOptions.keyring == "_ses.c1")
        #expect(r.initOptions.timeOffsets?.monotonic.0 == 10 && r.initOptions.timeOffsets?.monotonic.1 == 5)
        #expect(r.initOptions.hookSync && r.initOptions.hooks.first?.timeout == 3)
        #expect(r.devices.map(\.path) == ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/fuse"])
        // The cgroup mount: a tmpfs, the container's directories read-only, the
        // aliases, then the tmpfs itself made read-only.
        #expect(r.mounts.map(\.target).prefix(5) == ["/proc", "/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup"])
        #expect(r.mounts[2].source == "/sys/fs/cgroup/memory/c1" && r.mounts[2].flags & MountOptions.MS_RDONLY != 0)
        #expect(r.mounts[3].kind == .symlink && r.mounts[3].source == "cpu,cpuacct")
        #expect(r.mounts[4].flags & (MountOptions.MS_REMOUNT | MountOptions.MS_RDONLY) == MountOptions.MS_REMOUNT | MountOptions.MS_RDONLY)
        #expect(r.mounts.contains { $0.target == "/dev/ptmx" && $0.source == "pts/ptmx" })
        // Device rules: the config's, the explicit device, then runc's defaults.
        #expect(p.deviceRules.first == .denyAll)
        #expect(p.deviceRules.contains(DeviceRule(.char, 10, 229)))
        #expect(p.deviceRules.last == DeviceRule(.char, 10, 200))
    }

    @Test func unsupportedChoicesNameTheirField() {
        func error(_ text: String) -> String {
            do { _ = try plan(text); return "" } catch { return "\(error)" }
        }
        let base = #""process":{"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"}"#
        #expect(error(#"{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"/","terminal":true},"root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"pid"}]}}"#).contains("process.terminal"))
        #expect(error(#"{"ociVersion":"1.0.0",\#(base),"hostname":"x","linux":{"namespaces":[{"type":"mount"}]}}"#).contains("hostname"))
        #expect(error(#"{"ociVersion":"1.0.0",\#(base),"linux":{"namespaces":[{"type":"mount"},{"type":"user"}]}}"#).contains("linux.uidMappings"))
        #expect(error(#"{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"/","rlimits":[{"type":"RLIMIT_BOGUS","soft":1,"hard":1}]},"root":{"path":"r"},"linux":{"namespaces":[{"type":"mount"}]}}"#).contains("process.rlimits[0].type"))
        #expect(error(#"{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"/","capabilities":{"bounding":["CAP_NOPE"]}},"root":{"path":"r"},"linux":{"namespaces":[{"type":"mount"}]}}"#).contains("process.capabilities.bounding"))
        #expect(error(#"{"ociVersion":"1.0.0",\#(base),"mounts":[{"destination":"/x","type":"bind","source":"/no/such/source"}],"linux":{"namespaces":[{"type":"mount"}]}}"#).contains("mounts[0].source"))
        #expect(error(#"{"ociVersion":"1.0.0",\#(base),"linux":{"namespaces":[{"type":"mount"}],"seccomp":{"defaultAction":"SCMP_ACT_ERRNO","flags":["SECCOMP_FILTER_FLAG_BOGUS"]}}}"#).contains("linux.seccomp"))
    }

    @Test func theDefaultSpecIsAValidConfig() throws {
        let spec = try OCI.decode(Array(OCIRuntime.defaultSpec().serialized().utf8))
        #expect(spec.process?.args == ["sh"])
        #expect(spec.linux.namespaces.count == 6)
    }

    @Test func featuresFollowTheFeaturesDocument() throws {
        let f = OCIRuntime(root: "/nonexistent", cgroupHost: CgroupHost(unified: nil, v1: [])).features()
        #expect(f["ociVersionMax"]?.string == OCI.specVersion)
        #expect(f["hooks"]?.array?.count == 6)
        #expect(f["linux"]?["capabilities"]?.array?.contains(.string("CAP_SYS_ADMIN")) == true)
        #expect(f["mountOptions"]?.array?.contains(.string("rro")) == true)
    }
}

@Suite struct OCIStateTests {
    func record() -> ContainerRecord {
        ContainerRecord(id: "c1", bundle: "/b", rootfs: "/b/rootfs", pid: 42, startTime: 123, created: "2026-11-29T00:00:00.000000000Z",
                        owner: "", annotations: [("k", "v")], cgroupParent: "default", cgroupLeaf: "c1",
                        poststart: [], poststop: [OCI.Hook(path: "/bin/true", args: ["true", "x"], env: ["A=b"], timeout: 5)])
    }

    @Test func recordRoundTrips() throws {
        let r = try ContainerRecord(json: try JSON.parse(record().json().serialized()))
        #expect(r.id == "c1" && r.pid == 42 && r.startTime == 123 && r.cgroupParent == "default")
        #expect(r.poststop.first?.args == ["true", "x"] && r.poststop.first?.timeout == 5)
        #expect(r.annotations.first?.1 == "v")
    }

    @Test func ociStateHasTheSpecFieldsAndNoPidWhenStopped() {
        let s = record().ociState(.running)
        #expect(s["status"]?.string == "running" && s["pid"]?.int64 == 42 && s["bundle"]?.string == "/b")
        #expect(s["annotations"]?["k"]?.string == "v")
        #expect(record().ociState(.stopped)["pid"]?.int64 == 0)
    }

    @Test func procStatSurvivesOddCommandNames() {
        let line = "77 (we ird) na)me) S 1 77 77 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 100"
        let s = ProcessProbe.parseStat(line)
        #expect(s?.state == "S" && s?.startTime == 98765)
        #expect(ProcessProbe.parseStat("garbage") == nil)
    }

    @Test func idsFollowRuncsRule() {
        #expect((try? OCIRuntime.validate(id: "abc-1_2.3+x")) != nil)
        for bad in ["", ".hidden", "a/b", "a b", String(repeating: "x", count: 1025)] {
            #expect((try? OCIRuntime.validate(id: bad)) == nil, "\(bad)")
        }
    }

    @Test func logLinesAreWhatContainerdAndLogrusRead() throws {
        let t = Timestamp(seconds: 0, nanoseconds: 5)
        let j = RuntimeLog(format: .json).line("error", "bad \"x\"", time: t)
        let parsed = try JSON.parse(String(j.dropLast()))
        #expect(parsed["level"]?.string == "error" && parsed["msg"]?.string == "bad \"x\"" && j.hasSuffix("\n"))
        #expect(RuntimeLog(format: .text).line("warning", "a b", time: t) == "time=\"1970-01-01T00:00:00.000000005Z\" level=warning msg=\"a b\"\n")
    }
}

@Suite struct InitOptionsRecordTests {
    @Test func initOptionsReachTheCParser() {
        var r = RuntimeSpec(id: "x", rootfs: "/r", process: ProcessSpec(args: ["/bin/sh"], env: []))
        var m = Mount.bind("/a", at: "/b")
        m.recursiveAttributes = MountAttributes(set: MountAttributes.readOnly, clear: MountAttributes.noSUID)
        r.mounts = [m]
        r.initOptions.execFifo = "/run/x/exec.fifo"
        r.initOptions.preserveFds = 2
        r.initOptions.noPivot = true
        r.initOptions.domainname = "dom"
        r.initOptions.personality = 8
        r.initOptions.umask = 0o027
        r.initOptions.timeOffsets = ((-5, 1), (7, 2))
        r.initOptions.hooks = [InitHook(kind: .startContainer, path: "/bin/hook", args: ["hook", "a"], env: ["K=V"], timeout: 9),
                               InitHook(kind: .createContainer, path: "/bin/h2", args: [], env: [], timeout: nil)]
        r.initOptions.hookSync = true
        r.initOptions.seccompFlags = 2
        r.initOptions.keyring = "_ses.x"
        let (ok, s, msg, _) = parseWithC(LaunchSpecEncoder.encode(r, monitor: nil))
        #expect(ok, "\(msg)")
        #expect(str(s.exec_fifo) == "/run/x/exec.fifo" && s.preserve_fds == 2 && s.no_pivot == 1)
        #expect(str(s.domainname) == "dom" && s.has_personality == 1 && s.personality == 8 && s.umask == 0o027)
        #expect(s.has_time_offsets == 1 && s.time_offsets.0 == -5 && s.time_offsets.2 == 7)
        #expect(s.nhooks == 2 && s.hooks.0.kind == 1 && s.hooks.0.timeout == 9 && str(s.hooks.0.path) == "/bin/hook")
        #expect(str(s.hooks.0.argv.1) == "a" && str(s.hooks.0.envp.0) == "K=V" && s.hooks.0.envp.1 == nil)
        #expect(str(s.hooks.1.argv.0) == "/bin/h2", "no args: argv[0] is the path")
        #expect(s.hook_sync == 1 && s.seccomp_flags == 2 && str(s.keyring) == "_ses.x")
        #expect(s.mounts[0].attr_set == 1 && s.mounts[0].attr_clr == 2)
    }

    @Test func malformedHookRecordsAreRefused() {
        var bad = Array("HAKOSPEC".utf8)
        let payload: [UInt8] = le32(7) + le32(0) + le32(0) + Array("/x".utf8) + [0]  // kind 7 does not exist
        bad += withUnsafeBytes(of: UInt16(HAKO_T_HOOK.rawValue)) { Array($0) } + withUnsafeBytes(of: UInt32(payload.count)) { Array($0) } + payload
        #expect(!parseWithC(bad).ok)
    }
}
