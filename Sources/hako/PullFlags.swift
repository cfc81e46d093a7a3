import HakoCLI
import HakoEngine
import HakoSystem

/// `--pull`, `--platform`, `--tls-verify` of `run` and `create`.
struct PullFlags: ParsableArguments {
    @Option(name: .long("pull"), help: "Pull the image: missing (default), always or never.") var pull = "missing"
    @Option(name: .long("platform"), help: "Platform of the image to pull (os/arch[/variant]).") var platform: String?
    @Option(name: .long("tls-verify"), help: "Verify the registry's certificate when pulling.") var tlsVerify: Bool = true

    /// The pull options, with progress drawn on stderr.
    func options() throws -> ImagePullOptions {
        guard let policy = PullPolicy(rawValue: pull) else {
            throw HakoError(.failed, "invalid --pull \"\(pull)\" (missing, always or never)")
        }
        return ImagePullOptions(policy: policy, platform: platform, tlsVerify: tlsVerify, progress: ProgressView(fd: 2))
    }
}
