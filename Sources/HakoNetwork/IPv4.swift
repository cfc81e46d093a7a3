import HakoSystem

/// An IPv4 address as a number (host order), written and parsed in dotted quads.
public struct IPv4Address: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }

    /// "10.88.0.2"; nil for anything else (no shorthand forms, no leading zeros).
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }),
                  !(p.count > 1 && p.first == "0"), let n = UInt32(p), n <= 255 else { return nil }
            v = v << 8 | n
        }
        value = v
    }

    public var description: String {
        "\(value >> 24).\((value >> 16) & 0xff).\((value >> 8) & 0xff).\(value & 0xff)"
    }

    /// Network byte order, as netlink and nftables carry it.
    public var bytes: [UInt8] { [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)] }

    public var isLoopback: Bool { value >> 24 == 127 }
    public var isUnspecified: Bool { value == 0 }

    public static func < (a: IPv4Address, b: IPv4Address) -> Bool { a.value < b.value }

    public init(from decoder: any Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let a = IPv4Address(s) else { throw HakoError(.invalidArgument("IPv4 address"), "invalid IPv4 address \"\(s)\"") }
        self = a
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// An IPv4 network in CIDR form: "10.88.0.0/16".
public struct IPv4Network: Sendable, Hashable, Codable, CustomStringConvertible {
    public var address: IPv4Address
    public var prefix: Int

    /// Canonical: host bits cleared.
    public init(_ address: IPv4Address, prefix: Int) {
        self.prefix = max(0, min(32, prefix))
        self.address = IPv4Address(address.value & IPv4Network.mask(self.prefix))
    }

    /// "10.88.0.0/16". Host bits must be zero unless `allowHostBits`.
    public init?(_ text: String, allowHostBits: Bool = false) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = IPv4Address(String(parts[0])),
              parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let p = Int(parts[1]), p >= 0, p <= 32 else { return nil }
        if !allowHostBits && a.value & ~IPv4Network.mask(p) != 0 { return nil }
        self.init(a, prefix: p)
    }

    public static func mask(_ prefix: Int) -> UInt32 { prefix == 0 ? 0 : ~UInt32(0) << UInt32(32 - prefix) }

    public var mask: UInt32 { IPv4Network.mask(prefix) }
    public var description: String { "\(address)/\(prefix)" }
    public var first: IPv4Address { address }
    public var last: IPv4Address { IPv4Address(address.value | ~mask) }
    /// Number of addresses in the network.
    public var size: UInt64 { UInt64(1) << UInt64(32 - prefix) }

    public func contains(_ a: IPv4Address) -> Bool { a.value & mask == address.value }

    public func overlaps(_ other: IPv4Network) -> Bool {
        let m = IPv4Network.mask(min(prefix, other.prefix))
        return address.value & m == other.address.value & m
    }

    /// The addresses a host may use: without the network and broadcast addresses (for prefixes < 31).
    public var hostRange: ClosedRange<UInt32> {
        prefix >= 31 ? address.value...last.value : (address.value + 1)...(last.value - 1)
    }

    /// Docker's default gateway: the first host address.
    public var defaultGateway: IPv4Address { IPv4Address(hostRange.lowerBound) }

    public init(from decoder: any Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let n = IPv4Network(s) else { throw HakoError(.invalidArgument("subnet"), "invalid subnet \"\(s)\"") }
        self = n
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// A MAC address, "02:42:ac:11:00:02".
public struct MACAddress: Sendable, Hashable, Codable, CustomStringConvertible {
    public var bytes: [UInt8]

    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var b: [UInt8] = []
        for p in parts {
            guard p.count == 2, let v = UInt8(p, radix: 16) else { return nil }
            b.append(v)
        }
        bytes = b
    }

    public init(bytes: [UInt8]) { self.bytes = Array(bytes.prefix(6)) + [UInt8](repeating: 0, count: max(0, 6 - bytes.count)) }

    /// A locally administered unicast address derived from an IPv4 address (Docker's scheme: 02:42 + the address).
    public init(derivedFrom ip: IPv4Address) { self.init(bytes: [0x02, 0x42] + ip.bytes) }

    public var isMulticast: Bool { bytes[0] & 1 == 1 }
    public var isZero: Bool { bytes.allSatisfy { $0 == 0 } }

    /// Not `joined(separator:)` over the bytes' strings: that made the
    /// runtime scan every conformance record of the binary (tens to hundreds
    /// of µs, once per process, on a bridge start's path).
    public var description: String { hexString(bytes, separator: UInt8(ascii: ":")) }

    public init(from decoder: any Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let m = MACAddress(s) else { throw HakoError(.invalidArgument("MAC address"), "invalid MAC address \"\(s)\"") }
        self = m
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
