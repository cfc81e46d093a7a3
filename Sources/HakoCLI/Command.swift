/// A set of options and arguments: a command, or a group of options several
/// commands share (`@OptionGroup`).
public protocol ParsableArguments: SendableMetatype {
    init()
}

/// A command of the tree: a leaf that runs, or a group of subcommands.
public protocol ParsableCommand: ParsableArguments {
    static var configuration: CommandConfiguration { get }
    /// Checks the parsed values together (its option groups' too); runs before `run()`.
    mutating func validate() throws
    mutating func run() throws
}

extension ParsableCommand {
    public mutating func validate() throws {}

    /// A group without its own `run` shows its help.
    public mutating func run() throws { throw CommandLineRequest.help([Self.self]) }
}

public struct CommandConfiguration: Sendable {
    public var commandName: String
    public var abstract: String
    public var version: String?
    public var subcommands: [any ParsableCommand.Type]
    public var aliases: [String]
    /// Hidden commands work but are left out of help and completions.
    public var shouldDisplay: Bool
    /// A group's options that every command under it takes (`--root`): they may
    /// also stand before the subcommand (`hako --root DIR ps`), as in docker and
    /// podman, and are handed to the command that is run.
    public var globalOptions: (any ParsableArguments.Type)?

    public init(commandName: String, abstract: String = "", version: String? = nil,
                subcommands: [any ParsableCommand.Type] = [], aliases: [String] = [], shouldDisplay: Bool = true,
                globalOptions: (any ParsableArguments.Type)? = nil) {
        self.commandName = commandName
        self.abstract = abstract
        self.version = version
        self.subcommands = subcommands
        self.aliases = aliases
        self.shouldDisplay = shouldDisplay
        self.globalOptions = globalOptions
    }
}

/// A command's own complaint about its input ("\"run\" requires an image").
public struct ValidationError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Ends the process with this status without a message (a container's exit code).
public struct ExitCode: Error {
    public var rawValue: Int32
    public init(_ rawValue: Int32) { self.rawValue = rawValue }
}

/// The command line asked for something other than a command: help, the
/// version, a completion script. The answer goes to stdout; the status is 0.
public enum CommandLineRequest: Error {
    case help([any ParsableCommand.Type])
    case text(String)
}

/// The command line does not parse: the message, and the command whose help explains it.
public struct UsageError: Error, CustomStringConvertible {
    public var message: String
    /// `hako run`: where to point for help.
    public var commandPath: String
    public var description: String { message }
}
