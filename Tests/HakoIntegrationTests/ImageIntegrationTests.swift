#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// Images end to end: archives (with podman as the peer), commit, export,
/// whiteouts across layers, escapes refused, many layers, removal.
@Suite(.needsRoot, .serialized)
final class ImageIntegrationTests {
    let host = TestHost.make("img")
    let dir: String

    init() throws {
        dir = try TestFiles.tempDir("hako-imgtest")
    }

    deinit {
        host.cleanup()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// The busybox test rootfs as a layer tar, so fixture layers can sit on a shell.
    private var busyboxLayer: [UInt8] { Array((try? Data(contentsOf: URL(fileURLWithPath: BusyboxImage.tarball))) ?? Data()) }

    @Test func saveLoadRoundTripsAndPodmanReadsIt() throws {
        let archive = dir + "/bb.tar"
        let save = host.hako("save", "-o", archive, host.busybox)
        #expect(save.status == 0, "\(save.stderr)")
        let fresh = TestHost("load")
        defer { fresh.cleanup() }
        let load = fresh.hako("load", "-i", archive)
        #expect(load.out == "Loaded image: \(host.busybox)", "\(load.stderr)")
        let a = host.imageInspect(host.busybox), b = fresh.imageInspect(host.busybox)
        #expect((a["Id"] as? String)?.hasPrefix("sha256:") == true && a["Id"] as? String == b["Id"] as? String)
        #expect(a["ManifestDigest"] as? String != nil && a["ManifestDigest"] as? String == b["ManifestDigest"] as? String)
        #expect(fresh.hako("run", "--rm", host.busybox, "echo", "loaded").out == "loaded")

        // podman loads hako's archive, and hako loads podman's (docker-archive and oci-archive).
        let podman = try Podman()
        let pl = podman.run(["load", "-i", archive])
        #expect(pl.status == 0, "podman load: \(pl.stderr)")
        let id = String((a["Id"] as? String ?? "").dropFirst(7).prefix(12))
        #expect(podman.run(["images", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"]).out == "\(id) docker.io/library/busybox:test")
        let other = TestHost("podman")
        defer { other.cleanup() }
        for format in ["docker-archive", "oci-archive"] {
            let theirs = dir + "/podman-\(format).tar"
            let ps = podman.run(["save", "--format", format, "-o", theirs, "docker.io/library/busybox:test"])
            #expect(ps.status == 0, "\(ps.stderr)")
            let back = other.hako("load", "-i", theirs)
            #expect(back.status == 0, "\(format): \(back.stderr)")
            #expect(other.hako("run", "--rm", "busybox:test", "echo", "from podman").out == "from podman", "\(format)")
        }
        let bad = other.hako("load", "-i", dir + "/absent.tar")
        #expect(bad.status == 125 && bad.stderr.contains("No such file"))
    }

    @Test func commitThenRunShowsTheChange() {
        let c = host.hako("run", "--name", "to-commit", host.busybox, "sh", "-c",
                          "echo made > /made; rm /etc/not-executable; mkdir -p /srv/new; echo x > /srv/new/f; rm -rf /home/tester")
        #expect(c.status == 0, "\(c.stderr)")
        let commit = host.hako("commit", "-c", "CMD [\"cat\", \"/made\"]", "-c", "ENV COMMITTED=yes", "-c", "WORKDIR /srv",
                               "-m", "a message", "to-commit", "committed:1")
        #expect(commit.status == 0 && commit.out.hasPrefix("sha256:"), "\(commit.stderr)")
        #expect(host.hako("run", "--rm", "committed:1").out == "made", "the new CMD")
        let inside = host.hako("run", "--rm", "committed:1", "sh", "-c",
                               "pwd; echo $COMMITTED; cat /srv/new/f; ls /etc/not-executable 2>&1; ls -d /home/tester 2>&1; true")
        let lines = inside.out.split(separator: "\n").map(String.init)
        #expect(lines.count == 5, "\(inside.out)")
        #expect(lines.first == "/srv" && lines.dropFirst().first == "yes" && lines.dropFirst(2).first == "x")
        #expect(lines.dropFirst(3).allSatisfy { $0.contains("No such file") }, "deletions committed as whiteouts: \(inside.out)")
        let history = host.hako("history", "committed:1")
        #expect(history.stdout.contains("a message") && history.stdout.contains("hako import"), "\(history.stdout)")
        let bad = host.hako("commit", "-c", "FROM scratch", "to-commit", "committed:2")
        #expect(bad.status == 125 && bad.stderr.contains("unknown instruction FROM"), "\(bad.stderr)")

        // export: the merged file system, the deletions applied.
        let export = dir + "/c.tar"
        #expect(host.hako("export", "-o", export, "to-commit").status == 0)
        let listing = Subprocess.run(["/bin/tar", "-tf", export]).stdout.split(separator: "\n").map(String.init)
        #expect(listing.contains("made") && listing.contains("bin/busybox") && listing.contains("srv/new/f"))
        #expect(!listing.contains("etc/not-executable") && !listing.contains { $0.hasPrefix("home/tester") })
        #expect(!listing.contains { $0.contains(".wh.") })
        // It imports back as an image that has the same files.
        #expect(host.hako("import", export, "exported:1").status == 0)
        #expect(host.hako("run", "--rm", "exported:1", "cat", "/made").out == "made")
        host.hako("rm", "to-commit")
    }

    @Test func whiteoutsAndOpaqueDirectoriesAcrossThreeLayers() throws {
        var one = MiniTar()
        one.add("a/", .dir); one.add("a/f1", .file("one")); one.add("a/f2", .file("two")); one.add("a/f4", .file("four"))
        one.add("d/", .dir); one.add("d/x", .file("x")); one.add("d/sub/", .dir); one.add("d/sub/y", .file("y"))
        one.add("rm-me", .file("bye"))
        var two = MiniTar()
        two.add("a/", .dir); two.add("a/.wh.f1", .file("")); two.add("a/.wh.f2", .file("")); two.add("a/f3", .file("three"))
        two.add(".wh.rm-me", .file(""))
        two.add("d/", .dir); two.add("d/from2", .file("2"))
        var three = MiniTar()
        three.add("d/.wh..wh..opq", .file(""))    // the marker first: its position does not matter
        three.add("a/", .dir); three.add("a/f1", .file("again"))
        three.add("d/", .dir); three.add("d/new", .file("new"))
        let path = dir + "/three.tar"
        try DockerArchive.write(to: path, name: "layers:3", layers: [busyboxLayer, one.archive, two.archive, three.archive])
        let load = host.hako("load", "-i", path)
        #expect(load.status == 0, "\(load.stderr)")
        let r = host.hako("run", "--rm", "layers:3", "sh", "-c", "ls /a; echo \"$(cat /a/f1)\"; ls -a /d; ls /rm-me 2>&1; true")
        let lines = r.out.split(separator: "\n").map(String.init)
        #expect(lines == ["f1", "f3", "f4", "again", ".", "..", "new", "ls: /rm-me: No such file or directory"], "\(r.out) \(r.stderr)")
        // Changes in a container over these layers commit and come back the same way.
        let c = host.hako("run", "--name", "wh", "layers:3", "sh", "-c", "rm /a/f3; rm -r /d; mkdir /d; echo mine > /d/only")
        #expect(c.status == 0, "\(c.stderr)")
        #expect(host.hako("commit", "wh", "layers:4").status == 0)
        let after = host.hako("run", "--rm", "layers:4", "sh", "-c", "ls /a; ls /d")
        #expect(after.out.split(separator: "\n").map(String.init) == ["f1", "f4", "only"], "\(after.out)")
        host.hako("rm", "wh")
    }

    @Test func everyEscapeIsRefusedAndNothingAppearsOutside() throws {
        let decoy = dir + "/outside"
        try FileManager.default.createDirectory(atPath: decoy, withIntermediateDirectories: true)
        try "host data".write(toFile: decoy + "/secret", atomically: true, encoding: .utf8)
        let escapes: [(String, MiniTar)] = {
            var list: [(String, MiniTar)] = []
            var t = MiniTar(); t.add("../../../../../../\(decoy)/dotdot", .file("x")); list.append(("climbs above the layer root", t))
            t = MiniTar(); t.add("link", .symlink(decoy)); t.add("link/through-abs", .file("x")); list.append(("pointing out of the layer", t))
            t = MiniTar(); t.add("rel", .symlink("../../../../../../../..\(decoy)")); t.add("rel/through-rel", .file("x"))
            list.append(("pointing out of the layer", t))
            t = MiniTar(); t.add("h", .hardlink(decoy + "/secret")); list.append(("does not exist in this layer", t))
            t = MiniTar(); t.add("h", .hardlink("../../../../../../..\(decoy)/secret")); list.append(("is outside the layer", t))
            t = MiniTar(); t.add(".", .symlink(decoy)); t.add("dot-through", .file("x")); list.append(("cannot replace the layer root", t))
            t = MiniTar(); t.add("/", .symlink(decoy)); list.append(("cannot replace the layer root", t))
            t = MiniTar(); t.add("etc/", .dir); t.add("etc", .symlink(decoy)); t.add("etc/passwd", .file("x"))
            list.append(("a symlink cannot replace a directory", t))
            t = MiniTar(); t.add("dev/sda", .file("")); list.append(("", t))   // control: a plain file is fine
            return list
        }()
        for (i, (fragment, layer)) in escapes.enumerated() {
            let archive = dir + "/escape\(i).tar"
            try DockerArchive.write(to: archive, name: "escape:\(i)", layers: [layer.archive])
            let load = host.hako("load", "-i", archive)
            let rootfs = dir + "/escape\(i).rootfs.tar"
            try Data(layer.archive).write(to: URL(fileURLWithPath: rootfs))
            let imp = host.hako("import", rootfs, "escape-import:\(i)")
            if fragment.isEmpty {
                #expect(load.status == 0 && imp.status == 0, "\(load.stderr) \(imp.stderr)")
                continue
            }
            for r in [load, imp] {
                #expect(r.status == 125 && r.stderr.contains(fragment), "escape \(i): \(r.stderr)")
                #expect(r.stderr.split(separator: "\n").count == 1)
            }
            let names = (try? FileManager.default.contentsOfDirectory(atPath: decoy)) ?? []
            #expect(names == ["secret"], "escape \(i) wrote outside: \(names)")
            #expect((try? String(contentsOfFile: decoy + "/secret", encoding: .utf8)) == "host data")
        }
        #expect(host.imageTempFiles.isEmpty)
        host.verifiedBlobs()
    }

    @Test func sixtyLayersRun() throws {
        var layers = [busyboxLayer]
        for i in 0..<60 {
            var t = MiniTar()
            t.add("layers/", .dir)
            t.add("layers/\(i)", .file("layer \(i)"))
            if i > 0 { t.add("layers/.wh.\(i - 1)-gone", .file("")) }
            t.add("layers/\(i)-gone", .file("overwritten later"))
            layers.append(t.archive)
        }
        let path = dir + "/sixty.tar"
        try DockerArchive.write(to: path, name: "many:61", layers: layers)
        #expect(host.hako("load", "-i", path).status == 0)
        // Absolute lower directories would not fit the kernel's page of mount options.
        let r = host.hako("run", "--rm", "many:61", "sh", "-c", "ls /layers | wc -l; echo \"$(cat /layers/0)\"; echo \"$(cat /layers/59)\"; ls /layers | grep -c gone")
        #expect(r.out.split(separator: "\n").map(String.init) == ["61", "layer 0", "layer 59", "1"], "\(r.out) \(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: host.root + "/images/l"), "short layer links made")
    }

    @Test func rmiRefusesImagesInUseAndPruneKeepsWhatIsReferenced() throws {
        #expect(host.hako("tag", host.busybox, "keep:1").status == 0)
        #expect(host.hako("tag", host.busybox, "keep:2").status == 0)
        // One of several names: only the name goes.
        let untag = host.hako("rmi", "keep:2")
        #expect(untag.out == "Untagged: keep:2", "\(untag.stderr)")
        let id = host.hako("run", "-d", "keep:1", "sleep", "30").out
        let imageID = String((host.imageInspect("keep:1")["Id"] as? String ?? "").dropFirst(7))
        #expect(!id.isEmpty && imageID.count == 64)
        let byID = host.hako("rmi", imageID)
        #expect(byID.status == 1 && byID.stderr.contains("conflict"), "\(byID.stderr)")
        let running = host.hako("rmi", "-f", imageID)
        #expect(running.status == 1 && running.stderr.contains("being used by running container"), "\(running.stderr)")
        host.hako("stop", "-t", "0", id)
        #expect(host.hako("rmi", host.busybox).out == "Untagged: \(host.busybox)")
        let last = host.hako("rmi", "keep:1")
        #expect(last.status == 1 && last.stderr.contains("is using its referenced image"), "\(last.stderr)")
        let forced = host.hako("rmi", "-f", "keep:1")
        #expect(forced.out == "Untagged: keep:1\nDeleted: sha256:\(imageID)", "\(forced.stderr)")
        // The stopped container's layers stay through prune, and it still starts.
        let prune = host.hako("image", "prune", "-a")
        #expect(prune.status == 0 && prune.stdout.contains("Total reclaimed space"), "\(prune.stderr)")
        let start = host.hako("start", id)
        #expect(start.status == 0, "its layers survived: \(start.stderr)")
        #expect(host.hako("exec", id, "cat", "/etc/passwd").stdout.contains("root:x:0:0"))
        host.hako("rm", "-f", id)
        // Once nothing references them, they go.
        #expect(host.hako("image", "prune", "-a").status == 0)
        let blobs = (try? FileManager.default.contentsOfDirectory(atPath: host.root + "/images/blobs/sha256")) ?? []
        let snapshots = (try? FileManager.default.contentsOfDirectory(atPath: host.root + "/images/snapshots")) ?? []
        #expect(blobs.isEmpty && snapshots.isEmpty, "\(blobs) \(snapshots)")
        #expect(host.hako("images", "-q").out.split(separator: "\n").count == 1, "only the built-in host image is left")
    }
}
