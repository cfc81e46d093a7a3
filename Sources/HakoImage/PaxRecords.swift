import HakoSystem

/// The records of one PAX extended header ("%d %s=%s\n" each), reduced to
/// the keys hako uses.
struct PaxRecords {
    var path: String?
    var linkPath: String?
    var size: Int64?
    var uid: Int64?
    var gid: Int64?
    var userName: String?
    var groupName: String?
    var modified: Timestamp?
    var xattrs: [String: [UInt8]] = [:]
    /// GNU sparse-file records were present (not supported).
    var sparse = false

    static func parse(_ data: [UInt8]) throws -> PaxRecords {
        var records = PaxRecords()
        var i = 0
        while i < data.count {
            if data[i] == 0 && data[i...].allSatisfy({ $0 == 0 }) { break }  // NUL padding
            var length = 0
            var j = i
            while j < data.count, data[j] >= 0x30, data[j] <= 0x39 {
                length = length * 10 + Int(data[j] - 0x30)
                guard length <= data.count else { throw malformed("record length exceeds the header") }
                j += 1
            }
            guard j > i, j < data.count, data[j] == 0x20, length > j - i + 1,
                  i + length <= data.count, data[i + length - 1] == 0x0a else {
                throw malformed("malformed record at byte \(i)")
            }
            let record = data[(j + 1)..<(i + length - 1)]
            guard let eq = record.firstIndex(of: UInt8(ascii: "=")), eq > record.startIndex else {
                throw malformed("record without a key at byte \(i)")
            }
            let key = String(decoding: record[record.startIndex..<eq], as: UTF8.self)
            let value = Array(record[(eq + 1)...])
            try records.apply(key: key, value: value)
            i += length
        }
        return records
    }

    private static func malformed(_ what: String) -> ImageError {
        .malformedArchive("PAX header: \(what)")
    }

    /// An empty value removes the record (the header's own field applies again).
    private mutating func apply(key: String, value: [UInt8]) throws {
        let text = value.isEmpty ? nil : String(decoding: value, as: UTF8.self)
        switch key {
        case "path": path = text
        case "linkpath": linkPath = text
        case "uname": userName = text
        case "gname": groupName = text
        case "size": size = try text.map { try PaxRecords.decimal($0, key) }
        case "uid": uid = try text.map { try PaxRecords.decimal($0, key) }
        case "gid": gid = try text.map { try PaxRecords.decimal($0, key) }
        case "mtime": modified = try text.map { try PaxRecords.time($0) }
        default:
            if key.hasPrefix("SCHILY.xattr.") {
                let name = String(key.dropFirst("SCHILY.xattr.".count))
                guard !name.isEmpty else { throw PaxRecords.malformed("empty xattr name") }
                xattrs[name] = value
            } else if key.hasPrefix("GNU.sparse.") {
                sparse = true
            }
            // Other records (atime, ctime, comment, charset, LIBARCHIVE.*) do not matter here.
        }
    }

    private static func decimal(_ s: String, _ key: String) throws -> Int64 {
        guard !s.isEmpty, s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let v = Int64(s) else {
            throw malformed("invalid \(key) \"\(s)\"")
        }
        return v
    }

    /// "[-]seconds[.fraction]".
    private static func time(_ s: String) throws -> Timestamp {
        var text = Substring(s)
        let negative = text.hasPrefix("-")
        if negative { text = text.dropFirst() }
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let whole = parts[0]
        guard !whole.isEmpty, whole.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), var seconds = Int64(whole) else {
            throw malformed("invalid mtime \"\(s)\"")
        }
        var nanos: Int64 = 0
        if parts.count == 2 {
            let frac = parts[1]
            guard frac.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { throw malformed("invalid mtime \"\(s)\"") }
            var digits = 0
            for c in frac.utf8 where digits < 9 {
                nanos = nanos * 10 + Int64(c - 0x30)
                digits += 1
            }
            while digits < 9 { nanos *= 10; digits += 1 }
        }
        if negative {
            seconds = -seconds
            if nanos > 0 { seconds -= 1; nanos = 1_000_000_000 - nanos }
        }
        return Timestamp(seconds: seconds, nanoseconds: Int32(nanos))
    }
}
