#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The one public error of hako: a code that maps to the CLI's exit status, a
/// message for a person, and the cause underneath.
public struct HakoError: Error, CustomStringConvertible, Sendable {
    public enum Code: Sendable, Equatable {
        /// hako's own failure (Docker's 125): bad input, missing image, kernel refusal.
        case failed
        /// The command was found but cannot be executed (126).
        case cannotExecute
        /// The command was not found (127).
        case notFound
    }

    public var code: Code
    public var message: String
    public var cause: (any Error)?

    public init(_ code: Code = .failed, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        if let cause { return "\(message): \(cause)" }
        return message
    }

    public var exitStatus: Int32 {
        switch code {
        case .failed: return 125
        case .cannotExecute: return 126
        case .notFound: return 127
        }
    }
}

/// A syscall that failed: the operation, what it was applied to, and errno.
public struct SystemError: Error, CustomStringConvertible, Sendable, Equatable {
    public var operation: String
    public var path: String?
    public var errno: Int32

    public init(_ operation: String, _ path: String? = nil, errno: Int32 = Glibc.errno) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

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
