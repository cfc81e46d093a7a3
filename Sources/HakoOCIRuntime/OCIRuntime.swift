#if canImport(Glibc)
import Glibc
#endif
import HakoRuntime
import HakoSecurity
import HakoSystem

/// hako-runtime's operations: the OCI runtime command line (runc's contract)
/// over the same runtime core as hako — launch specs, the C init path, the
/// cgroup drivers, capabilities and seccomp. No monitor: `create` leaves the
/// init waiting on its exec FIFO and exits; the caller's subreaper (conmon,
/// containerd-shim) reaps it.
public struct OCIRuntime: Sendable {
    public static let version = "0.1.0"
    public static let defaultRoot = "/run/hako-runtime"

    /// --root: one directory per container.
    public var root: String
    /// --systemd-cgroup: cgroupsPath is "slice:prefix:name".
    public var systemdCgroup: Bool
    public var log: RuntimeLog
    public var cgroupHost: CgroupHost

    public init(root: String = OCIRuntime.defaultRoot, systemdCgroup: Bool = false, log: RuntimeLog = RuntimeLog(),
                cgroupHost: CgroupHost = .detect()) {
        self.root = root
        self.systemdCgroup = systemdCgroup
        self.log = log
        self.cgroupHost = cgroupHost
    }

    func dir(_ id: String) -> String { "\(root)/\(id)" }
    func statePath(_ id: String) -> String { "\(root)/\(id)/state.json" }
    func fifoPath(_ id: String) -> String { "\(root)/\(id)/exec.fifo" }
    func configPath(_ id: String) -> String { "\(root)/\(id)/config.json" }

    var seccompCompiler: SeccompCompiler { SeccompCompiler(cacheDirectory: root + "/.cache/seccomp") }

    /// runc's rule for ids: letters, digits and _ + - . (not starting with a dot), at most 1024.
    public static func validate(id: String) throws {
        guard !id.isEmpty else { throw HakoError(.invalidArgument("container id"), "container id cannot be empty") }
        let ok = id.utf8.count <= 1024 && !id.hasPrefix(".") && id.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x5f || c == 0x2b || c == 0x2d || c == 0x2e
        }
        guard ok else { throw HakoError(.invalidArgument("container id"), "invalid container id \"\(id)\" (letters, digits, _ + - and ., not starting with a dot)") }
    }

    func driver(parent: String) -> any CgroupDriver {
        switch cgroupHost.mode {
        case .unified: return CgroupV2Driver(host: cgroupHost, parent: parent)
        default: return CgroupV1Driver(host: cgroupHost, parent: parent)
        }
    }

    func driver(for r: ContainerRecord) -> any CgroupDriver { driver(parent: r.cgroupParent) }

    // MARK: - records

    /// A container that exists, with its lock held (flock on its directory).
    final class Locked {
        let record: ContainerRecord
        private let fd: FileDescriptor
        init(record: ContainerRecord, fd: FileDescriptor) { self.record = record; self.fd = fd }
        func release() {
            flock(fd.rawValue, LOCK_UN)
            fd.close()
        }
    }

    func notFound(_ id: String) -> HakoError { HakoError(.notFound(.container, id), "container \"\(id)\" does not exist") }

    /// Loads the record without locking (state, list).
    public func load(_ id: String) throws -> ContainerRecord {
        try OCIRuntime.validate(id: id)
        let bytes: [UInt8]
        do { bytes = try FS.readFile(statePath(id)) } catch let e as SystemError where e.errno == ENOENT {
            if FS.isDirectory(dir(id)) { throw HakoError(.conflict(.state(.container, id)), "container \"\(id)\" is being created") }
            throw notFound(id)
        }
        return try ContainerRecord(json: try JSON.parse(bytes))
    }

    /// Loads the record with the container's lock held until `release`.
    func lock(_ id: String) throws -> Locked {
        try OCIRuntime.validate(id: id)
        let fd: FileDescriptor
        do { fd = try FileDescriptor.open(dir(id), O_RDONLY | O_DIRECTORY) } catch let e as SystemError where e.errno == ENOENT {
            throw notFound(id)
        }
        try sys("flock", dir(id)) { flock(fd.rawValue, LOCK_EX) }
        return Locked(record: try load(id), fd: fd)
    }

    public func status(_ r: ContainerRecord) -> ContainerRecord.Status {
        guard ProcessProbe.isAlive(r.pid, startTime: r.startTime) else { return .stopped }
        if FS.exists(fifoPath(r.id)) { return .created }
        if driver(for: r).isFrozen(r.cgroupLeaf) { return .paused }
        return .running
    }

    /// The ids of every container under the root.
    public func ids() throws -> [String] {
        try FS.list(root).filter { !$0.hasPrefix(".") && FS.exists(statePath($0)) }.sorted()
    }
}
