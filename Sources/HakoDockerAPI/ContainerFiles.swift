#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import HakoEngine
import HakoImage
import HakoSystem

/// The endpoints over the engine's file and process operations: archive
/// (`docker cp`), changes, top, rename, prune and system/df.
extension DockerAPI {
    // MARK: archive

    func archive(_ ref: String, _ r: HTTPRequest, _ c: HTTPConnection) throws {
        guard let path = r.query("path"), !path.isEmpty else { throw APIError(400, "path is required") }
        switch r.method {
        case "HEAD", "GET":
            let stat: ContainerPathStat
            do { stat = try engine.pathStat(ref, path: path) } catch { throw DockerAPI.apiError(error) }
            let header = ("X-Docker-Container-Path-Stat", DockerAPI.pathStatHeader(stat))
            if r.method == "HEAD" { return c.respond(200, body: [], contentType: "application/x-tar", headers: [header]) }
            c.beginChunks(contentType: "application/x-tar", headers: [header])
            let sink = ChunkSink(c)
            do {
                _ = try engine.copyOut(ref, path: path, to: sink)
                try sink.finish()
            } catch {
                // The status is sent: a cut stream is all the client can learn.
                c.keepAlive = false
                return
            }
            c.endChunks()
        case "PUT":
            do {
                try engine.copyIn(ref, directory: path, from: DiskBoundSource(c.body(), root: engine.paths.root))
            } catch {
                throw DockerAPI.apiError(error)
            }
            c.respond(200, body: [], contentType: nil)
        default:
            throw APIError(405, "method \(r.method) not allowed on \(r.path)")
        }
    }

    /// Docker's X-Docker-Container-Path-Stat: base64 of {name, size, mode (Go's
    /// os.FileMode: type bits high, not st_mode's), mtime, linkTarget}.
    static func pathStatHeader(_ s: ContainerPathStat) -> String {
        var mode = s.mode & 0o777
        if s.mode & UInt32(S_ISUID) != 0 { mode |= 1 << 23 }
        if s.mode & UInt32(S_ISGID) != 0 { mode |= 1 << 22 }
        if s.mode & UInt32(S_ISVTX) != 0 { mode |= 1 << 20 }
        switch s.mode & UInt32(S_IFMT) {
        case UInt32(S_IFDIR): mode |= 1 << 31
        case UInt32(S_IFLNK): mode |= 1 << 27
        case UInt32(S_IFIFO): mode |= 1 << 25
        case UInt32(S_IFSOCK): mode |= 1 << 24
        case UInt32(S_IFBLK): mode |= 1 << 26
        case UInt32(S_IFCHR): mode |= (1 << 26) | (1 << 21)
        default: break
        }
        let j: JSON = .object([("name", .string(s.name)), ("size", .int(s.size)), ("mode", .uint(UInt64(mode))),
                               ("mtime", .string(s.modified.rfc3339)), ("linkTarget", .string(s.linkTarget))])
        return Data(j.serialized().utf8).base64EncodedString()
    }

    // MARK: changes, top, rename

    func changes(_ ref: String, _ c: HTTPConnection) throws {
        let d: [FileChange]
        do { d = try engine.diff(ref) } catch { throw DockerAPI.apiError(error) }
        c.respond(200, json: .array(d.map { .object([("Path", .string($0.path)), ("Kind", .int(Int64($0.kind.apiValue)))]) }))
    }

    /// ps_args as `hako top` takes them (docker's default: -ef).
    func top(_ ref: String, _ r: HTTPRequest, _ c: HTTPConnection) throws {
        let format: PsFormat
        do {
            format = try PsFormat.parse((r.query("ps_args") ?? "").split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init))
        } catch { throw APIError(500, "\(error)") }
        let ps: [ContainerProcess]
        do { ps = try engine.processes(ref) } catch { throw DockerAPI.apiError(error) }
        var f = format
        f.showHeader = false
        let rows = f.table(ps, now: Timestamp.now().secondsSince1970)
        c.respond(200, json: .object([("Titles", .array(format.columns.map { JSON.string($0.header) })),
                                      ("Processes", .array(rows.map { .array($0.map(JSON.string)) }))]))
    }

    func rename(_ ref: String, _ r: HTTPRequest, _ c: HTTPConnection) throws {
        guard let name = r.query("name"), !name.isEmpty else { throw APIError(400, "name is required") }
        do { try engine.renameContainer(ref, to: name) } catch { throw DockerAPI.apiError(error) }
        c.respond(204)
    }

    // MARK: prune and disk usage

    func containerPrune(_ r: HTTPRequest, _ c: HTTPConnection) throws {
        let f = try DockerAPI.filters(r)
        var filter = ContainerPruneFilter()
        for (key, values) in f {
            switch key {
            case "until":
                guard let v = values.last, let t = DockerAPI.timestamp(v) else { throw APIError(400, "invalid filter 'until'") }
                filter.until = t
            case "label": filter.labels = values.map(LabelMatch.init(parsing:))
            case "label!": filter.notLabels = values.map(LabelMatch.init(parsing:))
            default: throw APIError(400, "invalid filter '\(key)'")
            }
        }
        let report: PruneReport
        do { report = try engine.pruneContainers(filter) } catch { throw DockerAPI.apiError(error) }
        c.respond(200, json: .object([("ContainersDeleted", .array(report.containers.map(JSON.string))), ("SpaceReclaimed", .int(report.reclaimed))]))
    }

    func systemDF(_ c: HTTPConnection) throws {
        let usage: DiskUsage
        do { usage = try engine.diskUsage() } catch { throw DockerAPI.apiError(error) }
        let images: [JSON] = usage.images.map { u in
            .object([("Id", .string("sha256:" + u.image.id)), ("ParentId", .string("")),
                     ("RepoTags", .array(u.image.references.map { .string(familiar($0)) })),
                     ("RepoDigests", .array(u.image.repoDigests.map(JSON.string))), ("Created", .int(u.image.created?.seconds ?? 0)),
                     ("Size", .int(u.image.size)), ("SharedSize", .int(-1)), ("VirtualSize", .int(u.image.size)),
                     ("Labels", .object([])), ("Containers", .int(Int64(u.containers)))])
        }
        let containers: [JSON] = usage.containers.compactMap { u in
            guard let i = try? engine.inspect(u.container.id) else { return nil }
            return summary(u.container, i).adding([("SizeRw", .int(u.size)), ("SizeRootFs", .int(u.size))])
        }
        let volumes: [JSON] = usage.volumes.map { u in
            volumeJSON(u.volume).adding([("UsageData", .object([("Size", .int(u.size)), ("RefCount", .int(Int64(u.containers)))]))])
        }
        c.respond(200, json: .object([("LayersSize", .int(usage.images.reduce(0) { $0 + $1.image.size })), ("Images", .array(images)),
                                      ("Containers", .array(containers)), ("Volumes", .array(volumes)), ("BuildCache", .array([]))]))
    }

    /// Docker's times in queries: Unix seconds (with a fraction) or RFC 3339.
    static func timestamp(_ s: String) -> Timestamp? {
        if let t = Timestamp(rfc3339: s) { return t }
        let parts = s.split(separator: ".", maxSplits: 1)
        guard let whole = parts.first.flatMap({ Int64($0) }) else { return nil }
        var nanos: Int32 = 0
        if parts.count > 1 {
            let digits = String(parts[1].prefix(9))
            guard let n = Int32(digits) else { return nil }
            nanos = n * Int32(pow10(9 - digits.count))
        }
        return Timestamp(seconds: whole, nanoseconds: nanos)
    }

    static func pow10(_ n: Int) -> Int { (0..<n).reduce(1) { r, _ in r * 10 } }
}

/// The tar stream of an archive GET, one chunk per write.
final class ChunkSink: ByteSink {
    let connection: HTTPConnection
    init(_ c: HTTPConnection) { connection = c }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard connection.chunk(Array(bytes)) else { throw SystemError("send", errno: EPIPE) }
    }

    func finish() throws {}
}
