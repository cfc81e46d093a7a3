/// Shell completion scripts for bash, zsh and fish, made from the command
/// tree: subcommands (and their aliases) at a group, a command's options when
/// the word starts with `-`, the shell's own file completion otherwise.
enum Completions {
    struct Node {
        var path: String
        var subcommands: [(name: String, abstract: String)]
        /// Alias → the path it stands for.
        var aliases: [(alias: String, path: String)]
        var options: [Declaration]
    }

    static func script(shell: String, root: any ParsableCommand.Type, path: [any ParsableCommand.Type]) throws -> String {
        let nodes = collect(root)
        let program = root.configuration.commandName
        switch shell {
        case "bash": return bash(nodes, program)
        case "zsh": return zsh(nodes, program)
        case "fish": return fish(nodes, program)
        default: throw CommandLineParser.usage("no completion script for \"\(shell)\" (bash, zsh or fish)", path)
        }
    }

    static func collect(_ root: any ParsableCommand.Type) -> [Node] {
        var out: [Node] = []
        func walk(_ type: any ParsableCommand.Type, _ path: String) {
            let subs = type.configuration.subcommands.filter { $0.configuration.shouldDisplay }
            var node = Node(path: path, subcommands: [], aliases: [], options: CommandLineParser.declare(type).filter { !$0.isPositional })
            for s in subs {
                let c = s.configuration
                node.subcommands.append((c.commandName, c.abstract))
                for a in c.aliases { node.aliases.append((a, path + " " + c.commandName)) }
            }
            out.append(node)
            for s in subs { walk(s, path + " " + s.configuration.commandName) }
        }
        walk(root, root.configuration.commandName)
        return out
    }

    static func spellings(_ d: Declaration) -> [String] { d.shortNames.map { "-\($0)" } + d.longNames.map { "--" + $0 } }

    /// A shell loop over the words before the cursor that follows subcommands
    /// (and aliases) down the tree, leaving the command's path in `$cmd`.
    static func pathWalk(_ nodes: [Node], _ program: String, first: Int, end: String, word: String) -> String {
        var s = """
                local cmd=\(program) i
                for ((i = \(first); i < \(end); i++)); do
                    case "$cmd ${\(word)}" in

            """
        for n in nodes {
            for sub in n.subcommands { s += "            \"\(n.path) \(sub.name)\") cmd=\"\(n.path) \(sub.name)\" ;;\n" }
            for a in n.aliases { s += "            \"\(n.path) \(a.alias)\") cmd=\"\(a.path)\" ;;\n" }
        }
        return s + """
                    esac
                done

            """
    }

    static func subcommandWords(_ n: Node) -> [String] { n.subcommands.map(\.name) + n.aliases.map(\.alias) }
    static func optionWords(_ n: Node) -> [String] { n.options.flatMap(spellings) + ["--help"] }

    static func bash(_ nodes: [Node], _ program: String) -> String {
        var s = """
            # bash completion for \(program) (\(program) --generate-completion-script bash)
            _\(program)() {
                local cur=${COMP_WORDS[COMP_CWORD]}
                COMPREPLY=()

            """
        s += pathWalk(nodes, program, first: 1, end: "COMP_CWORD", word: "COMP_WORDS[i]")
        s += """
                local subcommands="" options=""
                case "$cmd" in

            """
        for n in nodes {
            s += "        \"\(n.path)\") subcommands=\"\(subcommandWords(n).joined(separator: " "))\"; options=\"\(optionWords(n).joined(separator: " "))\" ;;\n"
        }
        s += """
                esac
                if [[ $cur == -* ]]; then
                    COMPREPLY=($(compgen -W "$options" -- "$cur"))
                elif [[ -n $subcommands ]]; then
                    COMPREPLY=($(compgen -W "$subcommands" -- "$cur"))
                fi
            }
            complete -o default -F _\(program) \(program)

            """
        return s
    }

    static func zsh(_ nodes: [Node], _ program: String) -> String {
        var s = """
            #compdef \(program)
            # zsh completion for \(program) (\(program) --generate-completion-script zsh)
            _\(program)() {

            """
        s += pathWalk(nodes, program, first: 2, end: "CURRENT", word: "words[i]")
        s += """
                local -a subcommands options
                case "$cmd" in

            """
        for n in nodes {
            s += "        \"\(n.path)\") subcommands=(\(subcommandWords(n).joined(separator: " "))); options=(\(optionWords(n).joined(separator: " "))) ;;\n"
        }
        s += """
                esac
                if [[ ${words[CURRENT]} == -* ]]; then
                    compadd -- $options
                elif (( ${#subcommands} )); then
                    compadd -- $subcommands
                else
                    _files
                fi
            }
            _\(program) "$@"

            """
        return s
    }

    static func fish(_ nodes: [Node], _ program: String) -> String {
        func quote(_ t: String) -> String {
            var q = "'"
            for c in t {
                if c == "\\" || c == "'" { q.append("\\") }
                q.append(c)
            }
            return q + "'"
        }
        var s = """
        # fish completion for \(program) (\(program) --generate-completion-script fish)
        function __\(program)_command
            set -l cmd \(program)
            for w in (commandline -opc)[2..-1]
                switch "$cmd $w"

        """
        for n in nodes {
            for sub in n.subcommands { s += "            case \(quote(n.path + " " + sub.name))\n                set cmd \(quote(n.path + " " + sub.name))\n" }
            for a in n.aliases { s += "            case \(quote(n.path + " " + a.alias))\n                set cmd \(quote(a.path))\n" }
        }
        s += """
                end
            end
            test "$cmd" = "$argv[1]"
        end

        """
        for n in nodes {
            let cond = "-n " + quote("__\(program)_command " + quote(n.path))
            for sub in n.subcommands {
                s += "complete -c \(quote(program)) -f \(cond) -a \(quote(sub.name)) -d \(quote(sub.abstract))\n"
            }
            for d in n.options {
                var line = "complete -c \(quote(program)) \(cond)"
                for c in d.shortNames { line += " -s \(quote(String(c)))" }
                for l in d.longNames { line += " -l \(quote(l))" }
                if case .option = d.kind { line += " -r" }
                s += line + " -d \(quote(d.help))\n"
            }
        }
        return s
    }
}
