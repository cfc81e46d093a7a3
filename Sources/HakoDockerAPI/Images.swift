#if canImport(Glibc)
import Glibc
#endif
import HakoEngine
import HakoImage
import HakoSystem
import Synchronization

extension DockerAPI {
    /// /images/…: names hold slashes (localhost:5000/team/app:1), so the action is the last part.
    func images(_ p: [String], _ r: HTTPRequest, _ c: HTTPConnection) throws {
        let m = r.method
        if p == ["json"] { try only(m, "GET", r); return try imageList(r, c) }
        if p == ["create"] { try only(m, "POST", r); return try imagePull(r, c) }
        if p == ["get"] { try only(m, "GET", r); return try imageSave(r.query["names"] ?? [], c) }
        if p == ["load"] { try only(m, "POST", r); return try imageLoad(r, c) }
        guard !p.isEmpty else { throw notFound(r) }
        if m == "DELETE" {
            let name = p.joined(separator: "/")
            let report: RemovalReport
            do { report = try engine.removeImage(name, force: r.flag("force")) } catch { throw DockerAPI.apiError(error) }
            let items = report.untagged.map { JSON.object([("Untagged", .string($0))]) } + report.deleted.map { JSON.object([("Deleted", .string($0.hasPrefix("sha256:") ? $0 : "sha256:" + $0))]) }
            return c.respond(200, json: .array(items))
        }
        guard p.count >= 2, let action = p.last else { throw notFound(r) }
        let name = p.dropLast().joined(separator: "/")
        switch action {
        case "json":
            try only(m, "GET", r)
            let i: ImageInspect
            do { i = try engine.images.inspect(name) } catch { throw DockerAPI.apiError(error) }
            var j = try DockerAPI.encode(i)
            j = j.adding([("Parent", .string("")), ("Container", .string("")), ("DockerVersion", .string("")),
                          ("VirtualSize", .int(i.Size)), ("GraphDriver", .object([("Name", .string("overlay")), ("Data", .null)])),
                          ("Metadata", .object([("LastTagTime", .string("0001-01-01T00:00:00Z"))]))])
            c.respond(200, json: j)
        case "get":
            try only(m, "GET", r)
            try imageSave([name], c)
        case "history":
            try only(m, "GET", r)
            let h: [HistoryEntry]
            do { h = try engine.images.history(name) } catch { throw DockerAPI.apiError(error) }
            c.respond(200, json: .array(h.map { e in
                .object([("Id", .string(e.id.isEmpty ? "<missing>" : e.id)), ("Created", .int(e.created.flatMap { Timestamp(rfc3339: $0) }?.seconds ?? 0)),
                         ("CreatedBy", .string(e.createdBy)), ("Tags", .null), ("Size", .int(e.size)), ("Comment", .string(e.comment))])
            }))
        case "tag":
            try only(m, "POST", r)
            guard let repo = r.query("repo"), !repo.isEmpty else { throw APIError(400, "repository name must have at least one component") }
            let tag = r.query("tag").flatMap { $0.isEmpty ? nil : $0 } ?? "latest"
            do { try engine.images.tag(name, "\(repo):\(tag)") } catch { throw DockerAPI.apiError(error) }
            c.respond(201, body: [], contentType: nil)
        case "push":
            try only(m, "POST", r)
            var ref = name
            if let tag = r.query("tag"), !tag.isEmpty { ref += ":" + tag }
            let sink = ProgressStream(c)
            c.beginChunks()
            do {
                let digest = try engine.push(ref, progress: sink)
                sink.send(.object([("status", .string("\(r.query("tag") ?? "latest"): digest: \(digest.string)"))]))
            } catch {
                sink.send(.object([("errorDetail", .object([("message", .string("\(error)"))])), ("error", .string("\(error)"))]))
            }
            c.endChunks()
        default:
            throw notFound(r)
        }
    }

    func imageList(_ r: HTTPRequest, _ c: HTTPConnection) throws {
        let filters = try DockerAPI.filters(r)
        var out: [JSON] = []
        for image in try engine.images.list() where !image.isHost {
            if let refs = filters["reference"], !refs.isEmpty, !refs.contains(where: { f in image.references.contains { $0 == f || $0.hasPrefix(f + ":") || familiar($0) == f || familiar($0).hasPrefix(f + ":") } }) { continue }
            if let labels = filters["label"], !labels.allSatisfy({ l in
                let kv = l.split(separator: "=", maxSplits: 1).map(String.init)
                return kv.count == 2 ? image.config.labels?[kv[0]] == kv[1] : image.config.labels?[kv[0]] != nil
            }) { continue }
            if let d = filters["dangling"]?.first, (d == "true") != image.references.isEmpty { continue }
            out.append(.object([
                ("Id", .string("sha256:" + image.id)), ("ParentId", .string("")),
                ("RepoTags", .array(image.references.map { .string(familiar($0)) })),
                ("RepoDigests", .array(image.repoDigests.map(JSON.string))), ("Created", .int(image.created?.seconds ?? 0)),
                ("Size", .int(image.size)), ("VirtualSize", .int(image.size)), ("SharedSize", .int(-1)),
                ("Labels", .object((image.config.labels ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
                ("Containers", .int(-1)),
            ]))
        }
        c.respond(200, json: .array(out))
    }

    /// "docker.io/library/busybox:latest" → "busybox:latest", as Docker shows names.
    func familiar(_ ref: String) -> String {
        (try? ImageReference(parsing: ref))?.familiarString ?? ref
    }

    /// `POST /images/create?fromImage=…&tag=…`: a pull, its progress as Docker's JSON stream.
    func imagePull(_ r: HTTPRequest, _ c: HTTPConnection) throws {
        guard let from = r.query("fromImage"), !from.isEmpty else {
            if r.query("fromSrc") != nil { throw APIError(400, "importing with fromSrc is not supported by hako; use hako import") }
            throw APIError(400, "fromImage is required")
        }
        var ref = from
        if let tag = r.query("tag"), !tag.isEmpty { ref += (tag.hasPrefix("sha256:") ? "@" : ":") + tag }
        let platform = r.query("platform").flatMap { $0.isEmpty ? nil : $0 }
        let sink = ProgressStream(c)
        c.beginChunks()
        // Docker's last line: "Downloaded newer image" when the name now points at another (or a first) image.
        let before = (try? engine.images.find(ref))?.id
        do {
            let result = try engine.pull(ref, platform: platform, progress: sink)
            let shown = (try? ImageReference(parsing: ref).withDefaultTag())?.familiarString ?? ref
            sink.send(.object([("status", .string("Digest: \(result.digest.string)"))]))
            sink.send(.object([("status", .string(before != result.image.id ? "Status: Downloaded newer image for \(shown)" : "Status: Image is up to date for \(shown)"))]))
        } catch {
            let text = "\(error)"
            sink.send(.object([("errorDetail", .object([("message", .string(text))])), ("error", .string(text))]))
        }
        c.endChunks()
    }
}

/// Pull and push progress as Docker's JSON messages, one chunk each.
final class ProgressStream: ProgressSink, @unchecked Sendable {
    private let connection: HTTPConnection
    private let lock = Mutex(())

    init(_ c: HTTPConnection) { connection = c }

    func send(_ j: JSON) {
        lock.withLock { _ in _ = connection.chunk(Array((j.serialized() + "\r\n").utf8)) }
    }

    func report(_ event: ProgressEvent) {
        switch event {
        case .status(let s):
            send(.object([("status", .string(s))]))
        case .layer(let id, let status, let current, let total):
            var j: [(String, JSON)] = [("status", .string(status.rawValue))]
            if status == .downloading || status == .extracting || status == .pushing {
                j.append(("progressDetail", .object([("current", .int(current)), ("total", .int(total))])))
            } else {
                j.append(("progressDetail", .object([])))
            }
            j.append(("id", .string(id)))
            send(.object(j))
        }
    }
}
