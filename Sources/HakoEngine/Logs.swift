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
