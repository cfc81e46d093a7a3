#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import HakoEngine
import HakoSystem

/// The Docker Engine API over the local engine: routes requests to handlers
/// that call `Engine` directly and answer in Docker's JSON shapes.
public final class DockerAPI: @unchecked Sendable {
    /// The API version served (Debian 12's docker.io 20.10 speaks it); newer
    /// clients negotiate down to it from `_ping`'s API-Version header.
    public static let version = "1.41"
    public static let minimumVersion = "1.24"
    public static let engineVersion = "0.1.0"

    public let engine: Engine
    let sessions = Sessions()
    let execs = ExecRegistry()

    public init(engine: Engine) {
        self.engine = engine
    }

    /// Serves one request.
    public func handle(_ r: HTTPRequest, _ c: HTTPConnection) throws {
        var path = r.path
        // /v1.41/containers/json → /containers/json, after checking the version.
        if path.hasPrefix("/v"), let slash = path.dropFirst().firstIndex(of: "/") {
            let v = String(path[path.index(path.startIndex, offsetBy: 2)..<slash])
            if let asked = APIVersion(v) {
                guard asked <= APIVersion.served else {
                    throw APIError(400, "client version \(v) is too new. Maximum supported API version is \(DockerAPI.version)")
                }
                guard asked >= APIVersion.minimum else {
                    throw APIError(400, "client version \(v) is too old. Minimum supported API version is \(DockerAPI.minimumVersion), please upgrade your client to a newer version")
                }
                path = String(path[slash...])
            }
        }
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let m = r.method
        guard let first = parts.first else { throw notFound(r) }
        switch first {
        case "_ping":
            guard parts.count == 1, m == "GET" || m == "HEAD" else { throw notFound(r) }
            let h = [("Cache-Control", "no-cache, no-store, must-revalidate"), ("Pragma", "no-cache"), ("Builder-Version", "1")]
            if m == "HEAD" {
                c.respond(200, body: [], contentType: "text/plain; charset=utf-8", headers: h)
            } else {
                c.respond(200, body: Array("OK".utf8), contentType: "text/plain; charset=utf-8", headers: h)
            }
        case "version" where parts.count == 1:
            try only(m, "GET", r)
            c.respond(200, json: versionJSON())
        case "info" where parts.count == 1:
            try only(m, "GET", r)
            c.respond(200, json: try infoJSON())
        case "events" where parts.count == 1:
            try only(m, "GET", r)
            try events(r, c)
        case "system" where parts == ["system", "df"]:
            try only(m, "GET", r)
            try systemDF(c)
        case "commit" where parts.count == 1:
            try only(m, "POST", r)
            try commit(r, c)
        case "containers":
            try containers(Array(parts.dropFirst()), r, c)
        case "exec":
            try exec(Array(parts.dropFirst()), r, c)
        case "images":
            try images(Array(parts.dropFirst()), r, c)
        case "networks":
            try networks(Array(parts.dropFirst()), r, c)
        case "volumes":
            try volumes(Array(parts.dropFirst()), r, c)
        default:
            throw notFound(r)
        }
    }

    func notFound(_ r: HTTPRequest) -> APIError {
        APIError(404, "page not found")
    }

    /// Wrong method on a known endpoint: Docker's router answers 404 as well, with its message.
    func only(_ m: String, _ allowed: String, _ r: HTTPRequest) throws {
        if m != allowed { throw APIError(405, "method \(m) not allowed on \(r.path)") }
    }

    // MARK: errors

    /// An engine error → Docker's status and message, by its kind (dockerd's
    /// errdefs): 404 not found, 409 conflict, 400 invalid input (and a command
    /// that cannot run: dockerd's start answers 400 there), 403 not allowed,
    /// 400 for what this host does not support (dockerd refuses such settings
    /// as invalid parameters), 500 for the kernel's and hako's own failures.
    /// Not found reads as dockerd's "No such container: NAME".
    static func apiError(_ error: any Error) -> APIError {
        if let e = error as? APIError { return e }
        let kind = HakoError.kind(of: error)
        switch kind {
        case .notFound(.container, let name): return APIError(404, "No such container: \(name)")
        case .notFound(.image, let name): return APIError(404, "No such image: \(name)")
        default: return APIError(status(of: kind), "\(error)")
        }
    }

    /// The one mapping of `HakoError.Kind` to an HTTP status.
    static func status(of kind: HakoError.Kind) -> Int {
        switch kind {
        case .notFound: return 404
        case .conflict: return 409
        case .invalidArgument, .unsupported, .cannotExecute, .commandNotFound: return 400
        case .permissionDenied: return 403
        case .kernel, .failed: return 500
        }
    }

    // MARK: bodies

    static func body(_ r: HTTPRequest) throws -> JSON {
        if r.body.isEmpty || r.body.allSatisfy({ $0 == 32 || $0 == 10 || $0 == 13 || $0 == 9 }) { return .object([]) }
        do {
            return try JSON.parse(r.body, maxDepth: 64)
        } catch {
            throw APIError(400, "invalid JSON: \(error)")
        }
    }

    static func encode<T: Encodable>(_ v: T) throws -> JSON {
        try JSON.parse(Array(try JSONEncoder().encode(v)))
    }

    /// Docker's `filters` query parameter: {"label":["a=b"],"status":["running"]} (or the older {"label":{"a=b":true}}).
    static func filters(_ r: HTTPRequest) throws -> [String: [String]] {
        guard let text = r.query("filters"), !text.isEmpty else { return [:] }
        let j: JSON
        do { j = try JSON.parse(text) } catch { throw APIError(400, "invalid filter: \(error)") }
        guard let members = j.members else { throw APIError(400, "invalid filter: not an object") }
        var out: [String: [String]] = [:]
        for (k, v) in members {
            if let a = v.array { out[k] = a.compactMap(\.string) } else if let o = v.members { out[k] = o.filter { $0.1.bool == true }.map(\.0) }
        }
        return out
    }

    // MARK: system

    func versionJSON() -> JSON {
        var u = utsname()
        uname(&u)
        let kernel = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let arch = DockerAPI.goArch
        let details: JSON = .object([("ApiVersion", .string(DockerAPI.version)), ("MinAPIVersion", .string(DockerAPI.minimumVersion)),
                                     ("Arch", .string(arch)), ("Os", .string("linux")), ("KernelVersion", .string(kernel)),
                                     ("GitCommit", .string("")), ("GoVersion", .string("")), ("BuildTime", .string("")), ("Experimental", .string("false"))])
        return .object([
            ("Platform", .object([("Name", .string("hako"))])),
            ("Components", .array([.object([("Name", .string("Engine")), ("Version", .string(DockerAPI.engineVersion)), ("Details", details)])])),
            ("Version", .string(DockerAPI.engineVersion)), ("ApiVersion", .string(DockerAPI.version)),
            ("MinAPIVersion", .string(DockerAPI.minimumVersion)), ("GitCommit", .string("")), ("GoVersion", .string("")),
            ("Os", .string("linux")), ("Arch", .string(arch)), ("KernelVersion", .string(kernel)), ("BuildTime", .string("")),
        ])
    }

    /// Go's name for this machine's architecture, as Docker reports it.
    static var goArch: String {
        var u = utsname()
        uname(&u)
        let m = withUnsafeBytes(of: &u.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        switch m {
        case "x86_64": return "amd64"
        case "aarch64": return "arm64"
        case let a where a.hasPrefix("armv"): return "arm"
        default: return m
        }
    }

    /// `GET /info`: the engine's `info()` (the one source of `hako info`) in
    /// Docker's shape, with the keys clients read that hako has no value for.
    func infoJSON() throws -> JSON {
        let i: EngineInfo
        do { i = try engine.info() } catch { throw DockerAPI.apiError(error) }
        return .object([
            ("ID", .string(hostID())), ("Containers", .int(Int64(i.Containers))), ("ContainersRunning", .int(Int64(i.ContainersRunning))),
            ("ContainersPaused", .int(Int64(i.ContainersPaused))), ("ContainersStopped", .int(Int64(i.ContainersStopped))),
            ("Images", .int(Int64(i.Images))), ("Driver", .string(i.Driver)),
            ("DriverStatus", .array([.array([.string("Backing Filesystem"), .string(i.BackingFilesystem)])])),
            ("Plugins", .object([("Volume", .array([.string("local")])), ("Network", .array(["bridge", "host", "null"].map(JSON.string))),
                                 ("Authorization", .null), ("Log", .array([.string(i.LoggingDriver)]))])),
            ("MemoryLimit", .bool(true)), ("SwapLimit", .bool(true)), ("CpuCfsPeriod", .bool(true)), ("CpuCfsQuota", .bool(true)),
            ("CPUShares", .bool(true)), ("CPUSet", .bool(true)), ("PidsLimit", .bool(true)), ("IPv4Forwarding", .bool(true)),
            ("Debug", .bool(false)), ("NFd", .int(0)), ("NGoroutines", .int(0)), ("SystemTime", .string(i.SystemTime)),
            ("LoggingDriver", .string(i.LoggingDriver)), ("CgroupDriver", .string(i.CgroupDriver)), ("CgroupVersion", .string(i.CgroupVersion)),
            ("NEventsListener", .int(0)), ("KernelVersion", .string(i.KernelVersion)), ("OperatingSystem", .string(i.OperatingSystem)),
            ("OSVersion", .string("")), ("OSType", .string(i.OSType)), ("Architecture", .string(i.Architecture)),
            ("IndexServerAddress", .string("https://index.docker.io/v1/")), ("NCPU", .int(Int64(i.NCPU))),
            ("MemTotal", .int(Int64(clamping: i.MemTotal))), ("DockerRootDir", .string(i.DockerRootDir)), ("Name", .string(i.Name)),
            ("Labels", .array([])), ("ExperimentalBuild", .bool(false)), ("ServerVersion", .string(i.ServerVersion)),
            ("Runtimes", .object(i.Runtimes.map { ($0, .object([("path", .string($0 == "hako" ? "hako-runtime" : $0))])) })),
            ("DefaultRuntime", .string(i.DefaultRuntime)),
            ("Swarm", .object([("NodeID", .string("")), ("NodeAddr", .string("")), ("LocalNodeState", .string("inactive")),
                               ("ControlAvailable", .bool(false)), ("Error", .string("")), ("RemoteManagers", .null)])),
            ("LiveRestoreEnabled", .bool(true)), ("Isolation", .string("")), ("InitBinary", .string("hako-init")),
            ("SecurityOptions", .array(i.SecurityOptions.map(JSON.string))),
            ("CgroupMode", .string(i.CgroupMode)), ("CgroupParent", .string(i.CgroupParent)), ("RunRoot", .string(i.RunRoot)),
            ("Volumes", .int(Int64(i.Volumes))), ("Networks", .int(Int64(i.Networks))),
            ("Warnings", .array([])),
        ])
    }

    /// The data root's stable identity (Docker shows an engine ID): an FNV-1a hash of its path.
    func hostID() -> String {
        var h = FNV1a64()
        h.combine(engine.paths.root.utf8)
        let hex = String(h.value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// "1.41" → comparable.
struct APIVersion: Comparable {
    var major: Int
    var minor: Int
    static let served = APIVersion(major: 1, minor: 41)
    static let minimum = APIVersion(major: 1, minor: 24)

    init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    init?(_ s: String) {
        let p = s.split(separator: ".")
        guard p.count == 2, let a = Int(p[0]), let b = Int(p[1]) else { return nil }
        major = a
        minor = b
    }
    static func < (a: APIVersion, b: APIVersion) -> Bool { (a.major, a.minor) < (b.major, b.minor) }
}

extension String {
    func replacingFirst(_ what: String, with: String) -> String {
        let hay = Array(utf8), needle = Array(what.utf8)
        guard !needle.isEmpty, let at = HTTPConnection.find(needle, in: hay, from: 0) else { return self }
        return String(decoding: hay[..<at], as: UTF8.self) + with + String(decoding: hay[(at + needle.count)...], as: UTF8.self)
    }

    func trimming(_ set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
