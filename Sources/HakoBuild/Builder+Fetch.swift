#if canImport(Glibc)
import Glibc
#endif
import HakoSystem
import HakoTransport

extension Builder {
    /// ADD of a URL: the file fetched over HTTP(S) with hako's own transport
    /// (certificates verified against the system's CAs) into `dir`, named by
    /// the URL's last path component, mode 0600 as Docker makes it.
    func fetch(_ url: String, into dir: String, file: Dockerfile, i: Instruction) throws -> Source {
        let parsed: HTTPURL
        do { parsed = try HTTPURL(url) } catch { throw bad(file, i, "invalid URL \(url): \(error)") }
        let name = parsed.path.split(separator: "/").last.map(String.init) ?? ""
        guard !name.isEmpty, name != ".", name != ".." else {
            throw fail(file, i, "cannot determine a file name from the URL \(url); give the destination's file name")
        }
        let client = HTTPClient(HTTPClient.Options(connectTimeout: 30, ioTimeout: 60))
        defer { client.closeIdle() }
        let response: HTTPResponse
        do { response = try client.send(HTTPRequest("GET", parsed)) } catch {
            throw fail(file, i, "cannot fetch \(url): \(error)")
        }
        guard response.status == 200 else {
            response.discard()
            throw fail(file, i, "cannot fetch \(url): the server answered \(response.status) \(response.reason)")
        }
        let path = dir + "/" + name
        let out = try FileDescriptor(sys("open", path) { open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600) })
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            try checkInterrupt()
            let n: Int
            do { n = try buf.withUnsafeMutableBytes { try response.read(into: $0) } } catch {
                throw fail(file, i, "cannot fetch \(url): \(error)")
            }
            if n == 0 { break }
            var off = 0
            while off < n {
                let w = buf.withUnsafeBytes { write(out.rawValue, $0.baseAddress.map { $0 + off }, n - off) }
                if w < 0 { if errno == EINTR { continue }; throw SystemError("write", path) }
                off += w
            }
        }
        var st = stat()
        try sys("stat", path) { lstat(path, &st) }
        return Source(components: [name], entry: LayeredRoot.Entry(hostPath: path, st: st))
    }
}
