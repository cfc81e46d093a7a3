import HakoSystem

/// Which keys a mapping may hold: those hako reads, those `docker stack
/// deploy` ignores (reported), and Compose 3.x keys hako does not support
/// (an error that says so). Anything else, but `x-*`, is an unknown key.
struct KeySet {
    var supported: Set<String>
    var ignored: Set<String> = []
    var unsupported: Set<String> = []
}

enum Keys {
    static let top = KeySet(supported: ["version", "services", "volumes", "networks", "secrets", "configs"])
    static let service = KeySet(
        supported: ["image", "command", "entrypoint", "environment", "env_file", "ports", "volumes", "networks", "secrets",
                    "configs", "healthcheck", "labels", "user", "working_dir", "hostname", "init", "stop_grace_period",
                    "stop_signal", "sysctls", "devices", "cap_add", "cap_drop", "read_only", "dns", "dns_search", "deploy"],
        ignored: ["build", "cgroupns_mode", "cgroup_parent", "container_name", "depends_on", "domainname", "expose",
                  "external_links", "ipc", "links", "mac_address", "network_mode", "pid", "privileged", "restart",
                  "security_opt", "shm_size", "userns_mode"],
        unsupported: ["credential_spec", "extra_hosts", "isolation", "logging", "stdin_open", "tmpfs", "tty", "ulimits"])
    static let deploy = KeySet(supported: ["mode", "replicas", "labels", "placement", "resources", "restart_policy", "update_config", "rollback_config"],
                               unsupported: ["endpoint_mode"])
    static let placement = KeySet(supported: ["constraints", "preferences", "max_replicas_per_node"])
    static let preference = KeySet(supported: ["spread"])
    static let resources = KeySet(supported: ["limits", "reservations"])
    static let limits = KeySet(supported: ["cpus", "memory", "pids"])
    static let reservations = KeySet(supported: ["cpus", "memory"], unsupported: ["generic_resources", "devices"])
    static let restartPolicy = KeySet(supported: ["condition", "delay", "max_attempts", "window"])
    static let updateConfig = KeySet(supported: ["parallelism", "delay", "failure_action", "monitor", "max_failure_ratio", "order"])
    static let healthcheck = KeySet(supported: ["test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"])
    static let port = KeySet(supported: ["target", "published", "protocol", "mode"])
    static let mount = KeySet(supported: ["type", "source", "target", "read_only", "bind", "volume", "tmpfs"], ignored: ["consistency"])
    static let bind = KeySet(supported: ["propagation"])
    static let volumeOptions = KeySet(supported: ["nocopy"])
    static let tmpfsOptions = KeySet(supported: ["size"])
    static let fileReference = KeySet(supported: ["source", "target", "uid", "gid", "mode"])
    static let serviceNetwork = KeySet(supported: ["aliases"], unsupported: ["ipv4_address", "ipv6_address"])
    static let volume = KeySet(supported: ["driver", "driver_opts", "external", "labels", "name"])
    static let network = KeySet(supported: ["driver", "attachable", "external", "internal", "labels", "name", "ipam"], unsupported: ["driver_opts"])
    static let ipam = KeySet(supported: ["driver", "config"])
    static let ipamConfig = KeySet(supported: ["subnet"])
    static let secret = KeySet(supported: ["file", "external", "labels", "name"], unsupported: ["driver", "driver_opts", "template_driver"])
    static let config = KeySet(supported: ["file", "external", "labels", "name"], unsupported: ["template_driver"])
    static let externalName = KeySet(supported: ["name"])
}

/// What loading a set of Compose files gives.
public struct ComposeLoad: Sendable, Equatable {
    public var project: ComposeProject
    /// Keys `docker stack deploy` ignores, found in the files.
    public var ignored: [IgnoredKey]
    /// Variables used without a value or default (they became ""), Docker's warning.
    public var unsetVariables: [String]
}

/// Loads Compose files as `docker stack deploy -c a.yml -c b.yml` does: each
/// parsed, interpolated and checked, then merged in order (docs/compose.md).
public struct ComposeLoader {
    /// The variables `${…}` reads: the process environment, over `.env`.
    public var environment: [String: String]
    /// The directory relative paths are resolved against (the first file's).
    public var projectDirectory: String
    /// Reads a file; nil when it does not exist.
    public var readFile: (String) throws -> String?

    public init(environment: [String: String], projectDirectory: String, readFile: @escaping (String) throws -> String?) {
        self.environment = environment
        self.projectDirectory = projectDirectory
        self.readFile = readFile
    }

    /// Files read from disk; the project directory is the first file's, its
    /// `.env` supplies variables the environment does not.
    public static func load(files: [String], environment: [String: String]) throws(ComposeError) -> ComposeLoad {
        guard let first = files.first else { throw ComposeError(file: "", line: nil, "no Compose file given") }
        let read: (String) throws -> String? = { path in FS.exists(path) ? try FS.readString(path) : nil }
        let loader = ComposeLoader(environment: environment, projectDirectory: FS.parentDirectory(FS.absolute(first)), readFile: read)
        var sources: [(String, String)] = []
        for f in files {
            do {
                guard let text = try read(f) else { throw ComposeError(file: f, line: nil, "no such file") }
                sources.append((f, text))
            } catch let e as ComposeError { throw e } catch { throw ComposeError(file: f, line: nil, "cannot read: \(error)") }
        }
        return try loader.load(sources)
    }

    /// `sources`: (name for messages, text), in merge order.
    public func load(_ sources: [(name: String, text: String)]) throws(ComposeError) -> ComposeLoad {
        var env = environment
        let dotEnvPath = projectDirectory + "/.env"
        let dotEnv: String?
        do { dotEnv = try readFile(dotEnvPath) } catch { throw ComposeError(file: dotEnvPath, line: nil, "cannot read: \(error)") }
        if let dotEnv {
            do {
                for (k, v) in try EnvFileText.parse(dotEnv, dotEnv: true, lookup: { _ in nil }) where env[k] == nil { env[k] = v }
            } catch { throw ComposeError(file: dotEnvPath, line: error.line, error.message) }
        }
        var reader = FileReader(environment: env, projectDirectory: projectDirectory)
        var merged: ComposeProject?
        for (name, text) in sources {
            let root: YAMLNode?
            do { root = try YAML.parse(text) } catch { throw ComposeError(file: name, line: error.line, error.message) }
            guard let root else { throw ComposeError(file: name, line: nil, "empty Compose file") }
            let interpolated = try reader.interpolateDocument(root, file: name)
            let project = try reader.project(Field(node: interpolated, path: "", file: name))
            merged = merged.map { $0.merged(with: project) } ?? project
        }
        guard var project = merged else { throw ComposeError(file: "", line: nil, "no Compose file given") }
        try reader.finish(&project, readFile: readFile)
        var unset: [String] = []
        for v in reader.unset where !unset.contains(v) { unset.append(v) }
        return ComposeLoad(project: project, ignored: reader.ignored, unsetVariables: unset)
    }
}

/// One load's reading state: what was ignored, where things were referenced.
struct FileReader {
    let environment: [String: String]
    let projectDirectory: String
    var ignored: [IgnoredKey] = []
    var unset: [String] = []
    /// Every named volume, network, secret and config a service uses: (kind, name, where it is written).
    var references: [(kind: String, name: String, field: Field)] = []
    var serviceLocations: [String: SourceLocation] = [:]

    init(environment: [String: String], projectDirectory: String) {
        self.environment = environment
        self.projectDirectory = projectDirectory
    }

    // MARK: interpolation

    /// The document with its variables substituted, but in top-level `x-*`
    /// fields (Docker interpolates the sections it reads; an alias of an
    /// extension field is a copy, substituted where it is used).
    mutating func interpolateDocument(_ root: YAMLNode, file: String) throws(ComposeError) -> YAMLNode {
        guard case .mapping(let pairs) = root.value else { return try interpolate(root, file: file) }
        var out: [YAMLPair] = []
        for p in pairs {
            if case .scalar(let k) = p.key.value, k.text.hasPrefix("x-") { out.append(p); continue }
            out.append(YAMLPair(key: p.key, value: try interpolate(p.value, file: file)))
        }
        var n = root
        n.value = .mapping(out)
        return n
    }

    /// Every scalar value (not keys) with its variables substituted.
    mutating func interpolate(_ node: YAMLNode, file: String) throws(ComposeError) -> YAMLNode {
        var n = node
        switch node.value {
        case .scalar(var s):
            guard s.text.contains("$") else { return node }
            do {
                let env = environment
                s.text = try Interpolation.apply(s.text, lookup: { env[$0] }, unset: &unset)
            } catch {
                switch error {
                case .required(let v, let m):
                    throw ComposeError(file: file, line: node.line, "required variable \(v) is missing a value" + (m.isEmpty ? "" : ": \(m)"))
                case .invalid(let t):
                    throw ComposeError(file: file, line: node.line, "invalid interpolation format in \"\(t)\" (a literal $ is written $$)")
                }
            }
            n.value = .scalar(s)
        case .sequence(let items):
            var out: [YAMLNode] = []
            for i in items { out.append(try interpolate(i, file: file)) }
            n.value = .sequence(out)
        case .mapping(let pairs):
            var out: [YAMLPair] = []
            for p in pairs { out.append(YAMLPair(key: p.key, value: try interpolate(p.value, file: file))) }
            n.value = .mapping(out)
        }
        return n
    }

    // MARK: keys

    /// The pairs of a mapping whose keys hako reads; ignored keys recorded,
    /// `x-*` skipped, anything else an error naming the key and its line.
    mutating func keys(_ f: Field, _ set: KeySet) throws(ComposeError) -> [(key: String, field: Field)] {
        var out: [(key: String, field: Field)] = []
        for p in try f.pairs() {
            if set.supported.contains(p.key) { out.append(p); continue }
            if p.key.hasPrefix("x-") { continue }
            if set.ignored.contains(p.key) {
                ignored.append(IgnoredKey(file: f.file, line: p.field.line, path: p.field.path))
                continue
            }
            if set.unsupported.contains(p.key) { throw p.field.fail("not supported by hako (see docs/compose.md)") }
            throw p.field.fail("unknown key (not a Compose 3.x key hako reads)")
        }
        return out
    }

    // MARK: top level

    mutating func project(_ root: Field) throws(ComposeError) -> ComposeProject {
        var p = ComposeProject()
        if case .mapping(let pairs) = root.node.value {
            for pair in pairs {
                if case .scalar(let k) = pair.key.value, k.text.hasPrefix("x-") { p.extensions[k.text] = pair.value }
            }
        }
        for (key, f) in try keys(root, Keys.top) {
            switch key {
            case "version":
                let v = try f.string()
                guard v == "3" || v.hasPrefix("3.") else { throw f.fail("version \"\(v)\" is not 3.x (stack deploy reads Compose file format 3)") }
                p.version = v
            case "services":
                if f.isNull { continue }
                for (name, s) in try f.pairs() {
                    guard isValidName(name) else { throw s.fail("invalid service name (letters, digits, '-', '_', '.')") }
                    p.services[name] = try service(name, s)
                }
            case "volumes":
                if f.isNull { continue }
                for (name, v) in try f.pairs() { p.volumes[name] = try volume(v) }
            case "networks":
                if f.isNull { continue }
                for (name, v) in try f.pairs() { p.networks[name] = try network(v) }
            case "secrets":
                if f.isNull { continue }
                for (name, v) in try f.pairs() { p.secrets[name] = try object(v, Keys.secret) }
            case "configs":
                if f.isNull { continue }
                for (name, v) in try f.pairs() { p.configs[name] = try object(v, Keys.config) }
            default: break
            }
        }
        return p
    }

    func isValidName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, Stack.isAlnum(first) else { return false }
        return s.count <= 63 && s.unicodeScalars.allSatisfy { Stack.isAlnum($0) || $0 == "-" || $0 == "_" || $0 == "." }
    }

    func path(_ p: String) -> String {
        var s = p
        if s.hasPrefix("~/"), let home = environment["HOME"] { s = home + s.dropFirst() }
        if !s.hasPrefix("/") { s = projectDirectory + "/" + s }
        return FS.normalize(s)
    }

    mutating func external(_ f: Field) throws(ComposeError) -> (Bool, String?) {
        if case .mapping = f.node.value {
            var name: String?
            for (k, v) in try keys(f, Keys.externalName) where k == "name" { name = try v.string() }
            return (true, name)
        }
        return (try f.bool(), nil)
    }

    mutating func labels(_ f: Field) throws(ComposeError) -> [String: String] {
        var out: [String: String] = [:]
        for (k, v, _) in try f.stringMap() { out[k] = v ?? "" }
        return out
    }

    mutating func volume(_ f: Field) throws(ComposeError) -> ComposeVolume {
        var v = ComposeVolume()
        if f.isNull { return v }
        for (k, x) in try keys(f, Keys.volume) {
            switch k {
            case "driver": v.driver = try x.string()
            case "driver_opts": v.driverOpts = try labels(x)
            case "external": (v.external, v.name) = try external(x)
            case "labels": v.labels = try labels(x)
            case "name": v.name = try x.string()
            default: break
            }
        }
        if v.external && (v.driver != nil || !v.driverOpts.isEmpty || !v.labels.isEmpty) {
            throw f.fail("an external volume takes no driver, driver_opts or labels")
        }
        return v
    }

    /// A stack's network is a cluster network: driver overlay (the default),
    /// one subnet at most; what the cluster cannot make is refused with its line.
    mutating func network(_ f: Field) throws(ComposeError) -> ComposeNetwork {
        var n = ComposeNetwork()
        if f.isNull { return n }
        var settings = false
        for (k, x) in try keys(f, Keys.network) {
            switch k {
            case "driver":
                let d = try x.string()
                guard d == "overlay" else {
                    throw x.fail("driver \"\(d)\" is not supported: a stack's networks are cluster networks (driver overlay)")
                }
                settings = true
            case "external": (n.external, n.name) = try external(x)
            case "attachable": n.attachable = try x.bool(); settings = true
            case "internal":
                if try x.bool() {
                    throw x.fail("internal networks are not supported by hako yet: a cluster network's containers always reach outside through their node")
                }
            case "labels": n.labels = try labels(x); settings = true
            case "name": n.name = try x.string()
            case "ipam":
                for (ik, iv) in try keys(x, Keys.ipam) {
                    switch ik {
                    case "driver":
                        let d = try iv.string()
                        guard d == "default" else { throw iv.fail("IPAM driver \"\(d)\" is not supported (default)") }
                    case "config":
                        let configs = try iv.list()
                        if configs.count > 1 { throw configs[1].fail("a cluster network has one subnet (\(configs.count) given)") }
                        for c in configs {
                            for (ck, cv) in try keys(c, Keys.ipamConfig) where ck == "subnet" { n.subnet = try cv.string() }
                        }
                    default: break
                    }
                }
                settings = true
            default: break
            }
        }
        if n.external && settings { throw f.fail("an external network takes no driver, attachable, labels or ipam: it exists already") }
        return n
    }

    mutating func object(_ f: Field, _ set: KeySet) throws(ComposeError) -> ComposeObject {
        var o = ComposeObject()
        for (k, x) in try keys(f, set) {
            switch k {
            case "file": o.file = path(try x.string())
            case "external": (o.external, o.name) = try external(x)
            case "labels": o.labels = try labels(x)
            case "name": o.name = try x.string()
            default: break
            }
        }
        guard o.external != (o.file != nil) else { throw f.fail("needs exactly one of file or external") }
        return o
    }

    // MARK: services

    mutating func service(_ name: String, _ f: Field) throws(ComposeError) -> ComposeService {
        var s = ComposeService(name: name)
        serviceLocations[name] = f.location
        for (k, x) in try keys(f, Keys.service) {
            switch k {
            case "image": s.image = try x.string()
            case "command": s.command = try x.command()
            case "entrypoint": s.entrypoint = try x.command()
            case "environment":
                for (key, value, _) in try x.stringMap() {
                    if let v = value ?? environment[key] { s.environment[key] = v }
                }
            case "env_file": s.envFiles = try x.stringOrList().map { path($0) }
            case "ports": for p in try x.list() { s.ports += try ports(p) }
            case "volumes": for m in try x.list() { s.volumes.append(try mount(m)) }
            case "networks":
                if case .sequence = x.node.value {
                    for n in try x.list() {
                        let net = try n.string()
                        s.networks[net] = []
                        references.append(("network", net, n))
                    }
                } else {
                    for (net, v) in try x.pairs() {
                        var aliases: [String] = []
                        if !v.isNull { for (ak, av) in try keys(v, Keys.serviceNetwork) where ak == "aliases" { aliases = try av.stringList() } }
                        s.networks[net] = aliases
                        references.append(("network", net, v))
                    }
                }
            case "secrets": for r in try x.list() { s.secrets.append(try fileReference(r, kind: "secret")) }
            case "configs": for r in try x.list() { s.configs.append(try fileReference(r, kind: "config")) }
            case "healthcheck": s.healthcheck = try healthcheck(x)
            case "labels": s.labels = try labels(x)
            case "user": s.user = try x.string()
            case "working_dir": s.workingDir = try x.string()
            case "hostname": s.hostname = try x.string()
            case "init": s.initProcess = try x.bool()
            case "read_only": s.readOnly = try x.bool()
            case "stop_grace_period": s.stopGracePeriod = try x.duration()
            case "stop_signal": s.stopSignal = try x.string()
            case "sysctls": s.sysctls = try labels(x)
            case "devices": for d in try x.list() { s.devices.append(try device(d)) }
            case "cap_add": s.capAdd = try x.stringList()
            case "cap_drop": s.capDrop = try x.stringList()
            case "dns": s.dns = try x.stringOrList()
            case "dns_search": s.dnsSearch = try x.stringOrList()
            case "deploy": s.deploy = try deploy(x)
            default: break
            }
        }
        return s
    }

    /// Short ("[HOST_IP:][PUBLISHED[-END]:]TARGET[-END][/PROTOCOL]", ranges
    /// expanded) or long (target, published, protocol, mode).
    mutating func ports(_ f: Field) throws(ComposeError) -> [ComposePort] {
        if case .mapping = f.node.value {
            var p = ComposePort(target: 0)
            var hasTarget = false
            for (k, x) in try keys(f, Keys.port) {
                switch k {
                case "target": p.target = try x.int(in: 1...65535); hasTarget = true
                case "published": p.published = try x.int(in: 1...65535)
                case "protocol":
                    p.proto = try x.string()
                    guard ["tcp", "udp"].contains(p.proto) else { throw x.fail("protocol is tcp or udp") }
                case "mode":
                    guard let m = ComposePort.Mode(rawValue: try x.string()) else { throw x.fail("mode is ingress or host") }
                    p.mode = m
                default: break
                }
            }
            guard hasTarget else { throw f.fail("a port needs a target") }
            return [p]
        }
        let text = try f.string()
        var spec = Substring(text)
        var proto = "tcp"
        if let slash = spec.lastIndex(of: "/") {
            proto = String(spec[spec.index(after: slash)...])
            spec = spec[..<slash]
            guard ["tcp", "udp"].contains(proto) else { throw f.fail("invalid port \"\(text)\": the protocol is tcp or udp") }
        }
        var hostIP: String?
        var parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        if parts.count == 3 { hostIP = parts.removeFirst() }
        if let ip = hostIP, ip.isEmpty { hostIP = nil }
        guard (1...2).contains(parts.count) else { throw f.fail("invalid port \"\(text)\": [HOST_IP:][PUBLISHED:]TARGET[/PROTOCOL]") }
        func range(_ s: String) -> ClosedRange<Int>? {
            let ends = s.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(ends.count), let a = Int(ends[0]), let b = Int(ends.last ?? ""), 1 <= a, a <= b, b <= 65535 else { return nil }
            return a...b
        }
        guard let targets = range(parts[parts.count - 1]) else { throw f.fail("invalid port \"\(text)\": ports are 1–65535, ranges low-high") }
        var published: ClosedRange<Int>?
        if parts.count == 2 && !parts[0].isEmpty {
            guard let r = range(parts[0]) else { throw f.fail("invalid port \"\(text)\": ports are 1–65535, ranges low-high") }
            guard r.count == targets.count || r.count == 1 && targets.count == 1 else {
                throw f.fail("invalid port \"\(text)\": the published and target ranges differ in size")
            }
            published = r
        }
        return targets.enumerated().map { i, t in
            ComposePort(target: t, published: published.map { $0.lowerBound + i }, proto: proto, mode: .ingress, hostIP: hostIP)
        }
    }

    /// Short ("[SOURCE:]TARGET[:ro|rw|…]") or long (type, source, target, read_only, bind, volume, tmpfs).
    mutating func mount(_ f: Field) throws(ComposeError) -> ComposeMount {
        if case .mapping = f.node.value {
            var type: ComposeMount.Kind?
            var source: String?, target: String?
            var readOnly = false
            var propagation: String?, noCopy = false, size: Int64?
            for (k, x) in try keys(f, Keys.mount) {
                switch k {
                case "type":
                    guard let t = ComposeMount.Kind(rawValue: try x.string()) else { throw x.fail("type is volume, bind or tmpfs") }
                    type = t
                case "source": source = try x.string()
                case "target": target = try x.string()
                case "read_only": readOnly = try x.bool()
                case "bind":
                    for (bk, bv) in try keys(x, Keys.bind) where bk == "propagation" {
                        let p = try bv.string()
                        guard ["rprivate", "private", "rshared", "shared", "rslave", "slave"].contains(p) else { throw bv.fail("invalid propagation \"\(p)\"") }
                        propagation = p
                    }
                case "volume": for (vk, vv) in try keys(x, Keys.volumeOptions) where vk == "nocopy" { noCopy = try vv.bool() }
                case "tmpfs": for (tk, tv) in try keys(x, Keys.tmpfsOptions) where tk == "size" { size = try tv.bytes() }
                default: break
                }
            }
            guard let type else { throw f.fail("a mount needs a type (volume, bind or tmpfs)") }
            guard let target, target.hasPrefix("/") else { throw f.fail("a mount needs an absolute target") }
            var m = ComposeMount(type: type, source: source, target: target, readOnly: readOnly)
            switch type {
            case .bind:
                guard let s = source, !s.isEmpty else { throw f.fail("a bind mount needs a source") }
                m.source = path(s)
            case .volume:
                if let s = source { references.append(("volume", s, f)) }
            case .tmpfs:
                guard source == nil else { throw f.fail("a tmpfs mount takes no source") }
            }
            if propagation != nil && type != .bind { throw f.fail("bind options on a \(type.rawValue) mount") }
            if noCopy && type != .volume { throw f.fail("volume options on a \(type.rawValue) mount") }
            if size != nil && type != .tmpfs { throw f.fail("tmpfs options on a \(type.rawValue) mount") }
            m.propagation = propagation
            m.noCopy = noCopy
            m.tmpfsSize = size
            return m
        }
        let text = try f.string()
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard (1...3).contains(parts.count), !parts.contains(where: \.isEmpty) else {
            throw f.fail("invalid volume \"\(text)\": [SOURCE:]TARGET[:MODE]")
        }
        if parts.count == 1 {
            guard parts[0].hasPrefix("/") else { throw f.fail("invalid volume \"\(text)\": the target must be absolute") }
            return ComposeMount(type: .volume, source: nil, target: parts[0])
        }
        let source = parts[0], target = parts[1]
        guard target.hasPrefix("/") else { throw f.fail("invalid volume \"\(text)\": the target must be absolute") }
        var readOnly = false
        var propagation: String?
        var noCopy = false
        if parts.count == 3 {
            for o in parts[2].split(separator: ",").map(String.init) {
                switch o {
                case "ro": readOnly = true
                case "rw": readOnly = false
                case "nocopy": noCopy = true
                case "rprivate", "private", "rshared", "shared", "rslave", "slave": propagation = o
                case "z", "Z", "cached", "delegated", "consistent": break
                default: throw f.fail("invalid volume \"\(text)\": unknown mode \"\(o)\"")
                }
            }
        }
        let isPath = source.hasPrefix("/") || source.hasPrefix(".") || source.hasPrefix("~")
        var m = ComposeMount(type: isPath ? .bind : .volume, source: isPath ? path(source) : source, target: target, readOnly: readOnly)
        if isPath { m.propagation = propagation } else {
            m.noCopy = noCopy
            references.append(("volume", source, f))
        }
        return m
    }

    mutating func fileReference(_ f: Field, kind: String) throws(ComposeError) -> ComposeFileReference {
        if case .scalar = f.node.value {
            let r = ComposeFileReference(source: try f.string())
            references.append((kind, r.source, f))
            return r
        }
        var r = ComposeFileReference(source: "")
        for (k, x) in try keys(f, Keys.fileReference) {
            switch k {
            case "source": r.source = try x.string()
            case "target": r.target = try x.string()
            case "uid": r.uid = try x.string()
            case "gid": r.gid = try x.string()
            case "mode":
                // Octal as written (0440) or the decimal YAML makes of it (288).
                let t = try x.string()
                let v = t.hasPrefix("0o") ? UInt32(t.dropFirst(2), radix: 8) : t.hasPrefix("0") && t.count > 1 ? UInt32(t.dropFirst(), radix: 8) : UInt32(t)
                guard let v, v <= 0o7777 else { throw x.fail("invalid mode \"\(t)\" (e.g. 0440)") }
                r.mode = v
            default: break
            }
        }
        guard !r.source.isEmpty else { throw f.fail("a \(kind) needs a source") }
        if kind == "secret", let t = r.target, t.contains("/") && !t.hasPrefix("/run/secrets/") {
            throw f.fail("a secret's target is a file name under /run/secrets")
        }
        references.append((kind, r.source, f))
        return r
    }

    func device(_ f: Field) throws(ComposeError) -> ComposeDevice {
        let text = try f.string()
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard (1...3).contains(parts.count), parts[0].hasPrefix("/") else { throw f.fail("invalid device \"\(text)\": HOST[:CONTAINER[:PERMISSIONS]]") }
        var d = ComposeDevice(host: parts[0], container: parts[0], permissions: "rwm")
        if parts.count >= 2 {
            if parts.count == 2 && !parts[1].hasPrefix("/") { d.permissions = parts[1] } else { d.container = parts[1] }
        }
        if parts.count == 3 { d.permissions = parts[2] }
        guard d.container.hasPrefix("/"), !d.permissions.isEmpty, d.permissions.allSatisfy({ "rwm".contains($0) }) else {
            throw f.fail("invalid device \"\(text)\": HOST[:CONTAINER[:PERMISSIONS]], permissions of r, w, m")
        }
        return d
    }

    mutating func healthcheck(_ f: Field) throws(ComposeError) -> ComposeHealthcheck {
        var h = ComposeHealthcheck()
        for (k, x) in try keys(f, Keys.healthcheck) {
            switch k {
            case "test":
                if case .scalar = x.node.value { h.test = ["CMD-SHELL", try x.string()] } else {
                    let t = try x.stringList()
                    guard let first = t.first, ["CMD", "CMD-SHELL", "NONE"].contains(first) else { throw x.fail("a test list starts with CMD, CMD-SHELL or NONE") }
                    h.test = t
                }
            case "interval": h.interval = try x.duration()
            case "timeout": h.timeout = try x.duration()
            case "start_period": h.startPeriod = try x.duration()
            case "start_interval": h.startInterval = try x.duration()
            case "retries": h.retries = try x.int()
            case "disable": h.disable = try x.bool()
            default: break
            }
        }
        if h.disable && h.test != nil && h.test != ["NONE"] { throw f.fail("disable: true and a test") }
        return h
    }

    mutating func deploy(_ f: Field) throws(ComposeError) -> ComposeDeploy {
        var d = ComposeDeploy()
        if f.isNull { return d }
        for (k, x) in try keys(f, Keys.deploy) {
            switch k {
            case "mode":
                let m = try x.string()
                guard let mode = ComposeDeploy.Mode(rawValue: m) else { throw x.fail("mode is replicated, global, replicated-job or global-job") }
                d.mode = mode
            case "replicas": d.replicas = try x.int()
            case "labels": d.labels = try labels(x)
            case "placement":
                for (pk, px) in try keys(x, Keys.placement) {
                    switch pk {
                    case "constraints": d.constraints = try px.stringList()
                    case "preferences":
                        for p in try px.list() {
                            for (sk, sx) in try keys(p, Keys.preference) where sk == "spread" { d.preferences.append(try sx.string()) }
                        }
                    case "max_replicas_per_node": d.maxReplicasPerNode = try px.int()
                    default: break
                    }
                }
            case "resources":
                for (rk, rx) in try keys(x, Keys.resources) {
                    let r = try resources(rx, rk == "limits" ? Keys.limits : Keys.reservations)
                    if rk == "limits" { d.limits = r } else { d.reservations = r }
                }
            case "restart_policy":
                for (rk, rx) in try keys(x, Keys.restartPolicy) {
                    switch rk {
                    case "condition":
                        guard let c = ComposeRestartPolicy.Condition(rawValue: try rx.string()) else { throw rx.fail("condition is none, on-failure or any") }
                        d.restartPolicy.condition = c
                    case "delay": d.restartPolicy.delay = try rx.duration()
                    case "max_attempts": d.restartPolicy.maxAttempts = try rx.int()
                    case "window": d.restartPolicy.window = try rx.duration()
                    default: break
                    }
                }
            case "update_config": d.updateConfig = try updateConfig(x)
            case "rollback_config": d.rollbackConfig = try updateConfig(x)
            default: break
            }
        }
        if let m = d.mode, m == .global || m == .globalJob, d.replicas != nil {
            throw f.fail("replicas cannot be given with mode \(m.rawValue)")
        }
        return d
    }

    mutating func resources(_ f: Field, _ set: KeySet) throws(ComposeError) -> ComposeResources {
        var r = ComposeResources()
        for (k, x) in try keys(f, set) {
            switch k {
            case "cpus": r.cpus = try x.double()
            case "memory": r.memory = try x.bytes()
            case "pids": r.pids = try x.int()
            default: break
            }
        }
        return r
    }

    mutating func updateConfig(_ f: Field) throws(ComposeError) -> ComposeUpdateConfig {
        var u = ComposeUpdateConfig()
        for (k, x) in try keys(f, Keys.updateConfig) {
            switch k {
            case "parallelism": u.parallelism = try x.int()
            case "delay": u.delay = try x.duration()
            case "failure_action":
                guard let a = ComposeUpdateConfig.FailureAction(rawValue: try x.string()) else { throw x.fail("failure_action is continue, rollback or pause") }
                u.failureAction = a
            case "monitor": u.monitor = try x.duration()
            case "max_failure_ratio":
                let v = try x.double()
                guard v <= 1 else { throw x.fail("max_failure_ratio is between 0 and 1") }
                u.maxFailureRatio = v
            case "order":
                guard let o = ComposeUpdateConfig.Order(rawValue: try x.string()) else { throw x.fail("order is stop-first or start-first") }
                u.order = o
            default: break
            }
        }
        return u
    }

    // MARK: after the merge

    /// Reads `env_file`s (what `environment` sets wins), checks that every
    /// named volume, network, secret and config a service uses is declared,
    /// and that every service has an image.
    mutating func finish(_ p: inout ComposeProject, readFile: (String) throws -> String?) throws(ComposeError) {
        for r in references {
            let declared: Bool
            switch r.kind {
            case "volume": declared = p.volumes[r.name] != nil
            case "network": declared = p.networks[r.name] != nil || r.name == "default"
            case "secret": declared = p.secrets[r.name] != nil
            default: declared = p.configs[r.name] != nil
            }
            guard declared else { throw r.field.fail("undefined \(r.kind) \"\(r.name)\" (declare it under the top-level \(r.kind)s)") }
        }
        for name in p.serviceNames {
            guard var s = p.services[name] else { continue }
            let at = serviceLocations[name] ?? SourceLocation(file: "", line: 0)
            guard let image = s.image, !image.isEmpty else {
                throw ComposeError(file: at.file, line: at.line, "services.\(name): no image (stack deploy does not build images)")
            }
            var fromFiles: [String: String] = [:]
            for path in s.envFiles {
                let text: String?
                do { text = try readFile(path) } catch { throw ComposeError(file: path, line: nil, "cannot read env_file: \(error)") }
                guard let text else { throw ComposeError(file: at.file, line: at.line, "services.\(name).env_file: \(path) does not exist") }
                do {
                    let env = environment
                    for (k, v) in try EnvFileText.parse(text, dotEnv: false, lookup: { env[$0] }) { fromFiles[k] = v }
                } catch { throw ComposeError(file: path, line: error.line, error.message) }
            }
            s.environment = fromFiles.merging(s.environment) { _, own in own }
            p.services[name] = s
        }
    }
}
