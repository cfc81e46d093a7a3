import HakoEngine

/// What `hako build` was asked for.
public struct BuildOptions: Sendable {
    /// The build context directory; nil when the Dockerfile came on stdin without one.
    public var context: String?
    /// The Dockerfile's text and the name errors give it.
    public var dockerfile: String
    public var dockerfileName: String
    public var tags: [String] = []
    /// --build-arg K=V (K alone takes the value from hako's environment).
    public var buildArgs: [String: String] = [:]
    public var target: String?
    public var noCache = false
    /// Pull every base image even when it is present.
    public var pull = false
    /// "os/arch[/variant]" of the base images; nil: the host's.
    public var platform: String?
    /// --label: set on the built image.
    public var labels: [String: String] = [:]
    /// The network of RUN steps (Docker's default: the bridge).
    public var network: NetworkMode = .bridge
    public var tlsVerify = true

    public init(context: String?, dockerfile: String, dockerfileName: String = "Dockerfile") {
        self.context = context
        self.dockerfile = dockerfile
        self.dockerfileName = dockerfileName
    }
}

/// What a build tells its user as it goes.
public enum BuildEvent: Sendable {
    /// "STEP 3/7: COPY . /app" (with the stage when there are several).
    case step(String)
    /// The step's result came from the build cache.
    case cached
    /// A warning or a note ("the syntax directive is ignored").
    case note(String)
    /// Output of a RUN step: its stdout (1) or stderr (2).
    case output(Int32, [UInt8])
    /// A step wrote a layer or a config: its short id.
    case done(String)
}
