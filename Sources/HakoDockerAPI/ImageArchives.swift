#if canImport(Glibc)
import Glibc
#endif
import HakoEngine
import HakoImage
import HakoSystem

/// The endpoints that move whole archives: save (`images/get`), load,
/// commit and export. Archives stream both ways; none is held in memory.
extension DockerAPI {
    /// Requests whose body is streamed to the engine rather than read whole
    /// first: an archive PUT (`docker cp` into a container) and an image load.
    public static let streamsBody: @Sendable (HTTPRequest) -> Bool = { r in
        (r.method == "PUT" && r.path.hasSuffix("/archive")) || (r.method == "POST" && r.path.hasSuffix("/images/load"))
    }

    /// `GET /images/get?names=…` and `GET /images/{name}/get`: a docker-archive.
    func imageSave(_ names: [String], _ c: HTTPConnection) throws {
        guard !names.isEmpty else { throw APIError(400, "no image names given (names=)") }
        for n in names {
            do { _ = try engine.images.resolve(n) } catch { throw DockerAPI.apiError(error) }
        }
        let sink = TarResponse(c)
        do {
            try engine.images.save(names, format: .dockerArchive, to: sink)
        } catch {
            guard sink.started else { throw DockerAPI.apiError(error) }
            c.keepAlive = false  // the status is sent: a cut stream is all the client can learn
            return
        }
        sink.end()
    }

    /// `POST /images/load`: the archive in the body, unpacked as it arrives;
    /// Docker's JSON messages name what was loaded.
    func imageLoad(_ r: HTTPRequest, _ c: HTTPConnection) throws {
        let loaded: [LoadedImage]
        do {
            loaded = try engine.load(from: DiskBoundSource(c.body(), root: engine.paths.root), what: "the uploaded archive")
        } catch {
            throw DockerAPI.apiError(error)
        }
        c.beginChunks()
        for image in loaded {
            let lines = image.names.isEmpty ? ["Loaded image ID: sha256:\(image.id)"] : image.names.map { "Loaded image: \(familiar($0))" }
            for line in lines { c.chunk(Array((JSON.object([("stream", .string(line + "\n"))]).serialized() + "\r\n").utf8)) }
        }
        c.endChunks()
    }

    /// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`.
    func commit(_ r: HTTPRequest, _ c: HTTPConnection) throws {
        guard let ref = r.query("container"), !ref.isEmpty else { throw APIError(400, "container is required") }
        // docker commit sends no Config (its --change lines come as `changes`); one with fields is not applied.
        if let members = try DockerAPI.body(r).members, !members.isEmpty {
            throw APIError(400, "a Config body on commit is not supported by hako: give the changes as Dockerfile lines (changes=)")
        }
        var reference: String?
        if let repo = r.query("repo"), !repo.isEmpty {
            let tag = r.query("tag").flatMap { $0.isEmpty ? nil : $0 } ?? "latest"
            reference = repo + ":" + tag
        }
        // Each `changes` value may hold several lines (the CLI joins --change flags with newlines).
        let changes = (r.query["changes"] ?? []).flatMap { $0.split(separator: "\n").map(String.init) }.filter { !$0.trimmed.isEmpty }
        let image: Image
        do {
            image = try engine.commit(ref, reference: reference, changes: changes,
                                      author: r.query("author").flatMap { $0.isEmpty ? nil : $0 },
                                      message: r.query("comment").flatMap { $0.isEmpty ? nil : $0 },
                                      pause: r.flag("pause", default: true))
        } catch {
            throw DockerAPI.apiError(error)
        }
        c.respond(201, json: .object([("Id", .string("sha256:" + image.id))]))
    }

    /// `GET /containers/{id}/export`: the container's file system as a tar stream.
    func export(_ ref: String, _ c: HTTPConnection) throws {
        let sink = TarResponse(c)
        do {
            try engine.export(ref, to: sink)
        } catch {
            guard sink.started else { throw DockerAPI.apiError(error) }
            c.keepAlive = false
            return
        }
        sink.end()
    }
}

/// A tar stream as a chunked `application/x-tar` response, begun at the first
/// byte: an error before it is still an ordinary error response.
final class TarResponse: ByteSink {
    let connection: HTTPConnection
    private(set) var started = false
    init(_ c: HTTPConnection) { connection = c }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        if !started {
            started = true
            connection.beginChunks(contentType: "application/x-tar")
        }
        guard connection.chunk(Array(bytes)) else { throw SystemError("send", errno: EPIPE) }
    }

    func finish() throws {}

    func end() {
        if !started {
            started = true
            connection.beginChunks(contentType: "application/x-tar")
        }
        connection.endChunks()
    }
}

/// A streamed request body that stops when the file system of the data root
/// (where an archive PUT and a load write) would keep less than its reserve
/// free: the bound on disk of an upload, checked every 8 MiB.
final class DiskBoundSource: ByteSource {
    let body: any ByteSource
    let root: String
    private var sinceCheck = Int.max
    static let checkEvery = 8 << 20

    init(_ body: any ByteSource, root: String) {
        self.body = body
        self.root = root
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if sinceCheck >= DiskBoundSource.checkEvery {
            sinceCheck = 0
            try check()
        }
        let n = try body.read(into: buffer)
        sinceCheck += n
        return n
    }

    /// The reserve: 5% of the file system, at most 1 GiB.
    func check() throws {
        var st = statvfs()
        guard statvfs(root, &st) == 0 else { return }
        let size = UInt64(st.f_blocks) * UInt64(st.f_frsize)
        let free = UInt64(st.f_bavail) * UInt64(st.f_frsize)
        let reserve = min(size / 20, 1 << 30)
        if free < reserve + UInt64(DiskBoundSource.checkEvery) {
            throw APIError(507, "not enough space for the upload: the file system of \(root) has \(ByteSize.format(Int64(free))) free, and keeps \(ByteSize.format(Int64(reserve))) in reserve")
        }
    }
}
