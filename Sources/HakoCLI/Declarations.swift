/// What a command accepts, as its property wrappers declare it: options,
/// flags and positional arguments, in declaration order.
///
/// No reflection: a command type is instantiated once to collect its
/// declarations (the wrappers register themselves with the current
/// `ParseContext`), and once more to read the parsed values back in the same
/// order. Mirror-based parsing cost a container's start more than the kernel
/// work of it (docs/benchmarks.md).
public struct Declaration: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A flag: no value, or `=true|false` attached.
        case flag
        /// An option taking a value: the next token, whatever it starts with (as
        /// Docker's parser does, so `--pids-limit -1` works), or `=VALUE`
        /// attached. `repeated` collects every occurrence; `upToNextOption`
        /// takes the following tokens up to the next one starting with `-`.
        case option(repeated: Bool, upToNextOption: Bool)
        case positional(Positional)
    }

    public enum Positional: Sendable, Equatable {
        case required, optional, atLeastOne, any
        /// The first positional and every token after it, options included
        /// (`run IMAGE COMMAND ARG...`).
        case passthrough
    }

    public var kind: Kind
    public var longNames: [String]
    public var shortNames: [Character]
    public var help: String
    /// The option group's title in help, or nil for the command's own options.
    public var group: String?
    /// Shown in help after a Bool option's or other value's help.
    public var defaultValue: String?

    /// `--name` (or `-n`) for messages: the first long name if there is one.
    public var displayName: String {
        if let l = longNames.first { return "--" + l }
        if let s = shortNames.first { return "-" + String(s) }
        return help
    }

    /// The value's name in usage lines: `<name>` of the first long name.
    public var valueName: String { "<\(longNames.first ?? shortNames.first.map { String($0) } ?? "value")>" }

    public var isPositional: Bool { if case .positional = kind { return true } else { return false } }
}

/// An option's or a flag's names: `.long("run-root")`, `.short("e")`, or a list.
public struct NameSpecification: ExpressibleByArrayLiteral, Sendable {
    public enum Element: Sendable {
        case long(String)
        case short(Character)
    }
    public var elements: [Element]

    public init(arrayLiteral elements: Element...) { self.elements = elements }

    public static func long(_ name: String) -> NameSpecification { [.long(name)] }
    public static func short(_ c: Character) -> NameSpecification { [.short(c)] }

    var longs: [String] { elements.compactMap { if case .long(let l) = $0 { l } else { nil } } }
    var shorts: [Character] { elements.compactMap { if case .short(let s) = $0 { s } else { nil } } }
}

/// How an option takes its values.
public enum OptionParsing: Sendable {
    /// One token (or `=VALUE`) per occurrence.
    case next
    /// The following tokens up to the next one starting with `-`.
    case upToNextOption
}

/// How positional arguments are taken.
public enum ArgumentParsing: Sendable {
    case positional
    /// From the first positional on, every token is an argument (`run IMAGE COMMAND ARG...`).
    case passthrough
}

/// A value an option or an argument can hold, made from one token.
public protocol ArgumentValue: CustomStringConvertible {
    init?(argument: String)
    /// What a valid token looks like, for the error message.
    static var expected: String { get }
}

extension String: ArgumentValue {
    public init?(argument: String) { self = argument }
    public static var expected: String { "a string" }
}

extension Int: ArgumentValue {
    public init?(argument: String) { self.init(argument, radix: 10) }
    public static var expected: String { "an integer" }
}

extension UInt32: ArgumentValue {
    public init?(argument: String) { self.init(argument, radix: 10) }
    public static var expected: String { "an integer from 0 to 4294967295" }
}

extension Double: ArgumentValue {
    public init?(argument: String) {
        guard let v = Double(argument), v.isFinite else { return nil }
        self = v
    }
    public static var expected: String { "a number" }
}

extension Bool: ArgumentValue {
    public init?(argument: String) {
        switch argument.lowercased() {
        case "true", "1", "yes": self = true
        case "false", "0", "no": self = false
        default: return nil
        }
    }
    public static var expected: String { "true or false" }
}
