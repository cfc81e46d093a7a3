/// Devices: the coordinator asks every node about the host device paths the
/// services name, and places `--device` tasks by what each node reports
/// (agent.toml `devices` at hello, then `devices.report`).
extension CoordinatorCore {
    /// Every host device path a service names, sorted; at most
    /// `DeviceRequest.maxPaths` (creating or updating a service past it is
    /// refused, so only a rollback can get there; the rest is then not asked about).
    public func requestedDevices() -> [String] {
        var all = Set<String>()
        for s in state.services.values {
            for d in s.spec.container.devices where DeviceRequest.isAcceptable(d.host) { all.insert(d.host) }
        }
        return Array(all.sorted().prefix(DeviceRequest.maxPaths))
    }

    /// Refuses a spec that would make the services name more device paths
    /// than the nodes are asked about (`replacing`: the service it updates).
    func checkDeviceCount(_ spec: ServiceSpec, replacing id: String? = nil) throws(ClusterError) {
        guard !spec.container.devices.isEmpty else { return }
        var all = Set(spec.container.devices.map(\.host))
        for s in state.services.values where s.id != id { all.formUnion(s.spec.container.devices.map(\.host)) }
        guard all.count <= DeviceRequest.maxPaths else {
            throw .invalid("the services would name \(all.count) host devices: the nodes are asked about \(DeviceRequest.maxPaths) at most")
        }
    }

    /// Sends the set to every node in session that does not hold the current
    /// one: all of them when it changes, a node at the start of its session.
    func sendDeviceRequests() {
        let paths = requestedDevices()
        if paths != deviceRequest {
            log.info("devices asked of the nodes: \(paths.isEmpty ? "none" : paths.joined(separator: ", "))")
            deviceRequest = paths
            deviceRequestSent = [:]
        }
        var line: [UInt8]?
        for (node, live) in dispatcher.nodes.sorted(by: { $0.key < $1.key }) {
            guard live.session != nil, let conn = live.connection, deviceRequestSent[node] != conn else { continue }
            if line == nil { line = WireEncoder.request(MessageType.devices, id: nil, DeviceRequest(paths: paths)) }
            if let l = line { send(conn, l) }
            deviceRequestSent[node] = conn
        }
    }

    /// A node's devices, checked (bounded in count and length, absolute);
    /// nil: none reported (an older agent).
    static func checkDevices(_ devices: [String]?) throws(ClusterError) -> [String]? {
        guard let devices else { return nil }
        guard devices.count <= DeviceRequest.maxPaths, devices.allSatisfy(DeviceRequest.isAcceptable) else {
            throw .invalid("invalid device list (at most \(DeviceRequest.maxPaths) absolute paths of at most \(DeviceRequest.maxPathBytes) bytes)")
        }
        return Array(Set(devices)).sorted()
    }

    /// `devices.report`: the node's devices replace those it reported before;
    /// a change may place waiting tasks.
    func devicesReported(_ r: DeviceReport, node: String) throws -> EmptyBody {
        guard dispatcher.isCurrent(node, session: r.sessionID) else { throw WireError(.conflict, "not the current session") }
        let devices = try CoordinatorCore.checkDevices(r.devices)
        if state.setDevices(devices, of: node) {
            log.info("node \(state.nodes[node]?.name ?? node) has devices: \(devices?.joined(separator: ", ") ?? "none")")
            dirty = true
        }
        return EmptyBody()
    }
}
