import FoundationEssentials
import HakoSystem
import HakoTransport

/// A manifest or index as a registry served it, its digest checked.
public struct FetchedManifest: Sendable, Equatable {
    public var bytes: [UInt8]
    public var mediaType: String
    public var digest: Digest
}

extension RegistryClient {
    /// Largest manifest accepted (the distribution spec's limit).
    static let maxManifestSize = 4 << 20

    static var acceptHeader: String { MediaType.acceptedManifests.joined(separator: ", ") }

    /// The digest a tag or digest resolves to (HEAD), when the registry says.
    public func manifestDigest(repository: String, reference: String) throws -> Digest? {
        var headers = HTTPHeaders()
        headers.set("Accept", RegistryClient.acceptHeader)
        let what = "resolving \(repository):\(reference)"
        let r = try send("HEAD", "/v2/\(repository)/manifests/\(reference)", repository: repository, headers: headers, what: what)
        defer { r.discard() }
        if r.status == 404 { throw ImageError.registry("\(domain): \(repository):\(reference): manifest unknown") }
        guard r.status == 200 else { return nil }
        return r.headers["Docker-Content-Digest"].flatMap { try? Digest($0) }
    }

    /// Fetches a manifest or index by tag or digest. The digest is checked:
    /// against the reference when it is one, else against the registry's
    /// `Docker-Content-Digest` header when it sends one.
    public func manifest(repository: String, reference: String) throws -> FetchedManifest {
        var headers = HTTPHeaders()
        headers.set("Accept", RegistryClient.acceptHeader)
        let shown = reference.hasPrefix("sha256:") ? "\(repository)@\(reference)" : "\(repository):\(reference)"
        let what = "fetching manifest \(shown)"
        let r = try send("GET", "/v2/\(repository)/manifests/\(reference)", repository: repository, headers: headers, what: what)
        if r.status == 404 { r.discard(); throw ImageError.registry("\(domain): \(shown): manifest unknown (no such image or tag)") }
        guard r.status == 200 else { throw statusError(r, what) }
        let bytes: [UInt8]
        do { bytes = try r.readAll(limit: RegistryClient.maxManifestSize) } catch {
            throw ImageError.registry("\(domain): \(what): \(error)")
        }
        let digest = try Digest.sha256(of: bytes)
        if reference.hasPrefix("sha256:") {
            let expected = try Digest(reference)
            guard expected == digest else {
                throw ImageError.digestMismatch(blob: "manifest \(shown)", expected: expected, actual: digest)
            }
        } else if let header = r.headers["Docker-Content-Digest"], let announced = try? Digest(header), announced != digest {
            throw ImageError.digestMismatch(blob: "manifest \(shown)", expected: announced, actual: digest)
        }
        let contentType = r.headers["Content-Type"].map { String($0.split(separator: ";")[0]).trimmed } ?? ""
        let mediaType = try RegistryClient.classify(bytes, contentType: contentType, shown: shown)
        return FetchedManifest(bytes: bytes, mediaType: mediaType, digest: digest)
    }

    /// What kind of manifest `bytes` is; an error for anything hako cannot use.
    static func classify(_ bytes: [UInt8], contentType: String, shown: String) throws -> String {
        let probe = try CanonicalJSON.decode(ManifestProbe.self, bytes, what: "manifest \(shown)", as: ImageError.invalidManifest)
        let kind = MediaType.acceptedManifests.contains(contentType) ? contentType : (probe.kind ?? contentType)
        if kind == MediaType.dockerSchema1 || kind == MediaType.dockerSchema1Signed || probe.schemaVersion == 1 {
            throw ImageError.invalidManifest("manifest \(shown) is Docker schema 1, which hako does not support (push it again with a current client)")
        }
        guard MediaType.isIndex(kind) || MediaType.isManifest(kind) else {
            throw ImageError.invalidManifest("manifest \(shown) has the unsupported media type \"\(kind)\"")
        }
        guard probe.schemaVersion == 2 else {
            throw ImageError.invalidManifest("manifest \(shown) has schemaVersion \(probe.schemaVersion.map(String.init) ?? "missing"), expected 2")
        }
        if MediaType.isIndex(kind) {
            guard probe.manifests != nil else { throw ImageError.invalidManifest("index \(shown) has no \"manifests\" list") }
        } else {
            guard probe.config != nil, probe.layers != nil else {
                throw ImageError.invalidManifest("manifest \(shown) lacks \"config\" or \"layers\"")
            }
        }
        return kind
    }

    /// Starts downloading a blob (redirects followed); the caller reads and verifies the body.
    public func blob(repository: String, digest: Digest) throws -> HTTPResponse {
        let what = "fetching blob \(digest)"
        let r = try send("GET", "/v2/\(repository)/blobs/\(digest)", repository: repository, what: what)
        if r.status == 404 { r.discard(); throw ImageError.registry("\(domain): \(repository): blob \(digest) unknown") }
        guard r.status == 200 else { throw statusError(r, what) }
        return r
    }

    /// A small blob whole (an image config), its digest checked.
    public func smallBlob(repository: String, digest: Digest, limit: Int = 16 << 20) throws -> [UInt8] {
        let r = try blob(repository: repository, digest: digest)
        let bytes: [UInt8]
        do { bytes = try r.readAll(limit: limit) } catch { throw ImageError.registry("\(domain): fetching blob \(digest): \(error)") }
        let actual = try Digest.sha256(of: bytes)
        guard actual == digest else { throw ImageError.digestMismatch(blob: digest.string, expected: digest, actual: actual) }
        return bytes
    }

    /// Whether the registry has a blob in this repository.
    public func blobExists(repository: String, digest: Digest) throws -> Bool {
        let r = try send("HEAD", "/v2/\(repository)/blobs/\(digest)", repository: repository, actions: "pull,push",
                         what: "checking blob \(digest)")
        defer { r.discard() }
        switch r.status {
        case 200: return true
        case 404: return false
        default: throw statusError(r, "checking blob \(digest)")
        }
    }

    /// Uploads a blob in one PUT (POST for a location, then PUT with the digest),
    /// streamed from an open file.
    public func uploadBlob(repository: String, digest: Digest, file: FileDescriptor, size: Int64,
                           progress: (@Sendable (Int64) -> Void)? = nil) throws {
        let what = "uploading blob \(digest)"
        let start = try send("POST", "/v2/\(repository)/blobs/uploads/", repository: repository, actions: "pull,push",
                             body: .bytes([]), what: what)
        guard start.status == 202, let location = start.headers["Location"] else { throw statusError(start, what) }
        start.discard()
        let base = try resolveUploadLocation(location)
        let target = base.appendingQuery([("digest", digest.string)])
        var headers = HTTPHeaders()
        headers.set("Content-Type", "application/octet-stream")
        let put = try send("PUT", target.description, repository: repository, actions: "pull,push", headers: headers,
                           body: .file(file, length: size, progress: progress), what: what)
        defer { put.discard() }
        guard put.status == 201 || put.status == 204 else { throw statusError(put, what) }
    }

    /// An upload Location header as an absolute URL (registries may send a path).
    private func resolveUploadLocation(_ location: String) throws -> HTTPURL {
        if location.hasPrefix("http://") || location.hasPrefix("https://") { return try HTTPURL(location) }
        let probe = try url("/v2/", secure: usesHTTPS)
        return try probe.resolving(location)
    }

    /// Stores a manifest under a tag (or its digest).
    public func putManifest(repository: String, reference: String, bytes: [UInt8], mediaType: String) throws {
        var headers = HTTPHeaders()
        headers.set("Content-Type", mediaType)
        let what = "pushing manifest \(repository):\(reference)"
        let r = try send("PUT", "/v2/\(repository)/manifests/\(reference)", repository: repository, actions: "pull,push",
                         headers: headers, body: .bytes(bytes), what: what)
        defer { r.discard() }
        guard r.status == 201 || r.status == 200 || r.status == 202 else { throw statusError(r, what) }
    }
}
