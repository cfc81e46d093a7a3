#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// `hako build` end to end: Dockerfiles in the shapes of common public ones,
/// each checked by running what it built; the cache; errors with their line;
/// an interrupted or failed build leaves nothing behind.
@Suite(.needsRoot, .serialized)
final class BuildTests {
    let host = TestHost.make("build")
    let dir: String

    init() throws {
        dir = try TestFiles.tempDir("hako-buildtest")
    }

    deinit {
        host.cleanup()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// A fresh context directory holding `files` (path → content).
    func context(_ name: String, _ files: [String: String]) -> String {
        let c = dir + "/" + name
        for (path, content) in files {
            let full = c + "/" + path
            try? FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: full, contents: Data(content.utf8))
        }
        return c
    }

    func build(_ args: String..., timeout: Double = 120) -> Output {
        host.hako(["build"] + args, timeout: timeout)
    }

    /// Nothing of a build is left: no container, no staging directory.
    func expectNothingLeft(sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(host.containerIDs().isEmpty, "containers left: \(host.containerIDs())", sourceLocation: sourceLocation)
        let staging = (try? FileManager.default.contentsOfDirectory(atPath: host.root + "/build-tmp")) ?? []
        #expect(staging.isEmpty, "staging left: \(staging)", sourceLocation: sourceLocation)
    }

    @Test func multiStageStaticBinaryOnScratch() {
        let c = context("multi", ["Dockerfile": """
            # syntax=docker/dockerfile:1
            FROM \(host.busybox) AS build
            WORKDIR /src
            RUN mkdir -p /out && cp /bin/busybox /out/busybox && echo v1 > /out/VERSION
            FROM \(host.busybox) AS broken
            RUN exit 7
            FROM scratch
            COPY --from=build /out/busybox /busybox
            COPY --from=build /out/VERSION /
            ENTRYPOINT ["/busybox"]
            CMD ["echo", "hello from scratch"]
            """])
        let b = build("-t", "static:1", "--network", "none", c)
        #expect(b.status == 0, "\(b.stdout)\(b.stderr)")
        #expect(b.stderr.contains("syntax directive"))
        #expect(!b.stdout.contains("exit 7"), "the unused stage was built")
        #expect(host.hako("run", "--rm", "static:1").out == "hello from scratch")
        #expect(host.hako("run", "--rm", "static:1", "cat", "/VERSION").out == "v1")
        // Only the two layers: nothing of the build stage's base.
        #expect(host.hako("run", "--rm", "static:1", "ls", "/").out.split(separator: "\n").sorted() == ["VERSION", "busybox", "dev", "etc", "proc", "sys"])
        expectNothingLeft()
    }

    @Test func busyboxWebServerWithCopy() {
        let c = context("web", [
            "Dockerfile": """
            FROM \(host.busybox)
            COPY site/ /www/
            COPY ["site/index.html", "/www/copy of index.html"]
            EXPOSE 8080
            HEALTHCHECK --interval=5s --retries=2 CMD wget -qO- http://127.0.0.1:8080/ || exit 1
            STOPSIGNAL SIGINT
            CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
            """,
            "site/index.html": "<h1>built by hako</h1>\n",
            "site/css/a.css": "body{}\n",
        ])
        let b = build("-t", "web:1", c)
        #expect(b.status == 0, "\(b.stdout)\(b.stderr)")
        let r = host.hako("run", "-d", "--name", "web", "web:1")
        #expect(r.status == 0, "\(r.stderr)")
        var page = ""
        _ = host.eventually(10) {
            page = host.hako("exec", "web", "wget", "-qO-", "http://127.0.0.1:8080/").out
            return page == "<h1>built by hako</h1>"
        }
        #expect(page == "<h1>built by hako</h1>")
        #expect(host.hako("exec", "web", "cat", "/www/css/a.css").out == "body{}")
        #expect(host.hako("exec", "web", "cat", "/www/copy of index.html").out == "<h1>built by hako</h1>")
        host.hako("rm", "-f", "web")
        let config = host.imageInspect("web:1")["Config"] as? [String: Any] ?? [:]
        #expect((config["ExposedPorts"] as? [String: Any])?.keys.sorted() == ["8080/tcp"])
        #expect(config["StopSignal"] as? String == "SIGINT")
        let health = config["Healthcheck"] as? [String: Any] ?? [:]
        #expect(health["Test"] as? [String] == ["CMD-SHELL", "wget -qO- http://127.0.0.1:8080/ || exit 1"])
        #expect(health["Interval"] as? Int == 5_000_000_000)
        #expect(health["Retries"] as? Int == 2)
    }

    @Test func argAndEnvInterpolation() {
        let c = context("args", ["Dockerfile": """
            ARG BASE=\(host.busybox)
            FROM ${BASE}
            ARG GREETING=hello
            ARG UNSET_ARG
            ENV WHO=${NAME:-world}
            # $WHO here is the value before this line: the previous ENV's.
            ENV MSG="$GREETING $WHO" \\
                DIR=/opt/app
            ENV SINGLE quoted 'words' here
            WORKDIR $DIR
            WORKDIR sub
            RUN echo "$GREETING/${UNSET_ARG:-none}/$(pwd)" > /arg.txt
            LABEL org.example.greeting="$GREETING" version=1
            CMD echo "$MSG|${GREETING:-not kept}|$SINGLE"
            """])
        let b = build("--network", "none", "-t", "args:1", "--build-arg", "GREETING=hi", "--build-arg", "UNUSED=1", c)
        #expect(b.status == 0, "\(b.stdout)\(b.stderr)")
        #expect(b.stderr.contains("[UNUSED] were not consumed"))
        #expect(host.hako("run", "--rm", "args:1", "cat", "/arg.txt").out == "hi/none//opt/app/sub")
        #expect(host.hako("run", "--rm", "args:1").out == "hi world|not kept|quoted words here")
        let config = host.imageInspect("args:1")["Config"] as? [String: Any] ?? [:]
        #expect(config["WorkingDir"] as? String == "/opt/app/sub")
        #expect((config["Labels"] as? [String: String]) == ["org.example.greeting": "hi", "version": "1"])
    }

    @Test func userNumericAndNamed() {
        let c = context("user", [
            "Dockerfile": """
            FROM \(host.busybox)
            COPY --chown=tester:audio --chmod=640 owned.txt /home/tester/owned.txt
            USER tester
            RUN id -u > /tmp/run-as && touch /tmp/made-by-run
            USER 1234:5678
            CMD ["id"]
            """,
            "owned.txt": "mine\n",
        ])
        let b = build("--network", "none", "-t", "user:1", c)
        #expect(b.status == 0, "\(b.stdout)\(b.stderr)")
        #expect(host.hako("run", "--rm", "user:1").out.hasPrefix("uid=1234 gid=5678"))
        #expect(host.hako("run", "--rm", "user:1", "cat", "/tmp/run-as").out == "1000")
        #expect(host.hako("run", "--rm", "--user", "0", "user:1", "stat", "-c", "%u:%g %a", "/home/tester/owned.txt",
                          "/tmp/made-by-run").out == "1000:29 640\n1000:1000 644")
    }

    @Test func dockerignoreExclusions() {
        let c = context("ignore", [
            "Dockerfile": "FROM \(host.busybox)\nCOPY . /ctx/\nCMD [\"find\", \"/ctx\"]\n",
            ".dockerignore": "# secrets stay out\n*.key\nlogs\n!logs/keep.log\n**/*.tmp\n",
            "app.txt": "a\n",
            "server.key": "secret\n",
            "logs/x.log": "x\n",
            "logs/keep.log": "k\n",
            "src/deep/file.tmp": "t\n",
            "src/deep/file.c": "c\n",
        ])
        let b = build("--network", "none", "-t", "ignore:1", c)
        #expect(b.status == 0, "\(b.stdout)\(b.stderr)")
        let files = Set(host.hako("run", "--rm", "ignore:1").out.split(separator: "\n").map(String.init))
        #expect(files.contains("/ctx/app.txt") && files.contains("/ctx/src/deep/file.c") && files.contains("/ctx/logs/keep.log"))
        #expect(files.contains("/ctx/Dockerfile") && files.contains("/ctx/.dockerignore"))
        #expect(!files.contains("/ctx/server.key") && !files.contains("/ctx/logs/x.log") && !files.contains("/ctx/src/deep/file.tmp"), "\(files)")
        // Naming an excluded file is an error that says so, with the line.
        FileManager.default.createFile(atPath: c + "/Dockerfile", contents: Data("FROM \(host.busybox)\n\nCOPY server.key /\n".utf8))
        let bad = build("--network", "none", c)
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("Dockerfile:3: COPY failed: server.key: no such file or directory in the build context (excluded by .dockerignore)"), "\(bad.stderr)")
    }

    @Test func onbuildInAParent() {
        let parent = context("parent", ["Dockerfile": """
            FROM \(host.busybox)
            ONBUILD COPY marker.txt /marker.txt
            ONBUILD RUN echo triggered > /triggered
            """])
        let p = build("--network", "none", "-t", "parent:1", parent)
        #expect(p.status == 0, "\(p.stdout)\(p.stderr)")
        #expect(host.hako("run", "--rm", "parent:1", "ls", "/marker.txt").status != 0)
        let child = context("child", ["Dockerfile": "FROM parent:1\nCMD cat /marker.txt /triggered\n", "marker.txt": "from the child's context\n"])
        let b = build("--network", "none", "-t", "child:1", child)
        #expect(b.status == 0, "\(b.stdout)\(b.stderr)")
        #expect(host.hako("run", "--rm", "child:1").out == "from the child's context\ntriggered")
        // The triggers ran once: the child does not carry them on.
        let config = host.imageInspect("child:1")["Config"] as? [String: Any] ?? [:]
        #expect(config["OnBuild"] == nil)
    }

    @Test func cacheSkipsUnchangedStepsAndRerunsFromTheChange() {
        let c = context("cache", [
            "Dockerfile": """
            FROM \(host.busybox)
            RUN echo one-ran-$((1+1)) && echo one > /one
            COPY a.txt /a.txt
            RUN echo three-ran-$((1+2)) && cat /a.txt > /three
            COPY b.txt /b.txt
            """,
            "a.txt": "first\n",
            "b.txt": "b\n",
        ])
        let first = build("--network", "none", "-t", "cache:1", c)
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        #expect(first.stdout.contains("one-ran-2") && !first.stdout.contains("CACHED"))
        let id = host.imageInspect("cache:1")["Id"] as? String

        let again = build("--network", "none", "-t", "cache:1", c)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.components(separatedBy: "--> CACHED").count - 1 == 4, "\(again.stdout)")
        #expect(!again.stdout.contains("one-ran-2"))
        #expect(host.imageInspect("cache:1")["Id"] as? String == id, "a fully cached build makes the same image")

        FileManager.default.createFile(atPath: c + "/a.txt", contents: Data("second\n".utf8))
        let changed = build("--network", "none", "-t", "cache:2", c)
        #expect(changed.status == 0, "\(changed.stderr)")
        #expect(!changed.stdout.contains("one-ran-2") && changed.stdout.contains("three-ran-3"), "\(changed.stdout)")
        #expect(host.hako("run", "--rm", "cache:2", "cat", "/three").out == "second")

        let noCache = build("--network", "none", "--no-cache", "-q", c)
        #expect(noCache.status == 0)
        #expect(noCache.out.hasPrefix("sha256:") && !noCache.out.contains("CACHED") && !noCache.out.contains("one-ran-2"))

        // Every layer is still stored: nothing is stale; -a empties the cache.
        #expect(host.hako("builder", "prune").out == "Deleted build cache entries: 0")
        let pruned = host.hako("builder", "prune", "-a").out
        #expect(pruned.hasPrefix("Deleted build cache entries: ") && pruned != "Deleted build cache entries: 0", "\(pruned)")
        let cold = build("--network", "none", c)
        #expect(cold.status == 0 && !cold.stdout.contains("CACHED") && cold.stdout.contains("one-ran-2"), "\(cold.stdout)")
    }

    @Test func errorsPointAtTheLineAndLeaveNothing() {
        let images = host.hako("images", "-q").out
        let c = context("errors", ["Dockerfile": "FROM \(host.busybox)\n\n# nothing matches\nCOPY nothing* /x/\n"])
        let copy = build("--network", "none", c)
        #expect(copy.status == 1)
        #expect(copy.stderr.contains("Dockerfile:4: COPY failed: no source files were specified"), "\(copy.stderr)")

        FileManager.default.createFile(atPath: c + "/Dockerfile", contents: Data("FROM \(host.busybox)\nRUN echo before-failing && exit 3\n".utf8))
        let run = build("--network", "none", "-t", "never:1", c)
        #expect(run.status == 1)
        #expect(run.stdout.contains("before-failing"))
        #expect(run.stderr.contains("Dockerfile:2: RUN failed: the command [\"/bin/sh\",\"-c\",\"echo before-failing && exit 3\"] returned a non-zero code: 3"), "\(run.stderr)")
        // -q keeps the output until the step fails.
        let quiet = build("--network", "none", "-q", c)
        #expect(quiet.status == 1 && quiet.stderr.contains("before-failing") && quiet.stdout.isEmpty)

        FileManager.default.createFile(atPath: c + "/Dockerfile", contents: Data("FROM \(host.busybox)\nBOGUS x\n".utf8))
        #expect(build(c).stderr.contains("Dockerfile:2: unknown instruction: BOGUS"))
        FileManager.default.createFile(atPath: c + "/Dockerfile", contents: Data("FROM \(host.busybox)\nENV A=${B:?B must be set}\n".utf8))
        #expect(build(c).stderr.contains("Dockerfile:2: ENV: B: B must be set"))
        #expect(build("--target", "nope", c).stderr.contains("target stage \"nope\" could not be found"))
        #expect(build(dir + "/no-such-context").status != 0)

        #expect(host.hako("images", "-q").out == images, "a failed build made an image")
        expectNothingLeft()
    }

    @Test func interruptedBuildLeavesNothing() throws {
        let c = context("interrupt", ["Dockerfile": "FROM \(host.busybox)\nRUN echo started && sleep 60\n"])
        let images = host.hako("images", "-q").out
        let log = dir + "/interrupt.log"
        let pid = Subprocess.spawn(host.prefix + [Binaries.hako, "build", "--network", "none", c], env: host.env, stdout: log)
        #expect(host.eventually(30) { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("started") })
        kill(pid, SIGINT)
        let status = Subprocess.waitBounded(pid, timeout: 30)
        #expect(status == 130)
        #expect(host.hako("images", "-q").out == images)
        expectNothingLeft()
    }

    @Test func dockerfileOnStdinAndFileFlag() {
        let r = host.hako(["build", "--network", "none", "-t", "stdin:1", "-"], stdin: "FROM \(host.busybox)\nRUN echo piped > /p\n")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(host.hako("run", "--rm", "stdin:1", "cat", "/p").out == "piped")
        let noContext = host.hako(["build", "-"], stdin: "FROM \(host.busybox)\nCOPY x /x\n")
        #expect(noContext.stderr.contains("Dockerfile:2: COPY failed: there is no build context"), "\(noContext.stderr)")
        let c = context("fileflag", ["build/Other.dockerfile": "FROM \(host.busybox)\nLABEL which=other\n"])
        let f = build("-f", c + "/build/Other.dockerfile", "-t", "other:1", "--label", "extra=yes", c)
        #expect(f.status == 0, "\(f.stderr)")
        let labels = (host.imageInspect("other:1")["Config"] as? [String: Any])?["Labels"] as? [String: String]
        #expect(labels == ["which": "other", "extra": "yes"])
    }

    @Test func addExtractsALocalTar() {
        let c = context("add", ["Dockerfile": "FROM \(host.busybox)\nADD files.tar.gz /opt/\nADD plain.txt /opt/plain.txt\n", "plain.txt": "p\n"])
        TestFiles.sh("mkdir -p \(dir)/tarsrc/d && echo inside > \(dir)/tarsrc/d/f && tar -C \(dir)/tarsrc -czf \(c)/files.tar.gz d")
        let b = build("--network", "none", "-t", "add:1", c)
        #expect(b.status == 0, "\(b.stdout)\(b.stderr)")
        #expect(host.hako("run", "--rm", "add:1", "cat", "/opt/d/f", "/opt/plain.txt").out == "inside\np")
    }

    /// ADD of a URL through hako's own HTTP client, from a server on the
    /// loopback of this test's own network namespace.
    @Test func addFetchesAURL() throws {
        let served = dir + "/served"
        try FileManager.default.createDirectory(atPath: served, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: served + "/remote.txt", contents: Data("fetched over http\n".utf8))
        let pid = Subprocess.spawn(host.prefix + ["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", served, "8765"])
        defer {
            kill(pid, SIGTERM)
            _ = Subprocess.waitBounded(pid, timeout: 10)
        }
        #expect(host.eventually(10) {
            Subprocess.run(host.prefix + ["/usr/bin/curl", "-s", "-o", "/dev/null", "http://127.0.0.1:8765/remote.txt"]).status == 0
        })
        let c = context("url", ["Dockerfile": "FROM \(host.busybox)\nADD http://127.0.0.1:8765/remote.txt /fetched/\n"])
        let b = build("--network", "none", "-t", "url:1", c)
        #expect(b.status == 0, "\(b.stdout)\(b.stderr)")
        #expect(host.hako("run", "--rm", "url:1", "sh", "-c", "cat /fetched/remote.txt; stat -c %a /fetched/remote.txt").out == "fetched over http\n600")
        FileManager.default.createFile(atPath: c + "/Dockerfile", contents: Data("FROM \(host.busybox)\nADD http://127.0.0.1:8765/missing.txt /x\n".utf8))
        let missing = build("--network", "none", c)
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("Dockerfile:2: ADD failed: cannot fetch http://127.0.0.1:8765/missing.txt: the server answered 404"), "\(missing.stderr)")
        expectNothingLeft()
    }

    /// The same Dockerfile built by podman (buildah inside, from the same base
    /// image, offline) gives the same file tree and config.
    @Test func matchesPodmanBuild() throws {
        let archive = dir + "/base.tar"
        #expect(host.hako("save", "-o", archive, host.busybox).status == 0)
        let podman = try Podman()
        let load = podman.run(["load", "-i", archive])
        try #require(load.status == 0, "podman load: \(load.stderr)")
        let c = context("podman", [
            "Dockerfile": """
            FROM docker.io/library/busybox:test
            ARG VERSION=1.2
            ENV APP_HOME=/srv/app PATH=/srv/app/bin:/usr/sbin:/usr/bin:/sbin:/bin
            COPY --chown=1000:1000 src/ /opt/src/
            WORKDIR $APP_HOME
            COPY bin/tool bin/
            RUN mkdir -p data && echo "$VERSION" > data/version && chmod 0750 data && rm -f /etc/not-executable
            USER tester
            EXPOSE 8080 53/udp
            LABEL org.opencontainers.image.version=$VERSION maintainer="hako tests"
            HEALTHCHECK --interval=30s --timeout=3s --retries=3 CMD ["tool", "--check"]
            ENTRYPOINT ["tool"]
            CMD ["--serve"]
            """,
            "src/main.txt": "main\n",
            "src/lib/util.txt": "util\n",
            "bin/tool": "#!/bin/sh\necho tool \"$@\"\n",
        ])
        chmod(c + "/bin/tool", 0o755)
        let ours = build("--network", "none", "-t", "compare:1", c)
        try #require(ours.status == 0, "\(ours.stdout)\(ours.stderr)")
        let theirs = podman.run(["build", "--format", "docker", "--runtime", "runc", "--network", "none", "--pull=never",
                                 "-t", "localhost/compare:1", c], timeout: 300)
        try #require(theirs.status == 0, "podman build: \(theirs.stdout)\(theirs.stderr)")

        // The config, field by field.
        let mine = host.imageInspect("compare:1")["Config"] as? [String: Any] ?? [:]
        let pr = podman.run(["image", "inspect", "localhost/compare:1"])
        let pj = (try? JSONSerialization.jsonObject(with: Data(pr.stdout.utf8))) as? [[String: Any]]
        let pc = pj?.first?["Config"] as? [String: Any] ?? [:]
        for key in ["Env", "Cmd", "Entrypoint", "WorkingDir", "User"] {
            #expect(String(describing: mine[key] ?? "nil") == String(describing: pc[key] ?? "nil"), "\(key)")
        }
        #expect((mine["ExposedPorts"] as? [String: Any])?.keys.sorted() == (pc["ExposedPorts"] as? [String: Any])?.keys.sorted())
        var theirLabels = pc["Labels"] as? [String: String] ?? [:]
        theirLabels["io.buildah.version"] = nil  // buildah signs its images
        #expect((mine["Labels"] as? [String: String]) == theirLabels)
        let ph = (pj?.first?["Healthcheck"] ?? pc["Healthcheck"]) as? [String: Any] ?? [:]
        let mh = mine["Healthcheck"] as? [String: Any] ?? [:]
        #expect(mh["Test"] as? [String] == ph["Test"] as? [String])
        #expect(mh["Interval"] as? Int == ph["Interval"] as? Int && mh["Retries"] as? Int == ph["Retries"] as? Int)

        // The file tree: every entry's type, mode, owner, size and link target (not times).
        func listing(_ tar: String) -> [String] {
            Subprocess.run(["/bin/tar", "--numeric-owner", "-tvf", tar]).stdout.split(separator: "\n").compactMap { line in
                let f = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
                guard f.count >= 6 else { return nil }
                var name = f[5...].joined(separator: " ")
                if name.hasPrefix("./") { name = String(name.dropFirst(2)) }
                if name.hasSuffix("/") { name = String(name.dropLast()) }
                // Mount points either runtime makes for a container are not the image's.
                if name.isEmpty || ["proc", "sys", "dev", "etc/hostname", "etc/hosts", "etc/resolv.conf", "run"].contains(where: { name == $0 || name.hasPrefix($0 + "/") }) { return nil }
                let size = f[0].hasPrefix("d") ? "-" : f[2]
                return "\(name) \(f[0]) \(f[1]) \(size)"
            }.sorted()
        }
        let created = host.hako("create", "--name", "compare-export", "compare:1")
        try #require(created.status == 0, "\(created.stderr)")
        #expect(host.hako("export", "-o", dir + "/ours.tar", "compare-export").status == 0)
        host.hako("rm", "compare-export")
        let pcreated = podman.run(["create", "--name", "compare-export", "localhost/compare:1"])
        try #require(pcreated.status == 0, "\(pcreated.stderr)")
        #expect(podman.run(["export", "-o", dir + "/theirs.tar", "compare-export"]).status == 0)
        podman.run(["rm", "compare-export"])
        let a = listing(dir + "/ours.tar"), b = listing(dir + "/theirs.tar")
        #expect(a.count > 250)
        #expect(a == b, "only hako: \(Set(a).subtracting(b).sorted())\nonly podman: \(Set(b).subtracting(a).sorted())")
    }

    /// SHELL, the exec form of RUN, ENTRYPOINT clearing an inherited CMD, VOLUME.
    @Test func shellExecFormsAndEntrypoint() {
        let parent = context("forms-parent", ["Dockerfile": "FROM \(host.busybox)\nCMD [\"inherited\"]\n"])
        #expect(build("--network", "none", "-t", "forms-parent:1", parent).status == 0)
        let c = context("forms", ["Dockerfile": """
            FROM forms-parent:1
            SHELL ["/bin/env", "MARK=from-the-shell", "/bin/sh", "-c"]
            RUN echo "$MARK" > /mark
            RUN ["/bin/sh", "-c", "echo exec-form > /exec"]
            VOLUME ["/data", "/cache"]
            ENTRYPOINT ["/bin/echo", "entry"]
            """])
        let b = build("--network", "none", "-t", "forms:1", c)
        #expect(b.status == 0, "\(b.stdout)\(b.stderr)")
        #expect(host.hako("run", "--rm", "forms:1").out == "entry")
        #expect(host.hako("run", "--rm", "--entrypoint", "cat", "forms:1", "/mark", "/exec").out == "from-the-shell\nexec-form")
        let config = host.imageInspect("forms:1")["Config"] as? [String: Any] ?? [:]
        #expect(config["Cmd"] == nil)
        #expect(config["Shell"] as? [String] == ["/bin/env", "MARK=from-the-shell", "/bin/sh", "-c"])
        #expect((config["Volumes"] as? [String: Any])?.keys.sorted() == ["/cache", "/data"])
    }

    /// A build killed outright (SIGKILL) cannot clean up: its RUN container is
    /// left, and the next build removes it.
    /// `build` on a terminal (script(1) gives it one): the tty display; in a file, plain lines.
    @Test func progressOnATerminal() {
        let c = context("tty", ["Dockerfile": "FROM \(host.busybox)\nRUN echo \"tty-$((6*7))\" && sleep 0.5\nLABEL shown=1\nRUN false\n"])
        func onTerminal(_ args: String) -> Output {
            let command = (host.prefix + [Binaries.hako, "build", "--network", "none"]).joined(separator: " ") + " " + args
            return Subprocess.run(["/usr/bin/script", "-qefc", command, "/dev/null"], env: host.env.merging(["TERM": "xterm"]) { $1 }, timeout: 120)
        }
        let tty = onTerminal("--progress tty \(c)")
        #expect(tty.status == 1, "the last RUN fails: \(tty.stdout)")
        // Steps settle as "=> STEP …  N.Ns" lines; the running one is redrawn in place (cursor up, erase).
        #expect(tty.stdout.contains("=> STEP 2/4: RUN echo"), "\(tty.stdout)")
        #expect(tty.stdout.contains("\u{1b}[J") && tty.stdout.contains("\u{1b}[1A"), "redrawn in place")
        let settled = tty.stdout.split(whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }).filter { $0.contains("=> STEP 2/4") }
        #expect(settled.contains { $0.trimmed.hasSuffix("s") && $0.contains(".") }, "a clock on the step: \(settled)")
        #expect(tty.stdout.contains("tty-42"), "the running step's output under it")
        // The failed step: ERROR, its output, the error.
        #expect(tty.stdout.contains("=> ERROR STEP 4/4: RUN false") && tty.stdout.contains("non-zero code: 1"), "\(tty.stdout)")
        // Again: cached steps say so.
        let again = onTerminal("--progress auto \(context("tty2", ["Dockerfile": "FROM \(host.busybox)\nRUN echo \"tty-$((6*7))\" && sleep 0.5\n"]))")
        #expect(again.status == 0 && again.stdout.contains("=> CACHED STEP 2/2"), "\(again.stdout)")
        // plain on a terminal, and auto or tty into a file: lines, no escape sequences.
        let plain = onTerminal("--progress plain \(c)")
        #expect(plain.stdout.contains("STEP 2/4: RUN echo") && !plain.stdout.contains("\u{1b}["), "\(plain.stdout)")
        let file = build("--network", "none", "--progress", "tty", c)
        #expect(file.stdout.contains("--> CACHED") && !file.stdout.contains("\u{1b}["), "\(file.stdout)")
        expectNothingLeft()
    }

    @Test func killedBuildsContainerGoesWithTheNextBuild() {
        // The marker is computed by the RUN step's shell, so the step's own
        // header line (which quotes the instruction) never contains it: only
        // the running container's output does.
        let c = context("killed", ["Dockerfile": "FROM \(host.busybox)\nRUN echo \"run-$((40+2))\" && sleep 60\n"])
        let log = dir + "/killed.log"
        let pid = Subprocess.spawn(host.prefix + [Binaries.hako, "build", "--network", "none", c], env: host.env, stdout: log)
        let running = host.eventually(30) {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("run-42") && host.containerIDs().count == 1
        }
        #expect(running, "the RUN step's container never ran: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        kill(pid, SIGKILL)
        _ = Subprocess.waitBounded(pid, timeout: 10)
        #expect(host.containerIDs().count == 1)
        let next = host.hako(["build", "--network", "none", "-"], stdin: "FROM \(host.busybox)\nLABEL next=1\n")
        #expect(next.status == 0, "\(next.stderr)")
        expectNothingLeft()
    }
}
