#if canImport(Glibc)
import Glibc
#endif
import HakoEngine
import HakoRuntime
import HakoSystem

extension DockerAPI {
    // MARK: list

    func list(_ r: HTTPRequest, _ c: HTTPConnection) throws {
        let filters = try DockerAPI.filters(r)
        for key in filters.keys where !["id", "name", "label", "status", "ancestor", "network", "volume", "exited"].contains(key) {
            throw APIError(400, "invalid filter '\(key)'")
        }
        let all = r.flag("all") || filters["status"] != nil || filters["exited"] != nil
        var out: [JSON] = []
        for cont in try engine.list() {
            if !all && !(cont.isRunning || cont.status == .restarting) { continue }
            guard matches(cont, filters) else { continue }
            guard let i = try? engine.inspect(cont.id) else { continue }
            out.append(summary(cont, i))
        }
        if let limit = r.query("limit").flatMap({ Int($0) }), limit > 0 { out = Array(out.prefix(limit)) }
        c.respond(200, json: .array(out))
    }

    func matches(_ cont: Container, _ f: [String: [String]]) -> Bool {
        for (key, values) in f where !values.isEmpty {
            // Docker: several labels must all match; several values of another key are alternatives.
            let match: (String) -> Bool = { v in
                switch key {
                case "id": return cont.id.hasPrefix(v)
                case "name": return cont.name.contains(v.hasPrefix("/") ? String(v.dropFirst()) : v)
                case "status": return self.dockerState(cont) == v
                case "exited": return !cont.isRunning && cont.status != .created && String(cont.exitCode) == v
                case "ancestor": return cont.config.image == v || cont.config.imageID.hasPrefix(v.replacingFirst("sha256:", with: ""))
                case "network": return (cont.config.networking?.networks.map(\.name) ?? []).contains(v) || cont.config.networkMode.rawValue == v
                case "volume": return (cont.config.storage?.mounts ?? []).contains { $0.source == v || $0.target == v }
                default:
                    if let eq = v.firstIndex(of: "=") { return cont.config.labels[String(v[..<eq])] == String(v[v.index(after: eq)...]) }
                    return cont.config.labels[v] != nil
                }
            }
            let ok = key == "label" ? values.allSatisfy(match) : values.contains(where: match)
            if !ok { return false }
        }
        return true
    }

    func dockerState(_ cont: Container) -> String {
        cont.status == .dead ? "dead" : cont.status.rawValue
    }

    func summary(_ cont: Container, _ i: ContainerInspect) -> JSON {
        var ports: [JSON] = []
        for (key, bindings) in (i.NetworkSettings?.Ports ?? [:]).sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "/")
            let priv = Int64(parts.first.flatMap { Int64($0) } ?? 0)
            let proto = parts.count > 1 ? String(parts[1]) : "tcp"
            if bindings.isEmpty {
                ports.append(.object([("PrivatePort", .int(priv)), ("Type", .string(proto))]))
            }
            for b in bindings {
                ports.append(.object([("IP", .string(b.HostIp.isEmpty ? "0.0.0.0" : b.HostIp)), ("PrivatePort", .int(priv)),
                                      ("PublicPort", .int(Int64(b.HostPort) ?? 0)), ("Type", .string(proto))]))
            }
        }
        let networks = networkSettings(i, cont)["Networks"] ?? .object([])
        let mounts = (try? DockerAPI.encode(i.Mounts)) ?? .array([])
        return .object([
            ("Id", .string(cont.id)), ("Names", .array([.string("/" + cont.name)])), ("Image", .string(cont.config.image)),
            ("ImageID", .string("sha256:" + cont.config.imageID)),
            ("Command", .string(cont.config.args.map { $0.contains(" ") ? "\"\($0)\"" : $0 }.joined(separator: " "))),
            ("Created", .int(cont.config.created.seconds)), ("Ports", .array(ports)),
            ("Labels", .object(cont.config.labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
            ("State", .string(dockerState(cont))), ("Status", .string(humanStatus(cont))),
            ("HostConfig", .object([("NetworkMode", .string(i.HostConfig.NetworkMode))])),
            ("NetworkSettings", .object([("Networks", networks)])), ("Mounts", mounts),
        ])
    }

    /// "Up 3 minutes", "Exited (0) 2 seconds ago", "Created": what `docker ps` shows.
    func humanStatus(_ cont: Container) -> String {
        let now = Timestamp.now().secondsSince1970
        func since(_ s: String?) -> Double? { s.flatMap { Timestamp(rfc3339: $0) }.map { now - $0.secondsSince1970 } }
        switch cont.status {
        case .created: return "Created"
        case .running, .paused:
            let up = since(cont.state?.startedAt).map(DockerAPI.humanDuration) ?? "Less than a second"
            return "Up \(up)" + (cont.status == .paused ? " (Paused)" : "")
        case .restarting:
            let ago = since(cont.state?.finishedAt).map(DockerAPI.humanDuration) ?? "Less than a second"
            return "Restarting (\(cont.exitCode)) \(ago) ago"
        case .exited:
            let ago = since(cont.state?.finishedAt).map(DockerAPI.humanDuration) ?? "Less than a second"
            return "Exited (\(cont.exitCode)) \(ago) ago"
        case .dead: return "Dead"
        }
    }

    /// Docker's units.HumanDuration.
    static func humanDuration(_ seconds: Double) -> String {
        let s = Int(seconds)
        if s < 1 { return "Less than a second" }
        if s == 1 { return "1 second" }
        if s < 60 { return "\(s) seconds" }
        let m = s / 60
        if m == 1 { return "About a minute" }
        if m < 60 { return "\(m) minutes" }
        let h = m / 60
        if h == 1 { return "About an hour" }
        if h < 48 { return "\(h) hours" }
        if h < 24 * 7 * 2 { return "\(h / 24) days" }
        if h < 24 * 30 * 2 { return "\(h / 24 / 7) weeks" }
        if h < 24 * 365 * 2 { return "\(h / 24 / 30) months" }
        return "\(h / 24 / 365) years"
    }

    // MARK: inspect

    /// The engine's inspect (Docker's names) with the fields Docker clients read that it leaves out.
    func inspectJSON(_ ref: String) throws -> JSON {
        let i: ContainerInspect
        do { i = try engine.inspect(ref) } catch { throw DockerAPI.apiError(error) }
        let cont = try lookup(i.Id)
        var j = try DockerAPI.encode(i)
        let exposed: JSON = .object((cont.config.networking?.exposed ?? []).map { ($0.contains("/") ? $0 : $0 + "/tcp", JSON.object([])) })
        j = j.merging(["Config": .object([("AttachStdin", .bool(false)), ("AttachStdout", .bool(!cont.config.tty)), ("AttachStderr", .bool(!cont.config.tty)),
                                          ("StdinOnce", .bool(false)), ("Domainname", .string("")), ("ExposedPorts", exposed),
                                          ("Volumes", .null), ("OnBuild", .null)]),
                       "HostConfig": .object([("PortBindings", portBindings(i)), ("Binds", binds(cont)), ("Links", .null),
                                              ("VolumesFrom", .null), ("Dns", .array([])), ("ShmSize", .int(64 << 20)),
                                              ("Runtime", .string("hako")), ("Init", .null)])])
        j = j.replacing("NetworkSettings", with: networkSettings(i, cont))
        j = j.adding([("Platform", .string("linux")), ("MountLabel", .string("")), ("ProcessLabel", .string("")),
                      ("AppArmorProfile", .string("")), ("ExecIDs", execs.ids(for: cont.id).map { JSON.array($0.map(JSON.string)) } ?? JSON.null),
                      ("ResolvConfPath", .string(cont.paths.resolvConf)), ("HostnamePath", .string(cont.paths.hostname)),
                      ("HostsPath", .string(cont.paths.hosts))])
        return j
    }

    /// The engine's network settings, with the networks a container not
    /// running is configured for (compose connects what it does not see) and
    /// the short ID among each user network's aliases, as Docker adds it.
    func networkSettings(_ i: ContainerInspect, _ cont: Container) -> JSON {
        var networks: [(String, JSON)] = []
        let short = cont.config.shortID
        for (name, e) in (i.NetworkSettings?.Networks ?? [:]).sorted(by: { $0.key < $1.key }) {
            let aliases = name == "bridge" || e.Aliases.contains(short) ? e.Aliases : e.Aliases + [short]
            networks.append((name, DockerAPI.endpoint(id: e.NetworkID, ip: e.IPAddress, prefix: e.IPPrefixLen, gateway: e.Gateway, mac: e.MacAddress, aliases: aliases)))
        }
        for join in cont.config.networking?.networks ?? [] where !networks.contains(where: { $0.0 == join.name }) {
            let id = (try? engine.findNetwork(join.name).id) ?? ""
            let aliases = join.name == "bridge" ? join.aliases : join.aliases + [short]
            networks.append((join.name, DockerAPI.endpoint(id: id, ip: "", prefix: 0, gateway: "", mac: "", aliases: aliases)))
        }
        let base = i.NetworkSettings.flatMap { try? DockerAPI.encode($0) } ?? .object([("Ports", .object([]))])
        return base.replacing("Networks", with: .object(networks))
            .adding([("Bridge", .string("")), ("HairpinMode", .bool(false)), ("LinkLocalIPv6Address", .string("")),
                     ("LinkLocalIPv6PrefixLen", .int(0)), ("SecondaryIPAddresses", .null), ("SecondaryIPv6Addresses", .null),
                     ("EndpointID", .string("")), ("GlobalIPv6Address", .string("")), ("GlobalIPv6PrefixLen", .int(0)),
                     ("IPPrefixLen", .int(0)), ("IPv6Gateway", .string(""))])
    }

    static func endpoint(id: String, ip: String, prefix: Int, gateway: String, mac: String, aliases: [String]) -> JSON {
        .object([("IPAMConfig", .null), ("Links", .null), ("Aliases", .array(aliases.map(JSON.string))), ("NetworkID", .string(id)),
                 ("EndpointID", .string(id.isEmpty || ip.isEmpty ? "" : id)), ("Gateway", .string(gateway)), ("IPAddress", .string(ip)),
                 ("IPPrefixLen", .int(Int64(prefix))), ("IPv6Gateway", .string("")), ("GlobalIPv6Address", .string("")),
                 ("GlobalIPv6PrefixLen", .int(0)), ("MacAddress", .string(mac)), ("DriverOpts", .null)])
    }

    func portBindings(_ i: ContainerInspect) -> JSON {
        .object((i.NetworkSettings?.Ports ?? [:]).sorted { $0.key < $1.key }.compactMap { key, bindings in
            bindings.isEmpty ? nil : (key, .array(bindings.map { .object([("HostIp", .string($0.HostIp)), ("HostPort", .string($0.HostPort))]) }))
        })
    }

    func binds(_ cont: Container) -> JSON {
        let b = (cont.config.storage?.mounts ?? []).filter { $0.kind == .bind }.map { m in
            JSON.string("\(m.source):\(m.target)" + (m.readOnly ? ":ro" : ""))
        }
        return b.isEmpty ? .null : .array(b)
    }

    // MARK: logs

    func logs(_ ref: String, _ r: HTTPRequest, _ c: HTTPConnection) throws {
        let cont = try lookup(ref)
        let wantOut = r.flag("stdout"), wantErr = r.flag("stderr")
        guard wantOut || wantErr else { throw APIError(400, "Bad parameters: you must choose at least one stream") }
        var tail: Int?
        if let t = r.query("tail"), t != "all", !t.isEmpty {
            guard let n = Int(t), n >= 0 else { throw APIError(400, "invalid tail \"\(t)\"") }
            tail = n
        }
        func time(_ key: String) throws -> Timestamp? {
            guard let s = r.query(key), !s.isEmpty, s != "0" else { return nil }
            guard let t = DockerAPI.timestamp(s) else { throw APIError(400, "invalid \(key) \"\(s)\"") }
            return t
        }
        let since = try time("since"), until = try time("until")
        let follow = r.flag("follow")
        let timestamps = r.flag("timestamps")
        let details = r.flag("details") ? Array(LogDetails.prefix(cont.config.logAttributes).utf8) : []
        let tty = cont.config.tty
        c.beginChunks(contentType: tty ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream")
        let reader = LogReader(path: cont.paths.log, maxFiles: cont.config.logMaxFiles)
        var gone = false
        let id = cont.id
        reader.read(tail: tail, since: since, until: until, follow: follow, stillRunning: { [engine] in
            if gone || c.peerClosed { gone = true; return false }
            return (try? engine.lookup(id)).map { $0.isRunning || $0.status == .restarting } ?? false
        }, emit: { rec in
            guard !gone, rec.stderr ? wantErr : wantOut else { return }
            var bytes = timestamps ? Array((rec.time + " ").utf8) : []
            bytes += details
            bytes += rec.text
            if rec.endsLine { bytes.append(10) }
            if !c.chunk(tty ? bytes : StreamFrame.encode(rec.stderr ? 2 : 1, bytes)) { gone = true }
        })
        if !gone { c.endChunks() }
    }

    // MARK: stats

    func stats(_ ref: String, _ r: HTTPRequest, _ c: HTTPConnection) throws {
        let cont = try lookup(ref)
        let stream = r.flag("stream", default: true)
        let oneShot = r.flag("one-shot")
        var before = try? engine.statsSample([cont.id]).first
        var systemBefore = DockerAPI.systemCPUNanos()
        if !stream {
            if !oneShot {
                // Docker's one sample with a second's history (precpu_stats), as `stats --no-stream` shows.
                usleep(1_000_000)
            }
            let after = try? engine.statsSample([cont.id]).first
            c.respond(200, json: statsJSON(cont, before: oneShot ? nil : before, after: after, systemBefore: systemBefore))
            return
        }
        c.beginChunks()
        // Streamed: a sample a second until the client goes (bounded by it).
        while !c.peerClosed {
            usleep(1_000_000)
            let after = try? engine.statsSample([cont.id]).first
            let systemNow = DockerAPI.systemCPUNanos()
            if !c.chunk(Array((statsJSON(cont, before: before, after: after, systemBefore: systemBefore).serialized() + "\n").utf8)) { return }
            before = after
            systemBefore = systemNow
        }
    }

    func statsJSON(_ cont: Container, before: StatsSample?, after: StatsSample?, systemBefore: UInt64) -> JSON {
        let cpus = Int64(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        func cpu(_ s: StatsSample?, system: UInt64) -> JSON {
            .object([("cpu_usage", .object([("total_usage", .uint(s?.cgroup.cpuNanos ?? 0)), ("usage_in_kernelmode", .int(0)),
                                            ("usage_in_usermode", .int(0))])),
                     ("system_cpu_usage", .uint(system)), ("online_cpus", .int(cpus)),
                     ("throttling_data", .object([("periods", .int(0)), ("throttled_periods", .int(0)), ("throttled_time", .int(0))]))])
        }
        let a = after
        let limit = a?.cgroup.memoryLimit ?? UInt64(Int64(sysconf(Int32(_SC_PHYS_PAGES))) * Int64(sysconf(Int32(_SC_PAGESIZE))))
        var blk: [JSON] = []
        if let r = a?.cgroup.blockRead { blk.append(.object([("major", .int(0)), ("minor", .int(0)), ("op", .string("Read")), ("value", .uint(r))])) }
        if let w = a?.cgroup.blockWrite { blk.append(.object([("major", .int(0)), ("minor", .int(0)), ("op", .string("Write")), ("value", .uint(w))])) }
        var j: [(String, JSON)] = [
            ("read", .string(Timestamp.now().rfc3339)), ("preread", .string(before == nil ? "0001-01-01T00:00:00Z" : Timestamp.now().rfc3339)),
            ("pids_stats", .object([("current", .uint(a?.cgroup.pids ?? 0))])),
            ("blkio_stats", .object([("io_service_bytes_recursive", .array(blk))])),
            ("num_procs", .int(0)), ("storage_stats", .object([])),
            ("cpu_stats", cpu(a, system: DockerAPI.systemCPUNanos())),
            ("precpu_stats", before == nil ? .object([("cpu_usage", .object([("total_usage", .int(0))])), ("throttling_data", .object([]))]) : cpu(before, system: systemBefore)),
            ("memory_stats", .object([("usage", .uint(a?.cgroup.memoryUsage ?? 0)), ("limit", .uint(limit)), ("stats", .object([]))])),
            ("name", .string("/" + cont.name)), ("id", .string(cont.id)),
        ]
        if let net = a?.net {
            j.append(("networks", .object([("eth0", .object([("rx_bytes", .uint(net.rx)), ("tx_bytes", .uint(net.tx)), ("rx_packets", .int(0)),
                                                            ("tx_packets", .int(0)), ("rx_errors", .int(0)), ("tx_errors", .int(0)),
                                                            ("rx_dropped", .int(0)), ("tx_dropped", .int(0))]))])))
        }
        return .object(j)
    }

    /// The host's CPU time in ns (all CPUs, /proc/stat's first line), Docker's system_cpu_usage.
    static func systemCPUNanos() -> UInt64 {
        guard let text = try? FS.readString("/proc/stat"), let line = text.split(separator: "\n").first else { return 0 }
        let ticks = line.split(separator: " ").dropFirst().prefix(8).compactMap { UInt64($0) }.reduce(0, +)
        let hz = UInt64(max(1, sysconf(Int32(_SC_CLK_TCK))))
        return ticks * (1_000_000_000 / hz)
    }
}

extension JSON {
    /// Adds members to nested objects (key → members to add), keeping the ones present.
    func merging(_ nested: [String: JSON]) -> JSON {
        guard case .object(var m) = self else { return self }
        for (key, extra) in nested {
            guard let idx = m.firstIndex(where: { $0.0 == key }), case .object(var inner) = m[idx].1, case .object(let add) = extra else { continue }
            for (k, v) in add where !inner.contains(where: { $0.0 == k }) { inner.append((k, v)) }
            m[idx].1 = .object(inner)
        }
        return .object(m)
    }

    /// Replaces (or adds) a top-level member.
    func replacing(_ key: String, with value: JSON) -> JSON {
        guard case .object(var m) = self else { return self }
        if let idx = m.firstIndex(where: { $0.0 == key }) { m[idx].1 = value } else { m.append((key, value)) }
        return .object(m)
    }

    /// Adds top-level members that are not present.
    func adding(_ extra: [(String, JSON)]) -> JSON {
        guard case .object(var m) = self else { return self }
        for (k, v) in extra where !m.contains(where: { $0.0 == k }) { m.append((k, v)) }
        return .object(m)
    }
}
