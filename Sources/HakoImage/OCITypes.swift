import FoundationEssentials
import HakoSystem

/// Media types of the OCI image spec (and Docker's, accepted when reading).
public enum MediaType {
    public static let manifest = "application/vnd.oci.image.manifest.v1+json"
    public static let index = "application/vnd.oci.image.index.v1+json"
    public static let config = "application/vnd.oci.image.config.v1+json"
    public static let layer = "application/vnd.oci.image.layer.v1.tar"
    public static let layerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
    public static let layerZstd = "application/vnd.oci.image.layer.v1.tar+zstd"
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    public static let dockerConfig = "application/vnd.docker.container.image.v1+json"
    public static let dockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    public static let dockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    public static let dockerSchema1 = "application/vnd.docker.distribution.manifest.v1+json"
    public static let dockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"

    /// What a registry is asked for: every manifest kind hako reads. Without
    /// these a registry answers 404 for OCI manifests or rewrites to schema1.
    public static let acceptedManifests = [index, manifest, dockerManifestList, dockerManifest]

    public static func isIndex(_ t: String) -> Bool { t == index || t == dockerManifestList }
    public static func isManifest(_ t: String) -> Bool { t == manifest || t == dockerManifest }

    /// The layer media type for a stream with this compression.
    public static func layer(_ compression: Compression) -> String {
        switch compression {
        case .gzip: return layerGzip
        case .zstd: return layerZstd
        default: return layer
        }
    }
}

/// A reference to a blob: what manifests are made of.
public struct OCIDescriptor: Codable, Sendable, Equatable {
    public var mediaType: String
    public var digest: Digest
    public var size: Int64
    public var annotations: [String: String]?
    /// Set in an index's entries.
    public var platform: OCIPlatform?

    public init(mediaType: String, digest: Digest, size: Int64, annotations: [String: String]? = nil,
                platform: OCIPlatform? = nil) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.annotations = annotations
        self.platform = platform
    }
}

/// The platform of an index entry.
public struct OCIPlatform: Codable, Sendable, Equatable, Hashable, CustomStringConvertible {
    public var architecture: String
    public var os: String
    public var variant: String?
    public var osVersion: String?

    enum CodingKeys: String, CodingKey {
        case architecture, os, variant
        case osVersion = "os.version"
    }

    public init(os: String, architecture: String, variant: String? = nil) {
        self.os = os
        self.architecture = architecture
        self.variant = variant
    }

    public var description: String { os + "/" + architecture + (variant.map { "/" + $0 } ?? "") }
}

/// An OCI image index or a Docker manifest list: one manifest per platform.
public struct OCIIndex: Codable, Sendable, Equatable {
    public var schemaVersion: Int
    public var mediaType: String?
    public var manifests: [OCIDescriptor]
    public var annotations: [String: String]?

    public init(manifests: [OCIDescriptor], annotations: [String: String]? = nil) {
        schemaVersion = 2
        mediaType = MediaType.index
        self.manifests = manifests
        self.annotations = annotations
    }
}

/// Just enough of any manifest-like JSON to tell what it is.
struct ManifestProbe: Decodable {
    var schemaVersion: Int?
    var mediaType: String?
    var manifests: [OCIDescriptor]?
    var config: OCIDescriptor?
    var layers: [OCIDescriptor]?

    /// The media type from the JSON itself, or from its shape.
    var kind: String? {
        if let m = mediaType { return m }
        if schemaVersion == 1 { return MediaType.dockerSchema1 }
        if manifests != nil { return MediaType.index }
        if config != nil, layers != nil { return MediaType.manifest }
        return nil
    }
}

/// An OCI image manifest: the config blob and the layer blobs, lowest first.
public struct OCIManifest: Codable, Sendable, Equatable {
    public var schemaVersion: Int
    public var mediaType: String?
    public var config: OCIDescriptor
    public var layers: [OCIDescriptor]
    public var annotations: [String: String]?

    public init(config: OCIDescriptor, layers: [OCIDescriptor], annotations: [String: String]? = nil) {
        schemaVersion = 2
        mediaType = MediaType.manifest
        self.config = config
        self.layers = layers
        self.annotations = annotations
    }
}

/// An OCI image configuration (the config blob; its digest is the image ID).
public struct OCIImage: Codable, Sendable, Equatable {
    public struct RootFS: Codable, Sendable, Equatable {
        public var type: String
        public var diffIDs: [Digest]

        enum CodingKeys: String, CodingKey {
            case type
            case diffIDs = "diff_ids"
        }
    }

    public struct History: Codable, Sendable, Equatable {
        public var created: String?
        public var createdBy: String?
        public var author: String?
        public var comment: String?
        public var emptyLayer: Bool?

        public init(created: String? = nil, createdBy: String? = nil, author: String? = nil,
                    comment: String? = nil, emptyLayer: Bool? = nil) {
            self.created = created
            self.createdBy = createdBy
            self.author = author
            self.comment = comment
            self.emptyLayer = emptyLayer
        }

        enum CodingKeys: String, CodingKey {
            case created, author, comment
            case createdBy = "created_by"
            case emptyLayer = "empty_layer"
        }
    }

    /// RFC 3339.
    public var created: String?
    public var author: String?
    /// GOARCH names: "amd64", "arm64", "arm".
    public var architecture: String
    public var os: String
    /// "v7" for arm.
    public var variant: String?
    public var config: ImageConfig?
    public var rootfs: RootFS
    public var history: [History]?

    enum CodingKeys: String, CodingKey {
        case created, author, architecture, os, variant, config, rootfs, history
    }

    public init(created: String?, architecture: String, os: String, variant: String?, config: ImageConfig?,
                diffIDs: [Digest], history: [History]?) {
        self.created = created
        self.architecture = architecture
        self.os = os
        self.variant = variant
        self.config = config
        self.rootfs = RootFS(type: "layers", diffIDs: diffIDs)
        self.history = history
    }
}

/// The platform this build of hako runs on, in OCI (GOARCH) terms.
public enum Platform {
    public static let os = "linux"
    #if arch(x86_64)
    public static let architecture = "amd64"
    public static let variant: String? = nil
    #elseif arch(arm64)
    public static let architecture = "arm64"
    public static let variant: String? = "v8"
    #elseif arch(arm)
    public static let architecture = "arm"
    public static let variant: String? = "v7"
    #elseif arch(i386)
    public static let architecture = "386"
    public static let variant: String? = nil
    #else
    public static let architecture = "unknown"
    public static let variant: String? = nil
    #endif
}

/// JSON as hako writes it: sorted keys, no escaped slashes, so the same
/// value always gives the same bytes (and the same digest).
enum CanonicalJSON {
    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }

    static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], what: String) throws -> T {
        try decode(type, bytes, what: what, as: ImageError.corrupt)
    }

    /// Decodes, turning a failure into the error `as` makes of the message.
    static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], what: String,
                                     as makeError: (String) -> ImageError) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch let e as DecodingError {
            if case .dataCorrupted(let c) = e, c.codingPath.isEmpty { throw makeError("\(what) is not valid JSON") }
            throw makeError("\(what) is not valid: \(describe(e))")
        } catch let e as ImageError {
            throw makeError("\(what) is not valid: \(e)")
        } catch {
            throw makeError("\(what) is not valid JSON: \(error)")
        }
    }

    /// A decoding error in one line: what was wrong, and where.
    static func describe(_ e: DecodingError) -> String {
        func path(_ c: DecodingError.Context) -> String {
            let p = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? "." + $0.stringValue }.joined()
            return p.isEmpty ? "" : " at " + (p.hasPrefix(".") ? String(p.dropFirst()) : p)
        }
        switch e {
        case .keyNotFound(let key, let c): return "missing field \"\(key.stringValue)\"" + path(c)
        case .typeMismatch(_, let c), .valueNotFound(_, let c): return c.debugDescription + path(c)
        case .dataCorrupted(let c): return c.debugDescription + path(c)
        @unknown default: return "\(e)"
        }
    }
}

/// RFC 3339 with any UTC offset ("Z", "+02:00"), as found in image configs.
func parseRFC3339(_ s: String) -> Timestamp? {
    if s.hasSuffix("Z") || s.hasSuffix("z") { return Timestamp(rfc3339: String(s.dropLast()) + "Z") }
    let b = Array(s.utf8)
    guard b.count > 6 else { return nil }
    let sign = b[b.count - 6]
    guard (sign == 0x2b || sign == 0x2d), b[b.count - 3] == 0x3a,
          let hours = Int64(String(decoding: b[(b.count - 5)..<(b.count - 3)], as: UTF8.self)),
          let minutes = Int64(String(decoding: b[(b.count - 2)...], as: UTF8.self)),
          var t = Timestamp(rfc3339: String(decoding: b[0..<(b.count - 6)], as: UTF8.self) + "Z") else { return nil }
    let offset = (hours * 60 + minutes) * 60
    t.seconds += sign == 0x2b ? -offset : offset
    return t
}
