#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// The local engine scripted hard: back-to-back runs that publish the same
/// port, commands killed with SIGKILL at random moments (after which the next
/// command must leave nothing behind), and command lines far beyond a fixed
/// table size.
@Suite(.needsRoot, .serialized)
final class FaultTests {
    let host = TestHost.make("fault")

    deinit { host.cleanup() }

    // MARK: - what a host must not keep

    /// Every file or directory under the data and runtime roots whose name
    /// marks it as temporary: `*.tmp.<pid>` of an atomic write, `.tmp-*` and
    /// `.removing-*` containers, entries of images/tmp.
    func temporaries() -> [String] {
        var found: [String] = []
        for base in [host.root, host.runRoot] {
            guard let walk = FileManager.default.enumerator(atPath: base) else { continue }
            while let rel = walk.nextObject() as? String {
                let name = rel.split(separator: "/").last.map(String.init) ?? rel
                if name.contains(".tmp.") || name.hasPrefix(".tmp-") || name.hasPrefix(".removing-")
                    || (rel.hasPrefix("images/tmp/") && !rel.dropFirst("images/tmp/".count).contains("/")) {
                    found.append(rel)
                }
                // Layers' and volumes' contents are not hako's names.
                if rel.hasPrefix("images/snapshots/") || rel.hasPrefix("volumes/") { walk.skipDescendants() }
            }
        }
        return found
    }

    func entries(_ dir: String) -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] }

    /// Waits for every monitor of this host to end (a `run --rm` returns before its teardown).
    func monitorsGone() -> Bool {
        host.eventually(20) { !entries(host.runRoot + "/containers").contains { FileLock.isHeld("\(host.runRoot)/containers/\($0)/monitor.lock") } }
    }

    /// No container, endpoint, pinned namespace, lease, container cgroup,
    /// veth, published-port rule, mount or temporary file is left.
    func expectNothingLeft(_ ports: [Int], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(host.containerIDs().isEmpty, sourceLocation: sourceLocation)
        #expect(monitorsGone(), "every monitor ended", sourceLocation: sourceLocation)
        // A --rm monitor deletes the container's bytes (.removing-<id>) after
        // it has unlinked its lock file: give it the moment.
        let containers = host.root + "/containers"
        #expect(host.eventually(10) { entries(containers).isEmpty }, "\(entries(containers))", sourceLocation: sourceLocation)
        #expect(entries(host.runRoot + "/containers").isEmpty, sourceLocation: sourceLocation)
        #expect(entries(host.runRoot + "/networks/endpoints").isEmpty, "\(entries(host.runRoot + "/networks/endpoints"))", sourceLocation: sourceLocation)
        #expect(entries(host.runRoot + "/netns").isEmpty, sourceLocation: sourceLocation)
        // A lease is a link per address in its network's directory (an older
        // hako's file per network is rewritten as links on first use).
        let leases = host.root + "/networks/leases"
        for f in entries(leases) {
            let held = f.hasSuffix(".json") ? [(try? String(contentsOfFile: leases + "/" + f, encoding: .utf8)) ?? ""].filter { $0.contains("\"") }
                                            : entries(leases + "/" + f)
            #expect(held.isEmpty, "a lease is left on \(f): \(held)", sourceLocation: sourceLocation)
        }
        let containerCgroups = host.cgroupDirs().filter { $0.split(separator: "/").last?.count == 64 }
        #expect(containerCgroups.isEmpty, "\(containerCgroups)", sourceLocation: sourceLocation)
        // The kernel destroys an unpinned namespace's veth pairs in the background.
        var links = ""
        let noVeth = host.eventually(10) {
            links = Subprocess.run(["/usr/bin/ip", "-n", host.netns, "-o", "link"]).stdout
            return !links.contains("veth")
        }
        #expect(noVeth, "\(links)", sourceLocation: sourceLocation)
        let rules = Subprocess.run(["/usr/bin/ip", "netns", "exec", host.netns, "nft", "list", "ruleset"]).stdout
        for p in ports { #expect(!rules.contains("dport \(p)"), "rule for \(p) left", sourceLocation: sourceLocation) }
        let mounts = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        #expect(!mounts.contains(host.base), "a mount under \(host.base) is left", sourceLocation: sourceLocation)
        #expect(temporaries().isEmpty, "\(temporaries())", sourceLocation: sourceLocation)
    }

    /// A pid no process has any more (a child that has been reaped).
    func deadPid() -> pid_t {
        let pid = Subprocess.spawn(["/bin/true"])
        _ = Subprocess.waitBounded(pid, timeout: 10)
        return pid
    }

    /// Starts a hako command and SIGKILLs it after a random pause.
    func killAtRandom(_ args: [String], within seconds: Double) {
        let pid = Subprocess.spawn(host.prefix + [Binaries.hako] + args, env: host.env)
        usleep(UInt32(Double.random(in: 0..<seconds) * 1_000_000))
        kill(pid, SIGKILL)
        _ = Subprocess.waitBounded(pid, timeout: 10)
    }

    // MARK: - published ports

    /// When `run --rm` returns, its port is free: the next run publishing it
    /// must not be refused because the monitor is still tearing down.
    @Test func backToBackRunsPublishingOnePort() {
        var refused: [String] = []
        for _ in 0..<25 {
            let r = host.hako("run", "--rm", "-p", "18080:80", host.busybox, "true")
            if r.status != 0 { refused.append(r.stderr.trimmed) }
        }
        #expect(refused.isEmpty, "\(refused.count) of 25 refused: \(refused.first ?? "")")
        // `create` decides as `start` does: an ended container's port is free.
        for _ in 0..<5 {
            #expect(host.hako("run", "--rm", "-p", "18081:80", host.busybox, "true").status == 0)
            let c = host.hako("create", "--rm", "-p", "18081:80", host.busybox, "true")
            #expect(c.status == 0, "\(c.stderr)")
            #expect(host.hako("start", "-a", c.out).status == 0)
        }
        // A running container's port stays refused, at create as at start.
        let id = host.hako("run", "-d", "-p", "18082:80", host.busybox, "sleep", "30").out
        let clash = host.hako("create", "-p", "18082:80", host.busybox, "true")
        #expect(clash.status == 125 && clash.stderr.contains("already published"), "\(clash.stderr)")
        host.hako("rm", "-f", id)
        #expect(host.hako("run", "--rm", "-p", "18082:80", host.busybox, "true").status == 0, "free once removed")
        expectNothingLeft([18080, 18081, 18082])
    }

    // MARK: - killed commands

    @Test func killedRunsAndRemovalsLeaveNothingOnceTheNextCommandRan() {
        // A `run -d` takes ~40 ms here: the kills land anywhere in it.
        for i in 0..<20 {
            killAtRandom(["run", "-d", "--name", "k\(i)", "-p", "\(18090 + i % 8):80", host.busybox, "sleep", "30"], within: 0.05)
        }
        // Removals killed half-way, of what the killed runs made.
        for id in host.containerIDs().prefix(5) { killAtRandom(["rm", "-f", id], within: 0.03) }
        // The next commands: whatever the kills left is settled and removed.
        for id in host.containerIDs() {
            let r = host.hako("rm", "-f", id, timeout: 30)
            #expect(r.status == 0 || r.stderr.contains("no such container"), "\(r.stderr)")
        }
        let probe = host.hako("run", "--rm", "-p", "18090:80", host.busybox, "true")
        #expect(probe.status == 0, "\(probe.stderr)")
        expectNothingLeft(Array(18090..<18098))
    }

    /// The mechanism the random kills cannot hit every time: a writer killed
    /// between creating its temporary file and renaming it. The next command
    /// removes a dead writer's file and leaves a live one's alone.
    @Test func temporaryFilesOfDeadWritersAreRemoved() throws {
        #expect(host.hako("run", "--rm", "-p", "18099:80", host.busybox, "true").status == 0)
        let endpoints = host.runRoot + "/networks/endpoints"
        let container = host.hako("create", host.busybox, "true").out
        let dead = deadPid()
        let id = String(repeating: "ab", count: 32)
        let leftovers = ["\(endpoints)/\(id).json.tmp.\(dead)", "\(host.root)/containers/\(container)/state.json.tmp.\(dead)",
                         "\(host.root)/networks/leases/x.json.tmp.\(dead)"]
        let live = "\(endpoints)/\(id).json.tmp.\(getpid())"
        for f in leftovers + [live] { #expect(FileManager.default.createFile(atPath: f, contents: Data())) }
        // A volume being made when its command was killed (a directory).
        let volume = "\(host.root)/volumes/.v1.tmp.\(dead)"
        try FileManager.default.createDirectory(atPath: volume + "/_data", withIntermediateDirectories: true)
        #expect(host.hako("start", "-a", container).status == 0)
        #expect(host.hako("run", "--rm", host.busybox, "true").status == 0)
        #expect(host.hako("volume", "create", "v2").status == 0)
        for f in leftovers + [volume] { #expect(!FileManager.default.fileExists(atPath: f), "\(f) removed") }
        #expect(FileManager.default.fileExists(atPath: live), "a live writer's file stays")
        try FileManager.default.removeItem(atPath: live)
        host.hako("rm", "-f", container)
        host.hako("volume", "rm", "v2")
        expectNothingLeft([18099])
    }

    /// A create killed while it unpacked the init layer leaves that snapshot's
    /// directory in images/tmp: the next create removes it, and leaves alone
    /// one a live process holds (its flock), as every collector does.
    @Test func theNextCreateRemovesADeadUnpacksDirectory() throws {
        let tmp = host.root + "/images/tmp"
        let dead = tmp + "/snapshot-of-a-killed-create", live = tmp + "/snapshot-being-unpacked"
        try FileManager.default.createDirectory(atPath: dead + "/fs/etc", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: live + "/fs", withIntermediateDirectories: true)
        let fd = open(live, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        #expect(fd >= 0 && flock(fd, LOCK_EX) == 0)
        #expect(host.hako("run", "--rm", host.busybox, "true").status == 0)
        #expect(!FileManager.default.fileExists(atPath: dead), "a dead unpack's directory is removed")
        #expect(FileManager.default.fileExists(atPath: live + "/fs"), "a live one's stays")
        close(fd)
        try FileManager.default.removeItem(atPath: live)
        expectNothingLeft([])
    }

    /// Imports killed half-way leave their snapshot in images/tmp; the next
    /// import, load or commit removes them (pull: RegistryIntegrationTests).
    @Test func killedImportsLeaveNoSnapshotOnceTheNextCommandRan() throws {
        let dir = try TestFiles.tempDir("hako-fault-import")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Incompressible content, so the import takes a moment.
        TestFiles.sh("mkdir \(dir)/root && for i in $(seq 40); do head -c 1000000 /dev/urandom > \(dir)/root/f$i; done && tar -C \(dir)/root -cf \(dir)/big.tar .")
        let tmp = host.root + "/images/tmp"
        let before = host.verifiedBlobs().count
        func killImportMidway() -> Bool {
            let earlier = Set(entries(tmp))
            let pid = Subprocess.spawn(host.prefix + [Binaries.hako, "import", dir + "/big.tar", "big"], env: host.env)
            // Its own snapshot directory (not the one an earlier killed import left).
            let started = host.eventually(20) { entries(tmp).contains { $0.hasPrefix("snapshot-") && !earlier.contains($0) } }
            usleep(UInt32.random(in: 0..<50_000))
            kill(pid, SIGKILL)
            _ = Subprocess.waitBounded(pid, timeout: 10)
            return started
        }
        // Each next command that adds content: import, load, commit.
        #expect(host.hako("save", "-o", dir + "/bb.tar", host.busybox).status == 0)
        let ctr = host.hako("create", host.busybox, "true").out
        let next: [[String]] = [["import", BusyboxImage.tarball, "again"], ["load", "-i", dir + "/bb.tar"], ["commit", ctr, "committed"]]
        for command in next {
            for _ in 0..<2 { #expect(killImportMidway(), "the import got going before it was killed") }
            #expect(!entries(tmp).isEmpty, "the killed imports left their snapshots (the case under test)")
            let r = host.hako(command)
            #expect(r.status == 0, "\(command[0]): \(r.stderr)")
            #expect(entries(tmp).isEmpty, "after \(command[0]): \(entries(tmp))")
        }
        #expect(host.imageInspect("big").isEmpty, "no killed import registered an image")
        let blobs = host.verifiedBlobs()
        let sizes = blobs.compactMap { (try? FileManager.default.attributesOfItem(atPath: host.root + "/images/blobs/sha256/" + $0))?[.size] as? Int }
        #expect(!sizes.contains { $0 > 30_000_000 }, "no layer of a killed import became a blob")
        #expect(blobs.count >= before)
        host.hako("rm", "-f", ctr)
        host.hako("rmi", "again", "committed")
        #expect(temporaries().isEmpty, "\(temporaries())")
    }

    /// Pulls killed at random moments (the big-layer case, killed while it
    /// unpacks, is RegistryIntegrationTests'): the next pull finishes and
    /// leaves no temporary file or half-made image.
    @Test func killedPullsLeaveNothingOnceTheNextPullRan() throws {
        let registry = try TestRegistry(in: host)
        defer { registry.stop() }
        let ref = "\(registry.address)/test/busybox:fault"
        #expect(host.hako("tag", host.busybox, ref).status == 0)
        #expect(host.hako("push", ref).status == 0)
        let fresh = TestHost("faultpull", sharingNetworkWith: host)
        defer { fresh.cleanup() }
        for _ in 0..<6 {
            let pid = Subprocess.spawn(fresh.prefix + [Binaries.hako, "pull", ref], env: fresh.env)
            usleep(UInt32.random(in: 0..<80_000))
            kill(pid, SIGKILL)
            _ = Subprocess.waitBounded(pid, timeout: 10)
            _ = fresh.hako("rmi", ref)  // when the pull finished before the kill
        }
        let r = fresh.hako("pull", ref)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(fresh.imageTempFiles.isEmpty, "\(fresh.imageTempFiles)")
        fresh.verifiedBlobs()
        #expect(fresh.hako("run", "--rm", ref, "true").status == 0, "the pulled image runs")
        let leftovers = ((try? FileManager.default.subpathsOfDirectory(atPath: fresh.root)) ?? []).filter { $0.contains(".tmp.") }
        #expect(leftovers.filter { !$0.hasPrefix("images/snapshots/") }.isEmpty, "\(leftovers)")
    }

    // MARK: - long command lines

    /// 10,000 arguments and 5,000 variables: the limit is the kernel's, not a table's.
    @Test func longCommandLinesReachTheContainer() throws {
        let args = (1...10_000).map { "a\($0)" }
        let r = host.hako(["run", "--rm", host.busybox, "sh", "-c", "echo $# ${10000}", "sh"] + args)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.out == "10000 a10000")

        let dir = try TestFiles.tempDir("hako-fault-env")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let many = (1...5_000).map { "V\($0)=value\($0)" }.joined(separator: "\n") + "\n"
        try many.write(toFile: dir + "/many.env", atomically: true, encoding: .utf8)
        let e = host.hako("run", "--rm", "--env-file", dir + "/many.env", "-e", "LAST=x", host.busybox, "sh", "-c", "env | grep -c '^V[0-9]'; echo $V5000 $LAST")
        #expect(e.status == 0, "\(e.stderr)")
        #expect(e.out == "5000\nvalue5000 x")

        // ~1 MB of environment (the kernel takes up to a quarter of the stack limit in all).
        let value = String(repeating: "y", count: 120_000)
        let big = (1...8).map { "BIG\($0)=\(value)" }.joined(separator: "\n") + "\n"
        try big.write(toFile: dir + "/big.env", atomically: true, encoding: .utf8)
        let b = host.hako("run", "--rm", "--env-file", dir + "/big.env", host.busybox, "sh", "-c", "echo ${#BIG1} ${#BIG8}")
        #expect(b.status == 0, "\(b.stderr)")
        #expect(b.out == "120000 120000")

        // One variable beyond the kernel's per-string limit: a clear error at create, nothing made.
        try ("HUGE=" + String(repeating: "z", count: 1_000_000) + "\n").write(toFile: dir + "/huge.env", atomically: true, encoding: .utf8)
        let h = host.hako("run", "--rm", "--env-file", dir + "/huge.env", host.busybox, "true")
        #expect(h.status == 125)
        #expect(h.stderr.contains("HUGE") && h.stderr.contains("MAX_ARG_STRLEN"), "\(h.stderr)")
        expectNothingLeft([])
    }

    /// The monitor's list of what --rm removes is sized to the spec too: 12
    /// anonymous volumes (the launch spec once held 8 paths) all go.
    @Test func runRmRemovesManyAnonymousVolumes() {
        let volumes = (1...12).flatMap { ["-v", "/v\($0)"] }
        let r = host.hako(["run", "--rm"] + volumes + [host.busybox, "sh", "-c", "touch /v1/a /v12/b && ls -d /v* | wc -l"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.out == "12")
        #expect(host.eventually(10) { entries(host.root + "/volumes").isEmpty }, "\(entries(host.root + "/volumes"))")
        expectNothingLeft([])
    }
}
