/// Small string helpers so the lower layers need no Foundation.
extension StringProtocol {
    /// Without leading and trailing spaces, tabs and newlines.
    public var trimmed: String {
        if let s = self as? String { return s[...].trimmedBytes }
        if let s = self as? Substring { return s.trimmedBytes }
        return String(self)[...].trimmedBytes
    }
}

extension Substring {
    /// By byte (the four are ASCII, never inside a multi-byte character): a
    /// set of Characters built and hashed per call cost ~85 k instructions.
    fileprivate var trimmedBytes: String {
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0a || b == 0x0d }
        guard let start = utf8.firstIndex(where: { !isSpace($0) }),
              let end = utf8.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[start...end])
    }
}

extension String {
    /// Go's url.QueryEscape: letters, digits and `-_.~` kept, a space as `+`,
    /// every other byte as `%XX` (the template's `urlquery`, `logs --details`).
    public var queryEscaped: String {
        var out = ""
        for b in utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            case UInt8(ascii: " "): out += "+"
            default:
                let h = String(b, radix: 16, uppercase: true)
                out += "%" + (h.count == 1 ? "0" + h : h)
            }
        }
        return out
    }
}
