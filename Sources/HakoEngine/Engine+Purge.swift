#if canImport(Glibc)
import Glibc
#endif
import HakoNetwork
import HakoRuntime
import HakoSystem

/// What `deploy/uninstall.sh --purge` removes besides files: hako's kernel
/// state on this host, which outlives every file (`hako purge-host-state`).
extension Engine {
    /// The nftables tables hako makes: the engine's ports and NAT, the cluster overlay's.
    public static let nftablesTables = ["hako", "hako-overlay"]

    /// Every link hako makes is named so: `hako0`, `hako-<network id>`, the
    /// cluster bridge `hakoc0`, the VXLAN device `hako.vx<VNI>`. (Containers'
    /// veths go with their network namespaces.)
    public static func isHakoLink(_ name: String) -> Bool { name.hasPrefix("hako") }

    /// Removes hako's nftables tables, its links and its cgroup parent (in
    /// every hierarchy), once no container runs; refuses while one does,
    /// changing nothing. Returns one line per thing removed.
    public func purgeHostState() throws -> [String] {
        let alive = try list().filter { [.running, .paused, .restarting].contains($0.status) }
        guard alive.isEmpty else {
            throw HakoError(.conflict(.running(alive.map(\.config.name).joined(separator: ", "))), "containers are running (\(alive.map(\.config.name).joined(separator: ", "))): remove them first (hako rm -f)")
        }
        var done: [String] = []
        let nft = try NetlinkSocket.nftables()
        for table in Engine.nftablesTables where try nftablesTableExists(nft, table) {
            try nft.apply(NftablesBatch.remove(table: table))
            done.append("nftables table ip \(table)")
        }
        let links = RouteNetlink(try NetlinkSocket())
        for name in try links.linkNames() where Engine.isHakoLink(name) {
            try links.delete(name)
            done.append("link \(name)")
        }
        var dirs: [String] = []
        if let u = cgroupHost.unified { dirs.append(u) }
        dirs += cgroupHost.v1.filter { $0.controllers.contains { !$0.hasPrefix("name=") } }.map(\.mount)
        for root in dirs {
            let dir = root + "/" + cgroupParent
            guard FS.isDirectory(dir) else { continue }
            try removeCgroupTree(dir)
            done.append("cgroup \(dir)")
        }
        return done
    }

    /// A table's existence, asked with a get (ENOENT: none).
    func nftablesTableExists(_ nft: NetlinkSocket, _ table: String) throws -> Bool {
        do {
            _ = try nft.perform(NftablesBatch.getTable(table))
            return true
        } catch let e as NetlinkError where e.kind == .notFound {
            return false
        }
    }

    /// rmdir of a cgroup and the (empty) cgroups below it, deepest first.
    func removeCgroupTree(_ dir: String) throws {
        for name in (try? FS.list(dir)) ?? [] where FS.isDirectory(dir + "/" + name) {
            try removeCgroupTree(dir + "/" + name)
        }
        guard rmdir(dir) == 0 || errno == ENOENT else { throw SystemError("rmdir", dir) }
    }
}
