import HakoNetwork

/// inspect's "NetworkSettings" (Docker's keys).
public struct NetworkSettingsInfo: Codable, Sendable {
    public struct Endpoint: Codable, Sendable {
        public var NetworkID: String
        public var IPAddress: String
        public var IPPrefixLen: Int
        public var Gateway: String
        public var MacAddress: String
        public var Aliases: [String]
    }
    public struct HostPort: Codable, Sendable { public var HostIp: String; public var HostPort: String }
    public var IPAddress: String
    public var Gateway: String
    public var MacAddress: String
    public var SandboxKey: String
    public var Ports: [String: [HostPort]]
    public var Networks: [String: Endpoint]
}

/// inspect's "Mounts".
public struct MountPointInfo: Codable, Sendable {
    public var `Type`: String
    public var Name: String?
    public var Source: String
    public var Destination: String
    public var RW: Bool
    /// Docker's: a bind's propagation (rprivate unless asked), "" for the others.
    public var Propagation: String
}

extension Engine {
    func networkSettings(_ c: Container) -> NetworkSettingsInfo? {
        guard c.config.networkMode == .bridge else { return nil }
        let e = c.isRunning ? readEndpoint(c.id) : nil
        var networks: [String: NetworkSettingsInfo.Endpoint] = [:]
        for a in e?.attachments ?? [] {
            networks[a.networkName] = .init(NetworkID: a.networkID, IPAddress: a.ip.description, IPPrefixLen: a.prefix,
                                            Gateway: a.gateway.description, MacAddress: a.mac.description, Aliases: a.aliases)
        }
        var ports: [String: [NetworkSettingsInfo.HostPort]] = [:]
        for p in e?.ports ?? [] {
            ports["\(p.containerPort)/\(p.proto.rawValue)", default: []].append(.init(HostIp: p.hostIP?.description ?? "0.0.0.0", HostPort: String(p.hostPort)))
        }
        let first = e?.attachments.first
        return NetworkSettingsInfo(IPAddress: first?.ip.description ?? "", Gateway: first?.gateway.description ?? "",
                                   MacAddress: first?.mac.description ?? "", SandboxKey: e?.netns ?? "", Ports: ports, Networks: networks)
    }

    func mountPoints(_ config: ContainerConfig) -> [MountPointInfo] {
        (config.storage?.mounts ?? []).map { m in
            switch m.kind {
            case .bind: return MountPointInfo(Type: "bind", Name: nil, Source: m.source, Destination: m.target, RW: !m.readOnly,
                                              Propagation: (m.propagation ?? .rprivate).rawValue)
            case .volume: return MountPointInfo(Type: "volume", Name: m.source, Source: paths.volumeData(m.source), Destination: m.target, RW: !m.readOnly, Propagation: "")
            case .tmpfs: return MountPointInfo(Type: "tmpfs", Name: nil, Source: "", Destination: m.target, RW: !m.readOnly, Propagation: "")
            }
        }
    }
}
