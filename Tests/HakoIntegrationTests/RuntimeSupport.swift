#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import Testing

extension Binaries {
    static var runtime: String { dir + "/hako-runtime" }
}

/// A private hako-runtime for one suite: its own --root, bundles from the
/// busybox test rootfs, cgroups under a parent it owns; all removed at the end.
final class RuntimeHost: @unchecked Sendable {
    let base: String
    let root: String
    let cgroupParent: String
    let rootfsTar: String

    init(_ tag: String) {
        var template = Array("/tmp/hako-rt-\(tag)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        base = made.map { String(cString: $0) } ?? "/tmp/hako-rt-\(tag)-\(getpid())"
        root = base + "/state"
        cgroupParent = "hako-rt-test-\(tag)-\(getpid())"
        rootfsTar = BusyboxImage.tarball
    }

    @discardableResult
    func rt(_ args: String..., stdin: String? = nil, timeout: Double = 60) -> Output {
        rt(args, stdin: stdin, timeout: timeout)
    }

    @discardableResult
    func rt(_ args: [String], stdin: String? = nil, timeout: Double = 60) -> Output {
        Subprocess.run([Binaries.runtime, "--root", root] + args, stdin: stdin, timeout: timeout)
    }

    /// A bundle whose config.json is `hako-runtime spec`'s, changed by `edit`.
    func bundle(_ name: String, args: [String], edit: (inout [String: Any]) -> Void = { _ in }) -> String {
        let dir = base + "/bundles/" + name
        let fm = FileManager.default
        try? fm.createDirectory(atPath: dir + "/rootfs", withIntermediateDirectories: true)
        let untar = Subprocess.run(["/bin/tar", "-C", dir + "/rootfs", "-xf", rootfsTar])
        if untar.status != 0 { Issue.record("tar: \(untar.stderr)") }
        let spec = Subprocess.run([Binaries.runtime, "spec", "--bundle", dir])
        if spec.status != 0 { Issue.record("spec: \(spec.stderr)") }
        guard let data = fm.contents(atPath: dir + "/config.json"),
              var config = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            Issue.record("no config.json in \(dir)")
            return dir
        }
        var process = config["process"] as? [String: Any] ?? [:]
        process["args"] = args
        process["terminal"] = false
        config["process"] = process
        var root = config["root"] as? [String: Any] ?? [:]
        root["readonly"] = false
        config["root"] = root
        var linux = config["linux"] as? [String: Any] ?? [:]
        linux["cgroupsPath"] = "/\(cgroupParent)/\(name)"
        config["linux"] = linux
        edit(&config)
        write(config, to: dir + "/config.json")
        return dir
    }

    func write(_ object: Any, to path: String) {
        if let out = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted]) {
            FileManager.default.createFile(atPath: path, contents: out)
        }
    }

    func state(_ id: String) -> [String: Any] {
        let r = rt("state", id)
        guard r.status == 0, let d = r.stdout.data(using: .utf8) else { return [:] }
        return (try? JSONSerialization.jsonObject(with: d) as? [String: Any]) ?? [:]
    }

    func status(_ id: String) -> String { state(id)["status"] as? String ?? "(none)" }

    /// This host's parent in each hierarchy (v1), or its one directory (cgroup v2 alone).
    var parentDirs: [String] {
        if TestHost.cgroupV2 { return ["/sys/fs/cgroup/\(cgroupParent)"] }
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? []).map { "/sys/fs/cgroup/\($0)/\(cgroupParent)" }
    }

    /// cgroup directories of this host's parent that still exist.
    func cgroupDirs() -> [String] {
        var out: [String] = []
        for p in parentDirs {
            for child in (try? FileManager.default.contentsOfDirectory(atPath: p)) ?? [] where FileManager.default.fileExists(atPath: "\(p)/\(child)/cgroup.procs") {
                out.append("\(p)/\(child)")
            }
        }
        return out
    }

    func eventually(_ timeout: Double = 10, _ condition: () -> Bool) -> Bool {
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    func cleanup() {
        for id in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] where !id.hasPrefix(".") {
            rt("delete", "--force", id, timeout: 30)
        }
        for d in cgroupDirs() { rmdir(d) }
        for p in parentDirs { rmdir(p) }
        try? FileManager.default.removeItem(atPath: base)
    }

    deinit { cleanup() }
}
