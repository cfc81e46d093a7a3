import HakoEngine
import HakoSystem

/// The one place where Docker's container-create body (Config, HostConfig,
/// NetworkingConfig) becomes the engine's `RunOptions`: each field hako
/// supports is carried over in the syntax the engine parses (the CLI's), each
/// unsupported field that would change what runs is refused with a 400 naming
/// it, and fields without effect here (ShmSize, Runtime, ConsoleSize…) are ignored.
enum CreateMapping {
    static func runOptions(_ body: JSON, name: String?) throws -> RunOptions {
        guard let image = body["Image"]?.string, !image.isEmpty else {
            throw APIError(400, "Config cannot be empty in order to create a container")
        }
        var o = RunOptions(image: image)
        o.name = name
        o.pull.policy = .never  // the client pulls (images/create) on a 404 and tries again
        o.command = try strings(body["Cmd"], "Cmd").flatMap { $0.isEmpty ? nil : $0 }
        if let e = try strings(body["Entrypoint"], "Entrypoint") {
            // The engine takes one entrypoint program; the rest of Docker's array goes before the command.
            if let first = e.first {
                o.entrypoint = first
                if e.count > 1 { o.command = Array(e.dropFirst()) + (o.command ?? []) }
            } else {
                o.entrypoint = ""
            }
        }
        // "KEY" alone would take the service's own environment: only KEY=VALUE is passed.
        o.env = (try strings(body["Env"], "Env") ?? []).filter { $0.contains("=") }
        o.workingDir = nonEmpty(body["WorkingDir"]?.string)
        o.user = nonEmpty(body["User"]?.string)
        o.hostname = nonEmpty(body["Hostname"]?.string)
        o.labels = (body["Labels"]?.members ?? []).map { "\($0.0)=\($0.1.string ?? "")" }
        o.tty = body["Tty"]?.bool ?? false
        o.interactive = body["OpenStdin"]?.bool ?? false
        o.stopSignal = nonEmpty(body["StopSignal"]?.string)
        if let t = body["StopTimeout"], !t.isNull {
            guard let n = t.int64 else { throw APIError(400, "invalid StopTimeout") }
            o.stopTimeout = Int(n)
        }
        if let hc = body["Healthcheck"], let test = try strings(hc["Test"], "Healthcheck.Test"), let kind = test.first, kind != "NONE" {
            throw APIError(400, "Healthcheck is not supported by hako")
        }
        if let mac = nonEmpty(body["MacAddress"]?.string) { o.networking.mac = mac }
        o.expose = (body["ExposedPorts"]?.members ?? []).map(\.0)
        let hc = body["HostConfig"] ?? .object([])
        try hostConfig(hc, into: &o)
        // Config.Volumes: anonymous volumes at the paths no bind, mount or tmpfs covers (compose sends both).
        let covered = Set(o.storage.volumes.compactMap { v -> String? in
            let parts = v.split(separator: ":").map(String.init)
            return parts.count >= 2 ? parts[1] : nil
        } + (hc["Mounts"]?.array ?? []).compactMap { $0["Target"]?.string } + (hc["Tmpfs"]?.members ?? []).map(\.0))
        for (path, _) in body["Volumes"]?.members ?? [] where !covered.contains(path) { o.storage.volumes.append(path) }
        try networking(body["NetworkingConfig"], into: &o)
        return o
    }

    static func hostConfig(_ hc: JSON, into o: inout RunOptions) throws {
        for field in ["VolumesFrom", "Links", "DeviceRequests"] {
            if let a = hc[field]?.array, !a.isEmpty { throw APIError(400, "HostConfig.\(field) is not supported by hako") }
        }
        o.initProcess = hc["Init"]?.bool ?? false
        o.groupAdd = try strings(hc["GroupAdd"], "HostConfig.GroupAdd") ?? []
        if let shm = hc["ShmSize"]?.int64, shm > 0 { o.shmSize = UInt64(shm) }
        if let cp = nonEmpty(hc["CgroupParent"]?.string) { throw APIError(400, "HostConfig.CgroupParent (\(cp)) is not supported by hako") }
        o.storage.volumes += try strings(hc["Binds"], "HostConfig.Binds") ?? []
        for m in hc["Mounts"]?.array ?? [] { o.storage.mounts.append(try mount(m)) }
        for (path, opts) in hc["Tmpfs"]?.members ?? [] {
            let v = opts.string ?? ""
            o.storage.tmpfs.append(v.isEmpty ? path : "\(path):\(v)")
        }
        for (port, bindings) in hc["PortBindings"]?.members ?? [] {
            let list = bindings.array ?? []
            if list.isEmpty { o.networking.publish.append(port) }
            for b in list {
                let ip = b["HostIp"]?.string ?? ""
                let hostPort = b["HostPort"]?.string ?? ""
                switch (ip.isEmpty, hostPort.isEmpty) {
                case (true, true): o.networking.publish.append(port)
                case (true, false): o.networking.publish.append("\(hostPort):\(port)")
                case (false, _): o.networking.publish.append("\(ip):\(hostPort):\(port)")
                }
            }
        }
        o.networking.publishAll = hc["PublishAllPorts"]?.bool ?? false
        if let rp = hc["RestartPolicy"], let policy = restartPolicy(rp) { o.restart = policy }
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
        o.networking.dns = try strings(hc["Dns"], "HostConfig.Dns") ?? []
        o.networking.dnsSearch = try strings(hc["DnsSearch"], "HostConfig.DnsSearch") ?? []
        o.networking.dnsOptions = try strings(hc["DnsOptions"], "HostConfig.DnsOptions") ?? []
        o.networking.addHosts = try strings(hc["ExtraHosts"], "HostConfig.ExtraHosts") ?? []
        o.pid = try namespace(hc["PidMode"], "PidMode")
        o.uts = try namespace(hc["UTSMode"], "UTSMode")
        o.ipc = try namespace(hc["IpcMode"], "IpcMode")
        if let c = nonEmpty(hc["CgroupnsMode"]?.string) { o.cgroupns = try namespace(.string(c), "CgroupnsMode") }
        if let lc = hc["LogConfig"] {
            switch lc["Type"]?.string ?? "" {
            case "", "json-file", "local", "hako-file": break
            case let t: throw APIError(400, "HostConfig.LogConfig.Type \(t) is not supported by hako (its log is a file, as json-file)")
            }
            o.logOptions = (lc["Config"]?.members ?? []).map { "\($0.0)=\($0.1.string ?? "")" }
        }
        o.isolation = try isolation(hc)
    }

    /// Resources and security, also what `POST /containers/{id}/update` takes.
    /// HostConfig.RestartPolicy ({"Name": "on-failure", "MaximumRetryCount": 3}) in
    /// the engine's words ("on-failure:3"); nil when it names none.
    static func restartPolicy(_ rp: JSON) -> String? {
        guard let n = nonEmpty(rp["Name"]?.string) else { return nil }
        let max = rp["MaximumRetryCount"]?.int64 ?? 0
        return n == "on-failure" && max > 0 ? "on-failure:\(max)" : n
    }

    static func isolation(_ hc: JSON) throws -> IsolationOptions {
        var i = IsolationOptions()
        func positive(_ key: String) -> Int64? { hc[key]?.int64.flatMap { $0 > 0 ? $0 : nil } }
        i.memory = positive("Memory").map(String.init)
        i.memoryReservation = positive("MemoryReservation").map(String.init)
        if let s = hc["MemorySwap"]?.int64, s != 0 { i.memorySwap = String(s) }
        if let n = positive("NanoCpus") {
            i.cpus = decimal(n, scale: 1_000_000_000)
        } else if let q = positive("CpuQuota") {
            i.cpus = decimal(q, scale: positive("CpuPeriod") ?? 100_000)
        }
        i.cpuShares = positive("CpuShares").map { Int($0) }
        i.cpusetCpus = nonEmpty(hc["CpusetCpus"]?.string)
        i.cpusetMems = nonEmpty(hc["CpusetMems"]?.string)
        if let p = hc["PidsLimit"]?.int64, p != 0 { i.pidsLimit = Int(p) }
        i.blkioWeight = positive("BlkioWeight").map { Int($0) }
        func rates(_ key: String) throws -> [String] {
            try (hc[key]?.array ?? []).map { r in
                guard let path = r["Path"]?.string, let rate = r["Rate"]?.uint64 else { throw APIError(400, "invalid HostConfig.\(key)") }
                return "\(path):\(rate)"
            }
        }
        i.deviceReadBps = try rates("BlkioDeviceReadBps")
        i.deviceWriteBps = try rates("BlkioDeviceWriteBps")
        i.deviceReadIOps = try rates("BlkioDeviceReadIOps")
        i.deviceWriteIOps = try rates("BlkioDeviceWriteIOps")
        i.devices = try (hc["Devices"]?.array ?? []).map { d in
            guard let host = d["PathOnHost"]?.string, !host.isEmpty else { throw APIError(400, "invalid HostConfig.Devices: PathOnHost is required") }
            let inside = nonEmpty(d["PathInContainer"]?.string) ?? host
            let perms = nonEmpty(d["CgroupPermissions"]?.string) ?? "rwm"
            return "\(host):\(inside):\(perms)"
        }
        i.deviceCgroupRules = try strings(hc["DeviceCgroupRules"], "HostConfig.DeviceCgroupRules") ?? []
        i.capAdd = try strings(hc["CapAdd"], "HostConfig.CapAdd") ?? []
        i.capDrop = try strings(hc["CapDrop"], "HostConfig.CapDrop") ?? []
        i.securityOpt = try strings(hc["SecurityOpt"], "HostConfig.SecurityOpt") ?? []
        // The docker CLI sends seccomp=<file> as the profile's contents; the engine reads a profile from a path.
        if i.securityOpt.contains(where: { $0.hasPrefix("seccomp=") && $0.dropFirst(8).hasPrefix("{") }) {
            throw APIError(400, "HostConfig.SecurityOpt: a seccomp profile's contents are not supported by hako; give seccomp=unconfined or a path")
        }
        i.privileged = hc["Privileged"]?.bool ?? false
        i.readOnly = hc["ReadonlyRootfs"]?.bool ?? false
        i.sysctls = (hc["Sysctls"]?.members ?? []).map { "\($0.0)=\($0.1.string ?? "")" }
        i.ulimits = try (hc["Ulimits"]?.array ?? []).map { u in
            guard let n = u["Name"]?.string, let soft = u["Soft"]?.int64, let hard = u["Hard"]?.int64 else { throw APIError(400, "invalid HostConfig.Ulimits") }
            return "\(n)=\(soft):\(hard)"
        }
        if let a = hc["OomScoreAdj"]?.int64, a != 0 { i.oomScoreAdj = Int(a) }
        if let u = nonEmpty(hc["UsernsMode"]?.string), u != "host" { i.userns = u }
        return i
    }

    static func networking(_ nc: JSON?, into o: inout RunOptions) throws {
        let endpoints = nc?["EndpointsConfig"]?.members ?? []
        if endpoints.count > 1 {
            throw APIError(400, "Container cannot be connected to network endpoints: \(endpoints.map(\.0).joined(separator: ", ")) (connect the others after create)")
        }
        guard let first = endpoints.first else { return }
        let (name, ep) = first
        if o.network == .bridge && o.networking.network == nil && !["bridge", "default"].contains(name) { o.networking.network = name }
        o.networking.aliases += try strings(ep["Aliases"], "EndpointsConfig.Aliases") ?? []
        if let ip = nonEmpty(ep["IPAMConfig"]?["IPv4Address"]?.string) { o.networking.ip = ip }
        if let mac = nonEmpty(ep["MacAddress"]?.string) { o.networking.mac = mac }
    }

    /// HostConfig.Mounts[] → the engine's --mount syntax.
    static func mount(_ m: JSON) throws -> String {
        guard let type = m["Type"]?.string, let target = nonEmpty(m["Target"]?.string) else {
            throw APIError(400, "invalid HostConfig.Mounts: Type and Target are required")
        }
        guard ["bind", "volume", "tmpfs"].contains(type) else { throw APIError(400, "HostConfig.Mounts: type \(type) is not supported by hako") }
        var parts = ["type=\(type)"]
        if let s = nonEmpty(m["Source"]?.string) { parts.append("source=\(s)") }
        parts.append("target=\(target)")
        if m["ReadOnly"]?.bool == true { parts.append("readonly") }
        if let p = nonEmpty(m["BindOptions"]?["Propagation"]?.string) { parts.append("bind-propagation=\(p)") }
        if m["VolumeOptions"]?["NoCopy"]?.bool == true { parts.append("volume-nocopy") }
        if let size = m["TmpfsOptions"]?["SizeBytes"]?.int64, size > 0 { parts.append("tmpfs-size=\(size)") }
        if let mode = m["TmpfsOptions"]?["Mode"]?.int64, mode > 0 { parts.append("tmpfs-mode=\(String(mode, radix: 8))") }
        return parts.joined(separator: ",")
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

    /// n / scale as a decimal string ("0.5"), without floating point.
    static func decimal(_ n: Int64, scale: Int64) -> String {
        let whole = n / scale
        var frac = n % scale
        guard frac > 0 else { return String(whole) }
        var digits = ""
        var i = 0
        while frac > 0 && i < 9 {
            frac *= 10
            digits += String(frac / scale)
            frac %= scale
            i += 1
        }
        return "\(whole).\(digits)"
    }
}
