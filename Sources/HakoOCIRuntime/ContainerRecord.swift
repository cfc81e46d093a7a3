#if canImport(Glibc)
import Glibc
#endif
import HakoRuntime
import HakoSystem

/// A container as hako-runtime keeps it: `<root>/<id>/state.json`, written
/// once by `create`. Its status is never stored; it is derived each time from
/// the init's liveness (pid + start time), the exec FIFO and the freezer.
public struct ContainerRecord: Sendable {
    public var id: String
    public var bundle: String
    public var rootfs: String
    public var pid: Int32
    /// Field 22 of /proc/PID/stat when the init was created: a reused pid is not ours.
    public var startTime: UInt64
    public var created: String
    public var owner: String
    public var annotations: [(String, String)]
    public var cgroupParent: String
    public var cgroupLeaf: String
    public var poststart: [OCI.Hook]
    public var poststop: [OCI.Hook]
    /// config.json had a process (a container without one can be created, not started).
    public var hasProcess = true

    public enum Status: String, Sendable { case creating, created, running, paused, stopped }

    public func json() -> JSON {
        func hooks(_ list: [OCI.Hook]) -> JSON {
            .array(list.map { h in
                var m: [(String, JSON)] = [("path", .string(h.path)), ("args", .array(h.args.map(JSON.string))), ("env", .array(h.env.map(JSON.string)))]
                if let t = h.timeout { m.append(("timeout", .int(Int64(t)))) }
                return .object(m)
            })
        }
        return .object([
            ("id", .string(id)), ("bundle", .string(bundle)), ("rootfs", .string(rootfs)), ("pid", .int(Int64(pid))),
            ("startTime", .uint(startTime)), ("created", .string(created)), ("owner", .string(owner)),
            ("annotations", .object(annotations.map { ($0.0, .string($0.1)) })),
            ("cgroupParent", .string(cgroupParent)), ("cgroupLeaf", .string(cgroupLeaf)),
            ("poststart", hooks(poststart)), ("poststop", hooks(poststop)), ("hasProcess", .bool(hasProcess)),
        ])
    }

    public init(id: String, bundle: String, rootfs: String, pid: Int32, startTime: UInt64, created: String, owner: String,
                annotations: [(String, String)], cgroupParent: String, cgroupLeaf: String, poststart: [OCI.Hook], poststop: [OCI.Hook]) {
        self.id = id; self.bundle = bundle; self.rootfs = rootfs; self.pid = pid; self.startTime = startTime
        self.created = created; self.owner = owner; self.annotations = annotations
        self.cgroupParent = cgroupParent; self.cgroupLeaf = cgroupLeaf; self.poststart = poststart; self.poststop = poststop
    }

    public init(json j: JSON) throws {
        func s(_ k: String) throws -> String {
            guard let v = j[k]?.string else { throw HakoError(.failed, "state.json: \(k) is missing") }
            return v
        }
        func hooks(_ k: String) -> [OCI.Hook] {
            (j[k]?.array ?? []).compactMap { h in
                guard let path = h["path"]?.string else { return nil }
                return OCI.Hook(path: path, args: (h["args"]?.array ?? []).compactMap(\.string),
                                env: (h["env"]?.array ?? []).compactMap(\.string), timeout: h["timeout"]?.int64.map { Int($0) })
            }
        }
        guard let pid = j["pid"]?.int64, let start = j["startTime"]?.uint64 else { throw HakoError(.failed, "state.json: pid is missing") }
        self.init(id: try s("id"), bundle: try s("bundle"), rootfs: try s("rootfs"), pid: Int32(truncatingIfNeeded: pid), startTime: start,
                  created: try s("created"), owner: (try? s("owner")) ?? "",
                  annotations: (j["annotations"]?.members ?? []).compactMap { k, v in v.string.map { (k, $0) } },
                  cgroupParent: try s("cgroupParent"), cgroupLeaf: try s("cgroupLeaf"),
                  poststart: hooks("poststart"), poststop: hooks("poststop"))
        hasProcess = j["hasProcess"]?.bool ?? true
    }

    /// The state the OCI runtime spec defines (`state` prints it, hooks read it).
    public func ociState(_ status: Status) -> JSON {
        var m: [(String, JSON)] = [
            ("ociVersion", .string(OCI.specVersion)), ("id", .string(id)), ("status", .string(status.rawValue)),
            ("pid", .int(status == .stopped ? 0 : Int64(pid))), ("bundle", .string(bundle)), ("rootfs", .string(rootfs)),
            ("created", .string(created)), ("owner", .string(owner)),
        ]
        if !annotations.isEmpty { m.append(("annotations", .object(annotations.map { ($0.0, .string($0.1)) }))) }
        return .object(m)
    }
}

/// A process's identity from /proc: alive (not a zombie) and started when.
public enum ProcessProbe {
    /// (state letter, start time) from /proc/PID/stat; nil when there is no such process.
    public static func stat(_ pid: Int32) -> (state: Character, startTime: UInt64)? {
        guard pid > 0, let text = try? FS.readString("/proc/\(pid)/stat") else { return nil }
        return parseStat(text)
    }

    /// Pure: the fields after the command name, which may hold spaces and parentheses.
    public static func parseStat(_ text: String) -> (state: Character, startTime: UInt64)? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let rest = text[text.index(after: close)...].split(separator: " ")
        guard rest.count > 19, let state = rest[0].first, let start = UInt64(rest[19]) else { return nil }
        return (state, start)
    }

    /// The process `pid` is the one that started at `startTime` and has not exited.
    public static func isAlive(_ pid: Int32, startTime: UInt64) -> Bool {
        guard let s = stat(pid), s.startTime == startTime else { return false }
        return s.state != "Z" && s.state != "X"
    }
}
