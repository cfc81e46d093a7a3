/// The link between a command's property wrappers and the parser while the
/// command type is being instantiated: in `declare` mode each wrapper appends
/// its declaration; in `read` mode each takes, in the same order, the tokens
/// the parser gave it. Outside either (a command built by hand) the wrappers
/// keep their defaults.
///
/// A context belongs to the thread (task) that installed it, so commands can
/// be parsed on several threads at once (the tests do).
final class ParseContext: @unchecked Sendable {
    enum Mode { case declare, read([[String]]) }

    @TaskLocal static var current: ParseContext?

    private let mode: Mode
    private(set) var declarations: [Declaration] = []
    private var groups: [String?] = []
    private var cursor = 0
    private(set) var errors: [String] = []

    private init(_ mode: Mode) { self.mode = mode }

    /// Runs `body` with a context of the given mode installed.
    static func with<T>(_ mode: Mode, _ body: () throws -> T) rethrows -> (T, ParseContext) {
        let context = ParseContext(mode)
        return (try $current.withValue(context, operation: body), context)
    }

    /// The tokens for the next declaration (read mode), or nil (declare mode
    /// after recording it, or no parse under way).
    static func tokens(for d: Declaration) -> [String]? {
        guard let c = current else { return nil }
        switch c.mode {
        case .declare:
            var d = d
            d.group = c.groups.last ?? nil
            c.declarations.append(d)
            return nil
        case .read(let values):
            defer { c.cursor += 1 }
            return c.cursor < values.count ? values[c.cursor] : []
        }
    }

    static func enterGroup(_ title: String?) {
        guard let c = current else { return }
        // A nested group without a title stays in its parent's.
        c.groups.append(title ?? c.groups.last ?? nil)
    }

    static func leaveGroup() { _ = current?.groups.popLast() }

    /// Converts tokens, recording an error (a wrapper's init cannot throw) for any that is invalid.
    static func convert<T: ArgumentValue>(_ tokens: [String], _ d: Declaration) -> [T] {
        var out: [T] = []
        for t in tokens {
            if let v = T(argument: t) { out.append(v) } else {
                let what = d.isPositional ? d.help : d.displayName
                current?.errors.append("invalid value \"\(t)\" for \(what): expected \(T.expected)")
            }
        }
        return out
    }
}
