#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

enum Repo {
    static let root: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
}

/// Deployment: the install script into a throwaway DESTDIR and back out, the
/// systemd units, shell completions, the generated CLI reference.
@Suite struct DeployTests {
    final class Dest {
        let path: String
        init() {
            var template = Array("/tmp/hako-destdir-XXXXXX".utf8CString)
            let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
            path = made.map { String(cString: $0) } ?? "/tmp/hako-destdir-\(getpid())"
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }

        func run(_ script: String, _ args: [String] = [], env: [String: String] = [:]) -> Output {
            Subprocess.run([Repo.root + "/deploy/" + script] + args,
                           env: ["DESTDIR": path, "BUILD_DIR": Binaries.dir, "PREFIX": "/usr/local"].merging(env) { $1 }, timeout: 120)
        }

        /// Every path under the root, relative, sorted.
        func tree() -> [String] {
            (FileManager.default.enumerator(atPath: path)?.allObjects as? [String] ?? []).sorted()
        }

        func text(_ p: String) -> String { (try? String(contentsOfFile: path + p, encoding: .utf8)) ?? "" }
        func exists(_ p: String) -> Bool { FileManager.default.fileExists(atPath: path + p) }
    }

    @Test func installIntoADestdirAndUninstallLeavesItEmpty() throws {
        let d = Dest()
        let r = d.run("install.sh", ["--no-build"])
        try #require(r.status == 0, "\(r.stderr)")
        for b in ["hako", "hako-monitor", "hako-runtime"] {
            #expect(access(d.path + "/usr/local/bin/" + b, X_OK) == 0, "\(b)")
        }
        #expect(d.text("/etc/hako/agent.toml") == (try String(contentsOfFile: Repo.root + "/config/agent.toml", encoding: .utf8)))
        #expect(d.exists("/etc/hako/coordinator.toml") && d.exists("/var/lib/hako") && d.exists("/run/hako"))
        let unit = d.text("/usr/local/lib/systemd/system/hako-agent.service")
        #expect(unit.contains("ExecStart=/usr/local/bin/hako agent --config /etc/hako/agent.toml"))
        #expect(unit.contains("KillMode=process") && unit.contains("Delegate=yes"))
        #expect(!unit.contains("@"), "every placeholder filled in")
        #expect(d.text("/usr/local/share/bash-completion/completions/hako").contains("coordinator"))
        #expect(d.text("/usr/local/share/zsh/site-functions/_hako").hasPrefix("#compdef hako"))
        #expect(d.text("/usr/local/share/fish/vendor_completions.d/hako.fish").contains("complete -c 'hako'"))
        #expect(d.exists("/usr/local/share/doc/hako/getting-started.md"))
        let manifest = d.text("/usr/local/share/hako/install-manifest")
        #expect(manifest.contains("config ") && manifest.contains("data /var/lib/hako") && manifest.contains("dir /usr/local/share/hako"))
        let first = d.tree()

        // Again (an upgrade): the same files, and a config the admin edited is kept.
        try "log_level = \"debug\"\n".write(toFile: d.path + "/etc/hako/agent.toml", atomically: false, encoding: .utf8)
        let again = d.run("install.sh", ["--no-build"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.contains("kept /etc/hako/agent.toml"))
        #expect(d.text("/etc/hako/agent.toml") == "log_level = \"debug\"\n")
        #expect(d.tree() == first)
        func lines(_ s: String) -> [Substring] { s.split(separator: "\n").sorted() }
        #expect(lines(d.text("/usr/local/share/hako/install-manifest")) == lines(manifest), "the manifest still owns every file and directory")

        // Uninstall keeps the edited config and data, removes everything else.
        try "x".write(toFile: d.path + "/var/lib/hako/engine.json", atomically: false, encoding: .utf8)
        let u = d.run("uninstall.sh")
        #expect(u.status == 0, "\(u.stderr)")
        #expect(u.stdout.contains("kept /etc/hako/agent.toml (edited"))
        #expect(d.tree() == ["etc", "etc/hako", "etc/hako/agent.toml", "var", "var/lib", "var/lib/hako", "var/lib/hako/engine.json"], "\(d.tree())")

        // From scratch again, with an edited config and data: --purge leaves nothing at all.
        for top in ["etc", "var"] { try FileManager.default.removeItem(atPath: d.path + "/" + top) }
        #expect(d.run("install.sh", ["--no-build"]).status == 0)
        try "log_level = \"debug\"\n".write(toFile: d.path + "/etc/hako/agent.toml", atomically: false, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: d.path + "/var/lib/hako/containers/x", withIntermediateDirectories: true)
        let p = d.run("uninstall.sh", ["--purge"])
        #expect(p.status == 0, "\(p.stderr)")
        #expect(d.tree() == [], "\(d.tree())")
    }

    @Test func aCleanInstallAndUninstallLeaveNothing() throws {
        let d = Dest()
        #expect(d.run("install.sh", ["--no-build"], env: ["PREFIX": "/opt/hako", "SYSCONFDIR": "/opt/hako/etc"]).status == 0)
        #expect(d.exists("/opt/hako/bin/hako") && d.exists("/opt/hako/etc/agent.toml"))
        #expect(d.text("/opt/hako/lib/systemd/system/hako-coordinator.service").contains("ExecStart=/opt/hako/bin/hako coordinator --config /opt/hako/etc/coordinator.toml"))
        let u = d.run("uninstall.sh", [], env: ["PREFIX": "/opt/hako"])
        #expect(u.status == 0, "\(u.stderr)")
        #expect(d.tree() == [], "\(d.tree())")
        // Bad input: one clear line.
        let bad = d.run("install.sh", ["--no-build"], env: ["PREFIX": "relative"])
        #expect(bad.status == 2 && bad.stderr.contains("PREFIX must be an absolute path"))
        #expect(d.run("uninstall.sh").stderr.contains("no install manifest"))
        #expect(d.tree() == [])
    }

    /// The guide's staging step, `make install DESTDIR=/tmp/stage`, names a
    /// directory that does not exist yet: the install makes it (it once looped
    /// forever at `/`), and a relative DESTDIR is taken from the working directory.
    @Test func installIntoADestdirThatDoesNotExistYet() throws {
        let d = Dest()
        let fresh = d.path + "/stage/not/yet"
        let env = ["DESTDIR": fresh, "BUILD_DIR": Binaries.dir, "PREFIX": "/usr/local"]
        let r = Subprocess.run([Repo.root + "/deploy/install.sh", "--no-build"], env: env, timeout: 60)
        try #require(r.status == 0, "status \(r.status) (-2: killed after 60 s, the old hang): \(r.stderr)")
        #expect(access(fresh + "/usr/local/bin/hako", X_OK) == 0)
        #expect(FileManager.default.fileExists(atPath: fresh + "/etc/hako/agent.toml"))
        #expect(!d.text("/stage/not/yet/usr/local/share/hako/install-manifest").contains("dir /stage"), "the staging root is not the install's")
        let u = Subprocess.run([Repo.root + "/deploy/uninstall.sh"], env: env, timeout: 60)
        #expect(u.status == 0, "\(u.stderr)")
        #expect(d.tree() == ["stage", "stage/not", "stage/not/yet"], "\(d.tree())")

        // Relative: `make install DESTDIR=stage` from the repository means ./stage.
        let rel = Subprocess.run(["/bin/sh", "-c", "cd \"$0\" && DESTDIR=rel/stage \"$1\" --no-build", d.path, Repo.root + "/deploy/install.sh"],
                                 env: ["BUILD_DIR": Binaries.dir, "PREFIX": "/usr/local"], timeout: 60)
        #expect(rel.status == 0, "\(rel.stderr)")
        #expect(access(d.path + "/rel/stage/usr/local/bin/hako", X_OK) == 0)
    }

    /// A cross-built hako cannot run on the machine that installs it: the
    /// install takes the completions and the version from files the build made,
    /// and never runs the binary.
    @Test func installNeverRunsTheBinaryItInstalls() throws {
        let d = Dest()
        let build = d.path + "/build"
        let marker = d.path + "/hako-was-run"
        let fm = FileManager.default
        try fm.createDirectory(atPath: build + "/completions", withIntermediateDirectories: true)
        for f in ["hako-monitor", "hako-runtime", "hako-init", "completions/hako.bash", "completions/_hako", "completions/hako.fish", "version"] {
            try fm.copyItem(atPath: Binaries.dir + "/" + f, toPath: build + "/" + f)
        }
        // Stands for a binary of another architecture: running it leaves a mark and fails.
        let foreign = "#!/bin/sh\ntouch \(marker)\nexit 126\n"
        try foreign.write(toFile: build + "/hako", atomically: false, encoding: .utf8)
        chmod(build + "/hako", 0o755)
        let env = ["DESTDIR": d.path + "/root", "BUILD_DIR": build, "PREFIX": "/usr/local"]
        let r = Subprocess.run([Repo.root + "/deploy/install.sh", "--no-build"], env: env, timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!fm.fileExists(atPath: marker), "install.sh ran the binary it installs")
        let version = try String(contentsOfFile: build + "/version", encoding: .utf8).trimmed
        #expect(!version.isEmpty && r.stdout.contains("installed hako \(version) into"), "\(r.stdout)")
        #expect(d.text("/root/usr/local/bin/hako") == foreign)
        #expect(d.text("/root/usr/local/share/fish/vendor_completions.d/hako.fish").contains("complete -c 'hako'"))

        // Without the build's files: one clear line, nothing installed.
        try fm.removeItem(atPath: build + "/completions/_hako")
        let missing = Subprocess.run([Repo.root + "/deploy/install.sh", "--no-build"], env: env.merging(["DESTDIR": d.path + "/other"]) { $1 }, timeout: 60)
        #expect(missing.status == 1 && missing.stderr.contains("completions/_hako is missing"), "\(missing.stderr)")
        #expect(!fm.fileExists(atPath: d.path + "/other"))
        #expect(!fm.fileExists(atPath: marker))
    }

    /// `systemd-analyze verify` on the installed units (it checks keys, values and the ExecStart binary).
    @Test func unitsVerify() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") else {
            print("skipped: systemd-analyze is not installed here")
            return
        }
        let d = Dest()
        try #require(d.run("install.sh", ["--no-build"]).status == 0)
        // The installed units, pointed at the staged binaries (verify checks ExecStart exists).
        let dir = d.path + "/verify"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        func verify(_ unit: String, _ text: String) throws -> Output {
            try text.replacingOccurrences(of: "=/usr/local/bin/", with: "=\(d.path)/usr/local/bin/").write(toFile: dir + "/" + unit, atomically: false, encoding: .utf8)
            return Subprocess.run(["/usr/bin/systemd-analyze", "verify", dir + "/" + unit], env: ["SYSTEMD_LOG_COLOR": "0"])
        }
        for u in ["hako-coordinator.service", "hako-agent.service", "hako-restart.service"] {
            let r = try verify(u, d.text("/usr/local/lib/systemd/system/\(u)"))
            #expect(r.status == 0, "\(u): \(r.stderr)")
            #expect(!r.stderr.contains(u), "\(u): \(r.stderr)")
        }
        // A unit with a mistake is caught (the check can fail).
        let broken = try verify("hako-broken.service", d.text("/usr/local/lib/systemd/system/hako-agent.service")
            .replacingOccurrences(of: "KillMode=process", with: "KillMode=bogus").replacingOccurrences(of: "ExecStart=", with: "ExecStart=/nonexistent/"))
        #expect(broken.stderr.contains("kill mode") && broken.status != 0, "\(broken.stderr)")
    }

    /// The units' settings, as installed: the coordinator without root and
    /// sandboxed, the agent's OOM protection, both after time-sync.target.
    @Test func unitsRunWithLeastPrivilege() throws {
        let d = Dest()
        try #require(d.run("install.sh", ["--no-build"]).status == 0)
        func settings(_ unit: String) -> [String: [String]] {
            var out: [String: [String]] = [:]
            for line in d.text("/usr/local/lib/systemd/system/\(unit)").split(separator: "\n") where !line.hasPrefix("#") {
                let kv = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                if kv.count == 2 { out[String(kv[0]), default: []].append(String(kv[1])) }
            }
            return out
        }
        let coordinator = settings("hako-coordinator.service")
        for (key, value) in [("DynamicUser", "yes"), ("CapabilityBoundingSet", ""), ("AmbientCapabilities", ""), ("NoNewPrivileges", "yes"),
                             ("ProtectSystem", "strict"), ("ProtectClock", "yes"), ("ProtectKernelLogs", "yes"), ("ProtectHostname", "yes"),
                             ("MemoryDenyWriteExecute", "yes"), ("StateDirectory", "hako/coordinator"), ("SystemCallArchitectures", "native")] {
            #expect(coordinator[key] == [value], "coordinator \(key)=\(coordinator[key] ?? [])")
        }
        #expect(coordinator["SystemCallFilter"]?.first == "@system-service")
        #expect(coordinator["User"] == nil && coordinator["ReadWritePaths"] == nil, "writes only to its state directory")
        #expect(coordinator["After"]?.first?.contains("time-sync.target") == true)
        let configured = try String(contentsOfFile: Repo.root + "/config/coordinator.toml", encoding: .utf8)
        #expect(configured.contains("data_dir = \"/var/lib/hako/coordinator\""), "the default data_dir is the unit's state directory")

        let agent = settings("hako-agent.service")
        #expect(agent["OOMScoreAdjust"] == ["-500"] && agent["KillMode"] == ["process"] && agent["Delegate"] == ["yes"])
        #expect(agent["LimitCORE"] == nil, "no core dumps of any size onto an SD card by default")
        #expect(agent["After"]?.first?.contains("time-sync.target") == true)

        // systemd's own judgement of the coordinator's sandbox (offline: no running systemd needed).
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") else {
            print("skipped: systemd-analyze is not installed here")
            return
        }
        let unit = d.path + "/hako-coordinator.service"
        try d.text("/usr/local/lib/systemd/system/hako-coordinator.service")
            .replacingOccurrences(of: "=/usr/local/bin/", with: "=\(d.path)/usr/local/bin/").write(toFile: unit, atomically: false, encoding: .utf8)
        let r = Subprocess.run(["/usr/bin/systemd-analyze", "security", "--offline=yes", "--no-pager", unit], env: ["SYSTEMD_LOG_COLOR": "0", "SYSTEMD_COLORS": "0"])
        let line = r.stdout.split(separator: "\n").first { $0.contains("Overall exposure level") }.map(String.init) ?? ""
        let score = line.split(separator: ":").last.flatMap { Double($0.split(separator: " ").first ?? "") }
        #expect((score ?? 99) <= 2.0, "exposure: \(line) \(r.stderr)")
    }

    @Test func completionsGenerateForThreeShells() throws {
        let bash = Subprocess.run([Binaries.hako, "--generate-completion-script", "bash"])
        #expect(bash.status == 0 && bash.stdout.contains("-F _hako hako") && bash.stdout.contains("coordinator"))
        let dir = NSTemporaryDirectory() + "hako-completion-\(getpid()).bash"
        try bash.stdout.write(toFile: dir, atomically: false, encoding: .utf8)
        defer { unlink(dir) }
        #expect(Subprocess.run(["/bin/bash", "-n", dir]).status == 0, "the bash script parses")
        // Loaded in bash, it completes subcommands.
        let probe = Subprocess.run(["/bin/bash", "-c", "source \(dir); COMP_WORDS=(hako clu); COMP_CWORD=1; COMP_LINE='hako clu'; COMP_POINT=8; _hako hako clu hako; echo \"${COMPREPLY[@]}\""])
        #expect(probe.stdout.contains("cluster"), "\(probe.stdout) \(probe.stderr)")
        let zsh = Subprocess.run([Binaries.hako, "--generate-completion-script", "zsh"])
        #expect(zsh.status == 0 && zsh.stdout.hasPrefix("#compdef hako") && zsh.stdout.contains("agent"))
        let zshFile = NSTemporaryDirectory() + "hako-completion-\(getpid()).zsh"
        try zsh.stdout.write(toFile: zshFile, atomically: false, encoding: .utf8)
        defer { unlink(zshFile) }
        #expect(Subprocess.run(["/usr/bin/zsh", "-n", zshFile]).status == 0, "the zsh script parses")
        let fish = Subprocess.run([Binaries.hako, "--generate-completion-script", "fish"])
        #expect(fish.status == 0 && fish.stdout.contains("complete -c 'hako'") && fish.stdout.contains("doctor"))
        let fishFile = NSTemporaryDirectory() + "hako-completion-\(getpid()).fish"
        try fish.stdout.write(toFile: fishFile, atomically: false, encoding: .utf8)
        defer { unlink(fishFile) }
        // Loaded in fish, it completes subcommands (an alias included) and a command's options.
        let asked = Subprocess.run(["/usr/bin/fish", "--no-config", "-c", "source \(fishFile); complete -C'hako netw'; complete -C'hako network list --qu'"])
        #expect(asked.stdout.contains("network\tManage networks.") && asked.stdout.contains("--quiet\t"), "\(asked.stdout) \(asked.stderr)")
    }

    /// docs/cli.md is what tools/gen-cli-docs.sh makes of the binary (`make docs` regenerates it).
    @Test func cliReferenceIsCurrent() throws {
        let r = Subprocess.run([Repo.root + "/tools/gen-cli-docs.sh", Binaries.hako], timeout: 120)
        try #require(r.status == 0, "\(r.stderr)")
        let committed = try String(contentsOfFile: Repo.root + "/docs/cli.md", encoding: .utf8)
        #expect(r.stdout == committed, "docs/cli.md is stale: run make docs")
        #expect(committed.contains("## hako cluster service create") && committed.contains("## hako agent"))
        // --help works on every command, those passing their arguments through included.
        for cmd in [["run"], ["create"], ["cluster", "service", "create"]] {
            let help = Subprocess.run([Binaries.hako] + cmd + ["--help"])
            #expect(help.status == 0 && help.stdout == Subprocess.run([Binaries.hako, "help"] + cmd).stdout, "\(cmd): \(help.stderr)")
        }
        #expect(Subprocess.run([Binaries.hako, "run", "--bogus"]).stderr.contains("unknown flag: --bogus"))
    }
}

/// `deploy/uninstall.sh --purge` also removes hako's kernel state: its
/// nftables tables, links and cgroup parent (`hako purge-host-state`), in a
/// network namespace and under a cgroup parent of the test's own.
@Suite(.needsRoot, .serialized) final class PurgeHostStateTests {
    let host = TestHost.make("purge")

    deinit { host.cleanup() }

    func inNetns(_ argv: [String]) -> String { Subprocess.run(host.prefix + argv).stdout }

    @Test func purgeRemovesTablesLinksAndCgroupsOnceNothingRuns() throws {
        #expect(host.hako("network", "create", "purged").status == 0)
        let run = host.hako("run", "-d", "--name", "keeper", "-p", "8080:80", host.busybox, "sleep", "60")
        try #require(run.status == 0, "\(run.stderr)")
        #expect(host.hako("run", "-d", "--name", "other", "--network", "purged", host.busybox, "sleep", "60").status == 0)
        let linksBefore = inNetns(["/usr/sbin/ip", "-o", "link", "show"])
        #expect(linksBefore.contains("hako0") && linksBefore.contains("hako-"), "\(linksBefore)")
        #expect(inNetns(["/usr/sbin/nft", "list", "tables"]).contains("table ip hako"))
        let cgroupDirs = ["/sys/fs/cgroup/unified/\(host.cgroupParent)", "/sys/fs/cgroup/\(host.cgroupParent)", "/sys/fs/cgroup/memory/\(host.cgroupParent)"]
            .filter { FileManager.default.fileExists(atPath: $0) }
        #expect(!cgroupDirs.isEmpty)

        // A running container: refused, nothing removed.
        let refused = host.hako("purge-host-state")
        #expect(refused.status == 125 && refused.stderr.contains("containers are running (") && refused.stderr.contains("keeper"), "\(refused.stderr)")
        #expect(inNetns(["/usr/sbin/nft", "list", "tables"]).contains("table ip hako"))

        #expect(host.hako("rm", "-f", "keeper", "other").status == 0)
        let purged = host.hako("purge-host-state")
        #expect(purged.status == 0, "\(purged.stderr)")
        #expect(purged.stdout.contains("removed nftables table ip hako") && purged.stdout.contains("removed link hako0"), "\(purged.stdout)")
        #expect(!inNetns(["/usr/sbin/ip", "-o", "link", "show"]).contains("hako"))
        #expect(!inNetns(["/usr/sbin/nft", "list", "tables"]).contains("hako"))
        for d in cgroupDirs { #expect(!FileManager.default.fileExists(atPath: d), "\(d)") }
        // Again: nothing left to remove, and no error.
        let again = host.hako("purge-host-state")
        #expect(again.status == 0 && again.stdout.contains("nothing of hako's"), "\(again.stdout) \(again.stderr)")
    }
}
