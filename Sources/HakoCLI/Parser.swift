/// Parses a command line against a command tree, the way Docker's command
/// line reads: options anywhere among a command's arguments (`rm c1 -f`),
/// `--name=VALUE` and `--name VALUE`, clustered short flags with a value last
/// (`-itp 80:80`, `-eKEY=V`), `--` ending the options, and for a passthrough
/// command (`run IMAGE COMMAND…`) everything from the first positional on
/// left to the container.
public enum CommandLineParser {
    /// The command the arguments select, its values read; `validate()` has run.
    public static func parse(_ root: any ParsableCommand.Type, _ arguments: [String]) throws -> any ParsableCommand {
        var path: [any ParsableCommand.Type] = [root]
        var rest = arguments[...]
        // Global options met before the subcommand, handed to the leaf.
        var leading: [String] = []
        var leadingDeclarations: [Declaration] = []
        let globals = root.configuration.globalOptions.map(declare) ?? []
        // Groups: the first token that is not an option names the subcommand.
        while let node = path.last, !node.configuration.subcommands.isEmpty {
            guard let token = rest.first else { throw CommandLineRequest.help(path) }
            rest = rest.dropFirst()
            if token.hasPrefix("-"), token != "-", let taken = try globalOption(token, rest, globals, path: path) {
                leading += [token] + taken
                leadingDeclarations += globals.filter { matches(token, $0) }
                rest = rest.dropFirst(taken.count)
                continue
            }
            switch token {
            case "--help", "-h":
                throw CommandLineRequest.help(path)
            case "--version" where node.configuration.version != nil:
                throw CommandLineRequest.text((node.configuration.version ?? "") + "\n")
            case "--generate-completion-script" where path.count == 1:
                guard let shell = rest.first else { throw usage("--generate-completion-script needs a shell: bash, zsh or fish", path) }
                throw CommandLineRequest.text(try Completions.script(shell: shell, root: root, path: path))
            case "help" where path.count == 1:
                if rest.first == "--commands" { throw CommandLineRequest.text(Help.commandPaths(root).joined(separator: "\n") + "\n") }
                throw CommandLineRequest.help(try resolve(Array(rest), from: path))
            default:
                if token.hasPrefix("-") { throw usage("unknown flag: \(token)", path) }
                guard let sub = subcommand(token, of: node) else {
                    throw usage("unknown command \"\(token)\" for \"\(pathName(path))\"", path)
                }
                path.append(sub)
            }
        }
        guard let leaf = path.last else { throw CommandLineRequest.help(path) }
        let declarations = declare(leaf)
        if let d = leadingDeclarations.first(where: { d in !declarations.contains { $0.longNames == d.longNames && $0.shortNames == d.shortNames } }) {
            throw usage("\(d.displayName) does not apply to \"\(pathName(path))\"", path)
        }
        let values = try assign(leading + Array(rest), to: declarations, path: path)
        let (command, context) = ParseContext.with(.read(values)) { leaf.init() }
        if let first = context.errors.first { throw usage(first, path) }
        var checked = command
        try checked.validate()
        return checked
    }

    /// A global option before the subcommand (`--root DIR`, `--root=DIR`, a
    /// flag): the tokens after it that it takes, or nil when `token` is none.
    static func globalOption(_ token: String, _ rest: ArraySlice<String>, _ globals: [Declaration],
                             path: [any ParsableCommand.Type]) throws -> [String]? {
        guard let d = globals.first(where: { matches(token, $0) }) else { return nil }
        guard case .option = d.kind, !token.contains("=") else { return [] }
        guard let value = rest.first else { throw usage("flag needs an argument: \(token)", path) }
        return [value]
    }

    /// Whether `token` (`--name`, `--name=V`, `-n`) names the declaration.
    static func matches(_ token: String, _ d: Declaration) -> Bool {
        if token.hasPrefix("--") {
            let name = token.dropFirst(2).split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            return d.longNames.contains(name)
        }
        return token.count == 2 && token.last.map { d.shortNames.contains($0) } == true
    }

    /// The declarations of a command, in declaration order.
    static func declare(_ type: any ParsableArguments.Type) -> [Declaration] {
        ParseContext.with(.declare) { _ = type.init() }.1.declarations
    }

    static func subcommand(_ name: String, of node: any ParsableCommand.Type) -> (any ParsableCommand.Type)? {
        node.configuration.subcommands.first { $0.configuration.commandName == name || $0.configuration.aliases.contains(name) }
    }

    /// `help network create` → the path to that command.
    static func resolve(_ names: [String], from root: [any ParsableCommand.Type]) throws -> [any ParsableCommand.Type] {
        var path = root
        for name in names {
            guard let node = path.last, let sub = subcommand(name, of: node) else {
                throw usage("unknown command \"\(name)\" for \"\(pathName(path))\"", path)
            }
            path.append(sub)
        }
        return path
    }

    static func pathName(_ path: [any ParsableCommand.Type]) -> String {
        path.map { $0.configuration.commandName }.joined(separator: " ")
    }

    static func usage(_ message: String, _ path: [any ParsableCommand.Type]) -> UsageError {
        UsageError(message: message, commandPath: pathName(path))
    }

    /// Splits a leaf command's tokens into the values of each declaration.
    static func assign(_ tokens: [String], to declarations: [Declaration], path: [any ParsableCommand.Type]) throws -> [[String]] {
        var values = Array(repeating: [String](), count: declarations.count)
        // A command line has a few options: a scan is cheaper than hashing every name.
        func long(_ name: String) -> Int? { declarations.firstIndex { $0.longNames.contains(name) } }
        func short(_ c: Character) -> Int? { declarations.firstIndex { $0.shortNames.contains(c) } }
        let passthrough = declarations.contains { $0.kind == .positional(.passthrough) }
        var positionals: [String] = []
        var onlyPositionals = false
        var i = 0

        /// The value of option `d` spelled `spelling`: attached, or the next token(s).
        func take(_ d: Declaration, _ index: Int, attached: String?, spelling: String) throws {
            if case .flag = d.kind {
                values[index].append(attached ?? "true")
                return
            }
            if let attached {
                values[index].append(attached)
                return
            }
            guard i < tokens.count else { throw usage("flag needs an argument: \(spelling)", path) }
            if case .option(_, upToNextOption: true) = d.kind {
                guard !tokens[i].hasPrefix("-") else { throw usage("flag needs an argument: \(spelling)", path) }
                while i < tokens.count, !tokens[i].hasPrefix("-") {
                    values[index].append(tokens[i])
                    i += 1
                }
                return
            }
            values[index].append(tokens[i])
            i += 1
        }

        while i < tokens.count {
            let t = tokens[i]
            i += 1
            if onlyPositionals || (passthrough && !positionals.isEmpty) || t == "-" || !t.hasPrefix("-") {
                positionals.append(t)
                continue
            }
            if t == "--" {
                onlyPositionals = true
                continue
            }
            if t.hasPrefix("--") {
                let body = t.dropFirst(2)
                let name = String(body.prefix { $0 != "=" })
                let attached = body.firstIndex(of: "=").map { String(body[body.index(after: $0)...]) }
                guard let index = long(name) else {
                    if name == "help" { throw CommandLineRequest.help(path) }
                    throw usage("unknown flag: --\(name)", path)
                }
                try take(declarations[index], index, attached: attached, spelling: "--" + name)
                continue
            }
            // A cluster of short names; one taking a value ends it (`-eKEY=V`, `-itp 80:80`).
            // Walked by the Substring's own indices: a String made from a slice of
            // [Character] went through the standard library's generic initialiser,
            // whose first use in a process scanned every conformance record (tens to hundreds of µs).
            let cluster = t.dropFirst()
            var j = cluster.startIndex
            while j < cluster.endIndex {
                let c = cluster[j]
                guard let index = short(c) else {
                    if c == "h" { throw CommandLineRequest.help(path) }
                    throw usage(cluster.count == 1 ? "unknown shorthand flag: '\(c)' in -\(c)" : "unknown shorthand flag: '\(c)' in \(t)", path)
                }
                let d = declarations[index]
                let next = cluster.index(after: j)
                var rest = String(cluster[next...])
                if case .flag = d.kind, !rest.hasPrefix("=") {
                    values[index].append("true")
                    j = next
                    continue
                }
                if rest.hasPrefix("=") { rest.removeFirst() }
                try take(d, index, attached: rest.isEmpty ? nil : rest, spelling: "-" + String(c))
                break
            }
        }

        // Positionals in declaration order; a list takes what is left.
        var k = 0
        for (index, d) in declarations.enumerated() {
            guard case .positional(let kind) = d.kind else { continue }
            switch kind {
            case .required:
                guard k < positionals.count else { throw usage("\"\(pathName(path))\" requires \(d.help)", path) }
                values[index] = [positionals[k]]
                k += 1
            case .optional:
                if k < positionals.count {
                    values[index] = [positionals[k]]
                    k += 1
                }
            case .atLeastOne:
                guard k < positionals.count else { throw usage("\"\(pathName(path))\" requires at least 1 argument (\(d.help))", path) }
                values[index] = Array(positionals[k...])
                k = positionals.count
            case .any, .passthrough:
                values[index] = Array(positionals[k...])
                k = positionals.count
            }
        }
        if k < positionals.count {
            throw usage("unexpected argument \"\(positionals[k])\" for \"\(pathName(path))\"", path)
        }
        return values
    }
}
