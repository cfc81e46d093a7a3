import HakoSystem

/// One published port as asked for: host port 0 means "any free one".
public struct PortBinding: Codable, Sendable, Hashable, CustomStringConvertible {
    public var proto: PortForward.Proto
    public var hostIP: IPv4Address?
    public var hostPort: UInt16
    public var containerPort: UInt16

    public init(proto: PortForward.Proto, hostIP: IPv4Address?, hostPort: UInt16, containerPort: UInt16) {
        self.proto = proto; self.hostIP = hostIP; self.hostPort = hostPort; self.containerPort = containerPort
    }

    /// Docker's "0.0.0.0:8080->80/tcp".
    public var description: String { "\(hostIP?.description ?? "0.0.0.0"):\(hostPort)->\(containerPort)/\(proto.rawValue)" }

    /// Whether two bindings claim the same host port.
    public func clashes(with o: PortBinding) -> Bool {
        guard proto == o.proto, hostPort == o.hostPort, hostPort != 0 else { return false }
        let a = hostIP.flatMap { $0.isUnspecified ? nil : $0 }, b = o.hostIP.flatMap { $0.isUnspecified ? nil : $0 }
        return a == nil || b == nil || a == b
    }

    /// `-p [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/tcp|/udp]`, ports or equal-length ranges ("8000-8002:80-82").
    public static func parse(_ spec: String) throws -> [PortBinding] {
        func bad(_ why: String) -> HakoError { HakoError(.invalidArgument("-p"), "invalid -p \"\(spec)\": \(why)") }
        var body = Substring(spec)
        var proto = PortForward.Proto.tcp
        if let slash = body.lastIndex(of: "/") {
            let p = body[body.index(after: slash)...]
            guard let pr = PortForward.Proto(rawValue: p.lowercased()) else { throw bad("unknown protocol \"\(p)\" (tcp or udp)") }
            proto = pr
            body = body[..<slash]
        }
        let parts = body.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        var hostIP: IPv4Address?
        var hostPart = ""
        let containerPart: String
        switch parts.count {
        case 1: containerPart = parts[0]
        case 2: hostPart = parts[0]; containerPart = parts[1]
        case 3:
            guard let ip = IPv4Address(parts[0]) else { throw bad("\"\(parts[0])\" is not an IPv4 address") }
            hostIP = ip; hostPart = parts[1]; containerPart = parts[2]
        default: throw bad("expected [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]")
        }
        let container = try range(containerPart, allowZero: false, bad)
        let host = hostPart.isEmpty ? nil : try range(hostPart, allowZero: false, bad)
        if let host, host.count != container.count {
            throw bad("the host range has \(host.count) ports, the container range \(container.count)")
        }
        return container.enumerated().map { i, c in
            PortBinding(proto: proto, hostIP: hostIP, hostPort: host.map { $0.lowerBound + UInt16(i) } ?? 0, containerPort: c)
        }
    }

    static func range(_ s: String, allowZero: Bool, _ bad: (String) -> HakoError) throws -> ClosedRange<UInt16> {
        let ends = s.split(separator: "-", omittingEmptySubsequences: false)
        guard ends.count <= 2 else { throw bad("\"\(s)\" is not a port or a range") }
        var values: [UInt16] = []
        for e in ends {
            guard !e.isEmpty, e.allSatisfy({ $0.isASCII && $0.isNumber }), let v = UInt16(e), allowZero || v > 0 else {
                throw bad("\"\(e)\" is not a port (1-65535)")
            }
            values.append(v)
        }
        guard let lo = values.first, let hi = values.last, lo <= hi else { throw bad("\"\(s)\" is an empty range") }
        return lo...hi
    }

    /// An image's EXPOSE entry: "80/tcp", "53/udp", "8080".
    public static func exposed(_ s: String) -> (UInt16, PortForward.Proto)? {
        let parts = s.split(separator: "/")
        guard let p = parts.first.flatMap({ UInt16($0) }), p > 0 else { return nil }
        let proto = parts.count > 1 ? PortForward.Proto(rawValue: parts[1].lowercased()) : .tcp
        return proto.map { (p, $0) }
    }
}
