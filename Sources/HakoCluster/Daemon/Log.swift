#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// The daemons' log: one line per event on standard error,
/// `<RFC 3339 time> <level> <component>: <message>`, or under systemd
/// `<priority>component: message` for the journal (ClusterLog+Journal.swift).
public struct ClusterLog: Sendable {
    public enum Level: Int, Sendable, Comparable {
        case debug = 0, info, warning, error
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        public init?(name: String) {
            switch name.lowercased() {
            case "debug": self = .debug
            case "info": self = .info
            case "warning", "warn": self = .warning
            case "error": self = .error
            default: return nil
            }
        }
        var name: String { ["debug", "info", "warn", "error"][rawValue] }
    }

    public var component: String
    public var level: Level
    /// Where lines go; standard error unless a test captures them.
    public var sink: @Sendable (String) -> Void
    public var format = Format.detect()

    public init(component: String, level: Level = .info, sink: @escaping @Sendable (String) -> Void = { writeStderr($0) }) {
        self.component = component
        self.level = level
        self.sink = sink
    }

    public static let silent = ClusterLog(component: "", level: .error, sink: { _ in })

    public func log(_ l: Level, _ message: @autoclosure () -> String) {
        guard l >= level else { return }
        sink(format.line(l, component: component, message: message(), now: Timestamp.now().rfc3339))
    }

    public func debug(_ m: @autoclosure () -> String) { log(.debug, m()) }
    public func info(_ m: @autoclosure () -> String) { log(.info, m()) }
    public func warning(_ m: @autoclosure () -> String) { log(.warning, m()) }
    public func error(_ m: @autoclosure () -> String) { log(.error, m()) }
}
