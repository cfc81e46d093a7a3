#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import Testing

/// Debian's `docker-registry` (CNCF distribution) on 127.0.0.1 of a test's own
/// network namespace, a free port, its own config and temp storage; started
/// and stopped by PID by the test that uses it. Optional TLS (a CA made for the
/// test) and htpasswd auth.
final class TestRegistry: @unchecked Sendable {
    let dir: String
    let port: UInt16
    /// Runs a program in the registry's network namespace (curl, skopeo, podman against it).
    let prefix: [String]
    private(set) var pid: pid_t = -1
    /// The CA that signed the registry's certificate (TLS only).
    private(set) var caFile: String?

    var address: String { "127.0.0.1:\(port)" }
    var storage: String { dir + "/storage" }
    var log: String { dir + "/registry.log" }

    init(in host: TestHost, tls: Bool = false, users: [String: String] = [:]) throws {
        dir = try TestFiles.tempDir("hako-registry")
        prefix = host.prefix
        port = try TestRegistry.freePort(prefix: prefix)
        try FileManager.default.createDirectory(atPath: dir + "/storage", withIntermediateDirectories: true)
        var config = """
        version: 0.1
        log:
          level: info
          accesslog:
            disabled: false
        storage:
          filesystem:
            rootdirectory: \(dir)/storage
          delete:
            enabled: true
          maintenance:
            uploadpurging:
              enabled: false
        http:
          addr: 127.0.0.1:\(port)
          secret: hako-test-only

        """
        if tls {
            try makeCertificates()
            config += "  tls:\n    certificate: \(dir)/server.pem\n    key: \(dir)/server.key\n"
        }
        if !users.isEmpty {
            var lines: [String] = []
            for (user, password) in users.sorted(by: { $0.key < $1.key }) {
                let r = Subprocess.run(["/usr/bin/htpasswd", "-Bbn", user, password])
                guard r.status == 0 else { throw TestFiles.failure("htpasswd: \(r.stderr)") }
                lines.append(r.out)
            }
            try (lines.joined(separator: "\n") + "\n").write(toFile: dir + "/htpasswd", atomically: true, encoding: .utf8)
            config += "auth:\n  htpasswd:\n    realm: hako-test\n    path: \(dir)/htpasswd\n"
        }
        try config.write(toFile: dir + "/config.yml", atomically: true, encoding: .utf8)
        pid = Subprocess.spawn(prefix + ["/usr/bin/docker-registry", "serve", dir + "/config.yml"], stdout: log, stderr: log)
        guard pid > 0 else { throw TestFiles.failure("cannot start docker-registry") }
        // Ready when it accepts connections (bounded: 30 s, the machine may be busy).
        let deadline = monotonicSeconds() + 30
        while !TestRegistry.accepts(port, prefix: prefix) {
            var status: Int32 = 0
            let exited = waitpid(pid, &status, WNOHANG) == pid
            if exited || monotonicSeconds() > deadline {
                if exited { pid = -1 }
                let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                stop()
                throw TestFiles.failure("docker-registry did not start on port \(port)\(exited ? " (it exited)" : ""): \(text)")
            }
            usleep(20_000)
        }
    }

    deinit { stop() }

    /// Stops the registry (by its PID) and removes its files.
    func stop() {
        if pid > 0 {
            kill(pid, SIGTERM)
            if Subprocess.waitBounded(pid, timeout: 10) == -2 { kill(pid, SIGKILL) }
            pid = -1
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Blob downloads the registry has served (GETs of /v2/…/blobs/…).
    func blobGETs() -> Int {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { $0.contains("\"GET /v2/") && $0.contains("/blobs/sha256:") }.count
    }

    /// Where the registry keeps a blob's bytes.
    func blobData(_ digest: String) -> String {
        let hex = digest.hasPrefix("sha256:") ? String(digest.dropFirst(7)) : digest
        return "\(storage)/docker/registry/v2/blobs/sha256/\(hex.prefix(2))/\(hex)/data"
    }

    private func makeCertificates() throws {
        let ca = dir + "/ca", server = dir + "/server"
        let steps: [[String]] = [
            ["/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=hako test CA",
             "-keyout", ca + ".key", "-out", ca + ".pem"],
            ["/usr/bin/openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", server + ".key", "-out", server + ".csr"],
            ["/usr/bin/openssl", "x509", "-req", "-in", server + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
             "-CAcreateserial", "-days", "2", "-extfile", dir + "/san.cnf", "-out", server + ".pem"],
        ]
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(toFile: dir + "/san.cnf", atomically: true, encoding: .utf8)
        for s in steps {
            let r = Subprocess.run(s)
            guard r.status == 0 else { throw TestFiles.failure("openssl: \(r.stderr)") }
        }
        caFile = ca + ".pem"
    }

    /// A port nothing listens on in the namespace (a fresh namespace has all of them free).
    static func freePort(prefix: [String]) throws -> UInt16 {
        for _ in 0..<20 {
            let port = UInt16.random(in: 20000...39999)
            if !accepts(port, prefix: prefix) { return port }
        }
        throw TestFiles.failure("no free port")
    }

    /// Whether something accepts TCP connections on 127.0.0.1:port in the namespace.
    static func accepts(_ port: UInt16, prefix: [String]) -> Bool {
        Subprocess.run(prefix + ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/\(port)"], timeout: 5).status == 0
    }
}

/// podman and skopeo as fixtures and peers, on a private store (vfs driver:
/// no mounts) under a temp dir, removed afterwards.
final class Podman: @unchecked Sendable {
    let dir: String
    /// The network namespace podman and skopeo run in (the registry's), if any.
    let prefix: [String]

    init(in host: TestHost? = nil) throws {
        dir = try TestFiles.tempDir("hako-podman")
        prefix = host?.prefix ?? []
    }

    deinit {
        // vfs layers may be read-only: make them removable first.
        _ = Subprocess.run(["/bin/chmod", "-R", "u+w", dir])
        try? FileManager.default.removeItem(atPath: dir)
    }

    @discardableResult
    func run(_ args: [String], timeout: Double = 120) -> Output {
        Subprocess.run(prefix + ["/usr/bin/podman", "--root", dir + "/root", "--runroot", dir + "/runroot", "--tmpdir", dir + "/tmp",
                        "--storage-driver", "vfs", "--events-backend", "file", "--cgroup-manager", "cgroupfs"] + args,
                       env: ["TMPDIR": dir], timeout: timeout)
    }

    /// A containers-storage reference into this store, for skopeo.
    func storeRef(_ name: String) -> String { "containers-storage:[vfs@\(dir)/root+\(dir)/runroot]\(name)" }

    @discardableResult
    func skopeo(_ args: [String], timeout: Double = 120) -> Output {
        Subprocess.run(prefix + ["/usr/bin/skopeo"] + args, env: ["TMPDIR": dir], timeout: timeout)
    }
}

enum TestFiles {
    static func tempDir(_ label: String) throws -> String {
        var template = Array("/tmp/\(label)-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw failure("mkdtemp failed")
        }
        return String(cString: made)
    }

    struct Failure: Error, CustomStringConvertible { var description: String }
    static func failure(_ s: String) -> Failure { Failure(description: s) }

    static func sha256(_ path: String) -> String {
        String(Subprocess.run(["/usr/bin/sha256sum", path]).out.prefix(64))
    }

    /// Runs a shell command (fixtures only), failing the test on error.
    @discardableResult
    static func sh(_ script: String, timeout: Double = 120, sourceLocation: SourceLocation = #_sourceLocation) -> Output {
        let r = Subprocess.run(["/bin/sh", "-c", script], timeout: timeout)
        #expect(r.status == 0, "\(script): \(r.stderr)", sourceLocation: sourceLocation)
        return r
    }
}

extension TestHost {
    /// Writes this host's engine configuration.
    func writeEngineConfig(_ json: String) throws {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try json.write(toFile: root + "/engine.json", atomically: true, encoding: .utf8)
    }

    /// Every blob file of this host's store hashes to its name; returns their names.
    func verifiedBlobs(sourceLocation: SourceLocation = #_sourceLocation) -> [String] {
        let dir = root + "/images/blobs/sha256"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        for n in names { #expect(TestFiles.sha256(dir + "/" + n) == n, "blob \(n)", sourceLocation: sourceLocation) }
        return names
    }

    /// `hako image inspect REF` as JSON (empty when it fails).
    func imageInspect(_ ref: String) -> [String: Any] {
        let r = hako("image", "inspect", ref)
        guard r.status == 0, let data = r.stdout.data(using: .utf8),
              let arr = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else { return [:] }
        return arr.first ?? [:]
    }

    var imageTempFiles: [String] { (try? FileManager.default.contentsOfDirectory(atPath: root + "/images/tmp")) ?? [] }
}
