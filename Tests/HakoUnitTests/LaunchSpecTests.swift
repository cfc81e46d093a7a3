import CHakoShim
@testable import HakoRuntime
import HakoSystem
import Testing

/// Parses a blob with the C parser the monitor and the init path use.
func parseWithC(_ blob: [UInt8]) -> (ok: Bool, spec: hako_spec, message: String, keep: [UInt8]) {
    let p = UnsafeMutablePointer<hako_spec>.allocate(capacity: 1)
    defer { p.deallocate() }
    var msg = [CChar](repeating: 0, count: 256)
    let rc = blob.withUnsafeBytes { hako_spec_parse($0.baseAddress, $0.count, p, &msg, msg.count) }
    return (rc == 0, p.pointee, cString(msg), blob)
}

func str(_ p: UnsafePointer<CChar>?) -> String? { p.map { String(cString: $0) } }

@Suite struct LaunchSpecTests {
    func sample() -> (RuntimeSpec, MonitorSpec) {
        var proc = ProcessSpec(args: ["/bin/sh", "-c", "echo hi"], env: ["PATH=/bin", "A=b c"])
        proc.cwd = "/work"
        proc.uid = 1000
        proc.gid = 100
        proc.groups = [29, 44]
        proc.terminal = TerminalSize(rows: 40, cols: 120)
        var r = RuntimeSpec(id: "abc", rootfs: "/r/rootfs", process: proc)
        r.hostname = "box"
        r.overlay = OverlayRoot(lower: ["/l2", "/l:1"], upper: "/u", work: "/w")
        r.mounts = [.filesystem("proc", at: "/proc", flags: HAKO_MS_NOSUID), .bind("/src", at: "/dst", readOnly: true), .symlink("/dev/fd", pointingTo: "/proc/self/fd")]
        r.devices = [DeviceNode(path: "/dev/null", type: UInt8(ascii: "c"), major: 1, minor: 3, mode: 0o666)]
        r.namespaces.pid = .host
        r.namespaces.cgroup = .new
        r.namespaces.network = .path("/run/netns/x")
        r.cgroup.unifiedDir = "/sys/fs/cgroup/unified/hako/abc"
        r.cgroup.procsFiles = ["/sys/fs/cgroup/cpu/hako/abc/cgroup.procs"]
        r.cgroup.removeDirs = ["/sys/fs/cgroup/cpu/hako/abc", "/sys/fs/cgroup/cpu/hako"]
        r.cgroup.freezer = "/sys/fs/cgroup/freezer/hako/abc/freezer.state"
        r.cgroup.killFile = "/sys/fs/cgroup/unified/hako/abc/cgroup.kill"
        var m = MonitorSpec(statePath: "/r/state.json", runDir: "/run/hako/containers/abc")
        m.logPath = "/r/container.log"
        m.logMaxSize = 1 << 20
        m.logMaxFiles = 3
        m.restart = .onFailure(maxRetries: 5)
        m.removeDirs = ["/r"]
        m.removeLinks = ["/names/x"]
        m.stopSignal = 10
        return (r, m)
    }

    @Test func mountPropagationAndAppArmorReachTheCParser() {
        var (r, m) = sample()
        r.mounts[1].propagation = HAKO_MS_SHARED | HAKO_MS_REC
        r.process.apparmorProfile = "hako-test"
        let (ok, s, msg, keep) = parseWithC(LaunchSpecEncoder.encode(r, monitor: m))
        withExtendedLifetime(keep) {
            #expect(ok, "\(msg)")
            #expect(s.mounts[1].propagation == HAKO_MS_SHARED | HAKO_MS_REC)
            #expect(s.mounts[0].propagation == 0, "a mount without one keeps what it is made with")
            #expect(str(s.apparmor) == "hako-test")
        }
        let (plain, p, _, keep2) = parseWithC(LaunchSpecEncoder.encode(sample().0, monitor: m))
        withExtendedLifetime(keep2) { #expect(plain && p.apparmor == nil) }
        #expect(String(cString: hako_stage_name(Int32(HAKO_STAGE_APPARMOR.rawValue))) == "apparmor")
    }

    @Test func roundTripsThroughTheCParser() {
        let (r, m) = sample()
        let blob = LaunchSpecEncoder.encode(r, monitor: m)
        let (ok, s, msg, _) = parseWithC(blob)
        #expect(ok, "\(msg)")
        #expect(s.argc == 3)
        #expect(str(s.argv[0]) == "/bin/sh")
        #expect(str(s.argv[2]) == "echo hi")
        #expect(s.envc == 2)
        #expect(str(s.envp[1]) == "A=b c")
        #expect(str(s.cwd) == "/work")
        #expect(s.uid == 1000 && s.gid == 100 && s.ngroups == 2 && s.groups[1] == 44)
        #expect(s.tty == 1 && s.tty_rows == 40 && s.tty_cols == 120)
        #expect(str(s.hostname) == "box")
        #expect(str(s.overlay) == "lowerdir=/l2:/l\\:1,upperdir=/u,workdir=/w")
        #expect(s.clone_flags & HAKO_CLONE_NEWPID == 0)
        #expect(s.clone_flags & HAKO_CLONE_NEWNS != 0)
        #expect(s.clone_flags & HAKO_CLONE_NEWNET == 0)
        #expect(s.nnsjoin == 1 && str(s.nsjoin.0.path) == "/run/netns/x" && UInt64(s.nsjoin.0.type) == HAKO_CLONE_NEWNET)
        #expect(s.cgroupns == 1)
        #expect(s.nmounts == 3)
        #expect(str(s.mounts[1].source) == "/src" && str(s.mounts[1].target) == "/dst")
        #expect(s.mounts[1].flags & HAKO_MS_RDONLY != 0)
        #expect(s.mounts[2].kind == UInt32(HAKO_MNT_SYMLINK.rawValue))
        #expect(s.ndevices == 1 && s.devices[0].major == 1 && s.devices[0].minor == 3 && str(s.devices[0].path) == "/dev/null")
        #expect(str(s.cgroup_dir) == "/sys/fs/cgroup/unified/hako/abc")
        #expect(s.ncgroup_procs == 1)
        #expect(s.ncgroup_rmdir == 2)
        #expect(s.freezer_v2 == 0)
        #expect(s.restart_policy == UInt32(HAKO_RESTART_ON_FAILURE.rawValue) && s.restart_max == 5)
        #expect(s.log_max_size == 1 << 20 && s.log_max_files == 3)
        #expect(s.stop_signal == 10)
        #expect(s.nremove_dirs == 1 && s.nremove_files == 1)
    }

    /// Files from memory (secrets, configs): owner, mode, target and the bytes (any bytes: NULs too) reach the C parser.
    @Test func filesFromMemoryReachTheCParser() {
        var (r, m) = sample()
        r.files = [ContainerFile(target: "/run/secrets/db", uid: 100, gid: 101, mode: 0o400, content: [0x73, 0, 0x65, 0x63, 0xff]),
                   ContainerFile(target: "/etc/app.conf", content: [])]
        let (ok, s, msg, keep) = parseWithC(LaunchSpecEncoder.encode(r, monitor: m))
        withExtendedLifetime(keep) {
            #expect(ok, "\(msg)")
            #expect(s.nfiles == 2)
            let f = s.files[0]
            #expect(str(f.target) == "/run/secrets/db" && f.uid == 100 && f.gid == 101 && f.mode == 0o400 && f.len == 5)
            #expect(Array(UnsafeBufferPointer(start: f.data, count: Int(f.len))) == [0x73, 0, 0x65, 0x63, 0xff])
            #expect(str(s.files[1].target) == "/etc/app.conf" && s.files[1].len == 0 && s.files[1].mode == 0o444)
        }
        // A relative target or a mode beyond 07777 is refused.
        for bad in [ContainerFile(target: "run/x", content: [1]), ContainerFile(target: "/x", mode: 0o10000, content: [1])] {
            r.files = [bad]
            #expect(!parseWithC(LaunchSpecEncoder.encode(r, monitor: m)).ok)
        }
    }

    /// The wire format, byte for byte: magic, then {u16 tag, u32 length, payload}.
    @Test func goldenBytes() {
        var proc = ProcessSpec(args: ["true"], env: [])
        proc.cwd = "/"
        var r = RuntimeSpec(id: "i", rootfs: "/r", process: proc)
        r.namespaces = Namespaces()
        r.namespaces.mount = .host
        r.namespaces.pid = .host
        r.namespaces.network = .host
        r.namespaces.uts = .host
        r.namespaces.ipc = .host
        let blob = LaunchSpecEncoder.encode(r, monitor: nil)
        var expected: [UInt8] = Array("HAKOSPEC".utf8)
        func rec(_ tag: UInt16, _ p: [UInt8]) {
            expected += [UInt8(tag & 0xff), UInt8(tag >> 8)]
            let n = UInt32(p.count)
            expected += [UInt8(n & 0xff), UInt8((n >> 8) & 0xff), UInt8((n >> 16) & 0xff), UInt8(n >> 24)]
            expected += p
        }
        rec(1, [UInt8(ascii: "i"), 0])                     // id
        rec(2, [0, 0, 0, 0, 0, 0, 0, 0])                   // clone flags: none
        rec(3, Array("/r".utf8) + [0])                     // rootfs
        rec(7, Array("true".utf8) + [0])                   // arg
        rec(9, [UInt8(ascii: "/"), 0])                     // cwd
        rec(10, [0, 0, 0, 0])                              // uid
        rec(11, [0, 0, 0, 0])                              // gid
        let prop = HAKO_MS_REC | HAKO_MS_SLAVE
        rec(28, (0..<8).map { UInt8((prop >> (8 * UInt64($0))) & 0xff) })  // propagation
        #expect(blob == expected)
    }

    @Test func theParserRefusesBrokenBlobs() {
        let (r, m) = sample()
        let blob = LaunchSpecEncoder.encode(r, monitor: m)
        #expect(!parseWithC(Array(blob.prefix(7))).ok)                     // no magic
        #expect(!parseWithC(Array(blob.prefix(blob.count - 3))).ok)       // truncated record
        var badTag = Array("HAKOSPEC".utf8)
        badTag += [0xff, 0x7f, 0, 0, 0, 0]
        #expect(!parseWithC(badTag).ok)                                     // unknown record
        var unterminated = Array("HAKOSPEC".utf8)
        unterminated += [7, 0, 3, 0, 0, 0] + Array("abc".utf8)              // arg without NUL
        #expect(!parseWithC(unterminated).ok)
        // Random garbage after the magic never crashes the parser.
        for seed in 0..<200 {
            var g = SplitMix(seed: UInt64(seed))
            var junk = Array("HAKOSPEC".utf8)
            for _ in 0..<Int(g.next() % 300) { junk.append(UInt8(truncatingIfNeeded: g.next())) }
            _ = parseWithC(junk)
        }
    }

    /// The tables are sized to the blob: 10,000 arguments, 5,000 variables,
    /// 300 mounts, 100 groups, 20 paths to remove (more than the fixed
    /// 1,024/256/64/8 the parser once had).
    @Test func longCommandLinesParseWhole() {
        var (r, m) = sample()
        r.process.args = ["/bin/sh"] + (1...10_000).map { "a\($0)" }
        r.process.env = (1...5_000).map { "V\($0)=\($0)" }
        r.process.groups = (1...100).map { UInt32($0) }
        r.mounts = (0..<300).map { .bind("/src\($0)", at: "/dst\($0)", readOnly: false) }
        m.removeDirs = (0..<20).map { "/r\($0)" }
        let blob = LaunchSpecEncoder.encode(r, monitor: m)
        let (ok, s, msg, _) = parseWithC(blob)
        defer { withExtendedLifetime(blob) {} }  // the spec's strings point into it
        #expect(ok, "\(msg)")
        #expect(s.argc == 10_001 && str(s.argv[10_000]) == "a10000" && s.argv[10_001] == nil)
        #expect(s.envc == 5_000 && str(s.envp[4_999]) == "V5000=5000" && s.envp[5_000] == nil)
        #expect(s.nmounts == 300 && str(s.mounts[299].target) == "/dst299")
        #expect(s.ngroups == 100 && s.groups[99] == 100)
        #expect(s.nremove_dirs == 20 && str(s.remove_dirs[19]) == "/r19")
    }

    @Test func overlayDataEscapesSeparators() {
        let o = OverlayRoot(lower: ["/a,b", "/c\\d"], upper: "/u:x", work: "/w")
        #expect(o.mountData == "lowerdir=/a\\,b:/c\\\\d,upperdir=/u\\:x,workdir=/w")
    }

    @Test func aVolatileOverlayIsSaidTwiceToTheInit() {
        var (r, m) = sample()
        let (_, plain, _, keep) = parseWithC(LaunchSpecEncoder.encode(r, monitor: m))
        withExtendedLifetime(keep) { #expect(plain.overlay_volatile == 0) }
        r.overlay?.volatile = true
        // In the mount data (its length counts against the page limit), and
        // as a record, so the init can mount without it where the kernel
        // has no such option, and set it on a detached overlay.
        #expect(r.overlay?.mountData == "lowerdir=/l2:/l\\:1,upperdir=/u,workdir=/w,volatile")
        let (ok, s, msg, keep2) = parseWithC(LaunchSpecEncoder.encode(r, monitor: m))
        #expect(ok, "\(msg)")
        withExtendedLifetime(keep2) {
            #expect(s.overlay_volatile == 1)
            #expect(str(s.overlay) == "lowerdir=/l2:/l\\:1,upperdir=/u,workdir=/w,volatile")
        }
        r.overlay?.detached = true
        let (ok2, d, msg2, keep3) = parseWithC(LaunchSpecEncoder.encode(r, monitor: m))
        #expect(ok2, "\(msg2)")
        withExtendedLifetime(keep3) { #expect(d.detached_overlay == 1 && d.overlay_volatile == 1 && d.overlay == nil) }
    }

    @Test func restartPolicies() throws {
        #expect(try RestartPolicy(parsing: "no") == .no)
        #expect(try RestartPolicy(parsing: "always") == .always)
        #expect(try RestartPolicy(parsing: "unless-stopped") == .unlessStopped)
        #expect(try RestartPolicy(parsing: "on-failure") == .onFailure(maxRetries: 0))
        #expect(try RestartPolicy(parsing: "on-failure:3") == .onFailure(maxRetries: 3))
        for bad in ["", "sometimes", "on-failure:x", "on-failure:-1", "always:2", "no:1"] {
            #expect(throws: HakoError.self) { try RestartPolicy(parsing: bad) }
        }
        #expect(RestartPolicy.onFailure(maxRetries: 2).description == "on-failure:2")
    }
}

/// A tiny deterministic generator for fuzz-style tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E3779B97F4A7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}
