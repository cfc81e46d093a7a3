import Foundation
@testable import HakoCluster
import HakoNetwork
import Testing

/// Cluster networks: the allocator of VNIs and CIDRs, the records in the
/// store and the log, the admin requests, and services naming networks.
@Suite struct NetworkObjectTests {
    // MARK: the allocator

    func allocator() throws -> NetworkAllocator {
        try NetworkAllocator(pool: NetworkAllocator.defaultPool, cluster: "10.88.0.0/16", clusterVNI: 4096)
    }

    @Test func subnetsAreTheLowestFreeTwentiesOfThePool() throws {
        let a = try allocator()
        #expect(try a.subnet(requested: nil, taken: []).description == "10.96.0.0/20")
        let taken = [IPv4Network("10.96.0.0/20"), IPv4Network("10.96.32.0/20")].compactMap { $0 }
        #expect(try a.subnet(requested: nil, taken: taken).description == "10.96.16.0/20")
        // A user's --subnet inside the pool is skipped over.
        let user = [IPv4Network("10.96.0.0/24"), IPv4Network("10.96.16.0/20")].compactMap { $0 }
        #expect(try a.subnet(requested: nil, taken: user).description == "10.96.32.0/20")
        // A full pool says so.
        let small = try NetworkAllocator(pool: "10.96.0.0/19", cluster: "10.88.0.0/16", clusterVNI: 4096)
        let full = [IPv4Network("10.96.0.0/20"), IPv4Network("10.96.16.0/20")].compactMap { $0 }
        #expect(throws: ClusterError.self) { try small.subnet(requested: nil, taken: full) }
    }

    @Test func aRequestedSubnetIsChecked() throws {
        let a = try allocator()
        #expect(try a.subnet(requested: "10.97.0.0/24", taken: []).description == "10.97.0.0/24")
        #expect(try a.subnet(requested: "192.168.50.0/23", taken: []).description == "192.168.50.0/23")
        for bad in ["10.97.0.1/24", "10.97.0.0", "nonsense", "10.97.0.0/25", "10.0.0.0/7", "10.88.4.0/24", "10.0.0.0/8"] {
            #expect(throws: ClusterError.self, "\(bad)") { try a.subnet(requested: bad, taken: []) }
        }
        let taken = [IPv4Network("10.97.0.0/16")].compactMap { $0 }
        #expect(throws: ClusterError.self) { try a.subnet(requested: "10.97.3.0/24", taken: taken) }
        // A pool holding the cluster CIDR skips it.
        let wide = try NetworkAllocator(pool: "10.88.0.0/15", cluster: "10.88.0.0/16", clusterVNI: 4096)
        #expect(try wide.subnet(requested: nil, taken: []).description == "10.89.0.0/20")
        #expect(throws: ClusterError.self) { try NetworkAllocator(pool: "10.96.0.0/24", cluster: "10.88.0.0/16", clusterVNI: 4096) }
    }

    @Test func vnisAreTheLowestFreeAboveTheClusterNetworks() throws {
        let a = try allocator()
        #expect(try a.vni(taken: []) == 4097)
        #expect(try a.vni(taken: [4097, 4099]) == 4098)
        #expect(try a.vni(taken: [4097, 4098]) == 4099)
        let top = try NetworkAllocator(pool: NetworkAllocator.defaultPool, cluster: "10.88.0.0/16", clusterVNI: NetworkAllocator.maxVNI - 1)
        #expect(try top.vni(taken: []) == NetworkAllocator.maxVNI)
        #expect(throws: ClusterError.self) { try top.vni(taken: [NetworkAllocator.maxVNI]) }
    }

    @Test func nodeSubnetSizes() {
        #expect(NetworkAllocator.nodePrefix(for: 8) == 24)
        #expect(NetworkAllocator.nodePrefix(for: 16) == 24)
        #expect(NetworkAllocator.nodePrefix(for: 20) == 26)
        #expect(NetworkAllocator.nodePrefix(for: 22) == 28)
        #expect(NetworkAllocator.nodePrefix(for: 24) == 28)
    }

    // MARK: the store and the log

    func record(_ id: String, _ name: String, _ subnet: String, vni: Int) -> NetworkRecord {
        NetworkRecord(id: id, name: name, subnet: subnet, nodePrefix: 26, vni: vni, attachable: true, labels: ["team": "a"], created: 5)
    }

    @Test func recordsAreStoredAndRemoved() throws {
        let dir = TempDir("store")
        let store = try Store(path: dir.path + "/c.db")
        var b = StoreBatch()
        b.networks = [record("n1", "backend", "10.96.0.0/20", vni: 4097), record("n2", "frontend", "10.96.16.0/20", vni: 4098)]
        try store.commit(b)
        #expect(try Store(path: dir.path + "/c.db").load().networks.sorted { $0.id < $1.id } == b.networks)
        // A name, a CIDR or a VNI taken by another network fails the batch whole.
        for clash in [record("n3", "backend", "10.96.32.0/20", vni: 4099), record("n3", "other", "10.96.0.0/20", vni: 4099),
                      record("n3", "other", "10.96.32.0/20", vni: 4097)] {
            var c = StoreBatch()
            c.networks = [clash]
            #expect(throws: (any Error).self) { try store.commit(c) }
        }
        var rm = StoreBatch()
        rm.removedNetworks = ["n1"]
        try store.commit(rm)
        #expect(try store.load().networks.map(\.id) == ["n2"])
    }

    @Test func aSchemaFourDatabaseGainsTheNetworksTable() throws {
        let dir = TempDir("store")
        do {
            let store = try Store(path: dir.path + "/c.db")
            try store.db.exec("DROP TABLE networks; ALTER TABLE tasks DROP COLUMN network_addresses; PRAGMA user_version = 4;")
        }
        let store = try Store(path: dir.path + "/c.db")
        #expect(try store.db.scalarInt("PRAGMA user_version") == 5)
        var b = StoreBatch()
        b.networks = [record("n1", "backend", "10.96.0.0/20", vni: 4097)]
        try store.commit(b)
        #expect(try store.load().networks == b.networks)
    }

    @Test func networksTravelInTheLogAndTheSeed() throws {
        var b = StoreBatch()
        b.networks = [record("n1", "backend", "10.96.0.0/20", vni: 4097)]
        b.removedNetworks = ["n0"]
        let bytes = try b.encodedEntry()
        let back = try bytes.withUnsafeBytes { try StoreBatch.decode(entry: $0) }
        #expect(back.networks == b.networks && back.removedNetworks == ["n0"])
        // An entry of a coordinator from before networks decodes with none.
        let old = try StoreBatch().encodedEntryFormat2()
        #expect(try old.withUnsafeBytes { try StoreBatch.decode(entry: $0) }.networks.isEmpty)
        var stored = StoredState()
        stored.networks = b.networks
        #expect(stored.seedBatch.networks == b.networks)
    }

    // MARK: the coordinator

    /// A busybox service: `replicas` of it, or global without; on `networks`.
    func service(_ f: CoreFixture, _ name: String, replicas: Int? = nil, networks: [String] = []) throws {
        var spec = ServiceSpec(name: name, image: "busybox")
        if let replicas { spec.replicas = replicas } else { spec.mode = .global }
        if !networks.isEmpty { try spec.setNetworks(networks) }
        _ = try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: spec), as: ServiceView.self)
    }

    func create(_ f: CoreFixture, _ name: String, subnet: String? = nil) throws -> NetworkView {
        try f.admin(MessageType.networkCreate, NetworkCreateRequest(name: name, subnet: subnet, attachable: false, labels: ["k": "v"]), as: NetworkView.self)
    }

    @Test func createListInspectRemove() throws {
        let f = try CoreFixture()
        let a = try create(f, "backend")
        #expect(a.subnet == "10.96.0.0/20" && a.vni == 4097 && a.nodePrefix == 26 && a.driver == "overlay" && !a.builtIn && a.labels == ["k": "v"])
        let b = try create(f, "frontend", subnet: "10.97.0.0/24")
        #expect(b.subnet == "10.97.0.0/24" && b.vni == 4098 && b.nodePrefix == 28)
        #expect(throws: ClusterError.self) { try create(f, "backend") }
        #expect(throws: ClusterError.self) { try create(f, "other", subnet: "10.97.0.0/25") }
        #expect(throws: ClusterError.self) { try create(f, "other", subnet: "10.96.0.0/24") }
        for reserved in ["cluster", "host", "none", "bridge", "ingress"] {
            #expect(throws: ClusterError.self, "\(reserved)") { try create(f, reserved) }
        }
        #expect(throws: ClusterError.self) { try create(f, "-bad") }
        let list = try f.admin(MessageType.networkList, EmptyBody(), as: NetworkList.self).items
        #expect(list.map(\.name) == ["cluster", "backend", "frontend"])
        let cluster = try #require(list.first)
        #expect(cluster.builtIn && cluster.subnet == "10.88.0.0/16" && cluster.vni == 4096)
        #expect(try f.admin(MessageType.networkInspect, NetworkRef(ref: String(a.id.prefix(6))), as: NetworkView.self) == a)
        #expect(throws: ClusterError.self) { try f.admin(MessageType.networkRemove, NetworkRef(ref: "cluster"), as: EmptyBody.self) }
        // Kept across a restart, with the allocations.
        try f.reopen()
        #expect(try f.admin(MessageType.networkInspect, NetworkRef(ref: "frontend"), as: NetworkView.self) == b)
        try f.admin(MessageType.networkRemove, NetworkRef(ref: "backend"), as: EmptyBody.self)
        #expect(throws: ClusterError.self) { try f.admin(MessageType.networkInspect, NetworkRef(ref: "backend"), as: NetworkView.self) }
        // Its VNI and CIDR are free again.
        let c = try create(f, "again")
        #expect(c.subnet == "10.96.0.0/20" && c.vni == 4097)
        let events = try f.admin(MessageType.events, EventsRequest(follow: false, since: nil), as: EventList.self).events
        #expect(events.filter { $0.kind == "network" }.map(\.action) == ["created", "created", "removed", "created"])
    }

    /// A node that connected over loopback is outside the overlay: tasks on
    /// cluster networks (replicated and global) are placed only on nodes in
    /// it; a service on the cluster network alone still goes everywhere.
    @Test func tasksOnNetworksAreNotPlacedOutsideTheOverlay() throws {
        let f = try CoreFixture()
        _ = try create(f, "backend")
        let nodes = [try SimNode(f, name: "pi", underlay: "10.0.0.1"), try SimNode(f, name: "beside", underlay: "127.0.0.1")]
        try service(f, "web", replicas: 4, networks: ["backend"])
        try service(f, "agent", networks: ["backend"])
        try service(f, "plain")
        try settle(f, nodes)
        #expect(nodes.map { $0.live.count } == [6, 1], "web ×4, agent and plain on pi; only plain beside")
        let ps = try f.admin(MessageType.servicePs, ServicePsRequest(service: "agent", all: false), as: TaskList.self).tasks
        #expect(ps.compactMap(\.nodeID) == [nodes[0].id])
    }

    /// agent.toml `overlay = false`: the node has an underlay address but says
    /// in its hello that it is not in the overlay. No tunnel leads to it and no
    /// task on a cluster network goes to it; it says so again after a reconnect
    /// that changes its mind.
    @Test func aNodeThatOptedOutOfTheOverlayGetsNoNetworkTasksAndNoTunnels() throws {
        let f = try CoreFixture()
        _ = try create(f, "backend")
        let pi = try SimNode(f, name: "pi", underlay: "10.0.0.1")
        let out = try SimNode(f, name: "out", underlay: "10.0.0.2", overlay: false)
        let nodes = [pi, out]
        try service(f, "web", replicas: 3, networks: ["backend"])
        try service(f, "plain")
        try settle(f, nodes)
        #expect(nodes.map { $0.live.count } == [4, 1], "web ×3 and plain on pi; only plain on the node outside")
        #expect(f.core.peerMap().map(\.nodeID) == [pi.id], "no tunnel to the node outside")
        // It rejoins the overlay: the next hello says so, and the map has it again.
        out.overlay = nil
        try out.connect()
        try settle(f, nodes)
        #expect(Set(f.core.peerMap().map(\.nodeID)) == [pi.id, out.id])
    }

    @Test func servicesNameNetworksAndKeepThemFromRemoval() throws {
        let f = try CoreFixture()
        let n = try create(f, "backend")
        _ = try create(f, "frontend")
        var spec = ServiceSpec(name: "db", image: "busybox")
        try spec.setNetworks(["name=backend,alias=database,alias=pg"])
        let v = try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: spec), as: ServiceView.self)
        #expect(v.spec.networks == [NetworkAttachment(target: "backend", id: n.id, aliases: ["database", "pg"])])
        #expect(!v.spec.isOnClusterNetwork)
        // A network no one made is refused.
        var lost = ServiceSpec(name: "lost", image: "busybox")
        try lost.setNetworks(["nowhere"])
        #expect(throws: ClusterError.self) { try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: lost), as: ServiceView.self) }
        // In use: refused, naming the service.
        do {
            try f.admin(MessageType.networkRemove, NetworkRef(ref: "backend"), as: EmptyBody.self)
            Issue.record("removed while in use")
        } catch {
            #expect("\(error)".contains("db"))
        }
        #expect(try f.admin(MessageType.networkInspect, NetworkRef(ref: "backend"), as: NetworkView.self).services == ["db"])
        let clusterUsers = try f.admin(MessageType.networkInspect, NetworkRef(ref: "cluster"), as: NetworkView.self).services
        #expect(!clusterUsers.contains("db"))
        // Moving it to the other network rolls its tasks and frees the first.
        var moved = v.spec
        try moved.changeNetworks(remove: ["backend"], add: ["frontend"])
        #expect(moved.needsNewTasks(comparedTo: v.spec))
        let u = try f.admin(MessageType.serviceUpdate, ServiceUpdateRequest(service: v.id, spec: moved, version: v.version, force: false), as: ServiceView.self)
        #expect(u.version == v.version + 1 && u.spec.networks.map(\.target) == ["frontend"])
        try f.admin(MessageType.networkRemove, NetworkRef(ref: "backend"), as: EmptyBody.self)
        #expect(throws: ClusterError.self) { try f.admin(MessageType.networkRemove, NetworkRef(ref: "frontend"), as: EmptyBody.self) }
        try f.admin(MessageType.serviceRemove, ServiceRef(service: "db"), as: EmptyBody.self)
        try f.admin(MessageType.networkRemove, NetworkRef(ref: "frontend"), as: EmptyBody.self)
    }

    // MARK: node subnets and names per network

    /// Each node leases a subnet of a network when first assigned a task on
    /// it (told in its peer map before its assignment); each network's names
    /// are its own services', replicas' and aliases', at their addresses on it.
    @Test func nodeSubnetsAndNamesPerNetwork() throws {
        let f = try CoreFixture()
        let nodes = try (1...2).map { try SimNode(f, name: "n\($0)", underlay: "10.0.0.\($0)") }
        try settle(f, nodes)
        let backend = try create(f, "backend")
        #expect(nodes[0].overlays.last?.networks.isEmpty == true, "no node has a subnet of it yet")
        var db = ServiceSpec(name: "db", image: "busybox")
        db.replicas = 2
        db.maxReplicasPerNode = 1
        try db.setNetworks(["name=backend,alias=database"])
        let marks = nodes.map(\.received.count)
        try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: db), as: ServiceView.self)
        try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: ServiceSpec(name: "web", image: "busybox")), as: ServiceView.self)
        try settle(f, nodes)
        let net = try #require(nodes[0].overlays.last?.networks.first)
        #expect(net.id == backend.id && net.vni == backend.vni && net.subnet == "10.96.0.0/20")
        #expect(Set(net.subnets.values) == ["10.96.0.0/26", "10.96.0.64/26"] && Set(net.subnets.keys) == Set(nodes.map(\.id)))
        #expect(nodes[1].overlays.last?.networks == nodes[0].overlays.last?.networks)
        // The map with its subnet came before the assignment that needed it.
        for (n, mark) in zip(nodes, marks) {
            let after = Array(n.received[mark...])
            let overlayAt = try #require(after.firstIndex(of: MessageType.overlay))
            let assignAt = try #require(after.firstIndex(of: MessageType.assign))
            #expect(overlayAt < assignAt, "\(after)")
        }
        // Running, with an address on the network each.
        let tasks = f.core.state.tasks.values.filter { $0.serviceName == "db" && $0.isLive }
        #expect(tasks.count == 2)
        for t in tasks {
            let node = try #require(nodes.first { $0.id == t.nodeID })
            let ip = try #require(IPv4Network(net.subnets[node.id] ?? "")).address.value + 2
            var st = TaskStatus(taskID: t.id, state: .running, containerID: "c-" + t.id)
            st.networkAddresses = [backend.id: IPv4Address(ip).description]
            try node.report([st])
        }
        try settle(f, nodes)
        let names = try #require(nodes[0].overlays.last?.networks.first?.names)
        #expect(names["db"] == ["10.96.0.2", "10.96.0.66"] && names["database"] == ["10.96.0.2", "10.96.0.66"])
        #expect(Set(names.keys) == ["db", "db.1", "db.2", "database"])
        // The cluster network's names hold the service on it, not db.
        let clusterNames = try #require(nodes[0].overlays.last?.names)
        #expect(clusterNames["db"] == nil && clusterNames["database"] == nil)
        // The subnets are kept when the service goes, and go back with the node.
        try f.admin(MessageType.serviceRemove, ServiceRef(service: "db"), as: EmptyBody.self)
        try settle(f, nodes)
        #expect(f.core.state.networks[backend.id]?.leases.count == 2)
        #expect(nodes[0].overlays.last?.networks.first?.names.isEmpty == true)
        nodes[1].disconnect()
        f.clock.advance(10)
        try settle(f, [nodes[0]])
        try f.admin(MessageType.nodeRemove, NodeRemoveRequest(node: nodes[1].id, force: true), as: EmptyBody.self)
        #expect(f.core.state.networks[backend.id]?.leases.keys.sorted() == [nodes[0].id])
        try f.reopen()
        #expect(f.core.state.networks[backend.id]?.leases == [nodes[0].id: "10.96.0.0/26"] || f.core.state.networks[backend.id]?.leases == [nodes[0].id: "10.96.0.64/26"])
    }

    // MARK: the flags

    @Test func networkFlags() throws {
        #expect(try NetworkAttachment(parsing: "backend") == NetworkAttachment(target: "backend"))
        #expect(try NetworkAttachment(parsing: "name=backend,alias=a,alias=b") == NetworkAttachment(target: "backend", aliases: ["a", "b"]))
        #expect(try NetworkAttachment(parsing: "target=backend") == NetworkAttachment(target: "backend"))
        for bad in ["", "alias=a", "name=", "name=a,name=b", "name=a,driver-opt=x=y", "name=a,alias"] {
            #expect(throws: ClusterError.self, "\(bad)") { try NetworkAttachment(parsing: bad) }
        }
        var s = ServiceSpec(name: "web", image: "i")
        try s.setNetworks(["a", "name=b,alias=x"])
        #expect(s.networks.map(\.target) == ["a", "b"] && s.network == "cluster")
        try s.validate()
        try s.setNetworks(["host"])
        #expect(s.network == "host" && s.networks.isEmpty)
        #expect(throws: ClusterError.self) { try s.setNetworks(["host", "a"]) }
        #expect(throws: ClusterError.self) { try s.setNetworks(["cluster", "a"]) }
        try s.setNetworks(["a", "a"])
        #expect(throws: ClusterError.self) { try s.validate() }
        try s.setNetworks(["name=a,alias=-bad"])
        #expect(throws: ClusterError.self) { try s.validate() }
        try s.setNetworks(["a"])
        try s.changeNetworks(remove: [], add: ["name=a,alias=y", "b"])
        #expect(s.networks == [NetworkAttachment(target: "a", aliases: ["y"]), NetworkAttachment(target: "b")])
        #expect(throws: ClusterError.self) { try s.changeNetworks(remove: ["c"], add: []) }
        // Publishing ports keeps the service on the cluster network too (the mesh and the published ports are there).
        s.ports = ["8080:80"]
        #expect(s.isOnClusterNetwork)
    }
}
