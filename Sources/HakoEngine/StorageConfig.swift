import HakoSystem

/// One mount a container asked for (-v, --mount, --tmpfs, or the image's VOLUME list).
public struct MountRequest: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case bind, volume, tmpfs }
    public var kind: Kind
    /// bind: an absolute host path; volume: the volume's name; tmpfs: "".
    public var source: String
    /// Absolute path inside the container.
    public var target: String
    public var readOnly: Bool = false
    /// An anonymous volume (removed with the container by `rm -v` and `--rm`).
    public var anonymous: Bool = false
    /// -v creates a missing host directory; --mount type=bind refuses it.
    public var createHostPath: Bool = false
    /// A new volume is not filled from the image.
    public var noCopy: Bool = false
    /// tmpfs size in bytes (0: the kernel's default) and mode.
    public var tmpfsSize: UInt64 = 0
    public var tmpfsMode: UInt32?
    public var tmpfsExec: Bool = false
    /// A bind mount's propagation (`-v SRC:DST:rshared`, `bind-propagation=`);
    /// nil: Docker's default, rprivate.
    public var propagation: BindPropagation?

    public init(kind: Kind, source: String, target: String) { self.kind = kind; self.source = source; self.target = target }
}

/// How mount and unmount events cross a bind mount (mount_namespaces(7)).
/// shared and slave need the source's mount to be shared (or, for slave, a
/// slave) on the host, as Docker requires: only then can events cross.
public enum BindPropagation: String, Codable, Sendable, CaseIterable {
    case `private`, rprivate, shared, rshared, slave, rslave

    public var recursive: Bool { self == .rprivate || self == .rshared || self == .rslave }
    /// Mounts made inside the container under the target appear on the host.
    public var sharesBack: Bool { self == .shared || self == .rshared }
    public var receives: Bool { self != .private && self != .rprivate }
}

/// A container's mounts, stored in its configuration.
public struct ContainerStorage: Codable, Sendable, Equatable {
    public var mounts: [MountRequest] = []
    public init() {}
}

/// The storage flags of `run`/`create` before they are checked.
public struct StorageRunOptions: Sendable {
    public var volumes: [String] = []
    public var mounts: [String] = []
    public var tmpfs: [String] = []
    public init() {}
}

extension BindPropagation {
    static var allNames: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

extension ContainerStorage {
    static func invalidTarget(_ t: String) -> Bool {
        !t.hasPrefix("/") || FS.normalize(t) == "/" || t.contains("\0")
    }

    /// Checks every storage flag and adds the image's VOLUME list as anonymous
    /// volumes. Pure but for resolving relative host paths against the working directory.
    static func make(_ o: StorageRunOptions, imageVolumes: [String]) throws -> ContainerStorage? {
        var s = ContainerStorage()
        for v in o.volumes { s.mounts.append(try parseVolume(v)) }
        for m in o.mounts { s.mounts.append(try parseMount(m)) }
        for t in o.tmpfs { s.mounts.append(try parseTmpfs(t)) }
        var seen = Set<String>()
        for m in s.mounts {
            let t = FS.normalize(m.target)
            if seen.contains(t) { throw HakoError(.failed, "duplicate mount point: \(t)") }
            seen.insert(t)
        }
        for v in imageVolumes where !invalidTarget(v) && !seen.contains(FS.normalize(v)) {
            var m = MountRequest(kind: .volume, source: hexString(randomBytes(32)), target: FS.normalize(v))
            m.anonymous = true
            s.mounts.append(m)
            seen.insert(m.target)
        }
        return s.mounts.isEmpty ? nil : s
    }

    /// `-v [SOURCE:]TARGET[:OPTIONS]`: SOURCE is a host path (absolute, or
    /// relative starting with "."), or a volume's name; no SOURCE: an anonymous volume.
    static func parseVolume(_ spec: String) throws -> MountRequest {
        func bad(_ why: String) -> HakoError { HakoError(.failed, "invalid -v \"\(spec)\": \(why)") }
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard !parts.contains(where: \.isEmpty), (1...3).contains(parts.count) else { throw bad("expected [SOURCE:]TARGET[:ro|rw]") }
        var m: MountRequest
        if parts.count == 1 {
            m = MountRequest(kind: .volume, source: hexString(randomBytes(32)), target: parts[0])
            m.anonymous = true
        } else {
            let src = parts[0]
            if src.hasPrefix("/") || src.hasPrefix(".") {
                m = MountRequest(kind: .bind, source: FS.absolute(src), target: parts[1])
                m.createHostPath = true
            } else {
                guard Volumes.isValidName(src) else { throw bad("\"\(src)\" is neither an absolute path nor a valid volume name") }
                m = MountRequest(kind: .volume, source: src, target: parts[1])
            }
        }
        if invalidTarget(m.target) { throw bad("the mount point \"\(m.target)\" must be an absolute path other than /") }
        m.target = FS.normalize(m.target)
        if parts.count == 3 {
            for o in parts[2].split(separator: ",") {
                switch o {
                case "ro", "readonly": m.readOnly = true
                case "rw": m.readOnly = false
                case "nocopy": m.noCopy = true
                // SELinux relabelling: nothing to do on a host without SELinux, as Docker there.
                case "z", "Z": break
                default:
                    guard let p = BindPropagation(rawValue: String(o)) else {
                        throw bad("unknown option \"\(o)\" (ro, rw, nocopy, z, Z, or a propagation: \(BindPropagation.allNames))")
                    }
                    guard m.kind == .bind else { throw bad("propagation \"\(o)\" applies to bind mounts only, not to volumes") }
                    guard m.propagation == nil else { throw bad("more than one propagation") }
                    m.propagation = p
                }
            }
        }
        return m
    }

    /// `--mount type=bind|volume|tmpfs,source=…,target=…,readonly,…`
    static func parseMount(_ spec: String) throws -> MountRequest {
        func bad(_ why: String) -> HakoError { HakoError(.failed, "invalid --mount \"\(spec)\": \(why)") }
        var kind = MountRequest.Kind.volume
        var source = "", target = ""
        var ro = false, noCopy = false, size: UInt64 = 0, mode: UInt32?
        var propagation: BindPropagation?
        for field in spec.split(separator: ",") {
            let kv = field.split(separator: "=", maxSplits: 1).map(String.init)
            let key = kv[0], value = kv.count > 1 ? kv[1] : nil
            switch key {
            case "type":
                guard let v = value, let k = MountRequest.Kind(rawValue: v) else { throw bad("type must be bind, volume or tmpfs") }
                kind = k
            case "source", "src": source = value ?? ""
            case "target", "destination", "dst": target = value ?? ""
            case "readonly", "ro":
                switch value {
                case nil, "true", "1": ro = true
                case "false", "0": ro = false
                default: throw bad("readonly takes true or false")
                }
            case "volume-nocopy": noCopy = value != "false"
            case "tmpfs-size":
                guard let v = value, let n = ByteSize.parse(v), n > 0 else { throw bad("tmpfs-size must be a size such as 64m") }
                size = n
            case "tmpfs-mode":
                guard let v = value, let n = UInt32(v, radix: 8), n <= 0o7777 else { throw bad("tmpfs-mode must be an octal mode such as 1777") }
                mode = n
            case "bind-propagation":
                guard let v = value, let p = BindPropagation(rawValue: v) else {
                    throw bad("bind-propagation must be one of \(BindPropagation.allNames)")
                }
                propagation = p
            // macOS file sharing hints; they mean nothing on Linux (Docker ignores them too).
            case "consistency": break
            default: throw bad("unknown field \"\(key)\"")
            }
        }
        if invalidTarget(target) { throw bad("target must be an absolute path other than /") }
        var m: MountRequest
        switch kind {
        case .bind:
            guard !source.isEmpty else { throw bad("a bind mount needs a source") }
            let abs = FS.absolute(source)
            guard FS.exists(abs) else { throw HakoError(.failed, "invalid --mount \"\(spec)\": bind source path does not exist: \(abs)") }
            m = MountRequest(kind: .bind, source: abs, target: target)
        case .volume:
            if source.isEmpty {
                m = MountRequest(kind: .volume, source: hexString(randomBytes(32)), target: target)
                m.anonymous = true
            } else {
                guard Volumes.isValidName(source) else { throw bad("\"\(source)\" is not a valid volume name") }
                m = MountRequest(kind: .volume, source: source, target: target)
            }
        case .tmpfs:
            guard source.isEmpty else { throw bad("a tmpfs mount has no source") }
            m = MountRequest(kind: .tmpfs, source: "", target: target)
        }
        if kind != .tmpfs && (size != 0 || mode != nil) { throw bad("tmpfs options on a \(kind.rawValue) mount") }
        if kind != .bind && propagation != nil { throw bad("bind-propagation on a \(kind.rawValue) mount") }
        m.target = FS.normalize(target)
        m.readOnly = ro
        m.noCopy = noCopy
        m.tmpfsSize = size
        m.tmpfsMode = mode
        m.propagation = propagation
        return m
    }

    /// `--tmpfs TARGET[:size=64m,mode=1777,exec,ro]`
    static func parseTmpfs(_ spec: String) throws -> MountRequest {
        func bad(_ why: String) -> HakoError { HakoError(.failed, "invalid --tmpfs \"\(spec)\": \(why)") }
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        guard let target = parts.first, !invalidTarget(target) else { throw bad("the mount point must be an absolute path other than /") }
        var m = MountRequest(kind: .tmpfs, source: "", target: FS.normalize(target))
        if parts.count > 1 {
            for o in parts[1].split(separator: ",") {
                let kv = o.split(separator: "=", maxSplits: 1).map(String.init)
                switch kv[0] {
                case "size":
                    guard kv.count == 2, let n = ByteSize.parse(kv[1]), n > 0 else { throw bad("size must be a size such as 64m") }
                    m.tmpfsSize = n
                case "mode":
                    guard kv.count == 2, let n = UInt32(kv[1], radix: 8), n <= 0o7777 else { throw bad("mode must be octal") }
                    m.tmpfsMode = n
                case "ro": m.readOnly = true
                case "rw": m.readOnly = false
                case "exec": m.tmpfsExec = true
                case "noexec": m.tmpfsExec = false
                case "nosuid", "nodev", "suid", "dev": break
                default: throw bad("unknown option \"\(kv[0])\"")
                }
            }
        }
        return m
    }
}
