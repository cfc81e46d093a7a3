import HakoCLI
import HakoEngine
import HakoNetwork
import HakoRuntime
import HakoSystem

/// The one place where Docker's container-create body (Config, HostConfig,
/// NetworkingConfig) becomes the engine's `ContainerSpec`: typed fields are
/// carried over as values, the fields that are text in Docker's syntax (Binds,
/// Tmpfs, port bindings, ExtraHosts, SecurityOpt, LogConfig…) go through the
/// CLI's parsers (HakoCLI) once, each unsupported field that would change what
/// runs is refused with a 400 naming it, and fields without effect here
/// (Runtime, ConsoleSize…) are ignored.
enum CreateMapping {
    static func spec(_ body: JSON, name: String?) throws -> ContainerSpec {
        guard let image = body["Image"]?.string, !image.isEmpty else {
            throw APIError(400, "Config cannot be empty in order to create a container")
        }
        var o = ContainerSpec(image: image)
        o.name = name
        o.process.command = try strings(body["Cmd"], "Cmd").flatMap { $0.isEmpty ? nil : $0 }
        o.process.entrypoint = try strings(body["Entrypoint"], "Entrypoint")
        // "KEY" alone would take the service's own environment: only KEY=VALUE is passed.
        o.process.env = (try strings(body["Env"], "Env") ?? []).filter { $0.contains("=") }
        o.process.workingDir = nonEmpty(body["WorkingDir"]?.string)
        o.process.user = nonEmpty(body["User"]?.string)
        o.hostname = nonEmpty(body["Hostname"]?.string)
        for (k, v) in body["Labels"]?.members ?? [] { o.labels[k] = v.string ?? "" }
        o.process.tty = body["Tty"]?.bool ?? false
        o.process.openStdin = body["OpenStdin"]?.bool ?? false
        if let sig = nonEmpty(body["StopSignal"]?.string) {
            guard let n = Signals.parse(sig) else { throw HakoError(.invalidArgument("--stop-signal"), "invalid stop signal \"\(sig)\"") }
            o.stopSignal = n
        }
        if let t = body["StopTimeout"], !t.isNull {
            guard let n = t.int64 else { throw APIError(400, "invalid StopTimeout") }
            o.stopTimeout = Int(n)
        }
        if let hc = body["Healthcheck"], let test = try strings(hc["Test"], "Healthcheck.Test"), let kind = test.first, kind != "NONE" {
            throw APIError(400, "Healthcheck is not supported by hako")
        }
        o.expose = try (body["ExposedPorts"]?.members ?? []).map { try RunFlags.exposedPort($0.0) }
        let hc = body["HostConfig"] ?? .object([])
        try hostConfig(hc, into: &o)
        // Config.Volumes: anonymous volumes at the paths no bind, mount or tmpfs covers (compose sends both).
        let covered = Set(o.mounts.map(\.target))
        let binds = (try strings(hc["Binds"], "HostConfig.Binds") ?? []).count
        var anonymous: [MountRequest] = []
        for (path, _) in body["Volumes"]?.members ?? [] where !covered.contains(FS.normalize(path)) {
            anonymous.append(try MountParser.parseVolume(path))
        }
        o.mounts.insert(contentsOf: anonymous, at: binds)
        if let mac = nonEmpty(body["MacAddress"]?.string) { o.networking.mac = try RunFlags.macAddress(mac) }
        try networking(body["NetworkingConfig"], into: &o)
        return o
    }

    static func hostConfig(_ hc: JSON, into o: inout ContainerSpec) throws {
        for field in ["VolumesFrom", "Links", "DeviceRequests"] {
            if let a = hc[field]?.array, !a.isEmpty { throw APIError(400, "HostConfig.\(field) is not supported by hako") }
        }
        o.process.initProcess = hc["Init"]?.bool ?? false
        o.process.groupAdd = try strings(hc["GroupAdd"], "HostConfig.GroupAdd") ?? []
        if let shm = hc["ShmSize"]?.int64, shm > 0 { o.shmSize = UInt64(shm) }
        if let cp = nonEmpty(hc["CgroupParent"]?.string) { throw APIError(400, "HostConfig.CgroupParent (\(cp)) is not supported by hako") }
        // Binds first (Config.Volumes' anonymous volumes go after them), then Mounts, then Tmpfs: the CLI's order.
        o.mounts = try (strings(hc["Binds"], "HostConfig.Binds") ?? []).map(MountParser.parseVolume)
        for m in hc["Mounts"]?.array ?? [] { o.mounts.append(try mount(m)) }
        for (path, opts) in hc["Tmpfs"]?.members ?? [] { o.mounts.append(try MountParser.parseTmpfs(target: path, options: opts.string ?? "")) }
        var ports: [PortBinding] = []
        for (port, bindings) in hc["PortBindings"]?.members ?? [] {
            let list = bindings.array ?? []
            // Docker's [HOST_IP:][HOST_PORT:]PORT/PROTO pieces, read by the -p parser.
            if list.isEmpty { ports += try PortBinding.parse(port) }
            for b in list {
                let ip = b["HostIp"]?.string ?? ""
                let hostPort = b["HostPort"]?.string ?? ""
                switch (ip.isEmpty, hostPort.isEmpty) {
                case (true, true): ports += try PortBinding.parse(port)
                case (true, false): ports += try PortBinding.parse("\(hostPort):\(port)")
                case (false, _): ports += try PortBinding.parse("\(ip):\(hostPort):\(port)")
                }
            }
        }
        o.networking.ports = ports
        o.networking.publishAll = hc["PublishAllPorts"]?.bool ?? false
        if let rp = hc["RestartPolicy"], let policy = try restartPolicy(rp) { o.restart = policy }
        o.autoRemove = hc["AutoRemove"]?.bool ?? false
        switch hc["NetworkMode"]?.string ?? "" {
        case "", "default", "bridge": o.network = .bridge
        case "host": o.network = .host
        case "none": o.network = .none
        case let m where m.hasPrefix("container:"): throw APIError(400, "HostConfig.NetworkMode \(m) is not supported by hako")
        case let name:
            o.network = .bridge
            o.networking.network = name
        }
        o.networking.dns = try (strings(hc["Dns"], "HostConfig.Dns") ?? []).map(RunFlags.dnsServer)
        o.networking.dnsSearch = try strings(hc["DnsSearch"], "HostConfig.DnsSearch") ?? []
        o.networking.dnsOptions = try strings(hc["DnsOptions"], "HostConfig.DnsOptions") ?? []
        o.networking.extraHosts = try (strings(hc["ExtraHosts"], "HostConfig.ExtraHosts") ?? []).map(RunFlags.extraHost)
        o.namespaces.pid = try namespace(hc["PidMode"], "PidMode")
        o.namespaces.uts = try namespace(hc["UTSMode"], "UTSMode")
        o.namespaces.ipc = try namespace(hc["IpcMode"], "IpcMode")
        if let c = nonEmpty(hc["CgroupnsMode"]?.string) { o.namespaces.cgroupns = try namespace(.string(c), "CgroupnsMode") }
        if let lc = hc["LogConfig"] {
            switch lc["Type"]?.string ?? "" {
            case "", "json-file", "local", "hako-file": break
            case let t: throw APIError(400, "HostConfig.LogConfig.Type \(t) is not supported by hako (its log is a file, as json-file)")
            }
            o.log = try RunFlags.logOptions((lc["Config"]?.members ?? []).map { ($0.0, $0.1.string ?? "") })
        }
        o.resources = try limits(hc)
        o.isolation = try hardening(hc)
    }

    /// HostConfig.RestartPolicy ({"Name": "on-failure", "MaximumRetryCount": 3}); nil when it names none.
    static func restartPolicy(_ rp: JSON) throws -> RestartPolicy? {
        guard let n = nonEmpty(rp["Name"]?.string) else { return nil }
        if n == "on-failure" { return .onFailure(maxRetries: UInt32(clamping: max(rp["MaximumRetryCount"]?.int64 ?? 0, 0))) }
        do { return try RestartPolicy(parsing: n) } catch { throw APIError(400, "invalid RestartPolicy: \(error)") }
    }

    /// Resource limits, also what `POST /containers/{id}/update` takes: numbers as they come.
    static func limits(_ hc: JSON) throws -> ResourceLimits {
        var l = ResourceLimits()
        func positive(_ key: String) -> Int64? { hc[key]?.int64.flatMap { $0 > 0 ? $0 : nil } }
        l.memory = positive("Memory")
        l.memoryReservation = positive("MemoryReservation")
        if let s = hc["MemorySwap"]?.int64, s != 0 {
            guard s >= -1 else { throw HakoError(.invalidArgument("--memory-swap"), "invalid --memory-swap \"\(s)\": expected a size such as 512m or 1g (below 8 EiB)") }
            l.memorySwap = s
        }
        if let n = positive("NanoCpus") {
            l.nanoCPUs = n
        } else if let q = positive("CpuQuota") {
            let (scaled, overflow) = q.multipliedReportingOverflow(by: 1_000_000_000)
            l.nanoCPUs = overflow ? Int64.max : scaled / (positive("CpuPeriod") ?? 100_000)
        }
        l.cpuShares = positive("CpuShares").map { UInt64($0) }
        l.cpusetCpus = try nonEmpty(hc["CpusetCpus"]?.string).map { try IsolationParser.cpuset($0, flag: "--cpuset-cpus") }
        l.cpusetMems = try nonEmpty(hc["CpusetMems"]?.string).map { try IsolationParser.cpuset($0, flag: "--cpuset-mems") }
        if let p = hc["PidsLimit"]?.int64, p != 0 { l.pidsLimit = p < 0 ? -1 : p }
        l.blkioWeight = positive("BlkioWeight").map { UInt16(clamping: $0) }
        func rates(_ key: String, _ flag: String) throws -> [DeviceRate] {
            try (hc[key]?.array ?? []).map { r in
                guard let path = r["Path"]?.string, let rate = r["Rate"]?.uint64 else { throw APIError(400, "invalid HostConfig.\(key)") }
                return try IsolationParser.deviceRate(path: path, rate: rate, flag: flag, text: "\(path):\(rate)")
            }
        }
        l.deviceReadBps = try rates("BlkioDeviceReadBps", "--device-read-bps")
        l.deviceWriteBps = try rates("BlkioDeviceWriteBps", "--device-write-bps")
        l.deviceReadIOps = try rates("BlkioDeviceReadIOps", "--device-read-iops")
        l.deviceWriteIOps = try rates("BlkioDeviceWriteIOps", "--device-write-iops")
        return l
    }

    /// Devices, capabilities, security options, sysctls, ulimits, the user namespace.
    static func hardening(_ hc: JSON) throws -> ContainerSpec.Isolation {
        var i = ContainerSpec.Isolation()
        i.devices = try (hc["Devices"]?.array ?? []).map { d in
            guard let host = d["PathOnHost"]?.string, !host.isEmpty else { throw APIError(400, "invalid HostConfig.Devices: PathOnHost is required") }
            let inside = nonEmpty(d["PathInContainer"]?.string) ?? host
            let perms = nonEmpty(d["CgroupPermissions"]?.string) ?? "rwm"
            return try IsolationParser.device(host: host, container: inside, permissions: perms, text: "\(host):\(inside):\(perms)")
        }
        i.deviceCgroupRules = try (strings(hc["DeviceCgroupRules"], "HostConfig.DeviceCgroupRules") ?? []).map { try DeviceRule(parsing: $0) }
        i.capAdd = try strings(hc["CapAdd"], "HostConfig.CapAdd") ?? []
        i.capDrop = try strings(hc["CapDrop"], "HostConfig.CapDrop") ?? []
        let securityOpt = try strings(hc["SecurityOpt"], "HostConfig.SecurityOpt") ?? []
        // The docker CLI sends seccomp=<file> as the profile's contents; the engine reads a profile from a path.
        if securityOpt.contains(where: { $0.hasPrefix("seccomp=") && $0.dropFirst(8).hasPrefix("{") }) {
            throw APIError(400, "HostConfig.SecurityOpt: a seccomp profile's contents are not supported by hako; give seccomp=unconfined or a path")
        }
        try IsolationParser.apply(securityOpt: securityOpt, to: &i)
        i.privileged = hc["Privileged"]?.bool ?? false
        i.readOnlyRoot = hc["ReadonlyRootfs"]?.bool ?? false
        i.sysctls = (hc["Sysctls"]?.members ?? []).map { IsolationConfig.Sysctl(key: $0.0.replacing("/", with: "."), value: $0.1.string ?? "") }
        i.ulimits = try (hc["Ulimits"]?.array ?? []).map { u in
            guard let n = u["Name"]?.string, let soft = u["Soft"]?.int64, let hard = u["Hard"]?.int64 else { throw APIError(400, "invalid HostConfig.Ulimits") }
            return IsolationConfig.Ulimit(name: n, soft: soft, hard: hard)
        }
        if let a = hc["OomScoreAdj"]?.int64, a != 0 { i.oomScoreAdj = Int(clamping: a) }
        if let u = nonEmpty(hc["UsernsMode"]?.string), u != "host" { i.userns = try UsernsRequest(parsing: u) }
        return i
    }

    static func networking(_ nc: JSON?, into o: inout ContainerSpec) throws {
        let endpoints = nc?["EndpointsConfig"]?.members ?? []
        if endpoints.count > 1 {
            throw APIError(400, "Container cannot be connected to network endpoints: \(endpoints.map(\.0).joined(separator: ", ")) (connect the others after create)")
        }
        guard let first = endpoints.first else { return }
        let (name, ep) = first
        if o.network == .bridge && o.networking.network == nil && !["bridge", "default"].contains(name) { o.networking.network = name }
        o.networking.aliases += try strings(ep["Aliases"], "EndpointsConfig.Aliases") ?? []
        if let ip = nonEmpty(ep["IPAMConfig"]?["IPv4Address"]?.string) { o.networking.ip = try RunFlags.address(ip) }
        if let mac = nonEmpty(ep["MacAddress"]?.string) { o.networking.mac = try RunFlags.macAddress(mac) }
    }

    /// HostConfig.Mounts[] → a mount request (the engine checks what each kind allows).
    static func mount(_ m: JSON) throws -> MountRequest {
        guard let type = m["Type"]?.string, let target = nonEmpty(m["Target"]?.string) else {
            throw APIError(400, "invalid HostConfig.Mounts: Type and Target are required")
        }
        guard let kind = MountRequest.Kind(rawValue: type) else { throw APIError(400, "HostConfig.Mounts: type \(type) is not supported by hako") }
        let source = nonEmpty(m["Source"]?.string)
        var r: MountRequest
        switch kind {
        case .bind:
            guard let source else { throw APIError(400, "invalid HostConfig.Mounts: a bind mount needs a Source") }
            r = MountRequest(kind: .bind, source: FS.absolute(source), target: target)
        case .volume:
            if let source {
                r = MountRequest(kind: .volume, source: source, target: target)
            } else {
                r = MountRequest(kind: .volume, source: hexString(randomBytes(32)), target: target)
                r.anonymous = true
            }
        case .tmpfs:
            if source != nil { throw APIError(400, "invalid HostConfig.Mounts: a tmpfs mount has no Source") }
            r = MountRequest(kind: .tmpfs, source: "", target: target)
        }
        r.readOnly = m["ReadOnly"]?.bool == true
        if let p = nonEmpty(m["BindOptions"]?["Propagation"]?.string) {
            guard let propagation = BindPropagation(rawValue: p) else {
                throw APIError(400, "invalid HostConfig.Mounts: BindOptions.Propagation must be one of \(BindPropagation.allNames)")
            }
            r.propagation = propagation
        }
        r.noCopy = m["VolumeOptions"]?["NoCopy"]?.bool == true
        if let size = m["TmpfsOptions"]?["SizeBytes"]?.int64, size > 0 { r.tmpfsSize = UInt64(size) }
        if let mode = m["TmpfsOptions"]?["Mode"]?.int64, mode > 0 { r.tmpfsMode = UInt32(clamping: mode) }
        return r
    }

    static func namespace(_ v: JSON?, _ field: String) throws -> NamespaceMode {
        switch v?.string ?? "" {
        case "", "private", "shareable": return .private
        case "host": return .host
        case let x: throw APIError(400, "HostConfig.\(field) \(x) is not supported by hako (host or private)")
        }
    }

    /// A JSON array of strings, a single string (Docker accepts both for Cmd and Entrypoint), or null.
    static func strings(_ v: JSON?, _ field: String) throws -> [String]? {
        guard let v, !v.isNull else { return nil }
        if let s = v.string { return [s] }
        guard let a = v.array else { throw APIError(400, "invalid \(field): expected an array of strings") }
        return try a.map { e in
            guard let s = e.string else { throw APIError(400, "invalid \(field): expected an array of strings") }
            return s
        }
    }

    static func nonEmpty(_ s: String?) -> String? { s.flatMap { $0.isEmpty ? nil : $0 } }
}
