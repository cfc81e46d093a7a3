#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoImage
import HakoRuntime
import HakoSystem

/// `--userns auto`: each container gets its own slice of host ids, so root in it
/// is an unprivileged, unused uid on the host.
extension Engine {
    /// The ids containers are given slices of: HAKO_USERNS_RANGE (START:COUNT),
    /// else the "hako" entry of /etc/subuid, else 2^30…2^31.
    static func usernsPool() throws -> IDRange {
        if let s = environment("HAKO_USERNS_RANGE") { return try IDRange(parsing: s) }
        if let text = try? FS.readString("/etc/subuid"), let r = IDRangeAllocator.pool(subuid: text, user: "hako") { return r }
        return IDRangeAllocator.defaultPool
    }

    /// Under the engine lock (create): picks a range no other container holds.
    /// Ranges are read back from the containers themselves, so a removed
    /// container's range is free again without any bookkeeping.
    func assignUsernsRange(_ config: inout ContainerConfig) throws {
        guard var iso = config.isolation, var u = iso.userns, u.range == nil else { return }
        try checkSearchable(paths.containers)
        var taken: [IDRange] = []
        for name in (try? FS.list(paths.containers)) ?? [] where name.count == 64 {
            if let r = (try? readConfig(name))?.isolation?.userns?.range { taken.append(r) }
        }
        let pool = try Engine.usernsPool()
        guard let range = IDRangeAllocator.allocate(size: u.size, pool: pool, taken: taken) else {
            throw HakoError(.failed, "--userns auto: no free range of \(u.size) ids left in \(pool) (\(taken.count) containers hold one); remove containers or widen HAKO_USERNS_RANGE")
        }
        u.range = range
        u.idmapped = try idmapSupported(config)
        iso.userns = u
        config.isolation = iso
    }

    /// Idmapped mounts need kernel and file-system support; refuse clearly without it.
    func idmapSupported(_ config: ContainerConfig) throws -> Bool {
        guard config.imageID != ImageStore.hostImageID, let layer = config.layerDirs.first else { return false }
        let r = hako_idmap_supported(layer)
        if r == 1 { return true }
        let e = errno
        throw HakoError(.failed, "--userns auto: this kernel cannot idmap the image's layers under \(paths.root) (\(String(cString: strerror(e)))); it needs Linux 5.19 or newer and a file system with idmapped mounts (ext4, xfs, btrfs)")
    }

    /// The container's user reaches its own files (bind sources of /etc/hosts …)
    /// through the data root: every directory above must be searchable by others.
    func checkSearchable(_ dir: String) throws {
        var path = ""
        for component in dir.split(separator: "/") {
            path += "/" + component
            var st = stat()
            guard stat(path, &st) == 0 else { continue }
            if st.st_mode & 0o001 == 0 {
                throw HakoError(.failed, "--userns auto: \(path) is not searchable by the container's unprivileged user; chmod o+x \(path) (or move the data root)")
            }
        }
    }

    /// The files the container's root must own: its upper dir (the root of its
    /// file system and everything it writes), the overlay work dir, and the
    /// hostname/hosts/resolv.conf it may edit.
    func prepareUsernsFiles(_ config: ContainerConfig, dir: String) throws {
        guard let range = config.isolation?.userns?.range else { return }
        for f in ["upper", "work", "hostname", "hosts", "resolv.conf"] {
            try sys("chown", "\(dir)/\(f)") { lchown("\(dir)/\(f)", range.start, range.start) }
        }
    }
}
