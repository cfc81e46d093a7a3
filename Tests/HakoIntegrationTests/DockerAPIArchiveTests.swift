#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// What moves whole archives through the API (save, load, commit, export, an
/// archive PUT past the 8 MiB body limit), `update --restart`, push, and the
/// API on TCP with mutual TLS.
extension DockerAPITests {
    @Test(arguments: DockerClients.all)
    func commitExportSaveLoadUpdatePush(client: String) throws {
        let api = try APIService(host)
        defer { api.stop() }
        #expect(api.docker(client, ["run", "-d", "--name", "keep", host.busybox, "sleep", "300"]).out.count == 64)

        // docker cp of 12 MiB: streamed into the container, not held under the 8 MiB body limit.
        let big = api.dir + "/big.bin"
        #expect(Subprocess.run(["/usr/bin/dd", "if=/dev/urandom", "of=" + big, "bs=1M", "count=12"]).status == 0)
        let cp = api.docker(client, ["cp", big, "keep:/big.bin"], timeout: 120)
        #expect(cp.status == 0, "cp of 12 MiB: \(cp.stderr)")
        let localSum = Subprocess.run(["/usr/bin/md5sum", big]).out.prefix(32)
        let insideSum = api.docker(client, ["exec", "keep", "md5sum", "/big.bin"]).out.prefix(32)
        #expect(localSum.count == 32 && localSum == insideSum, "the copy arrived whole: \(localSum) vs \(insideSum)")

        // commit, with a --change, of a running container; the new image runs.
        #expect(api.docker(client, ["exec", "keep", "sh", "-c", "echo committed > /marker"]).status == 0)
        let commit = api.docker(client, ["commit", "-c", "ENV COMMITTED=yes", "-m", "from the API", "keep", "committed:v1"])
        #expect(commit.status == 0 && commit.out.hasPrefix("sha256:"), "commit: \(commit.stdout) \(commit.stderr)")
        #expect(host.hako("images").stdout.contains("committed"), "hako sees the committed image")
        let fromCommit = api.docker(client, ["run", "--rm", "committed:v1", "sh", "-c", "cat /marker; echo $COMMITTED; wc -c < /big.bin"])
        #expect(fromCommit.stdout == "committed\nyes\n12582912\n", "run of the commit: \(fromCommit.stdout) \(fromCommit.stderr)")
        #expect(api.docker(client, ["run", "--rm", "committed:v1", "true"]).status == 0)

        // export: the container's whole file system as a tar.
        let exported = api.dir + "/export.tar"
        let export = api.docker(client, ["export", "-o", exported, "keep"], timeout: 120)
        #expect(export.status == 0, "export: \(export.stderr)")
        let listing = Subprocess.run(["/usr/bin/tar", "-tf", exported]).stdout.split(separator: "\n").map { $0.hasPrefix("./") ? String($0.dropFirst(2)) : String($0) }
        #expect(listing.contains("marker") && listing.contains("big.bin") && listing.contains("bin/busybox"), "export lists \(listing.count) entries")
        #expect(api.docker(client, ["export", "-o", api.dir + "/none.tar", "no-such-container"]).status != 0)

        // save → rmi → load (over 12 MiB each way), then the loaded image runs.
        let saved = api.dir + "/saved.tar"
        let save = api.docker(client, ["save", "-o", saved, "committed:v1"], timeout: 120)
        #expect(save.status == 0, "save: \(save.stderr)")
        let size = (try? FileManager.default.attributesOfItem(atPath: saved)[.size] as? Int) ?? 0
        #expect(size > 12 << 20, "the archive holds the layer: \(size) bytes")
        #expect(api.docker(client, ["rmi", "committed:v1"]).status == 0)
        let load = api.docker(client, ["load", "-i", saved], timeout: 120)
        #expect(load.status == 0 && load.stdout.contains("Loaded image: committed:v1"), "load: \(load.stdout) \(load.stderr)")
        #expect(api.docker(client, ["run", "--rm", "committed:v1", "cat", "/marker"]).stdout == "committed\n")
        // save | load through pipes, as the issue has it.
        let piped = Subprocess.run(["/bin/sh", "-c", "\(client) save \(host.busybox) | \(client) load"], env: api.clientEnv, timeout: 120)
        #expect(piped.status == 0 && piped.stdout.contains("Loaded image: \(host.busybox)"), "save | load: \(piped.stdout) \(piped.stderr)")
        let garbage = api.docker(client, ["load"], stdin: "not an archive")
        #expect(garbage.status != 0, "load of garbage: \(garbage.stdout)")

        // update --restart: the monitor restarts the container from the next exit on.
        let update = api.docker(client, ["update", "--restart", "always", "keep"])
        #expect(update.status == 0, "update --restart: \(update.stderr)")
        #expect(api.docker(client, ["inspect", "--format", "{{.HostConfig.RestartPolicy.Name}}", "keep"]).out == "always")
        let pid = Int32(api.docker(client, ["inspect", "--format", "{{.State.Pid}}", "keep"]).out) ?? 0
        #expect(pid > 0)
        if pid > 0 { kill(pid, SIGKILL) }
        var restarted = ""
        #expect(host.eventually(20) {
            restarted = api.docker(client, ["inspect", "--format", "{{.State.Running}} {{.RestartCount}} {{.State.Pid}}", "keep"]).out
            let f = restarted.split(separator: " ")
            return f.count == 3 && f[0] == "true" && f[1] != "0" && Int32(f[2]) != pid
        }, "restarted by its policy: \(restarted)")
        #expect(api.docker(client, ["update", "--restart", "no", "--memory", "64m", "keep"]).status == 0)
        #expect(api.docker(client, ["inspect", "--format", "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.Memory}}", "keep"]).out == "no 67108864")

        // push to the loopback registry; hako pulls it back.
        let registry = try TestRegistry(in: host)
        defer { registry.stop() }
        let remote = "\(registry.address)/test/committed:v1"
        #expect(api.docker(client, ["tag", "committed:v1", remote]).status == 0)
        let push = api.docker(client, ["push", remote], timeout: 120)
        #expect(push.status == 0 && push.stdout.contains("digest: sha256:"), "push: \(push.stdout) \(push.stderr)")
        #expect(api.docker(client, ["rmi", remote, "committed:v1"]).status == 0)
        #expect(host.hako("pull", remote).status == 0)
        #expect(host.hako("run", "--rm", remote, "cat", "/marker").stdout == "committed\n")

        #expect(api.docker(client, ["rm", "-f", "keep"]).status == 0)
        _ = host.hako("rmi", remote)
        #expect(api.alive, "\(api.serviceLog)")
    }

    /// -H tcp://127.0.0.1:PORT with --tls: docker --tlsverify with a client
    /// certificate of the CA gets through (run, stdin through a hijacked
    /// stream); no certificate, one of another CA, or plain HTTP do not.
    @Test func tcpWithMutualTLS() throws {
        let certs = try TestCertificates()
        defer { certs.remove() }
        let port = try TestRegistry.freePort(prefix: host.prefix)
        let address = "tcp://127.0.0.1:\(port)"

        let plain = host.hako("system", "service", "-H", address)
        #expect(plain.status == 125 && plain.stderr.contains("mutual TLS"), "TCP without TLS: \(plain.stderr)")

        let api = try APIService(host, extra: ["-H", address, "--tls", "--tlscacert", certs.dir + "/ca.pem",
                                               "--tlscert", certs.dir + "/server.pem", "--tlskey", certs.dir + "/server.key"])
        defer { api.stop() }
        #expect(host.eventually(10) { TestRegistry.accepts(port, prefix: host.prefix) })
        let env = ["DOCKER_CONFIG": api.dir + "/config", "HOME": api.dir, "DOCKER_CLI_HINTS": "false"]
        func docker(_ client: String, _ tls: [String], _ args: [String], stdin: String? = nil) -> Output {
            Subprocess.run(host.prefix + [client, "-H", address] + tls + args, env: env, stdin: stdin, timeout: 60)
        }
        let good = ["--tlsverify", "--tlscacert", certs.dir + "/ca.pem", "--tlscert", certs.dir + "/client.pem", "--tlskey", certs.dir + "/client.key"]
        for client in DockerClients.all {
            let run = docker(client, good, ["run", "--rm", host.busybox, "echo", "over-tls"])
            #expect(run.status == 0 && run.stdout == "over-tls\n", "\(client) run over TLS: \(run.stdout) \(run.stderr)")
            let cat = docker(client, good, ["run", "--rm", "-i", host.busybox, "sh", "-c", "cat; echo end"], stdin: "piped\n")
            #expect(cat.stdout == "piped\nend\n", "\(client) stdin over TLS: \(cat.stdout) \(cat.stderr)")
            let version = docker(client, good, ["version", "--format", "{{.Server.APIVersion}}"])
            #expect(version.out == "1.41", "\(client) version: \(version.stdout) \(version.stderr)")
        }
        let client = "/usr/bin/docker"
        let noCert = docker(client, ["--tlsverify", "--tlscacert", certs.dir + "/ca.pem"], ["version"])
        #expect(noCert.status != 0 && !noCert.stdout.contains("Server:"), "no client certificate: \(noCert.stdout)")
        let otherCA = docker(client, ["--tlsverify", "--tlscacert", certs.dir + "/ca.pem", "--tlscert", certs.dir + "/rogue.pem",
                                      "--tlskey", certs.dir + "/rogue.key"], ["version"])
        #expect(otherCA.status != 0 && !otherCA.stdout.contains("Server:"), "another CA's certificate: \(otherCA.stdout)")
        func curl(_ args: [String]) -> Output {
            Subprocess.run(host.prefix + ["/usr/bin/curl", "-sS", "--max-time", "5"] + args, timeout: 10)
        }
        let withCert = curl(["--cacert", certs.dir + "/ca.pem", "--cert", certs.dir + "/client.pem", "--key", certs.dir + "/client.key",
                             "https://127.0.0.1:\(port)/_ping"])
        #expect(withCert.stdout == "OK", "curl with the client certificate: \(withCert.stdout) \(withCert.stderr)")
        let withoutCert = curl(["--cacert", certs.dir + "/ca.pem", "https://127.0.0.1:\(port)/_ping"])
        #expect(withoutCert.status != 0 && withoutCert.stdout != "OK", "curl without a client certificate: \(withoutCert.stdout)")
        let http = curl(["http://127.0.0.1:\(port)/_ping"])
        #expect(http.stdout != "OK", "plain HTTP: \(http.stdout)")
        #expect(api.alive, "\(api.serviceLog)")
        #expect(api.serviceLog.contains("refused a connection"), "refusals are logged: \(api.serviceLog)")
        #expect(host.containerIDs().isEmpty)
    }
}

extension DockerAPITests {
    /// A TCP socket systemd passes is served with mutual TLS too, and refused
    /// without it: socket activation cannot open a plain TCP door.
    @Test func tcpSocketActivationNeedsTLS() throws {
        let certs = try TestCertificates()
        defer { certs.remove() }
        let env = ["DOCKER_CONFIG": certs.dir, "HOME": certs.dir, "DOCKER_CLI_HINTS": "false"]
        let tlsFlags = ["--tls", "--tlscacert", certs.dir + "/ca.pem", "--tlscert", certs.dir + "/server.pem", "--tlskey", certs.dir + "/server.key"]
        for withTLS in [false, true] {
            let port = try TestRegistry.freePort(prefix: host.prefix)
            var argv = host.prefix + ["/usr/bin/systemd-socket-activate", "-l", "127.0.0.1:\(port)"]
            for (k, v) in host.env { argv += ["-E", "\(k)=\(v)"] }
            argv += ["-E", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", Binaries.hako, "system", "service", "--time", "1s"] + (withTLS ? tlsFlags : [])
            let log = certs.dir + "/activate-\(withTLS).log"
            let pid = Subprocess.spawn(argv, env: host.env, stdout: log, stderr: log)
            #expect(pid > 0)
            #expect(host.eventually(10) { TestRegistry.accepts(port, prefix: host.prefix) }, "the activator listens")
            let version = Subprocess.run(host.prefix + ["/usr/bin/docker", "-H", "tcp://127.0.0.1:\(port)", "--tlsverify", "--tlscacert", certs.dir + "/ca.pem",
                                                        "--tlscert", certs.dir + "/client.pem", "--tlskey", certs.dir + "/client.key",
                                                        "version", "--format", "{{.Server.APIVersion}}"], env: env, timeout: 30)
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if withTLS {
                #expect(version.out == "1.41", "over the activated TCP socket: \(version.stdout) \(version.stderr) \(text)")
                #expect(Subprocess.waitBounded(pid, timeout: 20) == 0, "the idle exit")
            } else {
                #expect(version.status != 0, "no plain TCP: \(version.stdout)")
                let status = Subprocess.waitBounded(pid, timeout: 20)
                if status == -2 { kill(pid, SIGKILL) }
                let refusal = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                #expect(status == 125 && refusal.contains("mutual TLS"), "refused (\(status)): \(refusal)")
            }
        }
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate signed by
/// it, and a rogue client certificate of another CA (openssl CLI; tests only).
struct TestCertificates {
    let dir: String

    init() throws {
        dir = try TestFiles.tempDir("hako-api-tls")
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n".write(toFile: dir + "/server.ext", atomically: true, encoding: .utf8)
        try "extendedKeyUsage=clientAuth\n".write(toFile: dir + "/client.ext", atomically: true, encoding: .utf8)
        func ssl(_ args: [String]) throws {
            let r = Subprocess.run(["/usr/bin/openssl"] + args)
            guard r.status == 0 else { throw TestFiles.failure("openssl \(args.first ?? ""): \(r.stderr)") }
        }
        for ca in ["ca", "rogueca"] {
            try ssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                     "-subj", "/CN=hako test \(ca)", "-keyout", "\(dir)/\(ca).key", "-out", "\(dir)/\(ca).pem"])
        }
        for (name, ca, ext) in [("server", "ca", "server"), ("client", "ca", "client"), ("rogue", "rogueca", "client")] {
            try ssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=\(name)",
                     "-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).csr"])
            try ssl(["x509", "-req", "-in", "\(dir)/\(name).csr", "-CA", "\(dir)/\(ca).pem", "-CAkey", "\(dir)/\(ca).key",
                     "-CAcreateserial", "-days", "2", "-extfile", "\(dir)/\(ext).ext", "-out", "\(dir)/\(name).pem"])
        }
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }
}
