import HakoEngine
import HakoSystem

/// `-v`, `--mount` and `--tmpfs` in Docker's syntax → the spec's typed mount
/// requests: the user's text is parsed here, once (the Docker API's Binds and
/// Tmpfs come in the same syntax). Relative host paths are resolved against
/// the working directory; a `--mount` bind's source must exist.
public enum MountParser {
    /// `-v [SOURCE:]TARGET[:OPTIONS]`: SOURCE is a host path (absolute, or
    /// relative starting with "."), or a volume's name; no SOURCE: an anonymous volume.
    public static func parseVolume(_ spec: String) throws -> MountRequest {
        func bad(_ why: String) -> HakoError { HakoError(.invalidArgument("-v"), "invalid -v \"\(spec)\": \(why)") }
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
        if ContainerStorage.invalidTarget(m.target) { throw bad("the mount point \"\(m.target)\" must be an absolute path other than /") }
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
    public static func parseMount(_ spec: String) throws -> MountRequest {
        func bad(_ why: String) -> HakoError { HakoError(.invalidArgument("--mount"), "invalid --mount \"\(spec)\": \(why)") }
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
        if ContainerStorage.invalidTarget(target) { throw bad("target must be an absolute path other than /") }
        var m: MountRequest
        switch kind {
        case .bind:
            guard !source.isEmpty else { throw bad("a bind mount needs a source") }
            let abs = FS.absolute(source)
            guard FS.exists(abs) else { throw HakoError(.invalidArgument("--mount"), "invalid --mount \"\(spec)\": bind source path does not exist: \(abs)") }
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
    public static func parseTmpfs(_ spec: String) throws -> MountRequest {
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        return try parseTmpfs(target: parts.first ?? "", options: parts.count > 1 ? parts[1] : "", text: spec)
    }

    /// A tmpfs's target and its options in `--tmpfs`'s syntax (the Docker API's HostConfig.Tmpfs).
    public static func parseTmpfs(target: String, options: String, text: String? = nil) throws -> MountRequest {
        let spec = text ?? (options.isEmpty ? target : "\(target):\(options)")
        func bad(_ why: String) -> HakoError { HakoError(.invalidArgument("--tmpfs"), "invalid --tmpfs \"\(spec)\": \(why)") }
        guard !ContainerStorage.invalidTarget(target) else { throw bad("the mount point must be an absolute path other than /") }
        var m = MountRequest(kind: .tmpfs, source: "", target: FS.normalize(target))
        for o in options.split(separator: ",") {
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
        return m
    }
}
