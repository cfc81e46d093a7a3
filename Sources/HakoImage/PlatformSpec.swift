/// An OS/architecture/variant triple in OCI terms ("linux/arm64/v8",
/// "linux/arm/v7", "linux/amd64"), always in its normal form: the platform
/// an image is wanted for (which entry of an image index answers it,
/// `select`), and the platform of a cluster node (which images it runs,
/// `runs`).
public struct PlatformSpec: Codable, Sendable, Hashable, CustomStringConvertible {
    public var os: String
    public var architecture: String
    public var variant: String?

    public init(os: String = "linux", architecture: String, variant: String? = nil) {
        self.os = os
        self.architecture = architecture
        self.variant = variant
        normalize()
    }

    /// The platform this build of hako runs on.
    public static var host: PlatformSpec {
        PlatformSpec(os: Platform.os, architecture: Platform.architecture, variant: Platform.variant)
    }

    /// Decoded values are normalised as constructed ones are.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(os: try c.decode(String.self, forKey: .os), architecture: try c.decode(String.self, forKey: .architecture),
                  variant: try c.decodeIfPresent(String.self, forKey: .variant))
    }

    /// Parses "os/arch[/variant]", or just "arch" (os linux). Architecture
    /// aliases, OCI's and uname's, are normalised: aarch64 → arm64, x86_64 →
    /// amd64, armhf and armv7l → arm/v7, armel and armv6l → arm/v6.
    public init(parsing text: String) throws(ImageError) {
        let parts = text.lowercased().split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard (1...3).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" } }) else {
            throw .invalidManifest("invalid platform \"\(text)\": expected os/arch[/variant], e.g. linux/arm64")
        }
        if parts.count == 1 {
            self.init(os: "linux", architecture: parts[0])
        } else {
            self.init(os: parts[0], architecture: parts[1], variant: parts.count == 3 ? parts[2] : nil)
        }
    }

    private mutating func normalize() {
        switch architecture {
        case "aarch64": architecture = "arm64"
        case "x86_64", "x86-64": architecture = "amd64"
        case "i386", "i686": architecture = "386"
        case "armhf", "armv7", "armv7l": architecture = "arm"; variant = variant ?? "v7"
        case "armel", "armv6", "armv6l": architecture = "arm"; variant = variant ?? "v6"
        default: break
        }
        // The variants each architecture means when none is given.
        if architecture == "arm64", variant == nil || variant == "8" { variant = "v8" }
        if architecture == "arm", variant == nil { variant = "v7" }
        if architecture == "arm", let v = variant, !v.hasPrefix("v") { variant = "v" + v }
        if architecture == "amd64", variant == "v1" { variant = nil }
    }

    public var description: String { os + "/" + architecture + (variant.map { "/" + $0 } ?? "") }

    /// Whether an index entry's platform (or an image config's) is this one.
    public func matches(os: String, architecture: String, variant: String?) -> Bool {
        let other = PlatformSpec(os: os, architecture: architecture, variant: variant)
        guard other.os == self.os, other.architecture == self.architecture else { return false }
        // amd64 micro-architecture levels: only checked when asked for.
        if self.architecture == "amd64" { return self.variant == nil || self.variant == other.variant }
        return other.variant == self.variant
    }

    /// Whether a node of this platform runs an image built for `image`: the
    /// same OS and architecture, and an ARM variant no newer than the node's
    /// (an armv7 node runs armv6 images, not arm64 ones).
    public func runs(_ image: PlatformSpec) -> Bool {
        guard os == image.os, architecture == image.architecture else { return false }
        if variant == image.variant || image.variant == nil { return true }
        if architecture == "arm", let have = variant.flatMap({ Int($0.dropFirst()) }), let want = image.variant.flatMap({ Int($0.dropFirst()) }) {
            return want <= have
        }
        return false
    }

    public func matches(_ p: OCIPlatform) -> Bool { matches(os: p.os, architecture: p.architecture, variant: p.variant) }

    /// The index entry for this platform: the first that matches (entries
    /// without a platform, such as attestations, never do).
    public func select(from index: OCIIndex) throws(ImageError) -> OCIDescriptor {
        if let hit = index.manifests.first(where: { d in d.platform.map(matches) ?? false }) { return hit }
        let offered = index.manifests.compactMap { $0.platform?.description }.filter { !$0.hasPrefix("unknown") }
        throw .noPlatform("no image for platform \(self) in the index (it has: \(offered.isEmpty ? "none" : offered.joined(separator: ", ")))")
    }
}
