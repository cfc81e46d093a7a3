/// One `FROM` and the instructions up to the next.
public struct Stage: Sendable {
    public var index: Int
    /// The `AS` name, lower-cased; nil when the stage has none.
    public var name: String?
    /// The `FROM` instruction.
    public var from: Instruction
    public var instructions: [Instruction]
}

/// A Dockerfile cut into stages: the `ARG`s before the first `FROM`
/// (usable in `FROM` lines) and the stages.
public struct BuildPlan: Sendable {
    public var globalArgs: [Instruction]
    public var stages: [Stage]

    public init(_ file: Dockerfile) throws(BuildError) {
        globalArgs = []
        stages = []
        for i in file.instructions {
            if i.keyword == "FROM" {
                let words = i.rest.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
                var name: String?
                if words.count == 3, words[1].uppercased() == "AS" {
                    name = words[2].lowercased()
                    guard BuildPlan.isValidStageName(name ?? "") else {
                        throw BuildError(file: file.name, line: i.line, "invalid name for build stage: \"\(words[2])\", name can't start with a number or contain symbols")
                    }
                    if stages.contains(where: { $0.name == name }) {
                        throw BuildError(file: file.name, line: i.line, "duplicate name for build stage: \"\(words[2])\"")
                    }
                } else if words.count != 1 {
                    throw BuildError(file: file.name, line: i.line, "FROM requires either one or three arguments (IMAGE [AS NAME])")
                }
                stages.append(Stage(index: stages.count, name: name, from: i, instructions: []))
            } else if stages.isEmpty {
                guard i.keyword == "ARG" else {
                    throw BuildError(file: file.name, line: i.line, "\(i.keyword) before the first FROM: only ARG may come before FROM")
                }
                globalArgs.append(i)
            } else {
                stages[stages.count - 1].instructions.append(i)
            }
        }
        guard !stages.isEmpty else { throw BuildError(file: file.name, line: 0, "the Dockerfile has no FROM instruction") }
    }

    static func isValidStageName(_ s: String) -> Bool {
        guard let f = s.first, f.isASCII, f.isLetter else { return false }
        return s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
    }

    /// The stage `target` names (an `AS` name or an index), or the last.
    public func target(_ target: String?) throws(BuildError) -> Int {
        guard let target else { return stages.count - 1 }
        if let s = stage(named: target) { return s }
        throw BuildError(line: 0, "target stage \"\(target)\" could not be found")
    }

    /// The stage a FROM names: by its `AS` name only (Docker takes no index there).
    public func fromStage(_ base: String) -> Int? {
        let lower = base.lowercased()
        return stages.first { $0.name == lower }?.index
    }

    /// The stage a name or index refers to (`COPY --from`, `--target`).
    public func stage(named ref: String) -> Int? {
        let lower = ref.lowercased()
        if let s = stages.first(where: { $0.name == lower }) { return s.index }
        if let n = Int(ref), n >= 0, n < stages.count { return n }
        return nil
    }

    /// The stages building `target` needs, in order: the stage itself, the
    /// stages its FROM and its `COPY --from` name (their text, with the global
    /// ARGs substituted by `resolve`), and theirs.
    public func needed(for target: Int, resolve: (String) -> String) -> [Int] {
        var wanted: Set<Int> = []
        var queue = [target]
        while let s = queue.popLast() {
            guard wanted.insert(s).inserted else { continue }
            let stage = stages[s]
            let base = resolve(stage.from.rest.split(whereSeparator: { $0 == " " || $0 == "\t" }).first.map(String.init) ?? "")
            if let b = fromStage(base), b < s { queue.append(b) }
            for i in stage.instructions where i.keyword == "COPY" || i.keyword == "ADD" {
                if let from = i.flag("from"), let b = self.stage(named: resolve(from)), b < s { queue.append(b) }
            }
            // ONBUILD triggers cannot name stages here: they come from images.
        }
        return wanted.sorted()
    }
}
