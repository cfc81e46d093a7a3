#if canImport(Glibc)
import Glibc
#endif
import HakoRuntime
import HakoSystem

extension OCIRuntime {
    /// `state ID`: the runtime spec's state JSON.
    public func state(_ id: String) throws -> JSON {
        let r = try load(id)
        return r.ociState(status(r))
    }

    /// `list`: every container's state, sorted by id.
    public func list() throws -> [JSON] {
        try ids().compactMap { id in (try? load(id)).map { $0.ociState(status($0)) } }
    }

    /// `ps ID`: host pids of the container's processes.
    public func processes(_ id: String) throws -> [Int32] {
        let r = try load(id)
        guard status(r) != .stopped || !driver(for: r).processes(r.cgroupLeaf).isEmpty else { return [] }
        return driver(for: r).processes(r.cgroupLeaf).sorted()
    }

    /// One line per process for `ps` without --format json: UID PID PPID STAT CMD (from /proc).
    public static func processTable(_ pids: [Int32]) -> [String] {
        var rows = ["UID\tPID\tPPID\tSTAT\tCMD"]
        for pid in pids {
            guard let status = try? FS.readString("/proc/\(pid)/status") else { continue }
            func field(_ k: String) -> String {
                for line in status.split(separator: "\n") where line.hasPrefix(k + ":") {
                    return String(line.dropFirst(k.count + 1)).trimmed.split(whereSeparator: { $0 == "\t" || $0 == " " }).first.map(String.init) ?? ""
                }
                return ""
            }
            let cmd = ((try? FS.readFile("/proc/\(pid)/cmdline")) ?? []).split(separator: 0).map { String(decoding: $0, as: UTF8.self) }.joined(separator: " ")
            rows.append("\(field("Uid"))\t\(pid)\t\(field("PPid"))\t\(field("State"))\t\(cmd.isEmpty ? "[" + field("Name") + "]" : cmd)")
        }
        return rows
    }
}
