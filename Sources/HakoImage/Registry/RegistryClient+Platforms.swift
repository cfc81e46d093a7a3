import FoundationEssentials
import HakoSystem

/// The platforms an image in a registry exists for, read from its manifest
/// index (or, for a single-platform image, from its configuration), without
/// pulling it. A cluster scheduler uses it to keep tasks off nodes that could
/// not run the image.
public enum ImagePlatforms {
    /// What an index lists, in its order: attestation entries
    /// ("unknown/unknown") and duplicates left out.
    public static func fromIndex(_ bytes: [UInt8], shown: String) throws -> [PlatformSpec] {
        let index = try CanonicalJSON.decode(OCIIndex.self, bytes, what: "index \(shown)", as: ImageError.invalidManifest)
        var out: [PlatformSpec] = []
        for entry in index.manifests {
            guard let p = entry.platform, p.os != "unknown", p.architecture != "unknown" else { continue }
            let spec = PlatformSpec(os: p.os, architecture: p.architecture, variant: p.variant)
            if !out.contains(spec) { out.append(spec) }
        }
        return out
    }

    /// The platform an image configuration names (its "os", "architecture", "variant").
    public static func fromConfig(_ bytes: [UInt8], shown: String) throws -> PlatformSpec {
        let probe = try CanonicalJSON.decode(ConfigPlatform.self, bytes, what: "image configuration of \(shown)", as: ImageError.invalidManifest)
        guard let os = probe.os, let arch = probe.architecture, !os.isEmpty, !arch.isEmpty else {
            throw ImageError.invalidManifest("the image configuration of \(shown) names no os and architecture")
        }
        return PlatformSpec(os: os, architecture: arch, variant: probe.variant)
    }

    struct ConfigPlatform: Decodable {
        var os: String?
        var architecture: String?
        var variant: String?
    }

    /// Asks the image's registry. Empty when the index lists no usable platform.
    public static func lookup(_ reference: String, registry: RegistryOptions) throws(HakoError) -> [PlatformSpec] {
        try atBoundary("cannot read the platforms of \(reference)") {
            let ref = try ImageReference(parsing: reference).withDefaultTag()
            let client = RegistryClient(domain: ref.domain, options: registry)
            let top = try client.manifest(repository: ref.path, reference: ref.digest?.string ?? ref.tag ?? ImageReference.defaultTag)
            if MediaType.isIndex(top.mediaType) { return try fromIndex(top.bytes, shown: ref.familiarString) }
            let manifest = try CanonicalJSON.decode(OCIManifest.self, top.bytes, what: "manifest \(ref.familiarString)", as: ImageError.invalidManifest)
            let config = try client.smallBlob(repository: ref.path, digest: manifest.config.digest, limit: 1 << 20)
            return [try fromConfig(config, shown: ref.familiarString)]
        }
    }
}
