import HakoSystem

/// One member of a tar archive, with every extension (GNU long names, PAX
/// records) already folded in.
public struct TarEntry: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case regular
        case directory
        case symlink
        case hardlink
        case characterDevice
        case blockDevice
        case fifo
    }

    /// The member's name as stored (not cleaned: may hold "./", "..", a leading "/").
    public var path: String
    public var kind: Kind
    /// Bytes of content (regular files only; 0 for every other kind).
    public var size: Int64
    /// Permission bits including setuid, setgid and sticky (mode & 0o7777).
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var userName: String
    public var groupName: String
    public var modified: Timestamp
    /// Symlink target or hardlink target (another member's name).
    public var linkTarget: String
    public var deviceMajor: UInt32
    public var deviceMinor: UInt32
    /// Extended attributes from PAX `SCHILY.xattr.*` records, name → raw value.
    public var xattrs: [String: [UInt8]]

    public init(path: String, kind: Kind, size: Int64 = 0, mode: UInt32 = 0o644, uid: UInt32 = 0, gid: UInt32 = 0,
                userName: String = "", groupName: String = "", modified: Timestamp = Timestamp(seconds: 0),
                linkTarget: String = "", deviceMajor: UInt32 = 0, deviceMinor: UInt32 = 0,
                xattrs: [String: [UInt8]] = [:]) {
        self.path = path
        self.kind = kind
        self.size = size
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.userName = userName
        self.groupName = groupName
        self.modified = modified
        self.linkTarget = linkTarget
        self.deviceMajor = deviceMajor
        self.deviceMinor = deviceMinor
        self.xattrs = xattrs
    }
}

/// Field decoding of a 512-byte tar header block.
enum TarHeaderField {
    /// A NUL-terminated (or field-filling) string.
    static func string(_ block: UnsafeRawBufferPointer, _ offset: Int, _ length: Int) -> String {
        var end = offset
        while end < offset + length && block[end] != 0 { end += 1 }
        return String(decoding: UnsafeRawBufferPointer(rebasing: block[offset..<end]), as: UTF8.self)
    }

    /// A numeric field: octal ASCII (padded with spaces or NULs) or, when the
    /// high bit of the first byte is set, GNU base-256 (two's complement).
    static func number(_ block: UnsafeRawBufferPointer, _ offset: Int, _ length: Int, field: String) throws -> Int64 {
        let first = block[offset]
        if first & 0x80 != 0 {
            // Base-256, big-endian two's complement; bit 6 of the first byte is the sign.
            let invert: UInt8 = first & 0x40 != 0 ? 0xff : 0
            var value: UInt64 = 0
            for i in offset..<(offset + length) {
                var c = block[i] ^ invert
                if i == offset { c &= 0x7f }
                guard value >> 56 == 0 else {
                    throw ImageError.malformedArchive("\(field) field overflows (base-256)")
                }
                value = (value << 8) | UInt64(c)
            }
            guard value >> 63 == 0 else {
                throw ImageError.malformedArchive("\(field) field overflows (base-256)")
            }
            return invert == 0xff ? ~Int64(value) : Int64(value)
        }
        var start = offset
        var end = offset + length
        while start < end && (block[start] == 0x20 || block[start] == 0) { start += 1 }
        while end > start && (block[end - 1] == 0x20 || block[end - 1] == 0) { end -= 1 }
        var value: Int64 = 0
        for i in start..<end {
            let c = block[i]
            guard c >= 0x30 && c <= 0x37 else {
                throw ImageError.malformedArchive("invalid octal number in the \(field) field")
            }
            guard value <= (Int64.max >> 3) else {
                throw ImageError.malformedArchive("\(field) field overflows")
            }
            value = value * 8 + Int64(c - 0x30)
        }
        return value
    }

    /// Whether the header checksum matches (unsigned sum, or the historic
    /// signed sum some old tars wrote), with the checksum field read as spaces.
    static func checksumMatches(_ block: UnsafeRawBufferPointer) throws -> Bool {
        let stored = try number(block, 148, 8, field: "checksum")
        var unsigned: Int64 = 0
        var signed: Int64 = 0
        for i in 0..<512 {
            let b = (i >= 148 && i < 156) ? UInt8(0x20) : block[i]
            unsigned += Int64(b)
            signed += Int64(Int8(bitPattern: b))
        }
        return stored == unsigned || stored == signed
    }
}
