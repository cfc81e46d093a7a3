#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// Bind mounts, named and anonymous volumes, tmpfs, checked from inside the container.
@Suite(.needsRoot) final class StorageTests {
    let host = TestHost.make("storage")

    func volumeNames() -> [String] { host.hako("volume", "ls", "-q").stdout.split(separator: "\n").map(String.init) }

    @Test func namedVolumesPersistAreSharedAndFilledFromTheImage() throws {
        #expect(host.hako("run", "--rm", "-v", "shared:/data", host.busybox, "sh", "-c", "echo kept > /data/file").status == 0)
        #expect(host.hako("run", "--rm", "-v", "shared:/data", host.busybox, "cat", "/data/file").out == "kept", "data survives the container")
        // Two running containers see each other's writes.
        let writer = host.hako("run", "-d", "-v", "shared:/data", host.busybox, "sh", "-c", "sleep 0.3; echo live > /data/live; sleep 30").out
        let seen = host.hako("run", "--rm", "-v", "shared:/data", host.busybox, "sh", "-c", "for i in $(seq 50); do [ -f /data/live ] && cat /data/live && exit 0; sleep 0.1; done; exit 1")
        #expect(seen.out == "live")
        // In use: refused; a stopped container still counts, as with Docker.
        let busy = host.hako("volume", "rm", "shared")
        #expect(busy.status == 125 && busy.stderr.contains("in use"), "\(busy.stderr)")
        host.hako("rm", "-f", writer)
        #expect(host.hako("volume", "rm", "shared").status == 0)
        #expect(!volumeNames().contains("shared"))
        // A new volume takes the image's content at its mount point, owner and mode included.
        let filled = host.hako("run", "--rm", "-v", "etcvol:/etc", host.busybox, "sh", "-c", "grep -c tester /etc/passwd")
        #expect(filled.out == "1")
        let data = host.root + "/volumes/etcvol/_data/passwd"
        #expect(FileManager.default.fileExists(atPath: data))
        // A volume that already has content is not filled again.
        #expect(host.hako("run", "--rm", "-v", "etcvol:/home", host.busybox, "true").status == 0)
        #expect(!FileManager.default.fileExists(atPath: host.root + "/volumes/etcvol/_data/tester"))
        host.hako("volume", "rm", "etcvol")
    }

    @Test func bindMountsReadOnlyAndRelativePaths() throws {
        let dir = host.base + "/bind"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "from-host\n".write(toFile: dir + "/in", atomically: true, encoding: .utf8)
        let rw = host.hako("run", "--rm", "-v", "\(dir):/b", host.busybox, "sh", "-c", "cat /b/in; echo back > /b/out")
        #expect(rw.out == "from-host")
        #expect((try? String(contentsOfFile: dir + "/out", encoding: .utf8)) == "back\n")
        for args in [["-v", "\(dir):/b:ro"], ["--mount", "type=bind,source=\(dir),target=/b,readonly"]] {
            let ro = host.hako(["run", "--rm"] + args + [host.busybox, "sh", "-c", "cat /b/in && touch /b/nope"])
            #expect(ro.status == 1 && ro.stdout.contains("from-host") && ro.stderr.contains("Read-only"), "\(args): \(ro.status) \(ro.stdout) \(ro.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/nope"))
        // A relative host path is resolved against the working directory; a missing one is created.
        let cmd = (host.prefix + [Binaries.hako, "run", "--rm", "-v", "./made-by-v:/m", host.busybox, "touch", "/m/x"]).map { "'\($0)'" }.joined(separator: " ")
        let r = Subprocess.run(["/bin/sh", "-c", "cd \(host.base) && exec \(cmd)"], env: host.env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: host.base + "/made-by-v/x"))
    }

    @Test func tmpfsIsInMemoryWithItsSize() {
        let r = host.hako("run", "--rm", "--tmpfs", "/fast:size=1m,mode=1770", host.busybox, "sh", "-c",
                          "grep ' /fast ' /proc/mounts; stat -c %a /fast; dd if=/dev/zero of=/fast/big bs=1k count=2048 2>&1")
        #expect(r.stdout.contains("tmpfs /fast tmpfs") && r.stdout.contains("size=1024k"), "\(r.stdout)")
        #expect(r.stdout.contains("1770"))
        #expect(r.stdout.contains("No space left"), "the size is enforced: \(r.stdout)")
        let m = host.hako("run", "--rm", "--mount", "type=tmpfs,target=/t,tmpfs-size=2m", host.busybox, "grep", " /t ", "/proc/mounts")
        #expect(m.out.contains("size=2048k"), "\(m.stderr)")
    }

    @Test func anonymousVolumesGoWithTheirContainer() {
        let before = Set(volumeNames())
        let id = host.hako("run", "-d", "-v", "/anon", host.busybox, "sh", "-c", "echo a > /anon/f; sleep 30").out
        let added = Set(volumeNames()).subtracting(before)
        #expect(added.count == 1 && added.allSatisfy { $0.count == 64 })
        let rm = host.hako("rm", "-f", "-v", id)
        #expect(rm.status == 0, "\(rm.stderr)")
        #expect(Set(volumeNames()) == before, "rm -v removes anonymous volumes")
        #expect(host.hako("run", "--rm", "-v", "/anon2", host.busybox, "true").status == 0)
        #expect(host.eventually(5) { Set(volumeNames()) == before }, "--rm removes them too")
    }

    @Test func aRemovedContainersRootIsVolatile() {
        // --rm: the upper layer is deleted at the end, so it is never synced
        // (the root's super options, as the container sees them).
        let root = ["sh", "-c", "grep ' / / ' /proc/self/mountinfo"]
        let rm = host.hako(["run", "--rm", host.busybox] + root)
        #expect(rm.status == 0 && rm.stdout.contains("overlay") && rm.stdout.contains("volatile"), "\(rm.stdout) \(rm.stderr)")
        let kept = host.hako(["run", "--name", "kept", host.busybox] + root)
        #expect(kept.status == 0 && kept.stdout.contains("overlay") && !kept.stdout.contains("volatile"), "\(kept.stdout)")
        host.hako("rm", "-f", "kept")
        // `restart` keeps a --rm container, as Docker's does: the same upper
        // layer is mounted again (overlay's mark of a volatile mount cleared
        // first, or overlay would refuse it); a `stop` then removes it.
        let id = host.hako("run", "-d", "--rm", host.busybox, "sleep", "1000").out
        #expect(host.hako("exec", id, "sh", "-c", "echo written-before > /marker").status == 0)
        let restart = host.hako("restart", "-t", "1", id)
        #expect(restart.status == 0, "restart of a --rm container: \(restart.stderr)")
        #expect(host.hako("exec", id, "cat", "/marker").out == "written-before", "the container's own files survive its restart")
        #expect(host.hako(["exec", id] + root).out.contains("volatile"))
        #expect(host.hako("inspect", "-f", "{{.State.Status}}", id).out == "running")
        #expect(host.hako("stop", "-t", "1", id).status == 0)
        #expect(host.hako("inspect", id).status != 0, "stopped for good, the --rm container is gone")
    }

    /// A --rm container that cannot start is removed with its anonymous
    /// volumes, as Docker's is (and as its own end would have removed it).
    @Test func aRemovedContainerThatCannotStartIsRemoved() {
        let volumes = volumeNames()
        let id = host.hako("create", "--rm", "--name", "rm-start-fails", "-v", "/data", host.busybox, "/no/such/program").out
        #expect(!id.isEmpty)
        let r = host.hako("start", "-a", id)
        #expect(r.status == 127 && r.stderr.contains("executable file not found"), "\(r.stderr)")
        #expect(host.hako("inspect", id).status != 0, "the container is gone")
        #expect(volumeNames() == volumes, "its anonymous volume too")
        let again = host.hako("create", "--name", "rm-start-fails", host.busybox, "true")
        #expect(again.status == 0, "its name is free: \(again.stderr)")
        host.hako("rm", "-f", "rm-start-fails")
    }

    /// The runtime's mount points (/etc/hostname, /etc/hosts, /etc/resolv.conf,
    /// /proc, /sys, /dev) come from one shared init layer below the image:
    /// busybox has none of the three files, yet a container that writes
    /// nothing leaves its upper directory empty, and the image's /etc is still
    /// what the container sees of it. The layer is a snapshot an image
    /// collection keeps while a container stacks it. Its own data root: the
    /// collection must see no other test's containers.
    @Test func theRuntimesMountPointsComeFromTheInitLayer() throws {
        let own = TestHost.make("initlayer")
        defer { own.cleanup() }
        let r = own.hako("run", "--name", "init-a", own.busybox, "sh", "-c",
                         "cat /etc/hostname; grep -c \"$(cat /etc/hostname)\" /etc/hosts; grep -c ^root: /etc/passwd; stat -c %Y /etc")
        let a = own.hako("inspect", "-f", "{{.Id}}", "init-a").out
        let lines = r.out.split(separator: "\n").map(String.init)
        #expect(r.status == 0 && lines.prefix(3) == [String(a.prefix(12)), "1", "1"], "the files mounted, the image's own /etc: \(r.out) \(r.stderr)")
        #expect((lines.last.flatMap { Int($0) } ?? 0) > 0, "/etc's time is the image's, not the init layer's (0): \(r.out)")
        let fm = FileManager.default
        #expect((try? fm.contentsOfDirectory(atPath: "\(own.root)/containers/\(a)/upper")) == [], "nothing made in the upper directory")
        func initLayer(_ ref: String) -> String {
            String(own.hako("inspect", "-f", "{{.GraphDriver.Data.LowerDir}}", ref).out.split(separator: ":").last ?? "")
        }
        let layer = initLayer("init-a")
        #expect(layer.hasPrefix(own.root + "/images/snapshots/") && layer.hasSuffix("/fs"), "\(layer)")
        #expect(((try? fm.attributesOfItem(atPath: layer + "/etc/resolv.conf"))?[.size] as? Int) == 0)
        #expect(own.hako("create", "--name", "init-b", own.busybox, "true").status == 0)
        #expect(initLayer("init-b") == layer, "one layer for every container")

        // Kept by a collection while a container stacks it; collected after; made again.
        #expect(own.hako("rm", "init-a").status == 0)
        #expect(own.hako("image", "prune", "-f").status == 0)
        #expect(fm.fileExists(atPath: layer + "/etc/hosts"), "init-b stacks it")
        #expect(own.hako("rm", "init-b").status == 0)
        #expect(own.hako("image", "prune", "-f").status == 0)
        #expect(!fm.fileExists(atPath: layer), "collected once no container stacks it")
        let again = own.hako("run", "--rm", own.busybox, "cat", "/etc/hostname")
        #expect(again.status == 0 && again.out.count == 12 && fm.fileExists(atPath: layer + "/etc/hosts"), "\(again.stderr)")
    }

    @Test func aSymlinkInTheImageCannotRedirectAMountOntoTheHost() throws {
        let outside = "/tmp/hako-escape-\(getpid())"
        let work = host.base + "/escape"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: work + "/linkdir", withDestinationPath: outside)
        let tar = host.base + "/escape.tar"
        try FileManager.default.copyItem(atPath: BusyboxImage.tarball, toPath: tar)
        #expect(Subprocess.run(["/bin/tar", "-C", work, "-rf", tar, "./linkdir"]).status == 0)
        #expect(host.hako("import", tar, "escape:test").status == 0)
        // /linkdir resolves inside the root, to a directory the image does not have:
        // the start is refused with the mount named, and nothing appears on the host.
        for args in [["-v", "esc:/linkdir/sub"], ["--tmpfs", "/linkdir/t"], ["-v", "\(host.base):/linkdir/b"]] {
            let r = host.hako(["run", "--rm"] + args + ["escape:test", "true"])
            #expect(r.status == 125 && r.stderr.contains("mount /linkdir/"), "\(args): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: outside), "\(args): the mount stayed inside the container's root")
        }
        host.hako("volume", "rm", "esc")
    }

    @Test func badMountValuesGiveOneClearErrorAndCreateNothing() {
        let containers = host.containerIDs().count
        let volumes = volumeNames()
        for (args, needle) in [(["-v", ":/x"], "invalid -v"), (["-v", "rel"], "invalid -v"), (["-v", "/a:relative"], "invalid -v"),
                               (["-v", "/a:/"], "invalid -v"), (["-v", "/a:/x:bogus"], "invalid -v"), (["-v", "bad name!:/x"], "invalid -v"),
                               (["--mount", "type=nfs,target=/x"], "invalid --mount"), (["--mount", "type=bind,source=/no/such/path,target=/x"], "does not exist"),
                               (["--mount", "type=volume,target=/x,tmpfs-size=1m"], "invalid --mount"), (["--tmpfs", "relative"], "invalid --tmpfs"),
                               (["--tmpfs", "/t:size=lots"], "invalid --tmpfs"), (["-v", "v1:/x", "-v", "v2:/x"], "duplicate mount point")] {
            let r = host.hako(["run", "--rm"] + args + [host.busybox, "true"])
            #expect(r.status == 125, "\(args)")
            #expect(r.stderr.contains(needle), "\(args): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1)
        }
        #expect(host.containerIDs().count == containers)
        #expect(volumeNames() == volumes)
        #expect(!FileManager.default.fileExists(atPath: "/a"))
    }
}
