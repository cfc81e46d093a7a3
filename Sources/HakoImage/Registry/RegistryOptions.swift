#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import HakoSystem
import HakoTransport

/// How hako talks to registries: which ones are insecure, which CA files
/// they use, where credentials are kept. Filled by the engine from its
/// configuration file and the command line.
public struct RegistryOptions: Sendable {
    /// Off: any registry may be reached over HTTPS without verification, or
    /// plain HTTP (`--tls-verify=false`).
    public var tlsVerify: Bool
    /// Registries ("host" or "host:port") reached over HTTPS without
    /// verification, or plain HTTP when they do not speak TLS. Loopback
    /// registries (localhost, 127.0.0.0/8, ::1) are always treated so, as Docker does.
    public var insecureRegistries: [String]
    /// Registry ("host" or "host:port") → PEM file of CAs trusted for it.
    public var caFiles: [String: String]
    /// Where `login` keeps credentials; nil: anonymous only.
    public var credentials: CredentialStore?
    public var userAgent: String
    /// Treat loopback registries as insecure, as Docker does (on by default).
    public var loopbackIsInsecure: Bool
    /// Layers fetched at once.
    public var parallelDownloads: Int
    /// Longest wait for a registry to answer any read or write.
    public var timeout: Double

    public init(tlsVerify: Bool = true, insecureRegistries: [String] = [], caFiles: [String: String] = [:],
                credentials: CredentialStore? = nil, userAgent: String = "hako/0.1", loopbackIsInsecure: Bool = true,
                parallelDownloads: Int = 3, timeout: Double = 60) {
        self.tlsVerify = tlsVerify
        self.insecureRegistries = insecureRegistries
        self.caFiles = caFiles
        self.credentials = credentials
        self.userAgent = userAgent
        self.loopbackIsInsecure = loopbackIsInsecure
        self.parallelDownloads = parallelDownloads
        self.timeout = timeout
    }

    /// Whether `domain` ("host[:port]", as in an image reference) is insecure.
    public func isInsecure(_ domain: String) -> Bool {
        if !tlsVerify { return true }
        let host = RegistryOptions.host(of: domain)
        if insecureRegistries.contains(domain) || insecureRegistries.contains(host) { return true }
        return loopbackIsInsecure && RegistryOptions.isLoopback(host)
    }

    /// The CA file configured for `domain` (by "host:port", then "host").
    public func caFile(for domain: String) -> String? {
        caFiles[domain] ?? caFiles[RegistryOptions.host(of: domain)]
    }

    static func host(of domain: String) -> String {
        if domain.hasPrefix("["), let close = domain.firstIndex(of: "]") { return String(domain[...close]) }
        if let colon = domain.lastIndex(of: ":") { return String(domain[..<colon]) }
        return domain
    }

    static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" || host == "[::1]" || host == "::1" { return true }
        let parts = host.split(separator: ".")
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }
}

/// Registry credentials, stored as Docker stores them:
/// `{"auths": {"registry": {"auth": base64("user:password")}}}` in a file of
/// mode 0600, written atomically.
public struct CredentialStore: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    public struct Credential: Sendable, Equatable {
        public var username: String
        public var password: String
        public init(username: String, password: String) {
            self.username = username
            self.password = password
        }
    }

    private struct File: Codable {
        struct Entry: Codable { var auth: String? }
        var auths: [String: Entry] = [:]
    }

    /// Docker Hub's key in Docker's own file.
    static let dockerHubKey = "https://index.docker.io/v1/"

    private static func key(_ registry: String) -> String {
        registry == ImageReference.defaultDomain ? dockerHubKey : registry
    }

    private func read() throws -> File {
        guard FS.exists(path) else { return File() }
        do {
            return try JSONDecoder().decode(File.self, from: Data(try FS.readFile(path)))
        } catch {
            throw ImageError.corrupt("credentials file \(path) is not valid: \(error)")
        }
    }

    /// The credential stored for a registry domain, if any.
    public func credential(for registry: String) throws -> Credential? {
        guard let entry = try read().auths[CredentialStore.key(registry)], let auth = entry.auth,
              let data = Data(base64Encoded: auth) else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        guard let colon = text.firstIndex(of: ":") else { return nil }
        return Credential(username: String(text[..<colon]), password: String(text[text.index(after: colon)...]))
    }

    public func store(_ credential: Credential, for registry: String) throws {
        var file = try read()
        let raw = Data((credential.username + ":" + credential.password).utf8)
        file.auths[CredentialStore.key(registry)] = File.Entry(auth: raw.base64EncodedString())
        try write(file)
    }

    /// Removes a registry's credential; false when there was none.
    @discardableResult
    public func remove(for registry: String) throws -> Bool {
        var file = try read()
        guard file.auths.removeValue(forKey: CredentialStore.key(registry)) != nil else { return false }
        try write(file)
        return true
    }

    private func write(_ file: File) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        FS.removeOrphanedTemporaries(in: FS.parentDirectory(path))
        try FS.writeAtomic(path, Array(try encoder.encode(file)), mode: 0o600)
        // writeAtomic creates with the mode, but an existing file may have been loosened by hand.
        chmod(path, 0o600)
    }
}
