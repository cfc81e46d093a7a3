/// A wanted platform ("linux/arm64", "linux/arm/v7", "linux/amd64"), and
/// which entry of an image index answers it.
public struct PlatformSpec: Sendable, Equatable, CustomStringConvertible {
    public var os: String
    public var architecture: String
    public var variant: String?

    public init(os: String, architecture: String, variant: String? = nil) {
        self.os = os
        self.architecture = architecture
        self.variant = variant
        normalize()
    }

    /// The platform this build of hako runs on.
    public static var host: PlatformSpec {
        PlatformSpec(os: Platform.os, architecture: Platform.architecture, variant: Platform.variant)
    }

    /// Parses "os/arch[/variant]", or just "arch" (os linux). Architecture
    /// aliases are normalised: aarch64 → arm64, x86_64 → amd64, armhf → arm/v7.
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
        case "armhf": architecture = "arm"; variant = variant ?? "v7"
        case "armel": architecture = "arm"; variant = variant ?? "v6"
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

    public func matches(_ p: OCIPlatform) -> Bool { matches(os: p.os, architecture: p.architecture, variant: p.variant) }

    /// The index entry for this platform: the first that matches (entries
    /// without a platform, such as attestations, never do).
    public func select(from index: OCIIndex) throws(ImageError) -> OCIDescriptor {
        if let hit = index.manifests.first(where: { d in d.platform.map(matches) ?? false }) { return hit }
        let offered = index.manifests.compactMap { $0.platform?.description }.filter { !$0.hasPrefix("unknown") }
        throw .notAllowed("no image for platform \(self) in the index (it has: \(offered.isEmpty ? "none" : offered.joined(separator: ", ")))")
    }
}
