import HakoSystem

/// Container names: Docker's rules, and generated names for containers without one.
public enum Names {
    /// [a-zA-Z0-9][a-zA-Z0-9_.-]+
    public static func isValid(_ name: String) -> Bool {
        let b = Array(name.utf8)
        guard b.count >= 2, b.count <= 128 else { return false }
        func alnum(_ c: UInt8) -> Bool { (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) }
        guard alnum(b[0]) else { return false }
        return b.dropFirst().allSatisfy { alnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    static let adjectives = ["brave", "calm", "clever", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lively",
                             "merry", "nimble", "proud", "quiet", "rapid", "sharp", "silent", "steady", "swift", "tidy",
                             "vivid", "wise", "witty", "zealous", "bold", "bright", "cosy", "daring", "fierce", "humble"]
    static let nouns = ["ant", "badger", "crane", "dolphin", "eagle", "falcon", "gecko", "heron", "ibis", "jaguar",
                        "koala", "lynx", "marten", "newt", "otter", "panda", "quail", "raven", "salmon", "tapir",
                        "urchin", "vole", "walrus", "yak", "zebra", "bison", "cobra", "dingo", "egret", "ferret"]

    public static func generate() -> String {
        let r = randomBytes(3)
        return "\(adjectives[Int(r[0]) % adjectives.count])_\(nouns[Int(r[1]) % nouns.count])\(Int(r[2]) % 100)"
    }
}
