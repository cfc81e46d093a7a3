import HakoSystem

/// The init layer (after Docker's "-init" layer): the mount points the
/// runtime puts in every container's root — /etc/hostname, /etc/hosts and
/// /etc/resolv.conf as empty files, /proc, /sys and /dev as directories —
/// unpacked once as a snapshot and stacked, read-only, below each container's
/// image.
///
/// Without it, an image that lacks them (most lack /etc/resolv.conf, busybox
/// all three) had them made in each container's upper directory at every
/// start: an overlay create (a temporary in the work directory, renamed) per
/// file and a copy-up of /etc, inodes written and freed again with the
/// container. Below the image (Docker stacks its own above), it shadows
/// nothing: the image's /etc keeps its owner, mode and time, and where an
/// image has a file of its own, or hides the layer's (a whiteout, an opaque
/// /etc), the runtime mounts over what is there or makes the mount point in
/// the upper directory as before.
extension SnapshotStore {
    /// What the layer holds, in archive order.
    static let initLayerEntries: [TarEntry] = [
        TarEntry(path: "dev/", kind: .directory, mode: 0o755),
        TarEntry(path: "etc/", kind: .directory, mode: 0o755),
        TarEntry(path: "etc/hostname", kind: .regular, mode: 0o644),
        TarEntry(path: "etc/hosts", kind: .regular, mode: 0o644),
        TarEntry(path: "etc/resolv.conf", kind: .regular, mode: 0o644),
        TarEntry(path: "proc/", kind: .directory, mode: 0o755),
        TarEntry(path: "sys/", kind: .directory, mode: 0o755),
    ]

    /// The layer as a tar archive: the same bytes every time (owner root,
    /// time 0), so its DiffID, and the snapshot's name, never change.
    static func initLayerArchive() throws -> [UInt8] {
        let sink = BytesSink()
        let tar = TarWriter(sink)
        for entry in initLayerEntries { try tar.append(entry) }
        try tar.finish()
        return sink.bytes
    }

    /// The archive and its DiffID, made once per process.
    static let initLayerContent = Result { () throws -> (archive: [UInt8], diffID: Digest) in
        let archive = try initLayerArchive()
        return (archive, try Digest.sha256(of: archive))
    }

    /// The init layer's directory when it is unpacked, else nil.
    public func existingInitLayer() throws -> String? {
        let diffID = try SnapshotStore.initLayerContent.get().diffID
        return exists(diffID) ? fsPath(diffID) : nil
    }

    /// The init layer's directory, unpacked on first use. Like any snapshot it
    /// is collected once nothing stacks it (the containers' layer lists keep
    /// it), and made again by the next container.
    public func initLayer() throws -> String {
        if let dir = try existingInitLayer() { return dir }
        let (archive, diffID) = try SnapshotStore.initLayerContent.get()
        let (info, _) = try unpack(BytesSource(archive), parent: nil, expectedDiffID: diffID)
        return fsPath(info.chainID)
    }
}

extension ImageStore {
    /// The init layer's directory (`SnapshotStore.initLayer`). Made as any
    /// content is added: under the shared content lock (a collection waits),
    /// after what killed commands left in `tmp/` is removed.
    public func initLayer() throws -> String {
        if let dir = try snapshots.existingInitLayer() { return dir }
        let lock = try beginAddingContent()
        defer { lock.release() }
        return try snapshots.initLayer()
    }
}
