#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// Real clients driving hako-runtime: Debian's podman (through conmon) and
/// containerd (through its runc v2 shim and ctr), each with private stores and
/// state under a temp dir and cgroups under a parent the test owns.
@Suite(.needsRoot, .serialized) final class RuntimeClientTests {
    let host = RuntimeHost("clients")

    /// The busybox test rootfs as a plain tar (podman import) and a Docker image
    /// archive (ctr import).
    func images() -> (rootfs: String, archive: String) {
        let dir = host.base + "/image"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let rootfs = host.bundle("imagesource", args: ["true"]) + "/rootfs"
        let layer = dir + "/layer.tar"
        #expect(Subprocess.run(["/bin/tar", "-C", rootfs, "--numeric-owner", "-cf", layer, "."]).status == 0)
        let layerSum = Subprocess.run(["/usr/bin/sha256sum", layer]).stdout.prefix(64)
        let config = #"{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},"rootfs":{"type":"layers","diff_ids":["sha256:\#(layerSum)"]}}"#
        FileManager.default.createFile(atPath: dir + "/config.json", contents: Data(config.utf8))
        let configSum = String(Subprocess.run(["/usr/bin/sha256sum", dir + "/config.json"]).stdout.prefix(64))
        try? FileManager.default.moveItem(atPath: dir + "/config.json", toPath: "\(dir)/\(configSum).json")
        let manifest = #"[{"Config":"\#(configSum).json","RepoTags":["docker.io/library/busybox:test"],"Layers":["layer.tar"]}]"#
        FileManager.default.createFile(atPath: dir + "/manifest.json", contents: Data(manifest.utf8))
        let archive = host.base + "/busybox-image.tar"
        #expect(Subprocess.run(["/bin/tar", "-C", dir, "-cf", archive, "manifest.json", "\(configSum).json", "layer.tar"]).status == 0)
        return (layer, archive)
    }

    /// Removes the test's cgroup parent in every hierarchy, depth first. podman's
    /// conmon runs `podman container cleanup` after `--rm` returns and may still
    /// make or leave a cgroup under the parent for a moment: retried, bounded (10 s).
    func removeCgroupTree(_ parent: String) {
        let fm = FileManager.default
        func remove(_ dir: String) {
            for child in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] where fm.fileExists(atPath: "\(dir)/\(child)/cgroup.procs") {
                remove("\(dir)/\(child)")
            }
            rmdir(dir)
        }
        let hierarchies = (try? fm.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? []
        for _ in 0..<100 {
            for h in hierarchies { remove("/sys/fs/cgroup/\(h)\(parent)") }
            if !hierarchies.contains(where: { fm.fileExists(atPath: "/sys/fs/cgroup/\($0)\(parent)") }) { return }
            usleep(100_000)
        }
        Issue.record("cgroup \(parent) could not be removed")
    }

    /// podman calls hako-runtime without a `--root` (its `--runtime-flag` is not
    /// passed on to the clean-up conmon runs after `--rm`), so the runtime keeps
    /// its default root and caches podman's seccomp filter in it. Returns a
    /// closure that removes what the test adds there: new cache entries, and
    /// the directories that did not exist before.
    func restoringRuntimeRoot() -> () -> Void {
        let fm = FileManager.default
        let cache = "/run/hako-runtime/.cache/seccomp"
        let dirs = [cache, "/run/hako-runtime/.cache", "/run/hako-runtime"]  // deepest first
        let existed = Set(dirs.filter { fm.fileExists(atPath: $0) })
        let before = Set((try? fm.contentsOfDirectory(atPath: cache)) ?? [])
        return {
            for entry in (try? fm.contentsOfDirectory(atPath: cache)) ?? [] where !before.contains(entry) {
                try? fm.removeItem(atPath: "\(cache)/\(entry)")
            }
            for d in dirs where !existed.contains(d) { rmdir(d) }
        }
    }

    @Test func podmanRunsContainersWithHakoRuntime() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/podman") else {
            Issue.record("podman is not installed (make deps)")
            return
        }
        let (rootfs, _) = images()
        let t = host.base + "/podman"
        let parent = "/hako-podman-test-\(getpid())"
        defer { removeCgroupTree(parent) }
        let restoreRuntimeRoot = restoringRuntimeRoot()
        defer { restoreRuntimeRoot() }
        let podman = ["/usr/bin/podman", "--root", t + "/storage", "--runroot", t + "/runroot", "--tmpdir", t + "/tmp",
                      "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                      "--runtime", Binaries.runtime]
        // This machine's hard RLIMIT_NOFILE is below podman's default and root here lacks
        // CAP_SYS_RESOURCE (runc and crun fail the same way): ask for what the host allows.
        let run = ["run", "--rm", "--network", "none", "--cgroup-parent", parent, "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
        let imported = Subprocess.run(podman + ["import", rootfs, "localhost/busybox:test"], timeout: 120)
        #expect(imported.status == 0, "\(imported.stderr)")
        defer { _ = Subprocess.run(podman + ["rm", "-a", "-f"], timeout: 60); _ = Subprocess.run(podman + ["rmi", "-a", "-f"], timeout: 60) }

        let hello = Subprocess.run(podman + run + ["localhost/busybox:test", "sh", "-c", "echo hello from $(hostname); cat /proc/1/cmdline | tr '\\0' ' '"], timeout: 60)
        #expect(hello.status == 0 && hello.stdout.contains("hello from") && hello.stdout.contains("sh -c"), "\(hello.stdout) \(hello.stderr)")
        let tty = Subprocess.run(podman + run + ["-t", "localhost/busybox:test", "sh", "-c", "tty; echo on-a-terminal"], timeout: 60)
        #expect(tty.status == 0 && tty.stdout.contains("/dev/pts/") && tty.stdout.contains("on-a-terminal"), "\(tty.stdout) \(tty.stderr)")
        #expect(Subprocess.run(podman + run + ["localhost/busybox:test", "sh", "-c", "exit 4"], timeout: 60).status == 4)
        let missing = Subprocess.run(podman + run + ["localhost/busybox:test", "/no/such/program"], timeout: 60)
        #expect(missing.status == 127 && missing.stderr.contains("not found"), "\(missing.stderr)")
        // podman passes --log FILE --log-format=json to the runtime; its state and cgroups are gone after --rm.
        #expect(host.eventually { !FileManager.default.fileExists(atPath: "/sys/fs/cgroup/pids\(parent)") || ((try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup/pids\(parent)")) ?? []).allSatisfy { !$0.hasPrefix("libpod-") } })
    }

    @Test func containerdRunsContainersWithHakoRuntime() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/containerd") else {
            Issue.record("containerd is not installed (make deps)")
            return
        }
        let (_, archive) = images()
        let t = host.base + "/containerd"
        try FileManager.default.createDirectory(atPath: t, withIntermediateDirectories: true)
        let sock = t + "/containerd.sock"
        let config = """
            version = 2
            root = "\(t)/root"
            state = "\(t)/state"
            disabled_plugins = ["io.containerd.grpc.v1.cri"]
            [grpc]
              address = "\(sock)"
            [ttrpc]
              address = "\(sock).ttrpc"
            """
        FileManager.default.createFile(atPath: t + "/config.toml", contents: Data(config.utf8))
        let daemon = Subprocess.spawn(["/usr/bin/containerd", "--config", t + "/config.toml"], stdout: t + "/containerd.log", stderr: t + "/containerd.log")
        #expect(daemon > 0)
        let parent = "/hako-containerd-test-\(getpid())"
        defer {
            kill(daemon, SIGTERM)
            _ = Subprocess.waitBounded(daemon, timeout: 20)
            removeCgroupTree(parent)
        }
        let ctr = ["/usr/bin/ctr", "--address", sock]
        #expect(host.eventually(20) { Subprocess.run(ctr + ["version"], timeout: 10).status == 0 })
        let imported = Subprocess.run(ctr + ["image", "import", "--snapshotter", "native", archive], timeout: 120)
        #expect(imported.status == 0, "\(imported.stderr)")
        let runc = ["run", "--rm", "--snapshotter", "native", "--runc-binary", Binaries.runtime, "--runc-root", t + "/runc-root"]
        let hello = Subprocess.run(ctr + runc + ["--cgroup", "\(parent)/c1", "docker.io/library/busybox:test", "c1", "sh", "-c", "echo hello from containerd; cat /proc/self/cgroup"], timeout: 60)
        #expect(hello.status == 0 && hello.stdout.contains("hello from containerd") && hello.stdout.contains("\(parent)/c1"), "\(hello.stdout) \(hello.stderr)")
        #expect(Subprocess.run(ctr + runc + ["--cgroup", "\(parent)/c2", "docker.io/library/busybox:test", "c2", "sh", "-c", "exit 5"], timeout: 60).status == 5)
        // The shim's hako-runtime root holds nothing after --rm.
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: t + "/runc-root/default")) ?? []).isEmpty)
    }
}
