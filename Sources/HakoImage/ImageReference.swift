/// An image reference, parsed and normalised the way Docker does:
/// `busybox` → `docker.io/library/busybox:latest`,
/// `me/app:1` → `docker.io/me/app:1`, `localhost:5000/app` stays on its registry.
///
/// Grammar (distribution/reference):
///
///     reference  := name [ ":" tag ] [ "@" digest ]
///     name       := [domain "/"] path-component ["/" path-component]*
///     domain     := host [":" port]          host: DNS labels, or [IPv6]
///     path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
///     tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
///
/// The first component is a domain only when it holds "." or ":", is
/// "localhost", or has uppercase letters; otherwise the name is on Docker Hub.
public struct ImageReference: Hashable, Sendable, CustomStringConvertible {
    public static let defaultDomain = "docker.io"
    public static let defaultTag = "latest"

    /// Registry host (and port): "docker.io", "localhost:5000".
    public let domain: String
    /// Repository path on the registry: "library/busybox".
    public let path: String
    public let tag: String?
    public let digest: Digest?

    /// Parses and normalises `string`; a bare name gets no tag here (see `withDefaultTag`).
    public init(parsing string: String) throws(ImageError) {
        func bad(_ reason: String) -> ImageError { .invalidReference(string, reason: reason) }
        guard !string.isEmpty else { throw bad("empty reference") }
        if Digest.isSHA256Hex(string) {
            throw bad("a 64-character hexadecimal string is an image ID, not a repository name")
        }
        var rest = Substring(string)
        var digest: Digest?
        if let at = rest.firstIndex(of: "@") {
            let text = String(rest[rest.index(after: at)...])
            do { digest = try Digest(text) } catch { throw bad("invalid digest \"\(text)\"") }
            rest = rest[..<at]
        }
        var tag: String?
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            let t = String(rest[rest.index(after: colon)...])
            guard ImageReference.isValidTag(t) else { throw bad("invalid tag \"\(t)\"") }
            tag = t
            rest = rest[..<colon]
        }
        let name = String(rest)
        guard !name.isEmpty else { throw bad("missing repository name") }
        var domain = ImageReference.defaultDomain
        var path = name
        if let slash = name.firstIndex(of: "/") {
            let first = String(name[..<slash])
            if first.contains(".") || first.contains(":") || first == "localhost" || first.lowercased() != first {
                domain = first
                path = String(name[name.index(after: slash)...])
            }
        }
        if domain == "index.docker.io" { domain = ImageReference.defaultDomain }
        if domain == ImageReference.defaultDomain && !path.contains("/") { path = "library/" + path }
        guard ImageReference.isValidDomain(domain) else { throw bad("invalid registry \"\(domain)\"") }
        guard path.lowercased() == path else { throw bad("repository name must be lowercase") }
        guard !path.isEmpty,
              path.split(separator: "/", omittingEmptySubsequences: false).allSatisfy(ImageReference.isValidComponent) else {
            throw bad("invalid repository name")
        }
        guard domain.utf8.count + 1 + path.utf8.count <= 255 else { throw bad("repository name longer than 255 characters") }
        self.domain = domain
        self.path = path
        self.tag = tag
        self.digest = digest
    }

    private init(domain: String, path: String, tag: String?, digest: Digest?) {
        self.domain = domain
        self.path = path
        self.tag = tag
        self.digest = digest
    }

    /// The same reference with tag "latest" when it has neither tag nor digest.
    public func withDefaultTag() -> ImageReference {
        tag == nil && digest == nil ? ImageReference(domain: domain, path: path, tag: ImageReference.defaultTag, digest: nil) : self
    }

    /// Fully qualified repository: "docker.io/library/busybox".
    public var name: String { domain + "/" + path }

    /// Repository as `docker images` shows it: "busybox", "me/app", "localhost:5000/app".
    public var familiarName: String {
        guard domain == ImageReference.defaultDomain else { return name }
        if path.hasPrefix("library/") {
            let rest = path.dropFirst("library/".count)
            if !rest.contains("/") { return String(rest) }
        }
        return path
    }

    private func suffix() -> String {
        var s = ""
        if let tag { s += ":" + tag }
        if let digest { s += "@" + digest.string }
        return s
    }

    /// Fully qualified: "docker.io/library/busybox:latest" (the form stored in the index).
    public var string: String { name + suffix() }
    /// Short: "busybox:latest".
    public var familiarString: String { familiarName + suffix() }
    public var description: String { familiarString }

    // MARK: grammar

    static func isValidTag(_ t: String) -> Bool {
        let b = Array(t.utf8)
        guard !b.isEmpty, b.count <= 128 else { return false }
        func word(_ c: UInt8) -> Bool {
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x5f
        }
        guard word(b[0]) else { return false }
        return b.dropFirst().allSatisfy { word($0) || $0 == 0x2e || $0 == 0x2d }
    }

    /// [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*
    static func isValidComponent<S: StringProtocol>(_ s: S) -> Bool {
        let b = Array(s.utf8)
        func alnum(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a) }
        guard let first = b.first, let last = b.last, alnum(first), alnum(last) else { return false }
        var i = 0
        while i < b.count {
            if alnum(b[i]) { i += 1; continue }
            // A separator: ".", "_", "__" or a run of "-", always between alphanumerics.
            var j = i
            if b[i] == 0x2d {
                while j < b.count && b[j] == 0x2d { j += 1 }
            } else if b[i] == 0x2e {
                j += 1
            } else if b[i] == 0x5f {
                j += 1
                if j < b.count && b[j] == 0x5f { j += 1 }
            } else {
                return false
            }
            guard j < b.count, alnum(b[j]) else { return false }
            i = j
        }
        return true
    }

    /// host[:port], host = DNS labels ([A-Za-z0-9] or [A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]) or [IPv6].
    static func isValidDomain(_ d: String) -> Bool {
        var host = Substring(d)
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return false }
            let inner = host[host.index(after: host.startIndex)..<close]
            guard !inner.isEmpty, inner.utf8.allSatisfy({ isHex($0) || $0 == 0x3a }) else { return false }
            let after = host[host.index(after: close)...]
            if after.isEmpty { return true }
            guard after.hasPrefix(":") else { return false }
            return isPort(after.dropFirst())
        }
        if let colon = host.lastIndex(of: ":") {
            guard isPort(host[host.index(after: colon)...]) else { return false }
            host = host[..<colon]
        }
        guard !host.isEmpty else { return false }
        return host.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            let b = Array(label.utf8)
            func alnum(_ c: UInt8) -> Bool {
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
            }
            guard let f = b.first, let l = b.last, alnum(f), alnum(l) else { return false }
            return b.allSatisfy { alnum($0) || $0 == 0x2d }
        }
    }

    private static func isHex(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
    }

    private static func isPort(_ s: Substring) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }
}
