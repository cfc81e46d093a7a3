#if canImport(Glibc)
import Glibc
#endif
import HakoEngine
import HakoNetwork
import HakoSystem

extension DockerAPI {
    // MARK: networks

    func networks(_ p: [String], _ r: HTTPRequest, _ c: HTTPConnection) throws {
        let m = r.method
        if p.isEmpty { try only(m, "GET", r); return try networkList(r, c) }
        if p == ["create"] { try only(m, "POST", r); return try networkCreate(r, c) }
        if p == ["prune"] {
            try only(m, "POST", r)
            let removed: [String]
            do { removed = try engine.pruneNetworks() } catch { throw DockerAPI.apiError(error) }
            return c.respond(200, json: .object([("NetworksDeleted", .array(removed.map(JSON.string)))]))
        }
        let ref = p[0]
        if p.count == 1 {
            switch m {
            case "GET":
                return c.respond(200, json: try networkJSON(ref))
            case "DELETE":
                do { try engine.removeNetwork(ref) } catch { throw DockerAPI.apiError(error) }
                return c.respond(204)
            default:
                throw APIError(405, "method \(m) not allowed on \(r.path)")
            }
        }
        guard p.count == 2 else { throw notFound(r) }
        try only(m, "POST", r)
        let body = try DockerAPI.body(r)
        guard let container = body["Container"]?.string, !container.isEmpty else { throw APIError(400, "Container is required") }
        do {
            switch p[1] {
            case "connect":
                let ep = body["EndpointConfig"]
                try engine.connect(network: ref, container: container,
                                   ip: CreateMapping.nonEmpty(ep?["IPAMConfig"]?["IPv4Address"]?.string),
                                   aliases: try CreateMapping.strings(ep?["Aliases"], "EndpointConfig.Aliases") ?? [])
            case "disconnect":
                try engine.disconnect(network: ref, container: container)
            default:
                throw notFound(r)
            }
        } catch {
            throw DockerAPI.apiError(error)
        }
        c.respond(200, body: [], contentType: nil)
    }

    func networkJSON(_ ref: String) throws -> JSON {
        let n: NetworkInspect
        do { n = try engine.inspectNetwork(ref) } catch { throw DockerAPI.apiError(error) }
        let containers: JSON = .object(n.Containers.sorted { $0.key < $1.key }.map { id, member in
            (id, .object([("Name", .string(member.Name)), ("EndpointID", .string(id)), ("MacAddress", .string(member.MacAddress)),
                          ("IPv4Address", .string(member.IPv4Address)), ("IPv6Address", .string(""))]))
        })
        let ipam: JSON = .object([("Driver", .string("default")), ("Options", .null),
                                  ("Config", .array(n.IPAM.map { .object([("Subnet", .string($0.Subnet)), ("Gateway", .string($0.Gateway))]) }))])
        return .object([
            ("Name", .string(n.Name)), ("Id", .string(n.Id)), ("Created", .string(n.Created.isEmpty ? "0001-01-01T00:00:00Z" : n.Created)), ("Scope", .string("local")),
            ("Driver", .string(n.Driver)), ("EnableIPv6", .bool(false)), ("IPAM", ipam), ("Internal", .bool(n.Internal)),
            ("Attachable", .bool(false)), ("Ingress", .bool(false)), ("ConfigFrom", .object([("Network", .string(""))])),
            ("ConfigOnly", .bool(false)), ("Containers", containers),
            ("Options", .object(n.Options.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
            ("Labels", .object(n.Labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
        ])
    }

    func networkList(_ r: HTTPRequest, _ c: HTTPConnection) throws {
        let filters = try DockerAPI.filters(r)
        var out: [JSON] = []
        for d in try engine.networks() {
            guard let j = try? networkJSON(d.name) else { continue }
            if let names = filters["name"], !names.contains(where: { d.name.contains($0) }) { continue }
            if let ids = filters["id"], !ids.contains(where: { d.id.hasPrefix($0) }) { continue }
            if let labels = filters["label"], !labels.allSatisfy({ l in
                let kv = l.split(separator: "=", maxSplits: 1).map(String.init)
                return kv.count == 2 ? d.labels[kv[0]] == kv[1] : d.labels[kv[0]] != nil
            }) { continue }
            if let drivers = filters["driver"], !drivers.contains(d.driver == .null ? "null" : d.driver.rawValue) { continue }
            out.append(j)
        }
        c.respond(200, json: .array(out))
    }

    func networkCreate(_ r: HTTPRequest, _ c: HTTPConnection) throws {
        let body = try DockerAPI.body(r)
        guard let name = body["Name"]?.string, !name.isEmpty else { throw APIError(400, "Name is required") }
        if let d = CreateMapping.nonEmpty(body["Driver"]?.string), d != "bridge" {
            throw APIError(400, "network driver \(d) is not supported by hako (bridge)")
        }
        if body["EnableIPv6"]?.bool == true { throw APIError(400, "EnableIPv6 is not supported by hako") }
        let configs = body["IPAM"]?["Config"]?.array ?? []
        if configs.count > 1 { throw APIError(400, "one IPAM config (an IPv4 subnet) is supported by hako") }
        var mtu: UInt32?
        for (k, v) in body["Options"]?.members ?? [] {
            if k == "com.docker.network.driver.mtu", let s = v.string, let n = UInt32(s) { mtu = n; continue }
            throw APIError(400, "network option \(k) is not supported by hako")
        }
        if (try? engine.findNetwork(name)) != nil {
            throw APIError(409, "network with name \(name) already exists")
        }
        let labels = Dictionary((body["Labels"]?.members ?? []).map { ($0.0, $0.1.string ?? "") }, uniquingKeysWith: { $1 })
        let d: NetworkDefinition
        do {
            d = try engine.createNetwork(name: name, subnet: CreateMapping.nonEmpty(configs.first?["Subnet"]?.string),
                                         gateway: CreateMapping.nonEmpty(configs.first?["Gateway"]?.string),
                                         internal: body["Internal"]?.bool ?? false, labels: labels, mtu: mtu)
        } catch {
            throw DockerAPI.apiError(error)
        }
        c.respond(201, json: .object([("Id", .string(d.id)), ("Warning", .string(""))]))
    }

    // MARK: volumes

    func volumes(_ p: [String], _ r: HTTPRequest, _ c: HTTPConnection) throws {
        let m = r.method
        if p.isEmpty {
            try only(m, "GET", r)
            let filters = try DockerAPI.filters(r)
            var out: [JSON] = []
            for v in try engine.volumes() {
                if let names = filters["name"], !names.contains(where: { v.Name.contains($0) }) { continue }
                if let labels = filters["label"], !labels.allSatisfy({ l in
                    let kv = l.split(separator: "=", maxSplits: 1).map(String.init)
                    return kv.count == 2 ? v.Labels[kv[0]] == kv[1] : v.Labels[kv[0]] != nil
                }) { continue }
                out.append(volumeJSON(v))
            }
            return c.respond(200, json: .object([("Volumes", .array(out)), ("Warnings", .null)]))
        }
        if p == ["create"] {
            try only(m, "POST", r)
            let body = try DockerAPI.body(r)
            if let d = CreateMapping.nonEmpty(body["Driver"]?.string), d != "local" { throw APIError(400, "volume driver \(d) is not supported by hako (local)") }
            if let opts = body["DriverOpts"]?.members, !opts.isEmpty { throw APIError(400, "volume driver options are not supported by hako") }
            let name = CreateMapping.nonEmpty(body["Name"]?.string)
            if let name, let existing = try? engine.inspectVolume(name) { return c.respond(201, json: volumeJSON(existing)) }
            let labels = Dictionary((body["Labels"]?.members ?? []).map { ($0.0, $0.1.string ?? "") }, uniquingKeysWith: { $1 })
            let v: VolumeInfo
            do { v = try engine.createVolume(name, labels: labels) } catch { throw DockerAPI.apiError(error) }
            return c.respond(201, json: volumeJSON(v))
        }
        if p == ["prune"] {
            try only(m, "POST", r)
            let filters = try DockerAPI.filters(r)
            let removed: [String]
            do { removed = try engine.pruneVolumes(all: filters["all"]?.first == "true" || filters["all"]?.first == "1") } catch { throw DockerAPI.apiError(error) }
            return c.respond(200, json: .object([("VolumesDeleted", .array(removed.map(JSON.string))), ("SpaceReclaimed", .int(0))]))
        }
        guard p.count == 1 else { throw notFound(r) }
        switch m {
        case "GET":
            do { c.respond(200, json: volumeJSON(try engine.inspectVolume(p[0]))) } catch { throw DockerAPI.apiError(error) }
        case "DELETE":
            do { try engine.removeVolume(p[0]) } catch { throw DockerAPI.apiError(error) }
            c.respond(204)
        default:
            throw APIError(405, "method \(m) not allowed on \(r.path)")
        }
    }

    func volumeJSON(_ v: VolumeInfo) -> JSON {
        .object([("CreatedAt", .string(v.CreatedAt)), ("Driver", .string(v.Driver)),
                 ("Labels", .object(v.Labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
                 ("Mountpoint", .string(v.Mountpoint)), ("Name", .string(v.Name)), ("Options", .object([])), ("Scope", .string("local"))])
    }

    // MARK: events

    func events(_ r: HTTPRequest, _ c: HTTPConnection) throws {
        let filters = try DockerAPI.filters(r)
        let specs = filters.flatMap { k, vs in vs.map { "\(k)=\($0)" } }
        let filter: EventFilter
        do { filter = try EventFilter(parsing: specs) } catch { throw APIError(400, "\(error)") }
        func time(_ key: String) throws -> Double? {
            guard let s = r.query(key), !s.isEmpty else { return nil }
            if let d = Double(s) { return d }
            if let t = Timestamp(rfc3339: s) { return t.secondsSince1970 }
            throw APIError(400, "invalid \(key) \"\(s)\"")
        }
        let since = try time("since"), until = try time("until")
        c.beginChunks()
        func send(_ e: EngineEvent) -> Bool {
            guard filter.matches(e) else { return true }
            let attrs = JSON.object(e.attributes.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })
            let j: JSON = .object([("status", .string(e.action)), ("id", .string(e.id)), ("from", .string(e.attributes["image"] ?? "")),
                                   ("Type", .string(e.type)), ("Action", .string(e.action)),
                                   ("Actor", .object([("ID", .string(e.id)), ("Attributes", attrs)])), ("scope", .string("local")),
                                   ("time", .int(Int64(e.time))), ("timeNano", .int(Int64(e.time * 1e9)))])
            return c.chunk(Array((j.serialized() + "\n").utf8))
        }
        var follower = engine.eventFollower()
        if since != nil || until != nil {
            for e in engine.eventLog.read(since: since, until: until, upTo: follower.offset) where !send(e) { return }
        }
        if let until, until <= Timestamp.now().secondsSince1970 { return c.endChunks() }
        // Followed until the client goes (or `until` passes), polled every 200 ms.
        while !c.peerClosed {
            if let until, Timestamp.now().secondsSince1970 > until { return c.endChunks() }
            for e in engine.pollEvents(&follower) where !send(e) { return }
            usleep(200_000)
        }
    }
}
