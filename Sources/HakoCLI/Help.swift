/// Help text, made from the same declarations the parser reads.
public enum Help {
    static let column = 32

    /// The help of the command at the end of `path`.
    public static func text(_ path: [any ParsableCommand.Type]) -> String {
        guard let node = path.last else { return "" }
        let name = CommandLineParser.pathName(path)
        let config = node.configuration
        var out = ""
        let subcommands = config.subcommands.filter { $0.configuration.shouldDisplay }
        let declarations = CommandLineParser.declare(node)
        if !config.subcommands.isEmpty {
            out += "Usage: \(name) COMMAND\n"
        } else {
            let positionals = declarations.filter(\.isPositional).map { d -> String in
                if case .positional(.optional) = d.kind { return "[\(d.help)]" }
                return d.help
            }
            out += "Usage: " + ([name, "[OPTIONS]"] + positionals).joined(separator: " ") + "\n"
        }
        if !config.abstract.isEmpty { out += "\n\(config.abstract)\n" }
        if !subcommands.isEmpty {
            out += "\nCommands:\n"
            for s in subcommands {
                let names = ([s.configuration.commandName] + s.configuration.aliases).joined(separator: ", ")
                out += row("  " + names, s.configuration.abstract)
            }
        }
        // The command's own options first, then each titled group in order.
        var sections: [(title: String, lines: String)] = []
        for d in declarations where !d.isPositional {
            let title = d.group ?? "Options"
            if let i = sections.firstIndex(where: { $0.title == title }) {
                sections[i].lines += option(d)
            } else {
                sections.append((title, option(d)))
            }
        }
        let helpLine = row(declarations.contains { $0.shortNames.contains("h") } ? "      --help" : "  -h, --help", "Show this help.")
        if let i = sections.firstIndex(where: { $0.title == "Options" }) {
            sections[i].lines += helpLine
        } else {
            sections.insert(("Options", helpLine + (config.version != nil ? row("      --version", "Show the version.") : "")), at: 0)
        }
        for s in sections { out += "\n\(s.title):\n" + s.lines }
        if !subcommands.isEmpty { out += "\nRun '\(name) COMMAND --help' for more information on a command.\n" }
        return out
    }

    /// Every displayed command's path, depth first (`hako`, `hako run`, …, `hako network create`).
    public static func commandPaths(_ root: any ParsableCommand.Type) -> [String] {
        var out: [String] = []
        func walk(_ node: any ParsableCommand.Type, _ prefix: String) {
            let name = prefix.isEmpty ? node.configuration.commandName : prefix + " " + node.configuration.commandName
            out.append(name)
            for s in node.configuration.subcommands where s.configuration.shouldDisplay { walk(s, name) }
        }
        walk(root, "")
        return out
    }

    static func option(_ d: Declaration) -> String {
        let short = d.shortNames.first.map { "-\($0)" }
        let longs = d.longNames.map { "--" + $0 }
        var left = "  " + (short.map { $0 + (longs.isEmpty ? "" : ", ") } ?? "    ") + longs.joined(separator: ", ")
        if case .option(let repeated, let upTo) = d.kind {
            left += " " + d.valueName + (repeated || upTo ? " ..." : "")
        }
        var help = d.help
        if let v = d.defaultValue, !v.isEmpty { help += " (default: \(v))" }
        return row(left, help)
    }

    static func row(_ left: String, _ help: String) -> String {
        if left.count < column - 1 {
            return left + String(repeating: " ", count: column - left.count) + help + "\n"
        }
        return left + "\n" + String(repeating: " ", count: column) + help + "\n"
    }
}
