import HakoSystem

/// runc's command line by hand (no swift-argument-parser: its start-up costs
/// milliseconds an OCI runtime cannot spend): `--opt value`, `--opt=value`,
/// single-dash long names (`-root`), booleans with an optional `=true|false`.
/// Options may follow positional arguments (urfave/cli reorders them) unless
/// `stopAtPositional`, as for exec, whose command carries its own options.
struct Options {
    struct Spec {
        var names: [String]
        var takesValue: Bool
        var repeated = false
    }

    private(set) var values: [String: [String]] = [:]
    private(set) var flags: Set<String> = []
    private(set) var positionals: [String] = []

    func value(_ name: String) -> String? { values[name]?.last }
    func all(_ name: String) -> [String] { values[name] ?? [] }
    func has(_ name: String) -> Bool { flags.contains(name) }

    /// `specs`: the first name of each is its key.
    init(_ args: ArraySlice<String>, _ specs: [Spec], stopAtPositional: Bool = false, command: String) throws {
        var i = args.startIndex
        var onlyPositionals = false
        while i < args.endIndex {
            let a = args[i]
            i += 1
            if onlyPositionals || a == "-" || !a.hasPrefix("-") {
                positionals.append(a)
                if stopAtPositional { onlyPositionals = true }
                continue
            }
            if a == "--" { onlyPositionals = true; continue }
            var name = a.hasPrefix("--") ? String(a.dropFirst(2)) : String(a.dropFirst())
            var inline: String?
            if let eq = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            guard let spec = specs.first(where: { $0.names.contains(name) }) else {
                throw HakoError(.failed, "\(command): unknown option \(a) (see hako-runtime \(command) --help)")
            }
            let key = spec.names[0]
            if spec.takesValue {
                let v: String
                if let inline { v = inline } else {
                    guard i < args.endIndex else { throw HakoError(.failed, "\(command): option \(a) needs a value") }
                    v = args[i]
                    i += 1
                }
                values[key, default: []].append(v)
            } else {
                switch inline {
                case nil, "true", "1": flags.insert(key)
                case "false", "0": flags.remove(key)
                default: throw HakoError(.failed, "\(command): option \(a) takes true or false")
                }
            }
        }
    }

    /// The one positional argument a command takes (the container id).
    func id(_ command: String) throws -> String {
        guard let first = positionals.first, !first.isEmpty else { throw HakoError(.failed, "\(command): a container id is required") }
        return first
    }

    func uint32(_ name: String, _ command: String) throws -> UInt32? {
        guard let v = value(name) else { return nil }
        guard let n = UInt32(v) else { throw HakoError(.failed, "\(command): --\(name) must be a number, not \"\(v)\"") }
        return n
    }
}

extension Options.Spec {
    static func flag(_ names: String...) -> Self { Self(names: names, takesValue: false) }
    static func value(_ names: String...) -> Self { Self(names: names, takesValue: true) }
}
