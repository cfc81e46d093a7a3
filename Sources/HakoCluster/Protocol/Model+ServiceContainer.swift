import HakoEngine
import HakoNetwork
import HakoSystem

/// The container options of a service's tasks beyond image, command and
/// environment (Swarm's ContainerSpec fields): typed, checked when the spec
/// is accepted, turned into the engine's options on the node (TaskRuntime).
/// Every field has a default, so specs stored before it decode unchanged.
public struct ServiceContainerOptions: Codable, Sendable, Equatable {
    /// `--hostname`, a template (`{{.Service.Name}}-{{.Task.Slot}}`,
    /// `{{.Node.Hostname}}`: `TaskTemplate`); nil: the container's short id.
    public var hostname: String?
    public var mounts: [ServiceMount] = []
    /// Host devices the tasks get; a task goes only to a node that reports every one.
    public var devices: [ServiceDevice] = []
    public var dns: [String] = []
    public var dnsSearch: [String] = []
    public var dnsOptions: [String] = []
    public var sysctls: [String: String] = [:]
    public var capAdd: [String] = []
    public var capDrop: [String] = []
    public var readOnly = false
    /// `--init`: hako-init as PID 1.
    public var initProcess = false
    /// The tasks' pids limit; 0: none.
    public var pidsLimit = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case hostname, mounts, devices, dns, dnsSearch, dnsOptions, sysctls, capAdd, capDrop, readOnly, initProcess, pidsLimit
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hostname = try c.decodeIfPresent(String.self, forKey: .hostname)
        mounts = try c.decodeIfPresent([ServiceMount].self, forKey: .mounts) ?? []
        devices = try c.decodeIfPresent([ServiceDevice].self, forKey: .devices) ?? []
        dns = try c.decodeIfPresent([String].self, forKey: .dns) ?? []
        dnsSearch = try c.decodeIfPresent([String].self, forKey: .dnsSearch) ?? []
        dnsOptions = try c.decodeIfPresent([String].self, forKey: .dnsOptions) ?? []
        sysctls = try c.decodeIfPresent([String: String].self, forKey: .sysctls) ?? [:]
        capAdd = try c.decodeIfPresent([String].self, forKey: .capAdd) ?? []
        capDrop = try c.decodeIfPresent([String].self, forKey: .capDrop) ?? []
        readOnly = try c.decodeIfPresent(Bool.self, forKey: .readOnly) ?? false
        initProcess = try c.decodeIfPresent(Bool.self, forKey: .initProcess) ?? false
        pidsLimit = try c.decodeIfPresent(Int.self, forKey: .pidsLimit) ?? 0
    }

    /// The checks that need no node: each value's syntax, templates' fields.
    public func validate() throws(ClusterError) {
        if let h = hostname {
            // The text around the fields must be a host name's (the engine's rule: labels of
            // letters, digits, '-' and '_', at most 64 bytes once the fields are filled in on the node).
            let probe = try TaskTemplate.sample.render(h, what: "--hostname")
            guard !probe.isEmpty, probe.utf8.count <= 64,
                  probe.allSatisfy({ ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "_" || $0 == "." }) else {
                throw .invalid("invalid --hostname \"\(h)\": letters, digits, '-', '_' and '.' around the template's fields")
            }
        }
        var targets = Set<String>()
        for m in mounts {
            try m.validate()
            guard targets.insert(FS.normalize(m.target)).inserted else { throw .invalid("duplicate mount target \(m.target)") }
        }
        for d in devices { try d.validate() }
        for d in dns where IPv4Address(d) == nil { throw .invalid("invalid --dns \"\(d)\": not an IPv4 address") }
        for s in dnsSearch where s.isEmpty || s.contains(where: { $0 == " " || $0 == "," }) { throw .invalid("invalid --dns-search \"\(s)\"") }
        for o in dnsOptions where o.isEmpty || o.contains(" ") { throw .invalid("invalid --dns-option \"\(o)\"") }
        for (k, v) in sysctls where k.isEmpty || k.contains("=") || k.contains("/") || v.contains("\n") {
            throw .invalid("invalid --sysctl \"\(k)=\(v)\"")
        }
        for c in capAdd + capDrop where c.isEmpty || c.contains(where: { $0 == " " || $0 == "," }) { throw .invalid("invalid capability \"\(c)\"") }
        guard pidsLimit >= 0 else { throw .invalid("the pids limit cannot be negative") }
    }
}

/// `--mount type=volume|bind|tmpfs,source=…,target=…,readonly`: a named
/// volume is created on the node on first use and kept there (across the
/// task's restarts and replacements on that node); a bind mounts a path of
/// the node; a tmpfs lives as long as the container.
public struct ServiceMount: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case volume, bind, tmpfs }
    public var type: Kind
    /// A volume's name (nil: anonymous, removed with its container), a bind's absolute host path.
    public var source: String?
    public var target: String
    public var readOnly = false
    /// A new volume is not filled from the image.
    public var noCopy = false
    /// tmpfs size in bytes; 0: the kernel's default.
    public var tmpfsSize: Int64 = 0
    /// A bind's propagation (rprivate when nil).
    public var propagation: String?

    public init(type: Kind, source: String?, target: String, readOnly: Bool = false) {
        self.type = type
        self.source = source
        self.target = target
        self.readOnly = readOnly
    }

    enum CodingKeys: String, CodingKey { case type, source, target, readOnly, noCopy, tmpfsSize, propagation }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decode(Kind.self, forKey: .type)
        source = try c.decodeIfPresent(String.self, forKey: .source)
        target = try c.decode(String.self, forKey: .target)
        readOnly = try c.decodeIfPresent(Bool.self, forKey: .readOnly) ?? false
        noCopy = try c.decodeIfPresent(Bool.self, forKey: .noCopy) ?? false
        tmpfsSize = try c.decodeIfPresent(Int64.self, forKey: .tmpfsSize) ?? 0
        propagation = try c.decodeIfPresent(String.self, forKey: .propagation)
    }

    static let propagations: Set<String> = ["private", "rprivate", "shared", "rshared", "slave", "rslave"]

    /// The `--mount` flag's text (Docker's keys: src/source, dst/destination/target,
    /// readonly/ro, volume-nocopy, volume-driver=local, tmpfs-size, bind-propagation).
    public init(parsing text: String) throws(ClusterError) {
        func bad(_ why: String) -> ClusterError { .invalid("invalid --mount \"\(text)\": \(why)") }
        var type = Kind.volume, source: String?, target: String?
        var ro = false, noCopy = false, size: Int64 = 0, propagation: String?
        for field in text.split(separator: ",") {
            let kv = field.split(separator: "=", maxSplits: 1).map(String.init)
            let key = kv[0], value = kv.count > 1 ? kv[1] : nil
            switch key {
            case "type":
                guard let v = value, let k = Kind(rawValue: v) else { throw bad("type must be volume, bind or tmpfs") }
                type = k
            case "source", "src": source = value
            case "target", "destination", "dst": target = value
            case "readonly", "ro":
                switch value {
                case nil, "true", "1": ro = true
                case "false", "0": ro = false
                default: throw bad("readonly takes true or false")
                }
            case "volume-nocopy":
                switch value {
                case nil, "true", "1": noCopy = true
                case "false", "0": noCopy = false
                default: throw bad("volume-nocopy takes true or false")
                }
            case "volume-driver":
                guard value == "local" else { throw bad("the only volume driver is local") }
            case "tmpfs-size":
                guard let v = value, let n = ByteSize.parse(v).flatMap({ Int64(exactly: $0) }), n > 0 else { throw bad("tmpfs-size must be a size such as 64m") }
                size = n
            case "bind-propagation": propagation = value ?? ""
            case "consistency": break
            default: throw bad("unknown field \"\(key)\"")
            }
        }
        guard let target else { throw bad("a target is required") }
        var m = ServiceMount(type: type, source: source.flatMap { $0.isEmpty ? nil : $0 }, target: target, readOnly: ro)
        m.noCopy = noCopy
        m.tmpfsSize = size
        m.propagation = propagation
        do { try m.validate() } catch { throw bad(error.description) }
        self = m
    }

    public func validate() throws(ClusterError) {
        // The engine's --mount syntax separates fields with commas.
        for v in [source ?? "", target] where v.contains(",") || v.contains("\0") || v.contains("\n") {
            throw .invalid("\"\(v)\" cannot hold a comma")
        }
        guard target.hasPrefix("/"), FS.normalize(target) != "/" else { throw .invalid("the target must be an absolute path other than /") }
        switch type {
        case .volume:
            if let s = source, !Volumes.isValidName(s) { throw .invalid("\"\(s)\" is not a valid volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)") }
        case .bind:
            guard let s = source, s.hasPrefix("/") else { throw .invalid("a bind mount needs an absolute source path on the node") }
        case .tmpfs:
            guard source == nil else { throw .invalid("a tmpfs mount has no source") }
        }
        if type != .tmpfs && tmpfsSize != 0 { throw .invalid("tmpfs-size on a \(type.rawValue) mount") }
        if tmpfsSize < 0 { throw .invalid("tmpfs-size cannot be negative") }
        if let p = propagation {
            guard type == .bind else { throw .invalid("bind-propagation on a \(type.rawValue) mount") }
            guard ServiceMount.propagations.contains(p) else { throw .invalid("bind-propagation must be one of \(ServiceMount.propagations.sorted().joined(separator: ", "))") }
        }
        if noCopy && type != .volume { throw .invalid("volume-nocopy on a \(type.rawValue) mount") }
    }
}

/// `--device HOST[:CONTAINER[:PERMISSIONS]]`: a host device in the tasks'
/// containers (permissions of r, w, m; default rwm).
public struct ServiceDevice: Codable, Sendable, Equatable {
    public var host: String
    public var container: String
    public var permissions: String

    public init(host: String, container: String? = nil, permissions: String = "rwm") {
        self.host = host
        self.container = container ?? host
        self.permissions = permissions
    }

    public init(parsing text: String) throws(ClusterError) {
        let p = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard (1...3).contains(p.count) else { throw .invalid("invalid --device \"\(text)\": HOST[:CONTAINER[:PERMISSIONS]]") }
        // Docker's two-field form may be HOST:PERMISSIONS.
        if p.count == 2, !p[1].hasPrefix("/") {
            self.init(host: p[0], permissions: p[1])
        } else {
            self.init(host: p[0], container: p.count > 1 ? p[1] : nil, permissions: p.count > 2 ? p[2] : "rwm")
        }
        do { try validate() } catch { throw .invalid("invalid --device \"\(text)\": \(error.description)") }
    }

    public func validate() throws(ClusterError) {
        for v in [host, container] where !v.hasPrefix("/") || v.contains(":") || v.contains("\0") || v.contains("\n") || FS.normalize(v) == "/"
            || v.split(separator: "/").contains("..") {
            throw .invalid("\"\(v)\" is not an absolute device path")
        }
        for v in [host, container] where v.utf8.count > DeviceRequest.maxPathBytes {
            throw .invalid("a device path is at most \(DeviceRequest.maxPathBytes) bytes")
        }
        guard FS.normalize(container) != "/dev" else { throw .invalid("the path in the container cannot be /dev") }
        guard !permissions.isEmpty, permissions.allSatisfy({ "rwm".contains($0) }), Set(permissions).count == permissions.count else {
            throw .invalid("permissions are some of r, w, m")
        }
    }
}

/// Swarm's templates in `--hostname` and `--env` values: `{{.Service.ID}}`,
/// `{{.Service.Name}}`, `{{.Service.Labels.KEY}}`, `{{.Node.ID}}`,
/// `{{.Node.Hostname}}`, `{{.Node.Platform.OS}}`, `{{.Node.Platform.Architecture}}`,
/// `{{.Task.ID}}`, `{{.Task.Name}}`, `{{.Task.Slot}}`. Anything else between
/// `{{` and `}}` is refused when the spec is accepted.
public struct TaskTemplate: Sendable, Equatable {
    public var serviceID: String
    public var serviceName: String
    public var serviceLabels: [String: String]
    public var nodeID: String
    public var nodeHostname: String
    public var os: String
    public var architecture: String
    public var taskID: String
    public var taskName: String
    public var taskSlot: String

    public init(serviceID: String, serviceName: String, serviceLabels: [String: String], nodeID: String, nodeHostname: String,
                os: String, architecture: String, taskID: String, taskName: String, taskSlot: String) {
        self.serviceID = serviceID
        self.serviceName = serviceName
        self.serviceLabels = serviceLabels
        self.nodeID = nodeID
        self.nodeHostname = nodeHostname
        self.os = os
        self.architecture = architecture
        self.taskID = taskID
        self.taskName = taskName
        self.taskSlot = taskSlot
    }

    /// Values for checking a template's fields before any task exists.
    static let sample = TaskTemplate(serviceID: "s", serviceName: "s", serviceLabels: [:], nodeID: "n", nodeHostname: "n", os: "linux",
                                     architecture: "amd64", taskID: "t", taskName: "t", taskSlot: "1")

    func value(_ field: String) -> String? {
        switch field {
        case ".Service.ID": return serviceID
        case ".Service.Name": return serviceName
        case ".Node.ID": return nodeID
        case ".Node.Hostname": return nodeHostname
        case ".Node.Platform.OS": return os
        case ".Node.Platform.Architecture": return architecture
        case ".Task.ID": return taskID
        case ".Task.Name": return taskName
        case ".Task.Slot": return taskSlot
        default:
            guard field.hasPrefix(".Service.Labels.") else { return nil }
            // A label the service lacks is empty, as Go's template prints a missing map key of a string map.
            return serviceLabels[String(field.dropFirst(".Service.Labels.".count))] ?? ""
        }
    }

    /// The text with every `{{ .Field }}` replaced; text without `{{` is returned as is.
    public func render(_ text: String, what: String) throws(ClusterError) -> String {
        guard text.contains("{{") else { return text }
        var out = ""
        var rest = Substring(text)
        while let open = rest.firstRange(of: "{{") {
            out += rest[..<open.lowerBound]
            let after = rest[open.upperBound...]
            guard let close = after.firstRange(of: "}}") else { throw .invalid("invalid \(what) template \"\(text)\": unclosed {{") }
            let field = String(after[..<close.lowerBound]).trimmed
            guard let v = value(field) else {
                throw .invalid("invalid \(what) template \"\(text)\": unknown field \"\(field)\" (.Service.ID, .Service.Name, .Service.Labels.KEY, .Node.ID, .Node.Hostname, .Node.Platform.OS, .Node.Platform.Architecture, .Task.ID, .Task.Name, .Task.Slot)")
            }
            out += v
            rest = after[close.upperBound...]
        }
        return out + rest
    }
}

extension ServiceSpec {
    /// The label that makes a service part of a stack (Docker's).
    public static let stackNamespaceLabel = "com.docker.stack.namespace"

    /// The stack the service belongs to; nil: a service of its own.
    public var stackNamespace: String? { serviceLabels[ServiceSpec.stackNamespaceLabel].flatMap { $0.isEmpty ? nil : $0 } }

    /// Its name within its stack ("web" of "home_web"); nil outside a stack.
    public var stackShortName: String? {
        guard let ns = stackNamespace, name.hasPrefix(ns + "_"), name.count > ns.count + 1 else { return nil }
        return String(name.dropFirst(ns.count + 1))
    }
}
