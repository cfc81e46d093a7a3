import HakoNetwork
import HakoSystem

extension Engine {
    /// Refuses an MTU outside 68…65535 and an exception of every destination (0.0.0.0/0).
    static func checkNetworkOptions(mtu: UInt32?, masqueradeExcept: [IPv4Network]) throws {
        if let m = mtu, !NetworkDefinition.mtuRange.contains(m) {
            throw HakoError(.failed, "invalid MTU \(m): it must be between \(NetworkDefinition.mtuRange.lowerBound) and \(NetworkDefinition.mtuRange.upperBound)")
        }
        if masqueradeExcept.contains(where: { $0.prefix == 0 }) {
            throw HakoError(.failed, "invalid masquerade exception 0.0.0.0/0: use an internal network instead")
        }
    }

    /// Changes a bridge network's MTU and masquerade exceptions in place (the
    /// cluster agent's network follows the overlay). The firewall takes the
    /// exceptions at once; the bridge, if it exists, takes the MTU at once, and
    /// containers' interfaces made from now on take it too.
    public func setNetworkOptions(_ ref: String, mtu: UInt32?, masqueradeExcept: [IPv4Network]) throws {
        try Engine.checkNetworkOptions(mtu: mtu, masqueradeExcept: masqueradeExcept)
        let found = try findNetwork(ref)
        guard found.driver == .bridge, !NetworkDefinition.predefined.contains(found.name) else {
            throw HakoError(.failed, "network \(found.name) has no options to change")
        }
        let lock = try networkStore.lock()
        defer { lock.release() }
        guard var d = try networkStore.load(found.name) else { throw HakoError(.failed, "network \(ref) not found") }
        let except = masqueradeExcept.isEmpty ? nil : masqueradeExcept
        guard d.mtu != mtu || d.masqueradeExcept != except else { return }
        let mtuChanged = d.mtu != mtu
        d.mtu = mtu
        d.masqueradeExcept = except
        try networkStore.save(d)
        if mtuChanged, let m = mtu {
            let links = try bridgeDriver().host
            if let l = try links.link(d.bridge), l.mtu != m { try links.setMTU(d.bridge, m) }
        }
        try syncFirewall()
    }
}
