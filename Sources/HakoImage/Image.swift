import HakoSystem

/// An image as the engine uses it: identity, names, runtime defaults and the
/// unpacked layer directories to stack as overlay lower dirs.
public struct Image: Sendable, Equatable {
    /// 64 hex digits: the digest of the image's config blob (as Docker does).
    public var id: String
    /// Names as `docker images` shows them ("busybox:latest"), sorted.
    public var references: [String]
    public var created: Timestamp?
    /// Bytes of file content in all layers.
    public var size: Int64
    public var architecture: String
    public var os: String
    public var variant: String?
    public var config: ImageConfig
    /// Absolute snapshot `fs` directories, lowest layer FIRST (overlay's
    /// `lowerdir=` lists them the other way round).
    public var layerDirs: [String]
    /// DiffIDs of the layers, lowest first.
    public var diffIDs: [Digest]
    /// Digest of the stored manifest; nil for the built-in host image.
    public var manifestDigest: Digest?
    /// "busybox@sha256:…": what the image was pulled or pushed as.
    public var repoDigests: [String] = []

    /// The first 12 hex digits, as `docker images` shows IDs.
    public var shortID: String { String(id.prefix(12)) }
    public var isHost: Bool { id == ImageStore.hostImageID }
}

extension ImageStore {
    /// ID of the built-in host image: sha256("hako built-in image: host").
    public static let hostImageID = "bcaff2612a31f00a9856031febbb518d46c239d7927ddeacc9afa2dbc5035ca3"
    /// The name that always resolves to the host image.
    public static let hostName = "host"
    static let hostPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// The host's own root as the single (read-only) lower layer. Never stored
    /// on disk, always listed, cannot be tagged or removed.
    public static var hostImage: Image {
        Image(id: hostImageID, references: [hostName + ":" + ImageReference.defaultTag], created: nil, size: 0,
              architecture: Platform.architecture, os: Platform.os, variant: Platform.variant,
              config: ImageConfig(env: ["PATH=" + hostPath]), layerDirs: ["/"], diffIDs: [], manifestDigest: nil)
    }

    /// Whether a normalised reference names the host image ("host", "host:latest").
    static func isHostReference(_ ref: ImageReference) -> Bool {
        ref.digest == nil && ref.withDefaultTag().string == "docker.io/library/host:latest"
    }
}
