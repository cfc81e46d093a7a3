/// An option taking a value: `@Option(name: .long("name"), help: "…") var name: String?`.
@propertyWrapper
public struct Option<Value> {
    public var wrappedValue: Value

    /// One value with a default; the last occurrence wins.
    public init(wrappedValue: Value, name: NameSpecification, parsing: OptionParsing = .next, help: String) where Value: ArgumentValue {
        let d = Declaration(kind: .option(repeated: false, upToNextOption: parsing == .upToNextOption),
                            longNames: name.longs, shortNames: name.shorts, help: help, defaultValue: wrappedValue.description)
        let values: [Value] = ParseContext.convert(ParseContext.tokens(for: d) ?? [], d)
        self.wrappedValue = values.last ?? wrappedValue
    }

    /// One value or none; the last occurrence wins.
    public init<T: ArgumentValue>(name: NameSpecification, parsing: OptionParsing = .next, help: String) where Value == T? {
        let d = Declaration(kind: .option(repeated: false, upToNextOption: parsing == .upToNextOption),
                            longNames: name.longs, shortNames: name.shorts, help: help)
        let values: [T] = ParseContext.convert(ParseContext.tokens(for: d) ?? [], d)
        self.wrappedValue = values.last
    }

    /// Every occurrence, in order (`-e A=1 -e B=2`).
    public init<T: ArgumentValue>(wrappedValue: [T] = [], name: NameSpecification, parsing: OptionParsing = .next, help: String) where Value == [T] {
        let d = Declaration(kind: .option(repeated: true, upToNextOption: parsing == .upToNextOption),
                            longNames: name.longs, shortNames: name.shorts, help: help)
        let tokens = ParseContext.tokens(for: d) ?? []
        self.wrappedValue = tokens.isEmpty ? wrappedValue : ParseContext.convert(tokens, d)
    }
}

/// A flag: `-d`, `--detach`, or `--detach=false`.
@propertyWrapper
public struct Flag {
    public var wrappedValue: Bool

    public init(wrappedValue: Bool = false, name: NameSpecification, help: String) {
        let d = Declaration(kind: .flag, longNames: name.longs, shortNames: name.shorts, help: help)
        let values: [Bool] = ParseContext.convert(ParseContext.tokens(for: d) ?? [], d)
        self.wrappedValue = values.last ?? wrappedValue
    }
}

/// A flag whose absence is not `false`: nil when not given, so that an update
/// can tell "leave it" (`update`) from "turn it off" (`update --read-only=false`).
@propertyWrapper
public struct OptionalFlag {
    public var wrappedValue: Bool?

    public init(name: NameSpecification, help: String) {
        let d = Declaration(kind: .flag, longNames: name.longs, shortNames: name.shorts, help: help)
        let values: [Bool] = ParseContext.convert(ParseContext.tokens(for: d) ?? [], d)
        self.wrappedValue = values.last
    }
}

/// A positional argument; `help` is also its name in the usage line (`CONTAINER...`).
@propertyWrapper
public struct Argument<Value> {
    public var wrappedValue: Value

    /// Exactly one.
    public init(help: String) where Value == String {
        let d = Declaration(kind: .positional(.required), longNames: [], shortNames: [], help: help)
        let tokens = ParseContext.tokens(for: d) ?? []
        self.wrappedValue = tokens.first ?? ""
    }

    /// One or none.
    public init(help: String) where Value == String? {
        let d = Declaration(kind: .positional(.optional), longNames: [], shortNames: [], help: help)
        self.wrappedValue = ParseContext.tokens(for: d)?.first
    }

    /// One or more.
    public init(help: String) where Value == [String] {
        let d = Declaration(kind: .positional(.atLeastOne), longNames: [], shortNames: [], help: help)
        self.wrappedValue = ParseContext.tokens(for: d) ?? []
    }

    /// Any number; with `.passthrough`, everything from the first positional on.
    public init(wrappedValue: [String], parsing: ArgumentParsing = .positional, help: String) where Value == [String] {
        let d = Declaration(kind: .positional(parsing == .passthrough ? .passthrough : .any), longNames: [], shortNames: [], help: help)
        let tokens = ParseContext.tokens(for: d) ?? []
        self.wrappedValue = tokens.isEmpty ? wrappedValue : tokens
    }
}

/// Options shared by several commands, declared once in a `ParsableArguments` type.
/// A title puts them under their own heading in help.
@propertyWrapper
public struct OptionGroup<Value: ParsableArguments> {
    public var wrappedValue: Value

    public init() { self.init(title: nil) }

    public init(title: String?) {
        ParseContext.enterGroup(title)
        defer { ParseContext.leaveGroup() }
        self.wrappedValue = Value()
    }
}
