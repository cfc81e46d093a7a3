/// A seccomp profile in Docker's JSON format (`--security-opt seccomp=FILE`):
/// the same keys, so Docker's and podman's profiles load unchanged.
public struct SeccompProfile: Sendable, Equatable, Codable {
    public var defaultAction: String
    public var defaultErrnoRet: UInt32?
    /// Native architecture → the sub-architectures its filter also covers.
    public var archMap: [ArchMap]?
    /// The older form: a flat list of architectures.
    public var architectures: [String]?
    public var syscalls: [Rule]?

    public init(defaultAction: String, defaultErrnoRet: UInt32? = nil, archMap: [ArchMap]? = nil,
                architectures: [String]? = nil, syscalls: [Rule]? = nil) {
        self.defaultAction = defaultAction; self.defaultErrnoRet = defaultErrnoRet; self.archMap = archMap
        self.architectures = architectures; self.syscalls = syscalls
    }

    public struct ArchMap: Sendable, Equatable, Codable {
        public var architecture: String
        public var subArchitectures: [String]?
        public init(_ architecture: String, _ sub: [String]?) { self.architecture = architecture; self.subArchitectures = sub }
    }

    public struct Rule: Sendable, Equatable, Codable {
        public var names: [String]?
        /// The older single-name form.
        public var name: String?
        public var action: String
        public var errnoRet: UInt32?
        public var args: [Arg]?
        public var includes: Filter?
        public var excludes: Filter?
        public var comment: String?

        public init(_ names: [String], _ action: String = "SCMP_ACT_ALLOW", errnoRet: UInt32? = nil, args: [Arg]? = nil,
                    includes: Filter? = nil, excludes: Filter? = nil) {
            self.names = names; self.action = action; self.errnoRet = errnoRet; self.args = args
            self.includes = includes; self.excludes = excludes
        }

        public var allNames: [String] { (names ?? []) + (name.map { [$0] } ?? []) }
    }

    public struct Arg: Sendable, Equatable, Codable {
        public var index: UInt32
        public var value: UInt64
        public var valueTwo: UInt64?
        public var op: String
        public init(_ index: UInt32, _ value: UInt64, _ op: String, valueTwo: UInt64? = nil) {
            self.index = index; self.value = value; self.op = op; self.valueTwo = valueTwo
        }
    }

    /// When a rule applies: capabilities the container has, architectures
    /// (Go's names: amd64, arm64, arm …), the kernel's minimum version.
    public struct Filter: Sendable, Equatable, Codable {
        public var caps: [String]?
        public var arches: [String]?
        public var minKernel: String?
        public init(caps: [String]? = nil, arches: [String]? = nil, minKernel: String? = nil) {
            self.caps = caps; self.arches = arches; self.minKernel = minKernel
        }
    }
}
