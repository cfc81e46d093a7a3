import HakoEngine
import HakoSystem
import Synchronization

/// The node's container network: an engine bridge network on the subnet the
/// coordinator leased to the node (gateway .1, bridge `hakoc0`), so every
/// task's address is unique in the cluster. Made on the first task that
/// needs it; made again on the new subnet if the lease changed while no
/// container used it. Checked before every start (one small file read), so a
/// network removed meanwhile (`hako network prune`) is made again.
public final class ClusterNetwork: Sendable {
    public static let name = "hako-cluster"
    public static let bridge = "hakoc0"
    public static let label = "hako.cluster.network"

    let engine: Engine
    /// Starts on the worker threads check (and make) the network one at a time.
    private let making = Mutex(())

    public init(engine: Engine) { self.engine = engine }

    public func ensure(subnet: String) throws {
        try making.withLock { _ throws -> Void in
            if let d = try? engine.findNetwork(ClusterNetwork.name) {
                if d.subnet?.description == subnet { return }
                let users = (try? engine.inspectNetwork(ClusterNetwork.name).Containers.count) ?? 0
                guard users == 0 else {
                    throw ClusterError.conflict("network \(ClusterNetwork.name) is on \(d.subnet?.description ?? "?") but the node's subnet is now \(subnet), and \(users) containers still use it")
                }
                try engine.removeNetwork(ClusterNetwork.name)
            }
            _ = try engine.createNetwork(name: ClusterNetwork.name, subnet: subnet, gateway: nil,
                                         labels: [ClusterNetwork.label: subnet], bridge: ClusterNetwork.bridge)
        }
    }
}
