#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import Testing

/// The harness's registry: Debian's docker-registry listening on the
/// underlay bridge's address, inside the underlay namespace; stopped by PID.
extension ClusterHarness {
    func startRegistry() {
        let dir = base + "/registry"
        try? FileManager.default.createDirectory(atPath: dir + "/storage", withIntermediateDirectories: true)
        write(dir + "/config.yml", """
            version: 0.1
            log:
              level: info
            storage:
              filesystem:
                rootdirectory: \(dir)/storage
            http:
              addr: \(ClusterHarness.registryAddress)
              secret: hako-test-only
            """)
        registryPID = Subprocess.spawn(inUnderlay(["/usr/bin/docker-registry", "serve", dir + "/config.yml"]),
                                       stdout: dir + "/log", stderr: dir + "/log")
        let (host, port) = (ClusterHarness.registryAddress.split(separator: ":")[0], ClusterHarness.registryAddress.split(separator: ":")[1])
        if !eventually(30, { Subprocess.run(self.inUnderlay(["/bin/bash", "-c", "exec 3<>/dev/tcp/\(host)/\(port)"]), timeout: 5).status == 0 }) {
            fail("docker-registry did not start: \((try? String(contentsOfFile: dir + "/log", encoding: .utf8)) ?? "")")
        }
        trustRegistry(root: adminEnv["HAKO_ROOT"] ?? "")
    }

    func stopRegistry() {
        guard registryPID > 0 else { return }
        stop(registryPID)
        registryPID = 0
    }

    /// An engine root whose engine reaches the registry over plain HTTP.
    func trustRegistry(root: String) {
        try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        write(root + "/engine.json", #"{"registries": {"insecure": ["\#(ClusterHarness.registryAddress)"]}}"#)
    }

    /// The busybox image, pushed with `hako push` from the admin's engine to
    /// the underlay registry; its reference.
    func pushBusybox(as name: String) -> String {
        let ref = "\(ClusterHarness.registryAddress)/\(name)"
        let i = Subprocess.run([Binaries.hako, "import", BusyboxImage.tarball, ref], env: adminEnv)
        if i.status != 0 { fail("import \(ref): \(i.stderr)") }
        let p = Subprocess.run(inUnderlay([Binaries.hako, "push", ref]), env: adminEnv, timeout: 120)
        if p.status != 0 { fail("push \(ref): \(p.stderr)") }
        return ref
    }

    /// A program run in the underlay namespace (curl to a node's published port).
    func underlay(_ argv: [String], timeout: Double = 20) -> Output { Subprocess.run(inUnderlay(argv), timeout: timeout) }
}
