#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// One record of a container log: `<RFC3339Nano> <stdout|stderr> <F|P> <text>`.
public struct LogRecord: Sendable, Equatable {
    public var time: String
    public var stderr: Bool
    /// The record ends a line (F) or is a piece of one (P).
    public var endsLine: Bool
    public var text: [UInt8]

    /// Parses one line of the log file (without its newline); nil if malformed.
    public static func parse(_ line: ArraySlice<UInt8>) -> LogRecord? {
        var parts: [ArraySlice<UInt8>] = []
        var rest = line
        for _ in 0..<3 {
            guard let sp = rest.firstIndex(of: UInt8(ascii: " ")) else { return nil }
            parts.append(rest[rest.startIndex..<sp])
            rest = rest[(sp + 1)...]
        }
        let stream = String(decoding: parts[1], as: UTF8.self)
        let tag = String(decoding: parts[2], as: UTF8.self)
        guard stream == "stdout" || stream == "stderr", tag == "F" || tag == "P" else { return nil }
        return LogRecord(time: String(decoding: parts[0], as: UTF8.self), stderr: stream == "stderr", endsLine: tag == "F", text: Array(rest))
    }
}

/// Reads a container's log files (rotated ones first) and follows the live one.
public struct LogReader {
    public var path: String
    public var maxFiles: UInt32

    public init(path: String, maxFiles: UInt32) {
        self.path = path
        self.maxFiles = maxFiles
    }

    var files: [String] {
        var out: [String] = []
        if maxFiles > 1 {
            for i in stride(from: Int(maxFiles) - 1, through: 1, by: -1) where FS.exists("\(path).\(i)") { out.append("\(path).\(i)") }
        }
        out.append(path)
        return out
    }

    static func records(in bytes: [UInt8]) -> (records: [LogRecord], consumed: Int) {
        var out: [LogRecord] = []
        var start = 0
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\n") {
                if let r = LogRecord.parse(bytes[start..<i]) { out.append(r) }
                start = i + 1
            }
            i += 1
        }
        return (out, start)
    }

    /// Emits the records; with `since`/`until`, only those written at or after
    /// `since` and before `until`; with `tail`, only those of the last N lines
    /// of what the window holds. With `follow`, keeps emitting new records
    /// until `stillRunning` says no, or until the clock passes `until`.
    public func read(tail: Int?, since: Timestamp? = nil, until: Timestamp? = nil, follow: Bool,
                     stillRunning: () -> Bool, emit deliver: (LogRecord) -> Void) {
        let windowed = since != nil || until != nil
        func inWindow(_ r: LogRecord) -> Bool {
            guard windowed, let t = Timestamp(rfc3339: r.time) else { return true }
            if let since, t < since { return false }
            if let until, !(t < until) { return false }
            return true
        }
        func emit(_ r: LogRecord) { if inWindow(r) { deliver(r) } }
        var all: [LogRecord] = []
        var offset = 0
        var inode: UInt64 = 0
        for f in files {
            guard let bytes = try? FS.readFile(f) else { continue }
            let (recs, consumed) = LogReader.records(in: bytes)
            all += windowed ? recs.filter(inWindow) : recs
            if f == path {
                offset = consumed
                var st = stat()
                if stat(f, &st) == 0 { inode = UInt64(st.st_ino) }
            }
        }
        if let n = tail {
            var lines = 0
            var cut = all.count
            var idx = all.count - 1
            while idx >= 0 {
                if all[idx].endsLine {
                    if lines == n { break }
                    lines += 1
                }
                cut = idx
                idx -= 1
            }
            if n == 0 { cut = all.count }
            all = Array(all[cut...])
        }
        for r in all { emit(r) }
        guard follow else { return }

        // Follow the live file: new data at the end, or a fresh file after rotation.
        var idle = 0
        while true {
            if let until, !(Timestamp.now() < until) { return }
            let running = stillRunning()
            var st = stat()
            if stat(path, &st) == 0 {
                if UInt64(st.st_ino) != inode {
                    // Rotated: finish the old file (now .1), then start the new one from 0.
                    if let bytes = try? FS.readFile("\(path).1"), bytes.count > offset {
                        let (recs, _) = LogReader.records(in: Array(bytes[offset...]))
                        recs.forEach(emit)
                    }
                    inode = UInt64(st.st_ino)
                    offset = 0
                }
                if Int(st.st_size) > offset, let fd = try? FileDescriptor.open(path, O_RDONLY) {
                    lseek(fd.rawValue, off_t(offset), SEEK_SET)
                    if let bytes = try? fd.readAll() {
                        let (recs, consumed) = LogReader.records(in: bytes)
                        recs.forEach(emit)
                        offset += consumed
                        idle = 0
                        continue
                    }
                }
            }
            if !running {
                // One last look after the writer has gone.
                idle += 1
                if idle > 1 { return }
            }
            usleep(100_000)
        }
    }
}

/// The extra attributes docker's log drivers attach to every record when
/// `--log-opt labels=a,b`, `labels-regex=RE`, `env=X,Y` or `env-regex=RE` ask
/// for them: the named (or matching) labels and environment variables of the
/// container, with the values they have in its configuration. They are fixed
/// at create, as docker fixes them when the container's log starts, so hako
/// reads them from the configuration instead of repeating them in every record.
extension ContainerConfig {
    public var logAttributes: [String: String] {
        guard let o = logAttributeOptions else { return [:] }
        var out: [String: String] = [:]
        func matches(_ pattern: String?, _ key: String) -> Bool {
            guard let pattern, let re = try? Regex(pattern) else { return false }
            return key.contains(re)
        }
        for k in (o["labels"] ?? "").split(separator: ",").map(String.init) {
            if let v = labels[k] { out[k] = v }
        }
        for (k, v) in labels where matches(o["labels-regex"], k) { out[k] = v }
        var environment: [String: String] = [:]
        for e in env {
            let kv = e.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if kv.count == 2 { environment[String(kv[0])] = String(kv[1]) }
        }
        for k in (o["env"] ?? "").split(separator: ",").map(String.init) {
            if let v = environment[k] { out[k] = v }
        }
        for (k, v) in environment where matches(o["env-regex"], k) { out[k] = v }
        return out
    }
}

/// `logs --details`: docker's prefix of every line, the attributes sorted by
/// key as `k=v` pairs (query-escaped) joined by commas, then a space, which
/// stands alone when there are none.
public enum LogDetails {
    public static func prefix(_ attributes: [String: String]) -> String {
        attributes.keys.sorted().map { $0.queryEscaped + "=" + (attributes[$0] ?? "").queryEscaped }.joined(separator: ",") + " "
    }
}
