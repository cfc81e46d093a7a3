#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The one public error of hako: what went wrong as a case callers switch on
/// (`kind`), a message for a person, and the cause underneath.
///
/// The kind is mapped once per edge: to the CLI's exit status here
/// (`exitStatus`), to the cluster protocol's error codes (`WireCode(kind:)` in
/// HakoCluster) and to HTTP statuses (`APIError(_:)` in HakoDockerAPI). No
/// caller reads the message to decide anything.
public struct HakoError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// hako's own failure that no case below names (Docker's 125).
        case failed
        /// Nothing of this kind answers to the name.
        case notFound(Object, String)
        /// The request conflicts with the current state: a name taken, a
        /// container running (or not), something in use.
        case conflict(Conflict)
        /// A value that cannot be used: the argument (a flag such as
        /// `--memory`, a field, `name`); the message says why.
        case invalidArgument(String)
        /// The caller may not do this (hako without root, a refused path).
        case permissionDenied
        /// This host lacks what the request needs: what is missing (a kernel
        /// feature, a cgroup controller, a capability in hako's bounding set).
        case unsupported(missing: String)
        /// The kernel refused: the operation or stage, and errno.
        case kernel(operation: String, errno: Int32)
        /// The container's command was found but cannot be executed (126).
        case cannotExecute
        /// The container's command was not found (127).
        case commandNotFound
    }

    /// What a `notFound` or `conflict` is about.
    public enum Object: String, Sendable, Equatable {
        case container, image, network, volume, file, user, group, device, endpoint, port, address, registry
    }

    /// Why a request conflicts with the current state.
    public enum Conflict: Sendable, Equatable {
        /// The name is taken (a container's, a network's, a bridge's).
        case nameInUse(Object, String)
        /// The container is running (and must not be).
        case running(String)
        /// The container is not running (and must be).
        case notRunning(String)
        /// The container is paused.
        case paused(String)
        /// The container is not paused.
        case notPaused(String)
        /// The object is held by others (containers using a volume, a port published).
        case inUse(Object, String, by: [String])
        /// The object is in a state that does not allow this now (restarting, being removed).
        case state(Object, String)
    }

    public var kind: Kind
    public var message: String
    public var cause: (any Error)?

    public init(_ kind: Kind = .failed, _ message: String, cause: (any Error)? = nil) {
        self.kind = kind
        self.message = message
        self.cause = cause
    }

    /// A kernel failure: the kind carries the syscall's operation and errno.
    public static func kernel(_ message: String, _ cause: SystemError) -> HakoError {
        HakoError(.kernel(operation: cause.operation, errno: cause.errno), message, cause: cause)
    }

    public var description: String {
        if let cause { return "\(message): \(cause)" }
        return message
    }

    /// Docker's exit statuses: 126 cannot execute, 127 not found, 125 for every other failure of hako's.
    public var exitStatus: Int32 { kind.exitStatus }

    /// The kind of any error hako throws: a `KindedError`'s own (HakoError,
    /// SystemError, the image and cluster errors; a `.failed` HakoError's
    /// cause's when it has one), `.failed` for the rest.
    public static func kind(of error: any Error) -> Kind {
        if let h = error as? HakoError {
            if case .failed = h.kind, let cause = h.cause { return kind(of: cause) }
            return h.kind
        }
        return (error as? any KindedError)?.kind ?? .failed
    }
}

extension HakoError.Kind {
    public var exitStatus: Int32 {
        switch self {
        case .cannotExecute: return 126
        case .commandNotFound: return 127
        default: return 125
        }
    }
}

/// An error type that says which `HakoError.Kind` it is, so the mappings to
/// exit codes, protocol codes and HTTP statuses read it without reading text.
public protocol KindedError: Error {
    var kind: HakoError.Kind { get }
}

extension HakoError: KindedError {}

/// A syscall that failed: the operation, what it was applied to, and errno.
public struct SystemError: Error, CustomStringConvertible, Sendable, Equatable, KindedError {
    public var operation: String
    public var path: String?
    public var errno: Int32

    public init(_ operation: String, _ path: String? = nil, errno: Int32 = Glibc.errno) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    public var kind: HakoError.Kind { .kernel(operation: operation, errno: errno) }

    public var description: String {
        let reason = String(cString: strerror(errno))
        if let path { return "\(operation) \(path): \(reason)" }
        return "\(operation): \(reason)"
    }
}

/// Runs a syscall-like closure and throws a SystemError when it returns -1.
@discardableResult
public func sys<T: BinaryInteger>(_ operation: String, _ path: String? = nil, _ body: () -> T) throws -> T {
    while true {
        let r = body()
        if r == -1 {
            let e = errno
            if e == EINTR { continue }
            throw SystemError(operation, path, errno: e)
        }
        return r
    }
}
