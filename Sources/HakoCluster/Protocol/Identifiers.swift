import HakoSystem

/// Object ids: 25 lowercase letters and digits from the kernel's random
/// source (as swarm's), shown as their first 12 characters.
public enum Identifiers {
    static let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)

    public static func make() -> String {
        let bytes = randomBytes(25)
        // 252 = 7 × 36: rejection sampling keeps the digits uniform.
        var out = [UInt8]()
        out.reserveCapacity(25)
        var pool = bytes[...]
        while out.count < 25 {
            if pool.isEmpty { pool = randomBytes(25)[...] }
            let b = pool.removeFirst()
            if b < 252 { out.append(alphabet[Int(b) % 36]) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func short(_ id: String) -> String { String(id.prefix(12)) }

    public static func isValid(_ id: String) -> Bool {
        id.utf8.count == 25 && id.utf8.allSatisfy { alphabet.contains($0) }
    }

    /// Service names: [a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}; they name containers too.
    public static func isValidName(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard (1...63).contains(b.count) else { return false }
        func alnum(_ c: UInt8) -> Bool { (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) }
        guard alnum(b[0]) else { return false }
        return b.allSatisfy { alnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }
    }
}
