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
            throw HakoError(.conflict(.inUse(.user, "\(pool)", by: [])), "--userns auto: no free range of \(u.size) ids left in \(pool) (\(taken.count) containers hold one); remove containers or widen HAKO_USERNS_RANGE")
        }
        u.range = range
        u.idmapped = try idmapSupported(config)
        iso.userns = u
        config.isolation = iso
    }

    /// Whether the image's layers can be idmapped (Linux 5.12+ and a file system
    /// that supports it). HAKO_USERNS_IDMAP=copy forces the fallback.
    func idmapSupported(_ config: ContainerConfig) throws -> Bool {
        guard config.imageID != ImageStore.hostImageID, let layer = config.layerDirs.first else { return false }
        if Engine.environment("HAKO_USERNS_IDMAP") == "copy" { return false }
        return hako_idmap_supported(layer) == 1
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
                throw HakoError(.permissionDenied, "--userns auto: \(path) is not searchable by the container's unprivileged user; chmod o+x \(path) (or move the data root)")
            }
        }
    }

    /// The files the container's root must own: its upper dir (the root of its
    /// file system and everything it writes), the overlay work dir, and the
    /// hostname/hosts/resolv.conf it may edit. Where layers cannot be idmapped,
    /// the fallback: a copy of each layer with its owners shifted into the
    /// container's range (`layers/N` in its directory; costs the image's size).
    func prepareUsernsFiles(_ config: inout ContainerConfig, dir: String, final: String) throws {
        guard let u = config.isolation?.userns, let range = u.range else { return }
        for f in ["upper", "work", "hostname", "hosts", "resolv.conf"] {
            try sys("chown", "\(dir)/\(f)") { lchown("\(dir)/\(f)", range.start, range.start) }
        }
        guard !u.idmapped, config.imageID != ImageStore.hostImageID else { return }
        try FS.makeDirectories("\(dir)/layers", mode: 0o711)
        var copies: [String] = []
        for (i, layer) in config.layerDirs.enumerated() {
            do {
                try ShiftedCopy.copy(from: layer, to: "\(dir)/layers/\(i)", start: range.start, count: range.count)
            } catch {
                throw HakoError(.failed, "--userns auto: cannot copy the image's layer for the container's ids", cause: error)
            }
            copies.append("\(final)/layers/\(i)")
        }
        config.layerDirs = copies
    }
}
