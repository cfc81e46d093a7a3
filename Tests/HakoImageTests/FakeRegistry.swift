import Foundation
import HakoSystem
import HakoTestSupport
@testable import HakoImage

/// An in-process registry (distribution API v2) on loopback for tests:
/// bearer-token auth from a challenge, blobs served through a redirect,
/// uploads, and knobs to misbehave (tampered blobs, cut transfers).
final class FakeRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var blobs: [String: [UInt8]] = [:]
    /// repository:reference → (bytes, media type)
    private var manifests: [String: ([UInt8], String)] = [:]
    private var uploads: [String: [UInt8]] = [:]
    /// Blob digests whose content is served altered.
    var tampered: Set<String> = []
    /// Blob digests whose transfer stops half-way.
    var cut: Set<String> = []
    /// Send Docker-Content-Digest headers that do not match.
    var lyingDigestHeader = false
    /// Users accepted (basic auth at the token endpoint); nil: anonymous tokens for all.
    var users: [String: String]?
    private(set) var server: TestHTTPServer!

    init() throws {
        server = try TestHTTPServer { [unowned self] r in self.handle(r) }
    }

    var domain: String { server.hostPort }

    func addBlob(_ bytes: [UInt8]) -> Digest {
        let d = try! Digest.sha256(of: bytes)
        lock.withLock { blobs[d.string] = bytes }
        return d
    }

    func setManifest(_ repo: String, _ reference: String, _ bytes: [UInt8], _ mediaType: String) {
        lock.withLock {
            manifests[repo + ":" + reference] = (bytes, mediaType)
            manifests[repo + ":" + (try! Digest.sha256(of: bytes)).string] = (bytes, mediaType)
        }
    }

    func hasBlob(_ d: Digest) -> Bool { lock.withLock { blobs[d.string] != nil } }
    func manifest(_ repo: String, _ reference: String) -> [UInt8]? { lock.withLock { manifests[repo + ":" + reference]?.0 } }

    /// Blob GETs (the redirected storage requests) seen so far.
    var blobDownloads: Int { server.requests.filter { $0.path.hasPrefix("/storage/") }.count }

    private func handle(_ r: TestHTTPServer.Request) -> TestHTTPServer.Reply {
        if r.path == "/token" {
            if let users {
                guard let auth = r.headers["authorization"], auth.hasPrefix("Basic "),
                      let raw = Data(base64Encoded: String(auth.dropFirst(6))),
                      let text = String(data: raw, encoding: .utf8), let colon = text.firstIndex(of: ":"),
                      users[String(text[..<colon])] == String(text[text.index(after: colon)...]) else {
                    return .response(401, body: Array(#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#.utf8))
                }
            }
            let scope = r.query["scope"] ?? ""
            return .response(200, headers: [("Content-Type", "application/json")], body: Array(#"{"token":"tok \#(scope)"}"#.utf8))
        }
        if r.path.hasPrefix("/storage/") {
            let d = String(r.path.dropFirst("/storage/".count))
            guard var bytes = lock.withLock({ blobs[d] }) else { return .response(404) }
            if tampered.contains(d) { bytes[bytes.count / 2] ^= 0xff }
            if cut.contains(d) { return .truncated(200, length: bytes.count, body: Array(bytes.prefix(bytes.count / 2))) }
            return .response(200, body: bytes)
        }
        guard r.path.hasPrefix("/v2/") else { return .response(404) }
        // Every API path wants a token for its repository.
        let parts = r.path.dropFirst(4).split(separator: "/").map(String.init)
        let repoEnd = parts.firstIndex { ["manifests", "blobs"].contains($0) } ?? parts.count
        let repo = parts[0..<repoEnd].joined(separator: "/")
        let action = ["PUT", "POST", "PATCH"].contains(r.method) ? "push,pull" : "pull"
        let wanted = repo.isEmpty ? "" : "repository:\(repo):"
        guard let auth = r.headers["authorization"], auth.hasPrefix("Bearer tok "), auth.contains(wanted),
              !(action != "pull" && !auth.contains("push")) else {
            let scope = repo.isEmpty ? "" : #",scope="repository:\#(repo):\#(action)""#
            return .response(401, headers: [("WWW-Authenticate", #"Bearer realm="\#(server.base)/token",service="fake"\#(scope)"#)],
                             body: Array(#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.utf8))
        }
        if repo.isEmpty { return .response(200, body: Array("{}".utf8)) }
        let kind = parts.count > repoEnd ? parts[repoEnd] : ""
        let rest = parts.dropFirst(repoEnd + 1).joined(separator: "/")
        switch (r.method, kind) {
        case ("GET", "manifests"), ("HEAD", "manifests"):
            guard let (bytes, type) = lock.withLock({ manifests[repo + ":" + rest] }) else {
                return .response(404, body: Array(#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#.utf8))
            }
            let digest = lyingDigestHeader ? "sha256:" + String(repeating: "0", count: 64) : (try! Digest.sha256(of: bytes)).string
            return .response(200, headers: [("Content-Type", type), ("Docker-Content-Digest", digest)], body: bytes)
        case ("GET", "blobs"), ("HEAD", "blobs"):
            guard let bytes = lock.withLock({ blobs[rest] }) else { return .response(404) }
            if r.method == "HEAD" { return .response(200, headers: [("Content-Length", "\(bytes.count)")]) }
            return .response(307, headers: [("Location", "\(server.base)/storage/\(rest)")])
        case ("POST", "blobs"):
            let id = UUID().uuidString
            lock.withLock { uploads[id] = [] }
            return .response(202, headers: [("Location", "/v2/\(repo)/blobs/uploads/\(id)")])
        case ("PUT", "blobs"):
            let id = String(rest.dropFirst("uploads/".count))
            guard lock.withLock({ uploads[id] }) != nil, let digest = r.query["digest"],
                  (try? Digest.sha256(of: r.body))?.string == digest else { return .response(400) }
            lock.withLock { blobs[digest] = r.body; uploads[id] = nil }
            return .response(201, headers: [("Docker-Content-Digest", digest)])
        case ("PUT", "manifests"):
            setManifest(repo, rest, r.body, r.headers["content-type"] ?? "")
            return .response(201)
        default:
            return .response(405)
        }
    }
}

/// An image built in memory: gzip layers, config and manifest.
struct FakeImage {
    var layers: [[UInt8]] = []
    var diffIDs: [Digest] = []
    var config: [UInt8] = []
    var manifest: [UInt8] = []
    var manifestDigest: Digest { try! Digest.sha256(of: manifest) }
    var configDigest: Digest { try! Digest.sha256(of: config) }

    /// One layer per dictionary (path → content), lowest first.
    init(layers files: [[String: String]], architecture: String = Platform.architecture, variant: String? = nil,
         dockerTypes: Bool = false, cmd: [String] = ["/bin/sh"]) throws {
        var descriptors: [OCIDescriptor] = []
        for layer in files {
            var b = TarBuilder()
            for (path, text) in layer.sorted(by: { $0.key < $1.key }) { b.file(path, text) }
            let tar = b.archive
            diffIDs.append(try Digest.sha256(of: tar))
            let out = try CollectSink()
            let gz = try GzipSink(out)
            try gz.write(tar)
            try gz.finish()
            layers.append(out.bytes)
            descriptors.append(OCIDescriptor(mediaType: dockerTypes ? MediaType.dockerLayerGzip : MediaType.layerGzip,
                                             digest: try Digest.sha256(of: out.bytes), size: Int64(out.bytes.count)))
        }
        let image = OCIImage(created: "2024-01-02T03:04:05Z", architecture: architecture, os: "linux", variant: variant,
                             config: ImageConfig(env: ["PATH=/bin"], cmd: cmd), diffIDs: diffIDs,
                             history: [OCIImage.History(created: "2024-01-02T03:04:05Z", createdBy: "test")])
        config = try CanonicalJSON.encode(image)
        var m = OCIManifest(config: OCIDescriptor(mediaType: dockerTypes ? MediaType.dockerConfig : MediaType.config,
                                                  digest: try Digest.sha256(of: config), size: Int64(config.count)),
                            layers: descriptors)
        if dockerTypes { m.mediaType = MediaType.dockerManifest }
        manifest = try CanonicalJSON.encode(m)
    }

    var manifestType: String {
        (try? JSONDecoder().decode(ManifestProbe.self, from: Data(manifest)))?.kind ?? MediaType.manifest
    }

    /// Stores the image's blobs in the registry and its manifest under `tag`.
    func publish(_ reg: FakeRegistry, _ repo: String, tag: String?) {
        for l in layers { _ = reg.addBlob(l) }
        _ = reg.addBlob(config)
        reg.setManifest(repo, tag ?? manifestDigest.string, manifest, manifestType)
    }
}

