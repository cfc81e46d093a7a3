import CHakoShim
import Foundation
@testable import HakoEngine
import HakoImage
@testable import HakoRuntime
import HakoSystem
import Testing

/// The engine's image plumbing that needs no root: registry names, the
/// engine configuration file, the overlay's short layer names.
@Suite struct EngineImageTests {
    @Test func registryNames() throws {
        for hub in [nil, "", "docker.io", "https://index.docker.io/v1/", "registry-1.docker.io", "INDEX.DOCKER.IO"] {
            #expect(try Engine.registryDomain(hub) == "docker.io", "\(hub ?? "nil")")
        }
        #expect(try Engine.registryDomain("http://127.0.0.1:5000/v2/") == "127.0.0.1:5000")
        #expect(try Engine.registryDomain("reg.lan") == "reg.lan")
        for bad in ["not a host", "a_b:99999x"] {
            #expect(throws: HakoError.self) { _ = try Engine.registryDomain(bad) }
        }
        #expect(Engine.looksLikeImageID("0123456789ab") && !Engine.looksLikeImageID("busybox") && !Engine.looksLikeImageID("0123"))
    }

    @Test func engineConfigFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hako-cfg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/engine.json"
        #expect(try EngineConfig.load(path) == EngineConfig())   // absent: defaults
        try #"{"registries":{"insecure":["r:5000"],"ca":{"r2":"/ca.pem"},"insecure-loopback":false,"max-concurrent-downloads":5},"images":{"allow-device-nodes":true},"future-section":{"x":1}}"#
            .write(toFile: path, atomically: true, encoding: .utf8)
        let c = try EngineConfig.load(path)
        #expect(c.registries == EngineConfig.Registries(insecure: ["r:5000"], ca: ["r2": "/ca.pem"], maxConcurrentDownloads: 5, insecureLoopback: false))
        #expect(c.images?.allowDeviceNodes == true)
        for (bad, fragment) in [(#"{"registries":{"insecure":"r"}}"#, "registries.insecure"), ("{", "invalid engine configuration"),
                                (#"{"registries":{"max-concurrent-downloads":0}}"#, "1 to 32"),
                                (#"{"registries":{"ca":{"r":"relative.pem"}}}"#, "absolute path")] {
            try bad.write(toFile: path, atomically: true, encoding: .utf8)
            do {
                _ = try EngineConfig.load(path)
                Issue.record("accepted \(bad)")
            } catch let e as HakoError {
                #expect(e.description.contains(fragment) && e.description.contains(path), "\(e)")
            }
        }
    }

    @Test func overlayDirectoryReachesTheCParser() {
        var r = RuntimeSpec(id: "x", rootfs: "/r", process: ProcessSpec(args: ["/bin/true"], env: []))
        r.overlay = OverlayRoot(lower: ["abc123def456", "0123456789ab"], upper: "/u", work: "/w", directory: "/var/lib/hako/images/l")
        let (ok, s, msg, _) = parseWithC(LaunchSpecEncoder.encode(r, monitor: nil))
        #expect(ok, "\(msg)")
        #expect(str(s.overlay) == "lowerdir=abc123def456:0123456789ab,upperdir=/u,workdir=/w")
        #expect(str(s.overlay_dir) == "/var/lib/hako/images/l")
        r.overlay?.directory = nil
        let (_, plain, _, _) = parseWithC(LaunchSpecEncoder.encode(r, monitor: nil))
        #expect(plain.overlay_dir == nil)
    }

    @Test func longLayerStacksUseShortLinks() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hako-links-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let engine = try Engine(paths: EnginePaths(root: dir + "/root", runRoot: dir + "/run"))
        let snapshots = engine.images.snapshots
        var lower: [String] = []
        for i in 0..<60 {
            let chain = try Digest.sha256(of: "layer \(i)")
            try FileManager.default.createDirectory(atPath: snapshots.fsPath(chain), withIntermediateDirectories: true)
            lower.append(snapshots.fsPath(chain))
        }
        let few = OverlayRoot(lower: Array(lower.prefix(3)), upper: "/u", work: "/w")
        #expect(try engine.fitOverlay(few) == few, "short stacks keep absolute paths")
        let many = try #require(try engine.fitOverlay(OverlayRoot(lower: lower, upper: "/u", work: "/w")))
        #expect(many.directory == snapshots.linksDirectory)
        #expect(many.mountData.utf8.count < 4096)
        for (short, full) in zip(many.lower, lower) {
            #expect(short.count == 12)
            #expect(FileManager.default.fileExists(atPath: snapshots.linksDirectory + "/" + short + "/"))
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: snapshots.linksDirectory + "/" + short)
                    == "../snapshots/" + full.split(separator: "/").dropLast().last.map(String.init)! + "/fs")
        }
        // Not snapshots: an error, not a mount that fails later.
        #expect(throws: HakoError.self) {
            _ = try engine.fitOverlay(OverlayRoot(lower: lower.map { $0 + "-elsewhere" }, upper: "/u", work: "/w"))
        }
    }
}
