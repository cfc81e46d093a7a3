import HakoSystem
import HakoTransport

extension ImageStore {
    /// `hako push NAME[:TAG]`: uploads the image stored under that name to the
    /// registry the name points at. Blobs the registry already has are not
    /// sent again; the manifest is pushed as stored, so its digest is kept.
    /// Returns the manifest digest.
    @discardableResult
    public func push(_ reference: String, registry: RegistryOptions, progress: (any ProgressSink)? = nil) throws -> Digest {
        let image = try resolve(reference)
        return try atBoundary("cannot push \(reference)") {
            let ref = try ImageStore.taggableReference(reference)
            guard !image.isHost else { throw ImageError.notAllowed("the built-in host image cannot be pushed") }
            guard let manifestDigest = image.manifestDigest else { throw ImageError.noSuchImage(reference) }
            let manifestBytes = try content.read(manifestDigest)
            let mediaType = try RegistryClient.classify(manifestBytes, contentType: "", shown: ref.familiarString)
            let manifest = try CanonicalJSON.decode(OCIManifest.self, manifestBytes, what: "manifest \(manifestDigest)")
            let client = RegistryClient(domain: ref.domain, options: registry)
            let repo = ref.path
            progress?.report(.status("The push refers to repository [\(ref.name)]"))

            let blobs = manifest.layers + [manifest.config]
            for blob in blobs where !content.contains(blob.digest) {
                throw ImageError.corrupt("image \(image.shortID): blob \(blob.digest) is missing from the content store")
            }
            let store = self
            try Parallel.forEach(blobs.count, width: registry.parallelDownloads) { i, _ in
                let blob = blobs[i]
                let id = String(blob.digest.hex.prefix(12))
                if try client.blobExists(repository: repo, digest: blob.digest) {
                    progress?.report(.layer(id: id, status: .layerExists, current: blob.size, total: blob.size))
                    return
                }
                progress?.report(.layer(id: id, status: .preparing, current: 0, total: blob.size))
                let fd = try store.content.open(blob.digest)
                let size = try store.content.size(of: blob.digest)
                try client.uploadBlob(repository: repo, digest: blob.digest, file: fd, size: size) { sent in
                    progress?.report(.layer(id: id, status: .pushing, current: sent, total: size))
                }
                progress?.report(.layer(id: id, status: .pushed, current: size, total: size))
            }
            try client.putManifest(repository: repo, reference: ref.tag ?? ImageReference.defaultTag,
                                   bytes: manifestBytes, mediaType: mediaType)
            try updateIndex { index in
                guard var record = index.images[image.id] else { return }
                var digests = (record.repoDigests ?? []).filter { !$0.hasPrefix(ref.name + "@") }
                digests.append(ref.name + "@" + manifestDigest.string)
                record.repoDigests = digests.sorted()
                index.images[image.id] = record
            }
            progress?.report(.status("\(ref.tag ?? ImageReference.defaultTag): digest: \(manifestDigest) size: \(manifestBytes.count)"))
            return manifestDigest
        }
    }

    /// `hako login`: checks the credentials against the registry, then stores them.
    public func login(registry domain: String, credential: CredentialStore.Credential, options: RegistryOptions) throws(HakoError) {
        try atBoundary("cannot log in to \(domain)") {
            guard let store = options.credentials else { throw ImageError.notAllowed("no credentials file is configured") }
            try RegistryClient(domain: domain, options: options).login(credential)
            try store.store(credential, for: domain)
        }
    }
}
