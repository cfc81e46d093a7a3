#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

extension ClusterLog {
    /// How a line looks: with its own time stamp on a terminal or in a file;
    /// under systemd (standard error connected to the journal, as
    /// `JOURNAL_STREAM` says) with the `<N>` priority prefix of sd-daemon(3)
    /// and no time stamp, since the journal keeps its own.
    public enum Format: Sendable, Equatable {
        case plain
        case journal

        /// `journal` when `JOURNAL_STREAM` names the device and inode of standard error.
        public static func detect(environment value: String? = ClusterLog.environment("JOURNAL_STREAM"), stderr: Int32 = 2) -> Format {
            guard let value else { return .plain }
            let parts = value.split(separator: ":")
            guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]) else { return .plain }
            var st = stat()
            guard fstat(stderr, &st) == 0 else { return .plain }
            return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino ? .journal : .plain
        }

        public func line(_ level: Level, component: String, message: String, now: @autoclosure () -> String) -> String {
            switch self {
            case .plain:
                return "\(now()) \(level.name) \(component): \(message)\n"
            case .journal:
                // A message of several lines stays one entry per line, each with its priority.
                let prefix = "<\(level.syslogPriority)>"
                return message.split(separator: "\n", omittingEmptySubsequences: false)
                    .map { "\(prefix)\(component): \($0)\n" }.joined()
            }
        }
    }

    public static func environment(_ key: String) -> String? {
        guard let v = getenv(key) else { return nil }
        let s = String(cString: v)
        return s.isEmpty ? nil : s
    }
}

extension ClusterLog.Level {
    /// syslog(3) priorities: debug 7, info 6, warning 4, error 3.
    public var syslogPriority: Int { [7, 6, 4, 3][rawValue] }
}
