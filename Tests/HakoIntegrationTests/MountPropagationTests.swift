#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// No unmount, detach or move made while a container is set up reaches the
/// host, whatever the propagation asked for; mounts made inside a container
/// reach the host only through a bind whose propagation says so.
///
/// Each check runs in a mount namespace of its own that plays the host (made
/// private first, then rshared, as systemd leaves a host's "/"), with a canary:
/// a mount inside a shared mount, as `ip netns add` leaves one under /run/netns.
/// The machine's own mounts are never at stake.
@Suite(.needsRoot, .serialized) final class MountPropagationTests {
    let rt = RuntimeHost("prop")
    let host = TestHost.make("prop")

    /// Runs `body` (shell) in a fresh "host" mount namespace whose canary is
    /// `$C/pt` under the shared mount `$C`; prints the canary's fate last.
    func inHostNamespace(_ body: String, env: [String: String] = [:]) -> Output {
        let canary = rt.base + "/canary"
        try? FileManager.default.createDirectory(atPath: canary, withIntermediateDirectories: true)
        let script = """
            set -u
            mount --make-rshared / || exit 90
            C=\(canary)
            mount -t tmpfs canary "$C" && mount --make-shared "$C" && mkdir -p "$C/pt" && mount -t tmpfs pt "$C/pt" || exit 91
            mounted() { grep -q " $1 " /proc/self/mountinfo && echo yes || echo no; }
            \(body)
            echo "canary $(mounted "$C/pt")"
            """
        return Subprocess.run(["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script],
                              env: env, timeout: 120)
    }

    static let rootPropagations = ["shared", "rshared", "slave", "rslave", "private", "rprivate", "unbindable"]

    @Test func noRootPropagationTakesTheHostsMountsDown() {
        var body = ""
        for p in Self.rootPropagations {
            let b = rt.bundle("root-\(p)", args: ["true"]) { c in
                var l = c["linux"] as? [String: Any] ?? [:]
                l["rootfsPropagation"] = p
                c["linux"] = l
            }
            body += """
                \(Binaries.runtime) --root \(rt.root) run --bundle \(b) root-\(p) >/dev/null 2>"$C/../err-\(p)"; echo "ran \(p) $?"
                echo "after \(p) $(mounted "$C/pt")"
                [ "$(mounted "$C/pt")" = yes ] || mount -t tmpfs pt "$C/pt"

                """
        }
        let r = inHostNamespace(body)
        for p in Self.rootPropagations {
            let err = (try? String(contentsOfFile: rt.base + "/err-\(p)", encoding: .utf8)) ?? ""
            #expect(r.stdout.contains("ran \(p) 0\n"), "rootfsPropagation \(p): \(r.stdout) \(err)")
            #expect(r.stdout.contains("after \(p) yes\n"), "rootfsPropagation \(p) took the host's mount down: \(r.stdout)")
        }
        #expect(r.stdout.hasSuffix("canary yes\n"), "\(r.stdout) \(r.stderr)")
    }

    /// Without pivot_root the root is moved onto "/": with a shared root
    /// propagation and the bundle on a mount of its own, that move would
    /// propagate the container's whole tree onto the host's "/".
    @Test func noPivotMovesNothingOntoTheHost() {
        let b = rt.bundle("nopivot", args: ["true"]) { c in
            var l = c["linux"] as? [String: Any] ?? [:]
            l["rootfsPropagation"] = "rshared"
            c["linux"] = l
        }
        let own = rt.base + "/own-mount"
        try? FileManager.default.createDirectory(atPath: own, withIntermediateDirectories: true)
        // Mounts are compared by their IDs and only for additions: this
        // namespace is a copy of the busy host's, and a copy whose mount point
        // another test removes on the host is detached here by the kernel.
        let r = inHostNamespace("""
            mount -t tmpfs own \(own) && cp -a \(b)/. \(own)/ || exit 92
            ids() { cut -d' ' -f1 /proc/self/mountinfo | sort; }
            ids > "$C/../ids-before"
            \(Binaries.runtime) --root \(rt.root) run --no-pivot --bundle \(own) nopivot >/dev/null; echo "ran $?"
            ids > "$C/../ids-after"
            echo "added $(comm -13 "$C/../ids-before" "$C/../ids-after" | grep -c '')"
            echo "own $(mounted \(own))"
            """)
        #expect(r.stdout.contains("ran 0\n"), "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("added 0\n"), "the run added mounts to the host's table: \(r.stdout)")
        #expect(r.stdout.contains("own yes\n"), "the bundle's own mount left the host's table: \(r.stdout)")
        #expect(r.stdout.hasSuffix("canary yes\n"), "\(r.stdout)")
    }

    /// A bind of the shared canary with each propagation; the container mounts
    /// a tmpfs below it. Only a shared bind under a shared root reaches the host.
    @Test func aBindSharesBackOnlyWhereItsPropagationSaysSo() {
        let cases: [(root: String, bind: String, reaches: Bool)] = [
            ("rshared", "rshared", true), ("rshared", "shared", true),
            ("rshared", "rslave", false), ("rshared", "slave", false),
            ("rshared", "rprivate", false), ("rshared", "private", false),
            ("rslave", "rshared", false),
        ]
        var body = ""
        for (i, c) in cases.enumerated() {
            let name = "bind\(i)"
            let b = rt.bundle(name, args: ["sh", "-c", "mkdir -p /mnt/\(name) && mount -t tmpfs inner /mnt/\(name)"]) { cfg in
                var l = cfg["linux"] as? [String: Any] ?? [:]
                l["rootfsPropagation"] = c.root
                cfg["linux"] = l
                var m = cfg["mounts"] as? [[String: Any]] ?? []
                m.append(["destination": "/mnt", "type": "bind", "source": self.rt.base + "/canary", "options": ["rbind", c.bind]])
                cfg["mounts"] = m
                var p = cfg["process"] as? [String: Any] ?? [:]
                var caps = p["capabilities"] as? [String: [String]] ?? [:]
                for k in ["bounding", "effective", "permitted"] { caps[k, default: []].append("CAP_SYS_ADMIN") }
                p["capabilities"] = caps
                cfg["process"] = p
            }
            body += """
                \(Binaries.runtime) --root \(rt.root) run --bundle \(b) \(name) >/dev/null 2>"$C/../err-\(name)"; echo "ran \(name) $?"
                echo "\(name) reached $(mounted "$C/\(name)") canary $(mounted "$C/pt")"

                """
        }
        let r = inHostNamespace(body)
        for (i, c) in cases.enumerated() {
            let err = (try? String(contentsOfFile: rt.base + "/err-bind\(i)", encoding: .utf8)) ?? ""
            #expect(r.stdout.contains("ran bind\(i) 0\n"), "root \(c.root), bind \(c.bind): \(r.stdout) \(err)")
            #expect(r.stdout.contains("bind\(i) reached \(c.reaches ? "yes" : "no") canary yes\n"),
                    "root \(c.root), bind \(c.bind) should\(c.reaches ? "" : " not") reach the host: \(r.stdout)")
        }
    }

    /// `hako run -v SRC:DST:PROPAGATION` as Docker's: rshared shares the
    /// container's mounts back, rslave receives the host's, rprivate (the
    /// default) neither; sources that cannot propagate are refused at create.
    @Test func hakoRunBindPropagationWorksAsDockers() {
        let hako = Binaries.hako, img = host.busybox
        let run = "\(hako) run --rm --network none --privileged"
        let body = """
            \(run) -v "$C":/mnt:rshared \(img) sh -c 'mkdir -p /mnt/shared-back && mount -t tmpfs x /mnt/shared-back'; echo "rshared run $?"
            echo "rshared reached $(mounted "$C/shared-back")"
            \(run) -v "$C":/mnt \(img) sh -c 'mkdir -p /mnt/private-back && mount -t tmpfs x /mnt/private-back'; echo "default run $?"
            echo "default reached $(mounted "$C/private-back")"
            \(run) -v "$C":/mnt:rslave \(img) sh -c 'mkdir -p /mnt/slave-back && mount -t tmpfs x /mnt/slave-back'; echo "rslave run $?"
            echo "rslave reached $(mounted "$C/slave-back")"
            for p in rslave rprivate; do
                id=$(\(hako) run -d --network none -v "$C":/mnt:$p \(img) sleep 60)
                mkdir -p "$C/late-$p" && mount -t tmpfs late "$C/late-$p"
                echo "$p received $(\(hako) exec $id sh -c "grep -c ' /mnt/late-$p ' /proc/self/mountinfo")"
                \(hako) rm -f $id >/dev/null
            done
            mkdir -p \(host.base)/plain
            \(hako) create --network none -v \(host.base)/plain:/mnt:rshared \(img) true 2>&1; echo "same-mount $?"
            mkdir -p \(host.base)/private && mount -t tmpfs p \(host.base)/private && mount --make-private \(host.base)/private
            \(hako) create --network none -v \(host.base)/private:/mnt:rshared \(img) true 2>&1; echo "private-rshared $?"
            \(hako) create --network none -v \(host.base)/private:/mnt:rslave \(img) true 2>&1; echo "private-rslave $?"
            echo "containers $(\(hako) ps -aq | wc -l)"
            """
        let r = inHostNamespace(body, env: host.env)
        let out = r.stdout
        #expect(out.contains("rshared run 0\n") && out.contains("rshared reached yes\n"), "\(out) \(r.stderr)")
        #expect(out.contains("default run 0\n") && out.contains("default reached no\n"), "\(out)")
        #expect(out.contains("rslave run 0\n") && out.contains("rslave reached no\n"), "\(out)")
        #expect(out.contains("rslave received 1\n"), "a rslave bind receives the host's later mounts: \(out) \(r.stderr)")
        #expect(out.contains("rprivate received 0\n"), "a rprivate bind does not: \(out)")
        #expect(out.contains("also holds hako's data root") && out.contains("same-mount 125\n"), "\(out)")
        #expect(out.contains("is not a shared mount") && out.contains("private-rshared 125\n"), "\(out)")
        #expect(out.contains("neither a shared nor a slave mount") && out.contains("private-rslave 125\n"), "\(out)")
        #expect(out.contains("containers 0\n"), "refused creates leave nothing: \(out)")
        #expect(out.hasSuffix("canary yes\n"), "\(out)")
    }

    @Test func inspectShowsTheBindPropagation() {
        let dir = host.base + "/insp"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let id = host.hako("create", "--network", "none", "-v", "\(dir):/a", "--mount", "type=bind,source=\(dir),target=/b,bind-propagation=private",
                           host.busybox, "true").out
        let mounts = host.inspect(id)["Mounts"] as? [[String: Any]] ?? []
        #expect(mounts.first { $0["Destination"] as? String == "/a" }?["Propagation"] as? String == "rprivate", "\(mounts)")
        #expect(mounts.first { $0["Destination"] as? String == "/b" }?["Propagation"] as? String == "private", "\(mounts)")
        host.hako("rm", id)
    }
}
