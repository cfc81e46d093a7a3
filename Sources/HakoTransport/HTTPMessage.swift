import HakoSystem

/// An http or https URL: scheme, host, port, and the request target (path and query).
public struct HTTPURL: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var secure: Bool
    /// A DNS name, an IPv4 address or a bracketed IPv6 address ("[::1]").
    public var host: String
    public var port: UInt16
    /// Path and query, starting with "/".
    public var target: String

    public init(secure: Bool, host: String, port: UInt16? = nil, target: String = "/") {
        self.secure = secure
        self.host = host
        self.port = port ?? (secure ? 443 : 80)
        self.target = target.hasPrefix("/") ? target : "/" + target
    }

    /// Parses "http://host[:port][/target]" or "https://…".
    public init(_ string: String) throws(TransportError) {
        let secure: Bool
        let rest: Substring
        if string.hasPrefix("https://") {
            secure = true
            rest = string.dropFirst(8)
        } else if string.hasPrefix("http://") {
            secure = false
            rest = string.dropFirst(7)
        } else {
            throw .invalidURL(string)
        }
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        var target = String(rest[authorityEnd...])
        if let hash = target.firstIndex(of: "#") { target = String(target[..<hash]) }
        if target.isEmpty || target.hasPrefix("?") { target = "/" + target }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }  // userinfo: ignored
        var host = String(authority)
        var port: UInt16?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .invalidURL(string) }
            host = String(authority[...close])
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = UInt16(after.dropFirst()) else { throw .invalidURL(string) }
                port = p
            }
        } else if let colon = authority.lastIndex(of: ":") {
            guard let p = UInt16(authority[authority.index(after: colon)...]) else { throw .invalidURL(string) }
            host = String(authority[..<colon])
            port = p
        }
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "\r" || $0 == "\n" }) else { throw .invalidURL(string) }
        guard !target.contains(where: { $0 == " " || $0 == "\r" || $0 == "\n" }) else { throw .invalidURL(string) }
        self.init(secure: secure, host: host.lowercased(), port: port, target: target)
    }

    /// "https://host:port": what a connection pool and credentials are keyed by.
    public var origin: String { (secure ? "https://" : "http://") + hostAndPort }
    public var hostAndPort: String { host + ":" + String(port) }
    /// The Host header: the port only when it is not the scheme's default.
    public var hostHeader: String { port == (secure ? 443 : 80) ? host : hostAndPort }
    public var description: String { (secure ? "https://" : "http://") + hostHeader + target }
    public var path: String { String(target.prefix { $0 != "?" }) }

    /// Resolves a Location header against this URL: absolute URLs, absolute
    /// paths ("/v2/…"), protocol-relative ("//host/…") and relative paths.
    public func resolving(_ location: String) throws(TransportError) -> HTTPURL {
        if location.hasPrefix("http://") || location.hasPrefix("https://") { return try HTTPURL(location) }
        if location.hasPrefix("//") { return try HTTPURL((secure ? "https:" : "http:") + location) }
        guard !location.contains(where: { $0 == " " || $0 == "\r" || $0 == "\n" }) else { throw .invalidURL(location) }
        var copy = self
        if location.hasPrefix("/") {
            copy.target = location
        } else if location.hasPrefix("?") {
            copy.target = path + location
        } else {
            let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
            copy.target = dir + "/" + location
        }
        return copy
    }

    /// Adds query parameters (percent-encoded).
    public func appendingQuery(_ items: [(String, String)]) -> HTTPURL {
        guard !items.isEmpty else { return self }
        var copy = self
        let encoded = items.map { HTTPURL.percentEncode($0.0) + "=" + HTTPURL.percentEncode($0.1) }.joined(separator: "&")
        copy.target += (target.contains("?") ? "&" : "?") + encoded
        return copy
    }

    /// RFC 3986 unreserved characters stay; everything else is %XX.
    public static func percentEncode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            let unreserved = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
                || b == 0x2d || b == 0x2e || b == 0x5f || b == 0x7e
            if unreserved {
                out.unicodeScalars.append(UnicodeScalar(b))
            } else {
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [hex[Int(b >> 4)], hex[Int(b & 15)]], as: UTF8.self)
            }
        }
        return out
    }
}

/// Header fields in order, looked up without regard to case.
public struct HTTPHeaders: Sendable, Equatable, Sequence {
    public private(set) var fields: [(name: String, value: String)] = []

    public init(_ fields: [(String, String)] = []) {
        for (n, v) in fields { add(n, v) }
    }

    public static func == (a: HTTPHeaders, b: HTTPHeaders) -> Bool {
        a.fields.count == b.fields.count && zip(a.fields, b.fields).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    public mutating func add(_ name: String, _ value: String) { fields.append((name, value)) }

    /// Replaces every field of that name.
    public mutating func set(_ name: String, _ value: String) {
        remove(name)
        add(name, value)
    }

    public mutating func remove(_ name: String) {
        let lower = name.lowercased()
        fields.removeAll { $0.name.lowercased() == lower }
    }

    public subscript(_ name: String) -> String? {
        let lower = name.lowercased()
        return fields.first { $0.name.lowercased() == lower }?.value
    }

    /// Every value of a field (WWW-Authenticate may come more than once).
    public func all(_ name: String) -> [String] {
        let lower = name.lowercased()
        return fields.filter { $0.name.lowercased() == lower }.map(\.value)
    }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> { fields.makeIterator() }
}

/// A request body: bytes in memory, or a range of an open file (streamed,
/// and replayable from the start when a reused connection turns out closed).
public enum HTTPBody: Sendable {
    case bytes([UInt8])
    /// `progress` is told the bytes sent so far, every MiB or so.
    case file(FileDescriptor, length: Int64, progress: (@Sendable (Int64) -> Void)? = nil)

    public var length: Int64 {
        switch self {
        case .bytes(let b): return Int64(b.count)
        case .file(_, let length, _): return length
        }
    }
}

public struct HTTPRequest: Sendable {
    public var method: String
    public var url: HTTPURL
    public var headers: HTTPHeaders
    public var body: HTTPBody?
    /// Follow 301/302/303/307/308 (GET and HEAD only).
    public var followRedirects: Bool

    public init(_ method: String, _ url: HTTPURL, headers: HTTPHeaders = HTTPHeaders(), body: HTTPBody? = nil,
                followRedirects: Bool = true) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.followRedirects = followRedirects
    }

    /// The request line and header block as sent.
    func head(userAgent: String) -> [UInt8] {
        var text = "\(method) \(url.target) HTTP/1.1\r\nHost: \(url.hostHeader)\r\n"
        if headers["User-Agent"] == nil { text += "User-Agent: \(userAgent)\r\n" }
        for (n, v) in headers.fields { text += "\(n): \(v)\r\n" }
        if let body {
            text += "Content-Length: \(body.length)\r\n"
        } else if method == "POST" || method == "PUT" || method == "PATCH" {
            text += "Content-Length: 0\r\n"
        }
        text += "\r\n"
        return Array(text.utf8)
    }
}
