#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// Where hako-runtime reports: errors to stderr, and every message to `--log`
/// in `--log-format` text (logrus's key=value) or json (one object per line;
/// containerd reads the last `"level":"error"` line when a command fails).
public struct RuntimeLog: Sendable {
    public enum Format: String, Sendable { case text, json }
    public var path: String?
    public var format: Format = .text
    public var debug = false

    public init(path: String? = nil, format: Format = .text, debug: Bool = false) {
        self.path = path; self.format = format; self.debug = debug
    }

    public func error(_ message: String) {
        writeStderr("hako-runtime: \(message)\n")
        record("error", message)
    }

    public func warning(_ message: String) {
        if path == nil { writeStderr("hako-runtime: warning: \(message)\n") }
        record("warning", message)
    }

    public func debugMessage(_ message: String) {
        if debug { record("debug", message) }
    }

    /// One formatted line (pure, for tests).
    public func line(_ level: String, _ message: String, time: Timestamp) -> String {
        switch format {
        case .json:
            return JSON.object([("level", .string(level)), ("msg", .string(message)), ("time", .string(time.rfc3339))]).serialized() + "\n"
        case .text:
            var quoted = ""
            JSON.quote(message, into: &quoted)
            return "time=\"\(time.rfc3339)\" level=\(level) msg=\(quoted)\n"
        }
    }

    private func record(_ level: String, _ message: String) {
        guard let path, !path.isEmpty else { return }
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        let bytes = Array(line(level, message, time: .now()).utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        Glibc.close(fd)
    }
}
