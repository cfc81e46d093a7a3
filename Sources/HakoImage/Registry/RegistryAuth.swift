import FoundationEssentials
import HakoSystem
import HakoTransport

/// One challenge of a `WWW-Authenticate` header (RFC 7235):
/// `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"`.
public struct AuthChallenge: Sendable, Equatable {
    /// "bearer" or "basic", lowercased.
    public var scheme: String
    /// Parameter names lowercased; values unquoted and unescaped.
    public var parameters: [String: String]

    public init(scheme: String, parameters: [String: String]) {
        self.scheme = scheme
        self.parameters = parameters
    }

    /// Parses a header value that may hold several challenges.
    public static func parse(_ header: String) -> [AuthChallenge] {
        var out: [AuthChallenge] = []
        var s = Substring(header)
        func skipSpace() { while let c = s.first, c == " " || c == "\t" { s.removeFirst() } }
        func token() -> String {
            let t = s.prefix { $0 != " " && $0 != "\t" && $0 != "=" && $0 != "," && $0 != "\"" }
            s.removeFirst(t.count)
            return String(t)
        }
        while !s.isEmpty {
            skipSpace()
            while s.first == "," { s.removeFirst(); skipSpace() }
            let scheme = token()
            guard !scheme.isEmpty else { break }
            var params: [String: String] = [:]
            while true {
                skipSpace()
                // Look ahead: "name=" is a parameter; anything else starts the next challenge.
                let save = s
                let name = token()
                skipSpace()
                guard !name.isEmpty, s.first == "=" else { s = save; break }
                s.removeFirst()
                skipSpace()
                var value = ""
                if s.first == "\"" {
                    s.removeFirst()
                    while let c = s.first {
                        s.removeFirst()
                        if c == "\\", let next = s.first { value.append(next); s.removeFirst(); continue }
                        if c == "\"" { break }
                        value.append(c)
                    }
                } else {
                    value = String(s.prefix { $0 != "," && $0 != " " && $0 != "\t" })
                    s.removeFirst(value.count)
                }
                params[name.lowercased()] = value
                skipSpace()
                if s.first == "," { s.removeFirst() } else { break }
            }
            out.append(AuthChallenge(scheme: scheme.lowercased(), parameters: params))
        }
        return out
    }
}

/// The answer of a token endpoint (Docker's token spec, OAuth2's field names too).
struct TokenResponse: Decodable {
    var token: String?
    var accessToken: String?

    enum CodingKeys: String, CodingKey {
        case token
        case accessToken = "access_token"
    }

    var value: String? {
        if let t = token, !t.isEmpty { return t }
        if let t = accessToken, !t.isEmpty { return t }
        return nil
    }
}

/// The error body registries send: `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"…"}]}`.
struct RegistryErrorBody: Decodable {
    struct Entry: Decodable {
        var code: String?
        var message: String?
    }
    var errors: [Entry]?

    /// "manifest unknown: manifest unknown" style text, or nil.
    static func describe(_ bytes: [UInt8]) -> String? {
        guard let body = try? JSONDecoder().decode(RegistryErrorBody.self, from: Data(bytes)),
              let errors = body.errors, !errors.isEmpty else { return nil }
        return errors.map { e in
            let code = (e.code ?? "error").lowercased().replacing("_", with: " ")
            if let m = e.message, !m.isEmpty, m.lowercased() != code { return code + ": " + m }
            return code
        }.joined(separator: "; ")
    }
}
