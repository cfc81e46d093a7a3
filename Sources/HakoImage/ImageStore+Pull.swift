import FoundationEssentials
import HakoSystem
import HakoTransport
import Synchronization

/// A response body as a byte source.
final class ResponseSource: ByteSource {
    private let response: HTTPResponse
    private let what: String

    init(_ response: HTTPResponse, what: String) {
        self.response = response
        self.what = what
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        do { return try response.read(into: buffer) } catch let e as TransportError {
            throw ImageError.registry("\(what): \(e)")
        }
    }
}

/// What a pull resolved: the image and where it came from.
public struct PullResult: Sendable {
    public var image: Image
    /// The digest the reference resolved to (an index's for multi-platform images).
    public var digest: Digest
    /// Layers that were downloaded (0: everything was already here).
    public var downloadedLayers: Int
}

extension ImageStore {
    var gcLockPath: String { imagesDirectory + "/gc.lock" }

    /// Held shared by everything that adds content, exclusive by garbage
    /// collection: a blob written but not yet in the index is never collected.
    func contentLock(exclusive: Bool = false) throws -> FileLock {
        try FileLock.acquire(gcLockPath, shared: !exclusive)
    }

    /// The start of every command that adds content (pull, load, import,
    /// commit): the shared content lock, and what killed commands left in
    /// `tmp/` (half-unpacked snapshots, half-written blobs) removed, so that
    /// a small disk does not fill up with the remains of interrupted imports.
    func beginAddingContent() throws -> FileLock {
        let lock = try contentLock()
        content.collectTemporaries()
        return lock
    }

    /// `hako pull NAME[:TAG|@DIGEST]`: fetches an image from its registry.
    ///
    /// The manifest (from an index: the entry for `platform`, by default the
    /// host's), the config and the layers are each checked against their
    /// digests. Layers download in parallel and unpack while they download,
    /// each into its own temp directory; layers already here (as blob and
    /// snapshot) are not fetched again. Nothing is recorded unless everything
    /// checked out; a blob that fails its check is never stored, a layer that
    /// fails to unpack leaves no snapshot.
    public func pull(_ reference: String, platform: PlatformSpec? = nil, registry: RegistryOptions,
                     unpack: UnpackOptions = UnpackOptions(), progress: (any ProgressSink)? = nil) throws(HakoError) -> PullResult {
        try atBoundary("cannot pull \(reference)") {
            let parsed = try ImageReference(parsing: reference)
            guard !ImageStore.isHostReference(parsed) else {
                throw ImageError.notAllowed("\"host\" is the built-in host image; it is never pulled")
            }
            let ref = parsed.withDefaultTag()
            let lock = try beginAddingContent()
            defer { lock.release() }
            let client = RegistryClient(domain: ref.domain, options: registry)
            let repo = ref.path
            progress?.report(.status("\(ref.digest?.string ?? ref.tag ?? "latest"): Pulling from \(repo)"))

            // The top-level manifest or index: reuse a stored copy when the
            // registry's digest for the tag says it is the same.
            let top = try topManifest(client, ref)
            var blobs: [(Digest, [UInt8])] = [(top.digest, top.bytes)]
            var manifest = top
            var indexDigest: Digest?
            let wanted = platform ?? PlatformSpec.host
            if MediaType.isIndex(top.mediaType) {
                let index = try CanonicalJSON.decode(OCIIndex.self, top.bytes, what: "index \(ref.familiarString)", as: ImageError.invalidManifest)
                let entry = try wanted.select(from: index)
                manifest = try storedOrFetched(client, repo, entry.digest)
                guard MediaType.isManifest(manifest.mediaType) else {
                    throw ImageError.invalidManifest("index \(ref.familiarString): the entry for \(wanted) is not an image manifest")
                }
                blobs.append((manifest.digest, manifest.bytes))
                indexDigest = top.digest
            }
            let oci = try CanonicalJSON.decode(OCIManifest.self, manifest.bytes, what: "manifest \(manifest.digest)", as: ImageError.invalidManifest)
            try ImageStore.validate(oci, shown: ref.familiarString)

            let configBytes = content.contains(oci.config.digest) ? try content.read(oci.config.digest)
                : try client.smallBlob(repository: repo, digest: oci.config.digest)
            let config = try OCIImage.decode(configBytes, what: "image config \(oci.config.digest)", as: ImageError.invalidManifest)
            guard config.rootfs.diffIDs.count == oci.layers.count else {
                throw ImageError.invalidManifest("image \(ref.familiarString): its config lists \(config.rootfs.diffIDs.count) layers, its manifest \(oci.layers.count)")
            }
            if let platform, !platform.matches(os: config.os, architecture: config.architecture, variant: config.variant) {
                throw ImageError.noPlatform("image \(ref.familiarString) is for \(config.os)/\(config.architecture)\(config.variant.map { "/" + $0 } ?? ""), not \(platform)")
            }
            blobs.append((oci.config.digest, configBytes))

            let downloaded = try fetchLayers(client, repo: repo, layers: oci.layers, diffIDs: config.rootfs.diffIDs,
                                             width: registry.parallelDownloads, unpack: unpack, progress: progress)
            for (digest, bytes) in blobs where !content.contains(digest) { try content.write(bytes, expected: digest) }

            let id = oci.config.digest.hex
            let size = try layerSize(config.rootfs.diffIDs)
            let repoDigest = ref.name + "@" + top.digest.string
            let image = try updateIndex { index in
                var record = index.images[id] ?? ImageIndex.Record(manifest: manifest.digest, size: size, added: Timestamp.now().rfc3339)
                record.manifest = manifest.digest
                record.index = indexDigest ?? record.index
                var digests = (record.repoDigests ?? []).filter { !$0.hasPrefix(ref.name + "@") }
                digests.append(repoDigest)
                record.repoDigests = digests.sorted()
                index.images[id] = record
                if ref.digest == nil { index.references[ref.withDefaultTag().string] = id }
                return try self.image(id: id, index: index)
            }
            progress?.report(.status("Digest: \(top.digest)"))
            return PullResult(image: image, digest: top.digest, downloadedLayers: downloaded)
        }
    }

    private func topManifest(_ client: RegistryClient, _ ref: ImageReference) throws -> FetchedManifest {
        if let digest = ref.digest { return try storedOrFetched(client, ref.path, digest) }
        let tag = ref.tag ?? ImageReference.defaultTag
        if let digest = try? client.manifestDigest(repository: ref.path, reference: tag), content.contains(digest),
           let bytes = try? content.read(digest, maxSize: RegistryClient.maxManifestSize),
           let kind = try? RegistryClient.classify(bytes, contentType: "", shown: ref.familiarString) {
            return FetchedManifest(bytes: bytes, mediaType: kind, digest: digest)
        }
        return try client.manifest(repository: ref.path, reference: tag)
    }

    /// A manifest by digest, from the store when it is there.
    private func storedOrFetched(_ client: RegistryClient, _ repo: String, _ digest: Digest) throws -> FetchedManifest {
        if content.contains(digest), let bytes = try? content.read(digest, maxSize: RegistryClient.maxManifestSize) {
            return FetchedManifest(bytes: bytes, mediaType: try RegistryClient.classify(bytes, contentType: "", shown: digest.string),
                                   digest: digest)
        }
        return try client.manifest(repository: repo, reference: digest.string)
    }

    /// Checks what hako needs of a manifest: a known config type, layers it can unpack.
    static func validate(_ m: OCIManifest, shown: String) throws {
        guard m.schemaVersion == 2 else { throw ImageError.invalidManifest("manifest of \(shown): schemaVersion \(m.schemaVersion), expected 2") }
        guard m.config.mediaType == MediaType.config || m.config.mediaType == MediaType.dockerConfig else {
            throw ImageError.invalidManifest("\(shown) is not a container image (config type \"\(m.config.mediaType)\")")
        }
        for l in m.layers {
            guard l.size >= 0 else { throw ImageError.invalidManifest("manifest of \(shown): layer \(l.digest) has a negative size") }
            if l.mediaType == MediaType.dockerForeignLayer || l.mediaType.contains("foreign") {
                throw ImageError.invalidManifest("\(shown) has foreign (Windows) layers, which hako cannot use")
            }
            guard l.mediaType.hasPrefix("application/vnd.oci.image.layer.") || l.mediaType.hasPrefix("application/vnd.docker.image.rootfs.diff.tar") else {
                throw ImageError.invalidManifest("manifest of \(shown): unsupported layer type \"\(l.mediaType)\"")
            }
        }
    }

    /// Bytes of content in the snapshots of a layer stack.
    func layerSize(_ diffIDs: [Digest]) throws -> Int64 {
        try SnapshotStore.chainIDs(diffIDs).reduce(Int64(0)) { $0 + ((try snapshots.info($1))?.size ?? 0) }
    }

    /// Makes sure every layer is here as a blob and as a snapshot: downloads
    /// (and unpacks on the way) what is missing, several layers at once, then
    /// publishes the snapshots bottom-up. Returns how many blobs were
    /// downloaded. Without a client (`load`), every blob must be stored already.
    func fetchLayers(_ client: RegistryClient?, repo: String, layers: [OCIDescriptor], diffIDs: [Digest],
                     width: Int, unpack options: UnpackOptions, progress: (any ProgressSink)?) throws -> Int {
        let chain = try SnapshotStore.chainIDs(diffIDs)
        struct Job: Sendable { var layer: OCIDescriptor; var index: Int; var unpack: Bool; var download: Bool }
        var jobs: [Job] = []
        var claimed: Set<Digest> = []
        for (i, layer) in layers.enumerated() {
            let needSnapshot = !snapshots.exists(chain[i])
            let needBlob = !content.contains(layer.digest) && !claimed.contains(layer.digest)
            let id = String(layer.digest.hex.prefix(12))
            if !needSnapshot && !needBlob {
                progress?.report(.layer(id: id, status: .exists, current: layer.size, total: layer.size))
                continue
            }
            if needBlob { claimed.insert(layer.digest) }
            jobs.append(Job(layer: layer, index: i, unpack: needSnapshot, download: needBlob))
            progress?.report(.layer(id: id, status: .waiting, current: 0, total: layer.size))
        }
        // Jobs that only unpack a blob another job downloads run after the downloads.
        let firstPass = jobs.filter { $0.download || content.contains($0.layer.digest) }
        let secondPass = jobs.filter { !($0.download || content.contains($0.layer.digest)) }
        let prepared = PreparedList(count: layers.count)
        let store = self
        for pass in [firstPass, secondPass] where !pass.isEmpty {
            try Parallel.forEach(pass.count, width: width) { n, cancel in
                let job = pass[n]
                let snapshot = try store.fetchLayer(client, repo: repo, layer: job.layer, diffID: diffIDs[job.index],
                                                    download: job.download, unpack: job.unpack, options: options,
                                                    progress: progress, cancel: cancel)
                if let snapshot { prepared.set(job.index, snapshot) }
            }
        }
        // Bottom-up, so every snapshot's parent exists before it does.
        for i in 0..<layers.count {
            if let p = prepared.take(i) { _ = try snapshots.publish(p, parent: i == 0 ? nil : chain[i - 1]) }
        }
        return jobs.filter(\.download).count
    }

    /// One layer: downloaded into the content store (digest and size checked)
    /// and, when wanted, unpacked from the same stream; or unpacked from the
    /// stored blob.
    private func fetchLayer(_ client: RegistryClient?, repo: String, layer: OCIDescriptor, diffID: Digest, download: Bool,
                            unpack: Bool, options: UnpackOptions, progress: (any ProgressSink)?,
                            cancel: CancelFlag) throws -> PreparedSnapshot? {
        let id = String(layer.digest.hex.prefix(12))
        guard download, let client else {
            let source = ProgressSource(FileSource(try content.open(layer.digest)), id: id, total: layer.size,
                                        status: .extracting, sink: progress, cancel: cancel)
            let p = try snapshots.prepare(source, expectedDiffID: diffID, options: options)
            progress?.report(.layer(id: id, status: .complete, current: layer.size, total: layer.size))
            return p
        }
        let response = try client.blob(repository: repo, digest: layer.digest)
        if let length = response.contentLength, length != layer.size {
            response.discard()
            throw ImageError.invalidManifest("blob \(layer.digest): the registry sends \(length) bytes, the manifest announces \(layer.size)")
        }
        let counted = ProgressSource(ResponseSource(response, what: "\(client.domain): downloading blob \(layer.digest)"),
                                     id: id, total: layer.size, status: .downloading, sink: progress, cancel: cancel)
        let writer = try content.makeWriter(expected: layer.digest)
        let tee = TeeSource(counted) { try writer.write($0) }
        var prepared: PreparedSnapshot?
        if unpack {
            do {
                prepared = try snapshots.prepare(tee, expectedDiffID: diffID, options: options)
            } catch {
                // A damaged blob first shows as a broken gzip or tar stream: read
                // the rest, and the digest check names the blob. A blob that
                // checks out but does not unpack is the layer's own fault.
                if (try? tee.drain()) != nil {
                    _ = try writer.commit()
                    if case ImageError.digestMismatch = error { throw error }
                    throw ImageError.layer(layer.digest, "\(error)")
                }
                throw error
            }
        } else {
            try tee.drain()
        }
        guard counted.count == layer.size else {
            throw ImageError.invalidManifest("blob \(layer.digest) has \(counted.count) bytes, its manifest announces \(layer.size)")
        }
        _ = try writer.commit()
        progress?.report(.layer(id: id, status: .complete, current: layer.size, total: layer.size))
        return prepared
    }
}

/// Prepared snapshots by layer index, filled from several threads.
final class PreparedList: Sendable {
    private let slots: Mutex<[PreparedSnapshot?]>

    init(count: Int) { slots = Mutex(Array(repeating: nil, count: count)) }

    func set(_ i: Int, _ p: PreparedSnapshot) { slots.withLock { $0[i] = p } }

    func take(_ i: Int) -> PreparedSnapshot? {
        slots.withLock { s in
            defer { s[i] = nil }
            return s[i]
        }
    }
}

extension MediaType {
    /// The compression a layer's media type announces; nil when it does not say.
    static func compression(of mediaType: String) -> Compression? {
        if mediaType.hasSuffix("+gzip") || mediaType.hasSuffix(".tar.gzip") { return .gzip }
        if mediaType.hasSuffix("+zstd") { return .zstd }
        if mediaType.hasSuffix(".tar") { return Compression.none }
        return nil
    }
}
