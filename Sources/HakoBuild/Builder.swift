#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import FoundationEssentials
import HakoEngine
import HakoImage
import HakoRuntime
import HakoSystem

/// Builds an image from a Dockerfile with the engine: RUN steps in hako
/// containers of the stage's image so far, COPY and ADD as layers laid out in
/// a staging tree, the metadata instructions in the image config; the result
/// is an ordinary image in the store. Steps whose inputs (the state before
/// them, the instruction, the files they read) were built before come from
/// the build cache (`<root>/build-cache`). Stops cleanly on SIGINT, SIGTERM
/// and SIGHUP: no container, mount or image is left behind, only stored
/// layers that the next garbage collection takes.
public final class Builder {
    let engine: Engine
    let options: BuildOptions
    let emit: (BuildEvent) -> Void
    let cache: BuildCache
    var signals: FileDescriptor?
    var contextRoot: LayeredRoot?
    var ignore = DockerIgnore("")
    var usedArgs: Set<String> = []
    var stepNumber = 0
    var stepCount = 0

    public init(engine: Engine, options: BuildOptions, emit: @escaping (BuildEvent) -> Void) {
        self.engine = engine
        self.options = options
        self.emit = emit
        cache = BuildCache(directory: engine.paths.root + "/build-cache")
    }

    /// Runs the build; the built (and tagged) image.
    public func build() throws -> Image {
        var oldMask = [UInt8](repeating: 0, count: 256)
        let caught: [Int32] = [SIGINT, SIGTERM, SIGHUP]
        let fd = caught.withUnsafeBufferPointer { hako_signalfd_open($0.baseAddress, Int32($0.count), &oldMask, oldMask.count) }
        guard fd >= 0 else { throw SystemError("signalfd") }
        signals = FileDescriptor(fd)
        // The layers this build adds are no image's until the end: no garbage collection meanwhile.
        let hold = try engine.images.holdContent()
        defer {
            hold.release()
            signals = nil
            _ = hako_sigmask_restore(oldMask)
        }
        return try run()
    }

    func run() throws -> Image {
        removeOrphanedStepContainers()
        let file: Dockerfile
        do { file = try Dockerfile.parse(options.dockerfile, name: options.dockerfileName) } catch { throw error.hakoError }
        for n in file.notes { emit(.note(n)) }
        let plan: BuildPlan
        do { plan = try BuildPlan(file) } catch { throw error.hakoError }
        if let dir = options.context {
            contextRoot = LayeredRoot(layers: [dir])
            if let text = try? FS.readString(dir + "/.dockerignore") { ignore = DockerIgnore(text) }
        }

        // ARGs before the first FROM: for FROM lines, and defaults of the stages' ARGs.
        var global: [String: String] = [:]
        for a in plan.globalArgs {
            for (name, value) in try argDeclarations(a, file: file, scope: { global[$0] }) {
                if let v = options.buildArgs[name] { global[name] = v; usedArgs.insert(name) } else if let v = value { global[name] = v }
            }
        }
        let target: Int
        do { target = try plan.target(options.target) } catch { throw error.hakoError }
        let substituteGlobal = { (text: String) -> String in
            (try? Substitution(escape: file.escape, variables: global).word(text)) ?? text
        }
        let needed = plan.needed(for: target, resolve: substituteGlobal)
        stepCount = needed.reduce(0) { $0 + 1 + plan.stages[$1].instructions.count }
        var built: [Int: StageState] = [:]
        for s in needed {
            built[s] = try buildStage(plan.stages[s], plan: plan, file: file, global: global, built: built)
        }
        guard let final = built[target] else { throw HakoError(.failed, "the target stage was not built") }
        let unused = options.buildArgs.keys.filter { !usedArgs.contains($0) }.sorted()
        if !unused.isEmpty {
            emit(.note("one or more build-args [\(unused.joined(separator: " "))] were not consumed"))
        }
        var config = final.config
        if !options.labels.isEmpty {
            var labels = config.labels ?? [:]
            for (k, v) in options.labels { labels[k] = v }
            config.labels = labels
        }
        try checkInterrupt()
        var history = final.history
        if let base = final.base { history = (try engine.images.history(of: base)) + history }
        let image = try engine.images.registerBuilt(base: final.base, added: final.added, config: config, created: final.created,
                                                    history: history, references: options.tags, platform: final.platform)
        return image
    }

    // MARK: stages

    struct StageState {
        var base: Image?
        var platform: PlatformSpec?
        var added: [AddedLayer] = []
        var config = ImageConfig()
        var history: [OCIImage.History] = []
        /// The cache key of the state so far: the base, then every step.
        var key: String
        var created: String
        /// ARGs in scope and their values.
        var args: [String: String] = [:]
        var diffIDs: [Digest] { (base?.diffIDs ?? []) + added.map(\.diffID) }
        /// Whether CMD was set in this stage (an ENTRYPOINT resets an inherited one only).
        var cmdSetHere = false
    }

    func buildStage(_ stage: Stage, plan: BuildPlan, file: Dockerfile, global: [String: String],
                    built: [Int: StageState]) throws -> StageState {
        let from = stage.from
        step(from, stage: stage, plan: plan)
        let sub = Substitution(escape: file.escape, variables: global)
        let words: [String]
        do { words = try sub.words(from.rest) } catch { throw BuildError(file: file.name, line: from.line, "FROM: \(error)").hakoError }
        guard let baseName = words.first, !baseName.isEmpty else {
            throw BuildError(file: file.name, line: from.line, "FROM requires an image name").hakoError
        }
        var platform = options.platform
        if let p = from.flag("platform") { platform = (try? sub.word(p)) ?? p }
        var state: StageState
        if baseName.lowercased() == "scratch" {
            state = StageState(base: nil, platform: try platform.map { p in
                do { return try PlatformSpec(parsing: p) } catch { throw BuildError(file: file.name, line: from.line, "FROM: \(error)").hakoError }
            }, key: try BuildCache.key(["FROM scratch", platform ?? ""]), created: Timestamp.now().rfc3339)
        } else if let b = plan.fromStage(baseName), let earlier = built[b] {
            state = earlier
            state.args = [:]
        } else {
            let pull = ImagePullOptions(policy: options.pull ? .always : .missing, platform: platform, tlsVerify: options.tlsVerify)
            let image: Image
            do { image = try engine.imageForRun(baseName, pull: pull) } catch {
                throw BuildError(file: file.name, line: from.line, "FROM \(baseName): \(error)").hakoError
            }
            if image.isHost { throw BuildError(file: file.name, line: from.line, "FROM host: the built-in host image cannot be built on").hakoError }
            state = StageState(base: image, key: try BuildCache.key(["FROM", image.id]), created: image.created?.rfc3339 ?? Timestamp.now().rfc3339)
            state.config = image.config
        }
        // A base without PATH gets the default one first, as BuildKit and buildah give it.
        if !(state.config.env ?? []).contains(where: { $0.hasPrefix("PATH=") }) {
            state.config.env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] + (state.config.env ?? [])
        }
        // ONBUILD triggers of the base image run first, then are not inherited.
        let triggers = state.config.onBuild ?? []
        state.config.onBuild = nil
        for t in triggers {
            let parsed: Dockerfile
            do { parsed = try Dockerfile.parse(t, name: "\(file.name):\(from.line) (ONBUILD of \(baseName))") } catch { throw error.hakoError }
            for var i in parsed.instructions {
                i.line = from.line
                emit(.note("running the ONBUILD trigger of \(baseName): \(i.original)"))
                try execute(i, state: &state, stage: stage, plan: plan, file: file, global: global, built: built)
            }
        }
        for i in stage.instructions {
            try checkInterrupt()
            step(i, stage: stage, plan: plan)
            try execute(i, state: &state, stage: stage, plan: plan, file: file, global: global, built: built)
        }
        return state
    }

    func step(_ i: Instruction, stage: Stage, plan: BuildPlan) {
        stepNumber += 1
        let prefix = plan.stages.count > 1 ? "[\(stage.name ?? String(stage.index))] " : ""
        emit(.step("\(prefix)STEP \(stepNumber)/\(stepCount): \(i.original)"))
    }

    func checkInterrupt() throws {
        guard let fd = signals else { return }
        let sig = hako_signalfd_read(fd.rawValue)
        if sig > 0 { throw BuildInterrupted(signal: sig) }
    }

    // MARK: instructions

    func fail(_ file: Dockerfile, _ i: Instruction, _ message: String) -> HakoError {
        BuildError(file: file.name, line: i.line, "\(i.keyword) failed: \(message)").hakoError
    }

    func bad(_ file: Dockerfile, _ i: Instruction, _ message: String) -> HakoError {
        BuildError(file: file.name, line: i.line, "\(i.keyword): \(message)").hakoError
    }

    /// The variables of a stage's instructions: its ENV first, then its ARGs (ENV wins, as in Docker).
    func variables(_ state: StageState) -> [String: String] {
        var vars = state.args
        for e in state.config.env ?? [] {
            let kv = e.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            vars[String(kv[0])] = kv.count > 1 ? String(kv[1]) : ""
        }
        return vars
    }

    func execute(_ i: Instruction, state: inout StageState, stage: Stage, plan: BuildPlan, file: Dockerfile,
                 global: [String: String], built: [Int: StageState]) throws {
        let vars = variables(state)
        let sub = Substitution(escape: file.escape, variables: vars)
        func words(_ text: String) throws -> [String] {
            do { return try sub.words(text) } catch { throw bad(file, i, "\(error)") }
        }
        func word(_ text: String) throws -> String {
            do { return try sub.word(text) } catch { throw bad(file, i, "\(error)") }
        }
        let shell = state.config.shell ?? ["/bin/sh", "-c"]
        switch i.keyword {
        case "RUN":
            try run(i, state: &state, file: file, shell: shell)
        case "COPY", "ADD":
            try copy(i, state: &state, file: file, plan: plan, built: built, word: word, words: words)
        case "ENV":
            let pairs = try keyValues(i, file: file, words: try words(i.rest), legacyRest: { try word($0) })
            var env = state.config.env ?? []
            for (k, v) in pairs {
                // Replaced where it stands (as Docker and buildah do), else appended.
                if let at = env.firstIndex(where: { $0 == k || $0.hasPrefix(k + "=") }) {
                    env[at] = k + "=" + v
                } else {
                    env.append(k + "=" + v)
                }
            }
            state.config.env = env
            try metadata(i, &state, describe: "ENV " + pairs.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
        case "LABEL":
            let pairs = try keyValues(i, file: file, words: try words(i.rest), legacyRest: { try word($0) })
            var labels = state.config.labels ?? [:]
            for (k, v) in pairs { labels[k] = v }
            state.config.labels = labels
            try metadata(i, &state, describe: "LABEL " + pairs.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
        case "ARG":
            for (name, value) in try argDeclarations(i, file: file, scope: { vars[$0] }) {
                var v = value ?? global[name]
                if let given = options.buildArgs[name] { v = given }
                usedArgs.insert(name)
                state.args[name] = v ?? ""
            }
            try metadata(i, &state, describe: "ARG " + i.rest)
        case "WORKDIR":
            let dir = try word(i.rest)
            guard !dir.isEmpty else { throw bad(file, i, "WORKDIR needs a path") }
            let path = dir.hasPrefix("/") ? dir : (state.config.workingDir ?? "/") + "/" + dir
            state.config.workingDir = "/" + LayeredRoot.components(path).joined(separator: "/")
            try workdir(i, &state, file: file)
        case "USER":
            let u = try word(i.rest)
            guard !u.isEmpty else { throw bad(file, i, "USER needs a user") }
            state.config.user = u
            try metadata(i, &state, describe: "USER " + u)
        case "EXPOSE", "VOLUME", "STOPSIGNAL":
            let value = try i.json.map { j in "[" + j.map { "\"\($0)\"" }.joined(separator: ",") + "]" } ?? words(i.rest).joined(separator: " ")
            do { try ConfigChange.apply(["\(i.keyword) \(value)"], to: &state.config) } catch { throw bad(file, i, "\(error)") }
            try metadata(i, &state, describe: "\(i.keyword) \(value)")
        case "CMD":
            state.config.cmd = i.json ?? (shell + [i.rest])
            state.cmdSetHere = true
            try metadata(i, &state, describe: "CMD " + json(state.config.cmd ?? []))
        case "ENTRYPOINT":
            state.config.entrypoint = i.json ?? (shell + [i.rest])
            if !state.cmdSetHere { state.config.cmd = nil }
            try metadata(i, &state, describe: "ENTRYPOINT " + json(state.config.entrypoint ?? []))
        case "SHELL":
            guard let j = i.json, !j.isEmpty else { throw bad(file, i, "SHELL requires a JSON array of at least one string") }
            state.config.shell = j
            try metadata(i, &state, describe: "SHELL " + json(j))
        case "HEALTHCHECK":
            state.config.healthcheck = try healthcheck(i, file: file)
            try metadata(i, &state, describe: "HEALTHCHECK " + json(state.config.healthcheck?.testList ?? []))
        case "ONBUILD":
            let trigger = i.rest.trimmingWhitespace
            let keyword = trigger.split(separator: " ").first.map { $0.uppercased() } ?? ""
            guard !trigger.isEmpty else { throw bad(file, i, "ONBUILD needs an instruction") }
            guard !["ONBUILD", "FROM", "MAINTAINER"].contains(keyword) else { throw bad(file, i, "\(keyword) isn't allowed as an ONBUILD trigger") }
            guard Dockerfile.keywords.contains(keyword) else { throw bad(file, i, "unknown instruction in ONBUILD: \(keyword)") }
            state.config.onBuild = (state.config.onBuild ?? []) + [trigger]
            try metadata(i, &state, describe: "ONBUILD " + trigger)
        case "MAINTAINER":
            try metadata(i, &state, describe: "MAINTAINER " + i.rest)
        default:
            throw bad(file, i, "unknown instruction")
        }
    }

    func json(_ a: [String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return (try? encoder.encode(a)).map { String(decoding: $0, as: UTF8.self) } ?? a.joined(separator: " ")
    }

    /// `K=V …` pairs (ENV, LABEL), or the legacy `K V with spaces` of one pair.
    func keyValues(_ i: Instruction, file: Dockerfile, words: [String], legacyRest: (String) throws -> String) throws -> [(String, String)] {
        guard let first = words.first else { throw bad(file, i, "\(i.keyword) needs at least one argument") }
        if !first.contains("=") {
            // Legacy: the name, then everything after it is the value.
            let t = i.rest.trimmingWhitespace
            let end = t.firstIndex(where: { $0 == " " || $0 == "\t" }) ?? t.endIndex
            let value = try legacyRest(String(t[end...]).trimmingWhitespace)
            guard i.keyword != "ENV" || end != t.endIndex else { throw bad(file, i, "ENV names a variable without a value (ENV \(first)=VALUE)") }
            return [(first, value)]
        }
        return try words.map { w in
            let kv = w.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.count == 2, !kv[0].isEmpty else { throw bad(file, i, "\(i.keyword) takes KEY=VALUE pairs; \"\(w)\" is not one") }
            return (String(kv[0]), String(kv[1]))
        }
    }

    /// The names and defaults an ARG declares.
    func argDeclarations(_ i: Instruction, file: Dockerfile, scope: @escaping (String) -> String?) throws -> [(String, String?)] {
        let sub = Substitution(escape: file.escape, lookup: scope)
        let words: [String]
        do { words = try sub.words(i.rest) } catch { throw bad(file, i, "\(error)") }
        guard !words.isEmpty else { throw bad(file, i, "ARG requires at least one argument") }
        return try words.map { w in
            let kv = w.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(kv[0])
            guard !name.isEmpty, Substitution.isNameStart(name.first ?? "0"), name.allSatisfy(Substitution.isName) else {
                throw bad(file, i, "invalid ARG name \"\(name)\"")
            }
            return (name, kv.count > 1 ? String(kv[1]) : nil)
        }
    }

    /// A step that only changes the config: its history entry and the cache key.
    func metadata(_ i: Instruction, _ state: inout StageState, describe: String) throws {
        let key = try BuildCache.key([state.key, describe])
        let entry: BuildCache.Entry
        if !options.noCache, let hit = cache.lookup(key), hit.layer == nil {
            entry = hit
            emit(.cached)
        } else {
            entry = BuildCache.Entry(layer: nil, created: Timestamp.now().rfc3339)
            cache.store(key, entry)
        }
        state.key = key
        state.created = entry.created
        state.history.append(OCIImage.History(created: entry.created, createdBy: "/bin/sh -c #(nop) " + describe, emptyLayer: true))
    }

    func healthcheck(_ i: Instruction, file: Dockerfile) throws -> HealthCheck {
        let t = i.rest.trimmingWhitespace
        if t.uppercased() == "NONE" {
            guard i.flags.isEmpty else { throw bad(file, i, "HEALTHCHECK NONE takes no options") }
            return HealthCheck(test: .none)
        }
        guard t.uppercased().hasPrefix("CMD") else { throw bad(file, i, "HEALTHCHECK takes CMD or NONE") }
        let command = String(t.dropFirst(3)).trimmingWhitespace
        guard !command.isEmpty else { throw bad(file, i, "HEALTHCHECK CMD needs a command") }
        var h: HealthCheck
        if command.hasPrefix("["), let j = try? JSONDecoder().decode([String].self, from: Data(command.utf8)), !j.isEmpty {
            h = HealthCheck(test: .exec(j))
        } else {
            h = HealthCheck(test: .shell(command))
        }
        for (name, value) in i.flags {
            switch name {
            case "interval", "timeout", "start-period", "start-interval":
                guard let d = GoDuration.parse(value) else { throw bad(file, i, "invalid duration \(value) for --\(name)") }
                switch name {
                case "interval": h.interval = d
                case "timeout": h.timeout = d
                case "start-period": h.startPeriod = d
                default: h.startInterval = d
                }
            case "retries":
                guard let n = Int(value), n >= 0 else { throw bad(file, i, "invalid --retries \(value)") }
                h.retries = n
            default: throw bad(file, i, "unknown flag --\(name)")
            }
        }
        do { try h.validate() } catch { throw bad(file, i, "\(error)") }
        return h
    }
}

/// The build was stopped by a signal; exits as the signal's 128+n.
public struct BuildInterrupted: Error, Sendable {
    public var signal: Int32
}

extension BuildError {
    var hakoError: HakoError { HakoError(.failed, description) }
}

extension Error {
    var hakoError: HakoError {
        if let e = self as? HakoError { return e }
        if let e = self as? BuildError { return e.hakoError }
        return HakoError(.failed, "\(self)")
    }
}
