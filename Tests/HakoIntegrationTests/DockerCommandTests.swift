#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// The rest of docker's command line (issue 18): cp, top, rename, diff,
/// attach, info, version, system df/prune, container prune, logs windows,
/// ps/images filters, --format templates, options before the command,
/// update --restart and the run flags; each from the user's side, with its
/// bad input.
@Suite(.needsRoot, .serialized)
final class DockerCommandTests {
    let host = TestHost.make("dcmd")

    deinit { host.cleanup() }

    func scratch(_ name: String) -> String {
        let dir = host.base + "/" + name
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func cpBothWaysRunningAndStopped() throws {
        let id = host.hako("run", "-d", "--name", "cpbox", host.busybox, "sh", "-c",
                           "mkdir -p /data/sub; echo inner > /data/sub/f; chown 1000:29 /data/sub/f; ln -sf /etc/passwd /data/link; exec sleep 60").out
        #expect(host.eventually { host.hako("exec", id, "test", "-L", "/data/link").status == 0 })
        let out = scratch("cp-out")
        // A directory out of a running container, ownership kept with -a.
        var r = host.hako("cp", "-a", "cpbox:/data", out + "/copy")
        #expect(r.status == 0, "\(r.stderr)")
        #expect((try? String(contentsOfFile: out + "/copy/sub/f", encoding: .utf8)) == "inner\n")
        var st = stat()
        #expect(lstat(out + "/copy/sub/f", &st) == 0 && st.st_uid == 1000 && st.st_gid == 29)
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: out + "/copy/link")) == "/etc/passwd",
                "a symlink is copied as a link, not followed to the host's file")
        // Climbing out of the root resolves inside it: the container's passwd, not the host's.
        r = host.hako("cp", "cpbox:../../../etc/passwd", out + "/passwd")
        #expect(r.status == 0, "\(r.stderr)")
        #expect((try? String(contentsOfFile: out + "/passwd", encoding: .utf8))?.contains("tester:x:1000") == true)
        // Through the container's absolute symlink: still the container's file.
        r = host.hako("cp", "-L", "cpbox:/data/link", out + "/via-link")
        #expect((try? String(contentsOfFile: out + "/via-link", encoding: .utf8))?.contains("tester:x:1000") == true, "\(r.stderr)")

        // Into the container: a file by a new name, ownership root unless -a.
        let src = scratch("cp-in")
        FileManager.default.createFile(atPath: src + "/hello.txt", contents: Data("hello\n".utf8))
        chown(src + "/hello.txt", 1234, 1234)
        r = host.hako("cp", src + "/hello.txt", "cpbox:/tmp/renamed.txt")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(host.hako("exec", id, "sh", "-c", "cat /tmp/renamed.txt; stat -c %u /tmp/renamed.txt").out == "hello\n0")
        r = host.hako("cp", "-a", src + "/hello.txt", "cpbox:/tmp/")
        #expect(host.hako("exec", id, "stat", "-c", "%u", "/tmp/hello.txt").out == "1234", "\(r.stderr)")
        // ../../etc/ in the destination is the container's /etc, never the host's.
        let marker = "hako-cp-escape-\(getpid())"
        FileManager.default.createFile(atPath: src + "/" + marker, contents: Data("x\n".utf8))
        r = host.hako("cp", src + "/" + marker, "cpbox:../../../../etc/")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "/etc/" + marker))
        #expect(host.hako("exec", id, "cat", "/etc/" + marker).out == "x")

        // Stopped: the same paths, through the container's own layers.
        host.hako("stop", "-t", "0", id)
        r = host.hako("cp", src + "/hello.txt", "cpbox:/root/")
        #expect(r.status == 0, "\(r.stderr)")
        r = host.hako("cp", "cpbox:/root/hello.txt", out + "/back.txt")
        #expect(r.status == 0 && (try? String(contentsOfFile: out + "/back.txt", encoding: .utf8)) == "hello\n", "\(r.stderr)")
        #expect(host.hako("start", id).status == 0)
        #expect(host.hako("exec", id, "cat", "/root/hello.txt").out == "hello", "what was copied in while stopped is there after a start")

        // A tar stream both ways.
        let tar = out + "/data.tar"
        r = Subprocess.run(["/bin/sh", "-c", "\(host.prefix.joined(separator: " ")) env HAKO_ROOT=\(host.root) HAKO_RUN_ROOT=\(host.runRoot) HAKO_CGROUP_PARENT=\(host.cgroupParent) HAKO_MONITOR=\(Binaries.monitor) \(Binaries.hako) cp cpbox:/data/sub - > \(tar)"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Subprocess.run(["/bin/tar", "-tf", tar]).stdout.split(separator: "\n").contains("sub/f"))
        r = Subprocess.run(["/bin/sh", "-c", "\(host.prefix.joined(separator: " ")) env HAKO_ROOT=\(host.root) HAKO_RUN_ROOT=\(host.runRoot) HAKO_CGROUP_PARENT=\(host.cgroupParent) HAKO_MONITOR=\(Binaries.monitor) \(Binaries.hako) cp - cpbox:/home < \(tar)"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(host.hako("exec", id, "stat", "-c", "%u:%g", "/home/sub/f").out == "1000:29", "a tar stream keeps its owners")

        // Bad input: a missing container, a missing path, a directory onto a file.
        r = host.hako("cp", "nosuch:/etc/passwd", out + "/x")
        #expect(r.status == 125 && r.stderr.contains("no such container"))
        r = host.hako("cp", "cpbox:/nope", out + "/x")
        #expect(r.status == 125 && r.stderr.contains("no such file or directory"))
        r = host.hako("cp", "cpbox:/data", out + "/passwd")
        #expect(r.status == 125 && r.stderr.contains("cannot copy a directory to a file"))
        r = host.hako("cp", src, "cpbox:/etc/passwd")
        #expect(r.status == 125 && r.stderr.contains("cannot copy a directory to a file"))
        host.hako("rm", "-f", id)
    }

    @Test func cpReachesAStoppedContainersVolumesAndBinds() throws {
        let bindDir = scratch("cp-bind")
        FileManager.default.createFile(atPath: bindDir + "/onhost.txt", contents: Data("from the host\n".utf8))
        let id = host.hako("run", "-d", "--hostname", "cphost", "-v", "cpvol:/vol", "-v", "\(bindDir):/bind:ro", host.busybox, "sh", "-c",
                           "mkdir -p /vol/sub; echo v1 > /vol/sub/x; exec sleep 60").out
        defer { host.hako("rm", "-f", id); host.hako("volume", "rm", "cpvol") }
        #expect(host.eventually { host.hako("exec", id, "test", "-f", "/vol/sub/x").status == 0 })
        #expect(host.hako("stop", "-t", "0", id).status == 0)
        let out = scratch("cp-stopped")
        // Out of the stopped container: the volume's and the bind's files, and its /etc/hostname.
        var r = host.hako("cp", id + ":/vol/sub", out + "/sub")
        #expect(r.status == 0 && (try? String(contentsOfFile: out + "/sub/x", encoding: .utf8)) == "v1\n", "\(r.stderr)")
        r = host.hako("cp", id + ":/bind/onhost.txt", out + "/onhost.txt")
        #expect(r.status == 0 && (try? String(contentsOfFile: out + "/onhost.txt", encoding: .utf8)) == "from the host\n", "\(r.stderr)")
        r = host.hako("cp", id + ":/etc/hostname", out + "/hostname")
        #expect(r.status == 0 && (try? String(contentsOfFile: out + "/hostname", encoding: .utf8)) == "cphost\n", "\(r.stderr)")
        // Into it: the volume takes the file (the host's volume directory has it); the read-only bind refuses.
        let src = scratch("cp-stopped-in")
        FileManager.default.createFile(atPath: src + "/new.txt", contents: Data("new\n".utf8))
        r = host.hako("cp", src + "/new.txt", id + ":/vol/")
        #expect(r.status == 0, "\(r.stderr)")
        #expect((try? String(contentsOfFile: host.root + "/volumes/cpvol/_data/new.txt", encoding: .utf8)) == "new\n")
        r = host.hako("cp", src + "/new.txt", id + ":/bind/")
        #expect(r.status == 125 && r.stderr.contains("read-only"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: bindDir + "/new.txt"))
        // The mounts were the copy's own: none is left on the host.
        let mounts = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        #expect(!mounts.contains(id), "a copy's mount is left on the host")
        #expect(host.hako("start", id).status == 0)
        #expect(host.hako("exec", id, "cat", "/vol/new.txt").out == "new")
        // A container never started: its volume made for the copy, as its start would.
        let created = host.hako("create", "-v", "cpvol2:/v2", host.busybox, "cat", "/v2/new.txt").out
        defer { host.hako("rm", "-f", created); host.hako("volume", "rm", "cpvol2") }
        r = host.hako("cp", src + "/new.txt", created + ":/v2/")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(host.hako("start", "-a", created).out == "new")
    }

    @Test func cpMapsOwnersOfUserNamespacedContainers() throws {
        // The container's own users walk the data root.
        chmod(host.base, 0o711)
        let src = scratch("cp-userns-in")
        FileManager.default.createFile(atPath: src + "/hello.txt", contents: Data("hello\n".utf8))
        chown(src + "/hello.txt", 1234, 1234)
        // Idmapped layers, then the fallback of shifted copies: the same view.
        for (n, extra) in [["HAKO_USERNS_IDMAP": ""], ["HAKO_USERNS_IDMAP": "copy"]].enumerated() {
            let env = extra.merging(["HAKO_USERNS_RANGE": "1100000000:300000"]) { $1 }
            let id = host.hako(env: env, "run", "-d", "--userns", "auto", host.busybox, "sh", "-c",
                               "mkdir /data; echo in > /data/f; chown 1000:29 /data/f; exec sleep 60").out
            defer { host.hako("rm", "-f", id) }
            #expect(host.eventually { host.hako("exec", id, "test", "-f", "/data/f").status == 0 }, "\(id)")
            let mode = (host.inspect(id)["HostConfig"] as? [String: Any])?["UsernsMode"] as? String ?? ""
            let start = try #require(UInt32(mode.split(separator: ":").dropFirst().first ?? ""), "\(mode)")
            let out = scratch("cp-userns-out\(n)")
            for stopped in [false, true] {
                if stopped { #expect(host.hako("stop", "-t", "0", id).status == 0) }
                // Out: the owners the container sees, not the host's shifted ids.
                var r = host.hako("cp", "-a", id + ":/data/f", out + "/f\(stopped)")
                #expect(r.status == 0, "\(r.stderr)")
                var st = stat()
                #expect(lstat(out + "/f\(stopped)", &st) == 0 && st.st_uid == 1000 && st.st_gid == 29, "\(st.st_uid):\(st.st_gid)")
                r = host.hako("cp", "-a", id + ":/bin/busybox", out + "/busybox\(stopped)")
                #expect(lstat(out + "/busybox\(stopped)", &st) == 0 && st.st_uid == 0, "the image's root is the container's root: \(st.st_uid) \(r.stderr)")
                // In: the container's root (its first host id), or with -a the archive's ids mapped.
                r = host.hako("cp", src + "/hello.txt", id + ":/tmp/root\(stopped).txt")
                #expect(r.status == 0, "\(r.stderr)")
                r = host.hako("cp", "-a", src + "/hello.txt", id + ":/tmp/kept\(stopped).txt")
                #expect(r.status == 0, "\(r.stderr)")
                #expect(lstat(host.root + "/containers/\(id)/upper/tmp/root\(stopped).txt", &st) == 0 && st.st_uid == start && st.st_gid == start)
                #expect(lstat(host.root + "/containers/\(id)/upper/tmp/kept\(stopped).txt", &st) == 0 && st.st_uid == start + 1234)
            }
            #expect(host.hako("start", id).status == 0)
            // From inside: the files belong to the container's users.
            #expect(host.hako("exec", id, "stat", "-c", "%u:%g", "/tmp/rootfalse.txt", "/tmp/roottrue.txt", "/tmp/keptfalse.txt", "/tmp/kepttrue.txt").out
                    == "0:0\n0:0\n1234:1234\n1234:1234")
            #expect(host.hako("exec", id, "cat", "/tmp/kepttrue.txt").out == "hello")
            // An owner the container does not have is refused, and nothing is written.
            let far = src + "/far.txt"
            FileManager.default.createFile(atPath: far, contents: Data("x\n".utf8))
            chown(far, 70000, 70000)
            let r = host.hako("cp", "-a", far, id + ":/tmp/")
            #expect(r.status == 125 && r.stderr.contains("cannot be mapped"), "\(r.stderr)")
            #expect(host.hako("exec", id, "test", "-e", "/tmp/far.txt").status != 0, "the refused entry is not made")
        }
    }

    @Test func topRenameDiff() {
        let id = host.hako("run", "-d", "--name", "old-name", host.busybox, "sh", "-c",
                           "echo x > /root/added; echo y >> /etc/group; rm /etc/not-executable; exec sleep 60").out
        #expect(host.eventually { host.hako("exec", id, "test", "-f", "/root/added").status == 0 })
        // top: docker's ps -ef columns, then chosen ones.
        var r = host.hako("top", "old-name")
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.out.split(separator: "\n")
        #expect(lines.first?.split(separator: " ").filter { !$0.isEmpty } == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"])
        #expect(lines.contains { $0.hasPrefix("root") && $0.hasSuffix("sleep 60") })
        r = host.hako("top", "old-name", "-o", "pid,comm")
        #expect(r.out.split(separator: "\n").last?.hasSuffix("sleep") == true, "\(r.out)")
        #expect(host.hako("top", "old-name", "-o", "bogus").status == 125)
        // The ps options docker users pass, from the container's /proc: the pid
        // column is the host's pid of the container's init (inspect's State.Pid).
        let pid = host.hako("inspect", "--format", "{{.State.Pid}}", id).out
        r = host.hako("top", "old-name", "aux")
        let aux = r.out.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(aux.first == ["USER", "PID", "%CPU", "%MEM", "VSZ", "RSS", "TTY", "STAT", "START", "TIME", "COMMAND"], "\(r.out) \(r.stderr)")
        #expect(aux.contains { $0.count >= 11 && $0[0] == "root" && $0[1] == pid && $0[7].hasPrefix("S") && $0.suffix(2) == ["sleep", "60"] }, "\(r.out)")
        r = host.hako("top", "old-name", "-eo", "pid,ppid,user,nlwp,args")
        #expect(r.out.hasPrefix("PID"), "\(r.out)")
        #expect(r.out.split(separator: "\n").contains { line in
            let f = line.split(separator: " ").map(String.init)
            return f.count == 6 && f[0] == pid && f[2...] == ["root", "1", "sleep", "60"]
        }, "\(r.out)")
        r = host.hako("top", "old-name", "-o", "pid=", "-o", "comm=")
        #expect(r.out.split(separator: "\n").last?.split(separator: " ").last == "sleep", "no header: \(r.out)")
        r = host.hako("top", "old-name", "-p", "1")
        #expect(r.status == 125 && r.stderr.contains("not supported"))

        // rename: the new name finds it, the old one is free again.
        #expect(host.hako("rename", "old-name", "new-name").status == 0)
        #expect(host.hako("ps", "--filter", "id=\(id.prefix(12))", "--format", "{{.Names}}").out == "new-name")
        #expect(host.hako("inspect", "old-name").status != 0)
        r = host.hako("rename", "new-name", "bad/name")
        #expect(r.status == 125 && r.stderr.contains("invalid container name"))
        let other = host.hako("create", "--name", "taken", host.busybox, "true").out
        r = host.hako("rename", "new-name", "taken")
        #expect(r.status == 125 && r.stderr.contains("already in use"))
        #expect(host.hako("rename", "missing", "x1").stderr.contains("no such container"))
        host.hako("rm", other)

        // diff: what the container added, changed and deleted.
        let diff = host.hako("diff", "new-name").out.split(separator: "\n").map(String.init)
        #expect(diff.contains("A /root/added"))
        #expect(diff.contains("C /etc/group"))
        #expect(diff.contains("D /etc/not-executable"))
        #expect(!diff.contains { $0.hasSuffix("/etc/hosts") || $0.hasPrefix("A /proc") }, "runtime mount points are left out: \(diff)")
        host.hako("rm", "-f", id)
        #expect(host.hako("top", id).status == 125)
    }

    @Test func logWindowsAndTimestamps() {
        let id = host.hako("run", "-d", host.busybox, "sh", "-c", "echo first; sleep 2; echo second").out
        #expect(host.eventually(15) { host.hako("logs", id).out.contains("second") })
        let all = host.hako("logs", "-t", id).out.split(separator: "\n")
        #expect(all.count == 2)
        let stamp = String(all.first?.split(separator: " ").first ?? "")
        #expect(stamp.hasSuffix("Z") && stamp.contains("T"), "an RFC 3339 time: \(stamp)")
        // --since a second after the first line: only the second; --until the same: only the first.
        guard let t = Timestamp(rfc3339: stamp) else { Issue.record("bad stamp"); return }
        let cut = String(t.seconds + 1)
        #expect(host.hako("logs", "--since", cut, id).out == "second")
        #expect(host.hako("logs", "--until", cut, id).out == "first")
        #expect(host.hako("logs", "--since", "1h", id).out == "first\nsecond")
        // No attributes asked: docker's lone space before each line.
        #expect(host.hako("logs", "--details", id).stdout == " first\n second\n")
        let bad = host.hako("logs", "--since", "yesterday-ish", id)
        #expect(bad.status == 125 && bad.stderr.contains("invalid --since"))
        host.hako("rm", "-f", id)
    }

    @Test func logDetailsShowTheAttributesAskedFor() {
        let id = host.hako("run", "-d", "--label", "app=web", "--label", "tier=front end", "--label", "other=x",
                           "-e", "REGION=eu/1", "-e", "STAGE=prod", "-e", "SECRET=s",
                           "--log-opt", "labels=app,missing", "--log-opt", "labels-regex=^ti", "--log-opt", "env=REGION",
                           "--log-opt", "env-regex=^STA", host.busybox, "sh", "-c", "echo one; printf 'two'").out
        #expect(host.eventually(15) { host.hako("logs", id).out == "one\ntwo" })
        // Sorted by key, query-escaped, comma-separated; timestamps come first.
        let prefix = "REGION=eu%2F1,STAGE=prod,app=web,tier=front+end "
        #expect(host.hako("logs", "--details", id).stdout == prefix + "one\n" + prefix + "two")
        let stamped = host.hako("logs", "--details", "-t", id).stdout.split(separator: "\n")
        #expect(stamped.count == 2 && stamped.allSatisfy { $0.split(separator: " ", maxSplits: 1).last?.hasPrefix(prefix) == true }, "\(stamped)")
        #expect(host.hako("logs", id).stdout == "one\ntwo", "without --details the lines alone")
        let inspect = host.hako("inspect", "--format", "{{index .HostConfig.LogConfig \"labels\"}}", id)
        #expect(inspect.out == "app,missing")
        host.hako("rm", "-f", id)
        let bad = host.hako("run", "--log-opt", "env-regex=(", host.busybox, "true")
        #expect(bad.status == 125 && bad.stderr.contains("invalid log option env-regex"), "\(bad.stderr)")
    }

    @Test func filtersAndTemplates() {
        let a = host.hako("run", "-d", "--name", "fa", "--label", "tier=web", host.busybox, "sleep", "60").out
        let b = host.hako("create", "--name", "fb", "--label", "tier=db", host.busybox, "true").out
        defer { host.hako("rm", "-f", a, b) }
        func names(_ args: String...) -> [String] {
            host.hako(["ps", "--format", "{{.Names}}"] + args).out.split(separator: "\n").map(String.init).sorted()
        }
        #expect(names() == ["fa"])
        #expect(names("-a", "--filter", "label=tier") == ["fa", "fb"])
        #expect(names("--filter", "status=created") == ["fb"], "a status filter looks at stopped containers too")
        #expect(names("-a", "--filter", "label=tier=db") == ["fb"])
        #expect(names("-a", "--filter", "name=f", "--filter", "status=running") == ["fa"])
        #expect(names("-a", "--filter", "ancestor=\(host.busybox)").count == 2)
        #expect(names("-a", "--filter", "network=bridge").count == 2)
        #expect(names("-a", "--filter", "network=nosuchnet").isEmpty)
        var r = host.hako("ps", "--filter", "status=sleepy")
        #expect(r.status == 125 && r.stderr.contains("invalid filter 'status=sleepy'"))
        r = host.hako("ps", "--filter", "colour=red")
        #expect(r.status == 125 && r.stderr.contains("invalid filter 'colour'"))

        // Templates: fields, functions, json, table with a header.
        r = host.hako("ps", "--format", "{{.Names}}|{{upper .State}}|{{json .Labels}}|{{printf \"%.5s\" .ID}}")
        #expect(r.out == "fa|RUNNING|\"tier=web\"|\(a.prefix(5))", "\(r.stderr)")
        r = host.hako("ps", "-a", "--format", "table {{.Names}}\\t{{.State}}")
        let lines = r.out.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("NAMES") == true && lines.first?.contains("STATE") == true, "\(lines)")
        #expect(lines.count == 3)
        #expect(host.hako("inspect", "--format", "{{.State.Running}} {{.Name}} {{index .Config.Labels \"tier\"}}", "fa").out == "true /fa web")
        #expect(host.hako("inspect", "--format", "{{.Id}}", host.busybox).out.hasPrefix("sha256:"), "inspect finds images too")
        #expect(host.hako("inspect", "--type", "network", "--format", "{{.Name}}", "bridge").out == "bridge")
        // A template error names its position; nothing is printed for the rows.
        r = host.hako("ps", "--format", "{{.Names}} {{.Nope}}")
        #expect(r.status == 125 && r.stderr.contains("template: 1:14: can't evaluate field Nope"), "\(r.stderr)")
        r = host.hako("ps", "--format", "{{.Names")
        #expect(r.status == 125 && r.stderr.contains("template: 1:1: unclosed action"))
        r = host.hako("inspect", "--format", "{{range .Config.Env}}{{end", "fa")
        #expect(r.status == 125 && r.stderr.contains("template:"))
        #expect(host.hako("network", "ls", "--format", "{{.Name}}").out.split(separator: "\n").contains("bridge"))
        #expect(host.hako("images", "--format", "{{.Repository}}:{{.Tag}}").out.contains("busybox:test"))
        #expect(host.hako("history", "--format", "{{.Size}}", host.busybox).status == 0)

        // Images: dangling, reference.
        #expect(host.hako("images", "--filter", "dangling=false", "--format", "{{.Repository}}").out.contains("busybox"))
        #expect(host.hako("images", "--filter", "dangling=true", "-q").out.isEmpty)
        #expect(host.hako("images", "--filter", "reference=busy*", "--format", "{{.Tag}}").out == "test")
        #expect(host.hako("images", "--filter", "reference=nothing*", "-q").out.isEmpty)
        #expect(host.hako("images", "--filter", "dangling=maybe").status == 125)
    }

    @Test func optionsBeforeTheCommand() {
        let id = host.hako("create", host.busybox, "true").out
        defer { host.hako("rm", id) }
        let empty = scratch("other-root")
        // The flag wins over $HAKO_ROOT, before the command as after it.
        #expect(host.hako("--root", empty + "/root", "--run-root", empty + "/run", "ps", "-a", "-q").out.isEmpty)
        #expect(host.hako("ps", "-a", "-q", "--root", empty + "/root").out.isEmpty)
        #expect(host.hako("--root", host.root, "ps", "-a", "-q").out == String(id.prefix(12)))
        let debug = host.hako("--log-level", "debug", "ps")
        #expect(debug.status == 0 && debug.stderr.contains("debug: data root \(host.root)"))
        #expect(host.hako("--log-level", "loud", "ps").status == 125)
        #expect(host.hako("--root").status == 125)
    }

    @Test func infoVersionDfPrune() {
        let running = host.hako("run", "-d", host.busybox, "sleep", "60").out
        let stopped = host.hako("run", "-d", "--label", "keep=yes", host.busybox, "sh", "-c", "dd if=/dev/zero of=/root/blob bs=1k count=300 2>/dev/null").out
        #expect(host.hako("wait", stopped).out == "0")
        let done = host.hako("create", host.busybox, "true").out
        var r = host.hako("info")
        #expect(r.status == 0 && r.out.contains("Storage Driver: overlay") && r.out.contains("Cgroup Version:"), "\(r.stderr)")
        #expect(host.hako("info", "--format", "{{.ContainersRunning}}/{{.Containers}}").out == "1/3")
        #expect(host.hako("system", "info", "--format", "{{.Driver}}").out == "overlay")
        #expect(host.hako("version", "--format", "{{.Client.Version}}").out.isEmpty == false)
        r = host.hako("system", "df")
        #expect(r.status == 0 && r.out.contains("Containers") && r.out.contains("Images"))
        #expect(host.hako("system", "df", "--format", "{{.Type}}:{{.TotalCount}}").out.contains("Containers:3"))
        #expect(host.hako("system", "df", "-v").out.contains("Containers space usage"))
        // container prune: stopped ones the filter admits; running ones stay.
        r = host.hako("container", "prune")
        #expect(r.status == 125 && r.stderr.contains("use --force"), "no terminal to confirm on: refused")
        r = host.hako("container", "prune", "--force", "--filter", "label!=keep")
        #expect(r.status == 0 && r.out.contains(done) && !r.out.contains(stopped), "\(r.out)")
        r = host.hako("container", "prune", "-f", "--filter", "until=1h")
        #expect(r.status == 0 && !r.out.contains(stopped), "created within the hour: kept")
        r = host.hako("system", "prune", "-f")
        #expect(r.status == 0 && r.out.contains(stopped) && r.out.contains("Total reclaimed space: 3"), "\(r.out) \(r.stderr)")
        #expect(host.hako("ps", "-a", "-q", "--no-trunc").out == running)
        #expect(host.hako("container", "prune", "-f", "--filter", "colour=red").status == 125)
        host.hako("rm", "-f", running)
    }

    @Test func runFlagsAndUpdateRestart() {
        let cid = scratch("cid") + "/id"
        var r = host.hako("run", "--rm", "--cidfile", cid, "--shm-size", "8m", "--group-add", "audio", "--group-add", "4242",
                          "--user", "tester", host.busybox, "sh", "-c", "df -k /dev/shm | tail -1; id -G")
        #expect(r.status == 0, "\(r.stderr)")
        let out = r.out.split(separator: "\n").map(String.init)
        #expect(out.first?.split(separator: " ").filter { !$0.isEmpty }.dropFirst().first == "8192", "\(out)")
        #expect(out.last?.split(separator: " ").map(String.init).sorted() == ["1000", "29", "4242"])
        let written = (try? String(contentsOfFile: cid, encoding: .utf8)) ?? ""
        #expect(written.count == 64)
        r = host.hako("create", "--cidfile", cid, host.busybox, "true")
        #expect(r.status == 125 && r.stderr.contains("container ID file found"))
        #expect(host.hako("ps", "-a", "-q").out.isEmpty, "nothing left behind by the refused create")
        #expect(host.hako("run", "--rm", "--group-add", "nosuchgroup", host.busybox, "true").status != 0)
        #expect(host.hako("create", "--shm-size", "lots", host.busybox, "true").status == 125)
        #expect(host.hako("create", "--expose", "http", host.busybox, "true").status == 125)
        let exposed = host.hako("create", "--expose", "7000", "--expose", "7001/udp", host.busybox, "true").out
        #expect(host.hako("rm", exposed).status == 0)

        // update --restart: a container that ends on its own comes back once its policy says so.
        let id = host.hako("run", "-d", host.busybox, "sh", "-c", "sleep 1; exit 3").out
        #expect(host.hako("update", "--restart", "on-failure:2", id).status == 0)
        #expect(host.hako("inspect", "--format", "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}", id).out == "on-failure:2")
        #expect(host.eventually(20) { host.hako("inspect", "--format", "{{.RestartCount}}", id).out == "2" }, "restarted by its updated policy")
        #expect(host.hako("update", "--restart", "sometimes", id).status == 125)
        let rm = host.hako("run", "-d", "--rm", host.busybox, "sleep", "30").out
        r = host.hako("update", "--restart", "always", rm)
        #expect(r.status == 125 && r.stderr.contains("--rm"))
        host.hako("rm", "-f", id, rm)
    }

    @Test func initIsPID1ForwardsAndReaps() {
        // PID 1 is hako-init; the command is its child; an orphan is reaped, not left a zombie.
        var r = host.hako("run", "--rm", "--init", host.busybox, "sh", "-c",
                          "(sleep 0.2 &); sleep 1; cat /proc/1/comm; ps -o stat,comm | grep -c '^Z' || true")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.out.split(separator: "\n").map(String.init) == ["hako-init", "0"], "\(r.out)")
        // A signal to the container reaches the command through hako-init; its exit code is the command's.
        let id = host.hako("run", "-d", "--init", host.busybox, "sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.1; done").out
        #expect(host.eventually { host.hako("top", id, "-o", "comm").out.contains("sleep") })
        #expect(host.hako("inspect", "--format", "{{.Path}}", id).out == "sh", "inspect shows the command, not the init")
        host.hako("kill", "-s", "TERM", id)
        r = host.hako("wait", id)
        #expect(r.out == "42", "\(r.stderr)")
        host.hako("rm", "-f", id)
        // The command's own exit code and "not found" as without --init.
        #expect(host.hako("run", "--rm", "--init", host.busybox, "sh", "-c", "exit 5").status == 5)
        #expect(host.hako("run", "--rm", "--init", host.busybox, "/no/such").status == 127)
    }

    @Test func attachStreamsOutputAndExitCode() {
        let id = host.hako("run", "-d", host.busybox, "sh", "-c", "sleep 1; echo attached-hello; sleep 1; exit 7").out
        let r = host.hako("attach", "--no-stdin", id, timeout: 20)
        #expect(r.status == 7, "\(r.stderr)")
        #expect(r.out.contains("attached-hello"))
        let stopped = host.hako("attach", id)
        #expect(stopped.status == 125 && stopped.stderr.contains("cannot attach to a stopped container"))
        #expect(host.hako("attach", "--detach-keys", "ctrl-", id).status == 125)
        host.hako("rm", "-f", id)
    }

    /// `run -it` and `attach` on a terminal: the detach keys (docker's
    /// ctrl-p,ctrl-q, or --detach-keys) leave the container running and end
    /// the command with 0. A pseudo-terminal is made by python3's pty module.
    @Test func detachKeysOnATerminal() throws {
        let script = host.base + "/on-terminal.py"  // not pty.py: it would shadow the module
        try """
            import os, pty, select, sys, time
            argv = sys.argv[2:]
            keys = bytes.fromhex(sys.argv[1])
            pid, fd = pty.fork()
            if pid == 0:
                os.execv(argv[0], argv)
            out = b""
            def pump(seconds):
                global out
                end = time.time() + seconds
                while time.time() < end:
                    r, _, _ = select.select([fd], [], [], 0.05)
                    if r:
                        try: out += os.read(fd, 4096)
                        except OSError: return
            pump(1.5)
            os.write(fd, b"echo typed-$((6*7))\\r")
            pump(1.0)
            os.write(fd, keys)
            end = time.time() + 10
            code = None
            while time.time() < end:
                w, status = os.waitpid(pid, os.WNOHANG)
                if w:
                    code = os.waitstatus_to_exitcode(status)
                    break
                pump(0.1)
            if code is None:
                os.kill(pid, 9)
            print("exit", code)
            print(out.decode(errors="replace"))
            """.write(toFile: script, atomically: true, encoding: .utf8)
        func onTerminal(_ keys: String, _ args: [String]) -> Output {
            Subprocess.run(host.prefix + ["/usr/bin/env"] + host.env.map { "\($0.key)=\($0.value)" }
                           + ["/usr/bin/python3", script, keys, Binaries.hako] + args, timeout: 30)
        }
        var r = onTerminal("1011", ["run", "-it", "--name", "ttybox", host.busybox, "sh"])
        #expect(r.stdout.hasPrefix("exit 0"), "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("typed-42"), "the shell ran what was typed")
        #expect(host.hako("inspect", "--format", "{{.State.Status}}", "ttybox").out == "running", "detached, not stopped")
        r = onTerminal("0164", ["attach", "--detach-keys", "ctrl-a,d", "ttybox"])
        #expect(r.stdout.hasPrefix("exit 0") && r.stdout.contains("typed-42"), "\(r.stdout) \(r.stderr)")
        #expect(host.hako("inspect", "--format", "{{.State.Status}}", "ttybox").out == "running")
        host.hako("rm", "-f", "ttybox")
    }

    /// A reboot, simulated: every monitor killed, the run root emptied (a
    /// tmpfs), the cgroups and mounts gone with them; `start --all-restartable`
    /// (what hako-restart.service runs) brings back `always` and
    /// `unless-stopped` containers, not the one a person stopped nor `no`.
    @Test func restartAtBoot() throws {
        let always = host.hako("run", "-d", "--restart", "always", "--network", "none", host.busybox, "sleep", "300").out
        let unless = host.hako("run", "-d", "--restart", "unless-stopped", "--network", "none", host.busybox, "sleep", "300").out
        let unlessStopped = host.hako("run", "-d", "--restart", "unless-stopped", "--network", "none", host.busybox, "sleep", "300").out
        let alwaysStopped = host.hako("run", "-d", "--restart", "always", "--network", "none", host.busybox, "sleep", "300").out
        let no = host.hako("run", "-d", "--network", "none", host.busybox, "sleep", "300").out
        let failure = host.hako("run", "-d", "--restart", "on-failure", "--network", "none", host.busybox, "sleep", "300").out
        #expect(host.hako("stop", "-t", "0", unlessStopped, alwaysStopped).status == 0)
        let all = [always, unless, unlessStopped, alwaysStopped, no, failure]
        // The "reboot": SIGKILL every monitor (their containers die with them), empty the run root.
        for id in all {
            if let text = try? String(contentsOfFile: "\(host.root)/containers/\(id)/state.json", encoding: .utf8),
               let data = text.data(using: .utf8),
               let state = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
               let pid = state["monitorPid"] as? Int, pid > 0, state["status"] as? String == "running" {
                kill(pid_t(pid), SIGKILL)
            }
        }
        #expect(host.eventually(15) { !all.contains { FileManager.default.fileExists(atPath: "\(host.runRoot)/containers/\($0)/monitor.lock") && FileLockProbe.held("\(host.runRoot)/containers/\($0)/monitor.lock") } })
        // What a reboot takes with the tmpfs: pinned namespaces are mounts there.
        for f in (try? FileManager.default.contentsOfDirectory(atPath: host.runRoot + "/netns")) ?? [] {
            umount2(host.runRoot + "/netns/" + f, Int32(MNT_DETACH))
        }
        try? FileManager.default.removeItem(atPath: host.runRoot)
        #expect(host.hako("ps", "-q").out.isEmpty, "nothing runs after the reboot")

        let r = host.hako("start", "--all-restartable")
        #expect(r.status == 0, "\(r.stderr)")
        let running = Set(host.hako("ps", "-q", "--no-trunc").out.split(separator: "\n").map(String.init))
        #expect(running == [always, unless, alwaysStopped], "always (even stopped by a person), unless-stopped unless a person stopped it")
        #expect(host.hako("exec", unless, "true").status == 0, "it really runs")
        #expect(host.hako("start", "--all-restartable", always).status == 125)
        // Again: nothing more to start.
        #expect(host.hako("start", "--all-restartable").out.isEmpty)
        host.hako(["rm", "-f"] + all)
    }
}

/// Whether another process holds a lock on a file (flock).
enum FileLockProbe {
    static func held(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { flock(fd, LOCK_UN); return false }
        return true
    }
}
