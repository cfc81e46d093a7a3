#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// The binaries under test: HAKO_BIN_DIR (set by `make test`), else the package's release build.
enum Binaries {
    static let dir: String = {
        if let d = ProcessInfo.processInfo.environment["HAKO_BIN_DIR"], !d.isEmpty { return d }
        let here = URL(fileURLWithPath: #filePath)
        return here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/release").path
    }()
    static var hako: String { dir + "/hako" }
    static var monitor: String { dir + "/hako-monitor" }
}

struct Output {
    var status: Int32
    var stdout: String
    var stderr: String
    var out: String { stdout.trimmed }
}

/// Runs a program with a time bound; stdout/stderr captured through files.
enum Subprocess {
    static func run(_ argv: [String], env: [String: String] = [:], stdin: String? = nil, timeout: Double = 60) -> Output {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hako-sub-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let outPath = dir + "/out", errPath = dir + "/err", inPath = dir + "/in"
        FileManager.default.createFile(atPath: inPath, contents: Data((stdin ?? "").utf8))
        let pid = spawn(argv, env: env, stdin: stdin == nil ? "/dev/null" : inPath, stdout: outPath, stderr: errPath)
        let status = pid > 0 ? waitBounded(pid, timeout: timeout) : 127
        let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return Output(status: status, stdout: out, stderr: err)
    }

    /// Starts a program in the background; the caller waits or kills it.
    static func spawn(_ argv: [String], env: [String: String] = [:], stdin: String = "/dev/null", stdout: String = "/dev/null", stderr: String = "/dev/null") -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdin, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in env { environment[k] = v }
        let cargs = argv.map { strdup($0) } + [nil]
        let cenv = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { cargs.forEach { free($0) }; cenv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, nil, cargs, cenv)
        return rc == 0 ? pid : -1
    }

    /// Waits for a child at most `timeout` seconds (then kills it); its exit code as a shell reports it.
    static func waitBounded(_ pid: pid_t, timeout: Double) -> Int32 {
        let deadline = monotonicSeconds() + timeout
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 { return -1 }
            if monotonicSeconds() > deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                return -2
            }
            usleep(2000)
        }
        let sig = status & 0x7f
        return sig == 0 ? (status >> 8) & 0xff : 128 + sig
    }
}

/// A private hako installation for one test suite: its own data root, runtime
/// dir, cgroup parent and network namespace (every hako command runs inside
/// it, so the host's own network is never touched), removed (with every
/// container) when the suite ends.
final class TestHost: @unchecked Sendable {
    let base: String
    let root: String
    let runRoot: String
    let cgroupParent: String
    /// The network namespace this host's commands run in (/run/netns/NAME).
    let netns: String
    /// Whether this host made (and so removes) its network namespace.
    private let ownsNetns: Bool

    /// - Parameter network: share that host's network namespace (e.g. to reach a
    ///   registry listening on its loopback) instead of making a new one.
    init(_ tag: String, sharingNetworkWith network: TestHost? = nil) {
        var template = Array("/tmp/hako-test-\(tag)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        base = made.map { String(cString: $0) } ?? "/tmp/hako-test-\(tag)-\(getpid())"
        root = base + "/root"
        runRoot = base + "/run"
        // Unique per host (a suite makes one per test, and they run in parallel):
        // the temp dir's random suffix. A shared cgroup parent would let one
        // host's clean-up remove another's fresh container cgroups.
        let suffix = base.split(separator: "-").last.map(String.init) ?? "x"
        cgroupParent = "hako-test-\(tag)-\(getpid())-\(suffix)"
        if let other = network {
            netns = other.netns
            ownsNetns = false
            return
        }
        netns = "hako-t-\(tag)-\(suffix)"
        ownsNetns = true
        Subprocess.run(["/usr/bin/ip", "netns", "add", netns])
        Subprocess.run(["/usr/bin/ip", "-n", netns, "link", "set", "lo", "up"])
        // A new namespace copies the host's forwarding setting; start every host from the kernel's default.
        Subprocess.run(["/usr/bin/nsenter", "--net=/run/netns/\(netns)", "/usr/sbin/sysctl", "-q", "-w", "net.ipv4.ip_forward=0"])
    }

    /// Runs a program inside this host's network namespace (only the network: /sys and the cgroups stay visible).
    var prefix: [String] { ["/usr/bin/nsenter", "--net=/run/netns/\(netns)"] }

    var env: [String: String] {
        ["HAKO_ROOT": root, "HAKO_RUN_ROOT": runRoot, "HAKO_CGROUP_PARENT": cgroupParent, "HAKO_MONITOR": Binaries.monitor]
    }

    @discardableResult
    func hako(_ args: String..., stdin: String? = nil, timeout: Double = 60) -> Output {
        hako(args, stdin: stdin, timeout: timeout)
    }

    @discardableResult
    func hako(_ args: [String], stdin: String? = nil, timeout: Double = 60) -> Output {
        Subprocess.run(prefix + [Binaries.hako] + args, env: env, stdin: stdin, timeout: timeout)
    }

    /// The busybox test image, imported into this host when it is made.
    let busybox = "busybox:test"

    /// A host with the busybox test image imported.
    static func make(_ tag: String) -> TestHost {
        let h = TestHost(tag)
        let r = h.hako("import", BusyboxImage.tarball, h.busybox)
        if r.status != 0 { Issue.record("cannot import the busybox test image: \(r.stderr)") }
        return h
    }

    func containerIDs() -> [String] {
        hako("ps", "-a", "-q", "--no-trunc").stdout.split(separator: "\n").map(String.init)
    }

    /// Whether this host has cgroup v2 alone (the Pis; the VM tier), not v1 or hybrid.
    static let cgroupV2 = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers")

    /// Every cgroup directory under this host's parent (v1: in every hierarchy).
    func cgroupDirs() -> [String] {
        var out: [String] = []
        let hierarchies = TestHost.cgroupV2 ? [""] : (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? []
        for hierarchy in hierarchies {
            let p = hierarchy.isEmpty ? "/sys/fs/cgroup/\(cgroupParent)" : "/sys/fs/cgroup/\(hierarchy)/\(cgroupParent)"
            if FileManager.default.fileExists(atPath: p) {
                out.append(p)
                for child in (try? FileManager.default.contentsOfDirectory(atPath: p)) ?? [] where child.count == 64 { out.append(p + "/" + child) }
            }
        }
        return out
    }

    func cleanup() {
        for id in containerIDs() { hako("rm", "-f", id, timeout: 30) }
        // A `run --rm` returns before its monitor has finished the network
        // teardown: let every monitor end before the directories go.
        _ = eventually(15) {
            let dirs = (try? FileManager.default.contentsOfDirectory(atPath: runRoot + "/containers")) ?? []
            return !dirs.contains { FileManager.default.fileExists(atPath: "\(runRoot)/containers/\($0)/monitor.lock") }
        }
        for d in cgroupDirs().sorted(by: { $0.count > $1.count }) { rmdir(d) }
        if ownsNetns { Subprocess.run(["/usr/bin/ip", "netns", "del", netns]) }
        // A `--rm` container's monitor lets go of monitor.lock before it has
        // deleted the container's hidden directories: a removal racing it
        // fails on the first file the monitor took first. Try again until the
        // tree is gone (it was left in /tmp under CI's load).
        for _ in 0..<50 {
            if (try? FileManager.default.removeItem(atPath: base)) != nil || !FileManager.default.fileExists(atPath: base) { break }
            usleep(100_000)
        }
        if FileManager.default.fileExists(atPath: base) { Issue.record("cannot remove the test host's \(base)") }
    }

    deinit { cleanup() }

    /// Polls `condition` every 20 ms for at most `timeout` seconds.
    func eventually(_ timeout: Double = 10, _ condition: () -> Bool) -> Bool {
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    func inspect(_ ref: String) -> [String: Any] {
        let r = hako("inspect", ref)
        guard r.status == 0, let data = r.stdout.data(using: .utf8),
              let arr = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]], let first = arr.first else { return [:] }
        return first
    }

    func state(_ ref: String) -> [String: Any] { inspect(ref)["State"] as? [String: Any] ?? [:] }
}

/// A busybox-static root file system tarball, built once per test process.
enum BusyboxImage {
    static let tarball: String = {
        let dir = "/tmp/hako-busybox-\(getpid())"
        let rootfs = dir + "/rootfs"
        let fm = FileManager.default
        try? fm.removeItem(atPath: dir)
        for d in ["bin", "etc", "tmp", "root", "home/tester", "proc", "sys", "dev"] {
            try? fm.createDirectory(atPath: "\(rootfs)/\(d)", withIntermediateDirectories: true)
        }
        _ = try? fm.copyItem(atPath: "/bin/busybox", toPath: rootfs + "/bin/busybox")
        let applets = Subprocess.run(["/bin/busybox", "--list"]).stdout.split(separator: "\n")
        for a in applets where a != "busybox" {
            try? fm.createSymbolicLink(atPath: "\(rootfs)/bin/\(a)", withDestinationPath: "busybox")
        }
        fm.createFile(atPath: rootfs + "/etc/passwd", contents: Data("""
            root:x:0:0:root:/root:/bin/sh
            tester:x:1000:1000:tester:/home/tester:/bin/sh
            nobody:x:65534:65534:nobody:/nonexistent:/bin/false

            """.utf8))
        fm.createFile(atPath: rootfs + "/etc/group", contents: Data("""
            root:x:0:
            tester:x:1000:
            audio:x:29:tester
            nogroup:x:65534:

            """.utf8))
        fm.createFile(atPath: rootfs + "/etc/not-executable", contents: Data("just text\n".utf8), attributes: [.posixPermissions: 0o644])
        chmod(rootfs + "/tmp", 0o1777)
        let tar = dir + "/busybox.tar"
        let r = Subprocess.run(["/bin/tar", "-C", rootfs, "--numeric-owner", "-cf", tar, "."])
        precondition(r.status == 0, "tar failed: \(r.stderr)")
        try? fm.removeItem(atPath: rootfs)
        // Gone with the test process: every run made one, and none removed it.
        atexit { try? FileManager.default.removeItem(atPath: "/tmp/hako-busybox-\(getpid())") }
        return tar
    }()
}
