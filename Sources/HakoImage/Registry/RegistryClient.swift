import FoundationEssentials
import HakoSystem
import HakoTransport
import Synchronization

/// A client of one registry (OCI distribution spec, Docker's registry API v2).
///
/// - HTTPS with verification, or for insecure registries HTTPS without it,
///   falling back to plain HTTP when the registry does not speak TLS;
/// - anonymous bearer tokens from the `WWW-Authenticate` challenge, or with
///   the stored credentials (basic auth towards the token endpoint, or
///   towards the registry itself when it asks for basic auth); tokens cached per scope;
/// - errors name the registry and carry the registry's own error text.
public final class RegistryClient: Sendable {
    /// The registry as references name it: "docker.io", "127.0.0.1:5000".
    public let domain: String
    /// The host that serves the API: "registry-1.docker.io" for Docker Hub.
    public let apiHost: String
    let options: RegistryOptions
    let http: HTTPClient

    private struct State {
        /// nil until the first request decides between https and http.
        var secure: Bool?
        var tokens: [String: String] = [:]
        var basic: String?
    }
    private let state: Mutex<State>

    public init(domain: String, options: RegistryOptions) {
        self.domain = domain
        self.apiHost = domain == ImageReference.defaultDomain ? "registry-1.docker.io" : domain
        self.options = options
        let insecure = options.isInsecure(domain)
        let caFile = options.caFile(for: domain)
        let apiHostName = RegistryOptions.host(of: apiHost).lowercased()
        self.state = Mutex(State(secure: insecure ? nil : true))
        http = HTTPClient(HTTPClient.Options(userAgent: options.userAgent, ioTimeout: options.timeout, tls: { host in
            host == apiHostName ? TLSOptions(verify: !insecure, caFile: caFile) : TLSOptions(verify: true)
        }))
    }

    /// Whether requests go over HTTPS (decided by the first request to an insecure registry).
    var usesHTTPS: Bool { state.withLock { $0.secure } ?? true }

    /// The URL of an API path ("/v2/…") with the scheme in use.
    func url(_ path: String, secure: Bool) throws -> HTTPURL {
        try HTTPURL((secure ? "https://" : "http://") + apiHost + path)
    }

    private func failure(_ what: String, _ error: any Error) -> ImageError {
        if let e = error as? ImageError { return e }
        return .registry("\(domain): \(what): \(error)")
    }

    /// Sends a request to the registry, authenticating when challenged.
    /// `path` is an API path ("/v2/…") or, for upload locations, an absolute URL.
    /// `actions`: the token scope's actions ("pull" or "pull,push").
    func send(_ method: String, _ path: String, repository: String?, actions: String = "pull",
              headers: HTTPHeaders = HTTPHeaders(), body: HTTPBody? = nil, what: String) throws -> HTTPResponse {
        let scope = repository.map { "repository:\($0):\(actions)" }
        var triedAuth = false
        while true {
            let target = try resolveTarget(path)
            var request = HTTPRequest(method, target, headers: headers, body: body)
            if let auth = authorization(scope: scope) { request.headers.set("Authorization", auth) }
            let response: HTTPResponse
            do {
                response = try sendDecidingScheme(request, path: path)
            } catch {
                throw failure(what, error)
            }
            guard response.status == 401, !triedAuth else { return response }
            let challenges = response.headers.all("WWW-Authenticate").flatMap(AuthChallenge.parse)
            response.discard()
            try authenticate(challenges, scope: scope)
            triedAuth = true
        }
    }

    private func resolveTarget(_ path: String) throws -> HTTPURL {
        if path.hasPrefix("http://") || path.hasPrefix("https://") { return try HTTPURL(path) }
        let secure = state.withLock { $0.secure } ?? true
        return try url(path, secure: secure)
    }

    /// The first request to an insecure registry tries HTTPS; a registry that
    /// does not speak TLS is then used over plain HTTP.
    private func sendDecidingScheme(_ request: HTTPRequest, path: String) throws -> HTTPResponse {
        guard state.withLock({ $0.secure }) == nil, !path.hasPrefix("http") else { return try http.send(request) }
        do {
            let r = try http.send(request)
            state.withLock { $0.secure = true }
            return r
        } catch let e as TransportError where e.isHandshakeFailure {
            state.withLock { $0.secure = false }
            var plain = request
            plain.url = try url(path, secure: false)
            return try http.send(plain)
        }
    }

    private func authorization(scope: String?) -> String? {
        state.withLock { s in
            if let scope, let t = s.tokens[scope] { return "Bearer " + t }
            if let t = s.tokens[""] { return "Bearer " + t }
            return s.basic
        }
    }

    private func storedBasic() throws -> String? {
        guard let c = try options.credentials?.credential(for: domain) else { return nil }
        return "Basic " + Data((c.username + ":" + c.password).utf8).base64EncodedString()
    }

    /// Answers a 401: a bearer token from the realm, or basic auth.
    private func authenticate(_ challenges: [AuthChallenge], scope: String?) throws {
        if let bearer = challenges.first(where: { $0.scheme == "bearer" }) {
            guard let realm = bearer.parameters["realm"], !realm.isEmpty else {
                throw ImageError.registry("\(domain): the registry asked for a token without naming a realm")
            }
            var query: [(String, String)] = []
            if let service = bearer.parameters["service"] { query.append(("service", service)) }
            let wanted = scope ?? bearer.parameters["scope"]
            if let wanted { query.append(("scope", wanted)) }
            let token = try fetchToken(realm: realm, query: query)
            state.withLock { $0.tokens[wanted ?? ""] = token }
            return
        }
        if challenges.contains(where: { $0.scheme == "basic" }) {
            guard let basic = try storedBasic() else {
                throw ImageError.registry("\(domain): authentication required: log in with `hako login \(domain)`")
            }
            state.withLock { $0.basic = basic }
            return
        }
        throw ImageError.registry("\(domain): unauthorized (no usable authentication challenge)")
    }

    private func fetchToken(realm: String, query: [(String, String)]) throws -> String {
        let realmURL: HTTPURL
        do { realmURL = try HTTPURL(realm).appendingQuery(query) } catch {
            throw ImageError.registry("\(domain): invalid token realm \"\(realm)\"")
        }
        var headers = HTTPHeaders()
        if let basic = try storedBasic() { headers.set("Authorization", basic) }
        let response: HTTPResponse
        do { response = try http.send(HTTPRequest("GET", realmURL, headers: headers)) } catch {
            throw failure("getting a token from \(realmURL.hostHeader)", error)
        }
        let body: [UInt8]
        do { body = try response.readAll(limit: 1 << 20) } catch { throw failure("reading a token", error) }
        guard response.status == 200 else {
            let detail = RegistryErrorBody.describe(body) ?? "HTTP \(response.status)"
            if response.status == 401 {
                throw ImageError.registry("\(domain): unauthorized: incorrect username or password (\(detail))")
            }
            throw ImageError.registry("\(domain): token request refused: \(detail)")
        }
        guard let decoded = try? JSONDecoder().decode(TokenResponse.self, from: Data(body)), let token = decoded.value else {
            throw ImageError.registry("\(domain): the token endpoint answered without a token")
        }
        return token
    }

    /// An error for an unexpected status, with the registry's error text.
    func statusError(_ response: HTTPResponse, _ what: String) -> ImageError {
        let body = (try? response.readAll(limit: 1 << 20)) ?? []
        let detail = RegistryErrorBody.describe(body) ?? "HTTP \(response.status) \(response.reason)"
        switch response.status {
        case 401: return .registry("\(domain): \(what): unauthorized: \(detail)")
        case 403: return .registry("\(domain): \(what): denied: \(detail)")
        default: return .registry("\(domain): \(what): \(detail)")
        }
    }

    /// `GET /v2/`: checks that the registry answers and the credentials work.
    public func ping() throws {
        let r = try send("GET", "/v2/", repository: nil, what: "checking the registry")
        defer { r.discard() }
        guard r.status == 200 else { throw statusError(r, "checking the registry") }
    }

    /// Checks credentials against the registry (and its token endpoint).
    public func login(_ credential: CredentialStore.Credential) throws {
        let basic = "Basic " + Data((credential.username + ":" + credential.password).utf8).base64EncodedString()
        var request = HTTPRequest("GET", try resolveTarget("/v2/"))
        let first: HTTPResponse
        do { first = try sendDecidingScheme(request, path: "/v2/") } catch { throw failure("logging in", error) }
        defer { first.discard() }
        guard first.status == 401 else {
            if first.status == 200 { return }
            throw statusError(first, "logging in")
        }
        let challenges = first.headers.all("WWW-Authenticate").flatMap(AuthChallenge.parse)
        if let bearer = challenges.first(where: { $0.scheme == "bearer" }), let realm = bearer.parameters["realm"] {
            var query: [(String, String)] = [("account", credential.username)]
            if let service = bearer.parameters["service"] { query.append(("service", service)) }
            let realmURL: HTTPURL
            do { realmURL = try HTTPURL(realm).appendingQuery(query) } catch {
                throw ImageError.registry("\(domain): invalid token realm \"\(realm)\"")
            }
            let r: HTTPResponse
            do { r = try http.send(HTTPRequest("GET", realmURL, headers: HTTPHeaders([("Authorization", basic)]))) } catch {
                throw failure("logging in", error)
            }
            defer { r.discard() }
            guard r.status == 200 else { throw ImageError.registry("\(domain): login failed: unauthorized: incorrect username or password") }
            return
        }
        request = HTTPRequest("GET", try resolveTarget("/v2/"), headers: HTTPHeaders([("Authorization", basic)]))
        let second: HTTPResponse
        do { second = try http.send(request) } catch { throw failure("logging in", error) }
        defer { second.discard() }
        guard second.status == 200 else { throw ImageError.registry("\(domain): login failed: unauthorized: incorrect username or password") }
    }
}
