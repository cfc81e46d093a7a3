import HakoImage
import HakoSystem

extension Engine {
    /// The platforms ("linux/arm64") an image in its registry exists for,
    /// read from its manifest index without pulling it; the registry settings
    /// of the data root at `paths` (engine.json's insecure registries and CAs,
    /// `hako login` credentials) apply.
    public static func registryPlatforms(_ reference: String, paths: EnginePaths, tlsVerify: Bool = true) throws -> [String] {
        try ImagePlatforms.lookup(reference, registry: try registryOptions(paths: paths, tlsVerify: tlsVerify)).map(\.description)
    }
}
