import FoundationEssentials
import HakoImage
import HakoSystem

/// The engine's configuration file, `<root>/engine.json` (optional; every
/// setting has a default). Unknown keys are ignored, so sections other parts
/// of hako add later do not break older readers. Example: config/engine.json.
public struct EngineConfig: Codable, Sendable, Equatable {
    public struct Registries: Codable, Sendable, Equatable {
        /// Registries ("host" or "host:port") reached over HTTPS without
        /// verification, or plain HTTP. Loopback registries always are.
        public var insecure: [String]?
        /// Registry ("host" or "host:port") → PEM file of the CAs it is trusted by.
        public var ca: [String: String]?
        /// Layers downloaded (and pushed) at once; default 3.
        public var maxConcurrentDownloads: Int?
        /// Loopback registries (localhost, 127.0.0.0/8, ::1) count as insecure;
        /// default true, as in Docker.
        public var insecureLoopback: Bool?

        enum CodingKeys: String, CodingKey {
            case insecure, ca
            case maxConcurrentDownloads = "max-concurrent-downloads"
            case insecureLoopback = "insecure-loopback"
        }

        public init(insecure: [String]? = nil, ca: [String: String]? = nil, maxConcurrentDownloads: Int? = nil,
                    insecureLoopback: Bool? = nil) {
            self.insecure = insecure
            self.ca = ca
            self.maxConcurrentDownloads = maxConcurrentDownloads
            self.insecureLoopback = insecureLoopback
        }
    }

    public struct Images: Codable, Sendable, Equatable {
        /// Create the device nodes image layers hold (off: such a layer is refused).
        public var allowDeviceNodes: Bool?

        enum CodingKeys: String, CodingKey {
            case allowDeviceNodes = "allow-device-nodes"
        }

        public init(allowDeviceNodes: Bool? = nil) { self.allowDeviceNodes = allowDeviceNodes }
    }

    public var registries: Registries?
    public var images: Images?

    public init(registries: Registries? = nil, images: Images? = nil) {
        self.registries = registries
        self.images = images
    }

    /// Reads `path`; an absent file is the default configuration.
    public static func load(_ path: String) throws -> EngineConfig {
        guard FS.exists(path) else { return EngineConfig() }
        let config: EngineConfig
        do {
            config = try JSONDecoder().decode(EngineConfig.self, from: Data(try FS.readFile(path)))
        } catch let e as DecodingError {
            throw HakoError(.invalidArgument("engine configuration"), "invalid engine configuration \(path): \(EngineConfig.describe(e))")
        } catch {
            throw HakoError(.failed, "cannot read the engine configuration \(path)", cause: error)
        }
        try config.validate(path)
        return config
    }

    func validate(_ path: String) throws {
        if let n = registries?.maxConcurrentDownloads, !(1...32).contains(n) {
            throw HakoError(.invalidArgument("engine configuration"), "invalid engine configuration \(path): registries.max-concurrent-downloads must be 1 to 32")
        }
        for (registry, file) in registries?.ca ?? [:] where !file.hasPrefix("/") {
            throw HakoError(.invalidArgument("engine configuration"), "invalid engine configuration \(path): the CA file of \(registry) must be an absolute path")
        }
    }

    static func describe(_ e: DecodingError) -> String {
        switch e {
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c):
            let at = c.codingPath.map(\.stringValue).joined(separator: ".")
            return c.debugDescription + (at.isEmpty ? "" : " (at \(at))")
        case .keyNotFound(let k, _): return "missing \(k.stringValue)"
        @unknown default: return "\(e)"
        }
    }
}

extension EnginePaths {
    /// The engine configuration file.
    public var configFile: String { root + "/engine.json" }
    /// Registry credentials (`hako login`), mode 0600.
    public var credentialsFile: String { root + "/auth.json" }
}
