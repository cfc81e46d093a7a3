#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoEngine
import HakoImage
import HakoRuntime
import HakoSystem

extension Builder {
    /// The stage's image so far, as `create` takes it (layers stored, not yet an image).
    func currentImage(_ state: StageState) throws -> Image {
        var image = state.base ?? ImageStore.hostImage
        if state.base == nil { image.id = String(repeating: "0", count: 64); image.references = [] }
        image.diffIDs = state.diffIDs
        image.layerDirs = try engine.images.layerDirectories(state.diffIDs)
        image.config = state.config
        return image
    }

    /// RUN: the command in a hako container of the stage's image; its upper
    /// directory becomes the step's layer.
    func run(_ i: Instruction, state: inout StageState, file: Dockerfile, shell: [String]) throws {
        var network = options.network
        for (name, value) in i.flags {
            switch name {
            case "network":
                guard let n = NetworkMode(rawValue: value == "default" ? "bridge" : value) else { throw bad(file, i, "invalid --network \(value) (none, host or default)") }
                network = n
            default:
                throw bad(file, i, "--\(name) is not supported (hako's RUN takes --network)")
            }
        }
        let argv = i.json ?? (shell + [i.rest])
        guard !argv.isEmpty, !(argv.first ?? "").isEmpty else { throw bad(file, i, "RUN needs a command") }
        let env = state.config.env ?? []
        let argEnv = state.args.keys.sorted().filter { k in !env.contains { $0.hasPrefix(k + "=") } }.map { "\($0)=\(state.args[$0] ?? "")" }
        let key = try BuildCache.key([state.key, "RUN", json(argv), json(argEnv), network.rawValue])
        let createdBy = "RUN " + argv.joined(separator: " ")
        if let layer = cachedLayer(key, state) {
            apply(layer, key: key, createdBy: createdBy, to: &state)
            return
        }
        guard !state.diffIDs.isEmpty else {
            throw fail(file, i, "the stage has no file system yet (FROM scratch with nothing copied): there is nothing to run")
        }
        var spec = ContainerSpec(image: state.base?.references.first ?? "scratch")
        spec.process.entrypoint = []
        spec.process.command = argv
        spec.process.env = argEnv
        spec.process.workingDir = state.config.workingDir.flatMap { $0.isEmpty ? nil : $0 }
        spec.process.user = state.config.user.flatMap { $0.isEmpty ? nil : $0 }
        spec.network = network
        spec.labels = [Builder.stepLabel: String(i.line), Builder.pidLabel: String(getpid())]
        let image = try currentImage(state)
        let container = try engine.create(spec, image: image)
        let layer: AddedLayer
        do {
            let code = try attach(container)
            guard code == 0 else {
                throw fail(file, i, "the command \(json(argv)) returned a non-zero code: \(code)")
            }
            try checkInterrupt()
            layer = try engine.images.addLayer(from: engine.paths.container(container.id).upper, above: state.diffIDs,
                                               exclude: Engine.runtimeMountPoints, unpack: try engine.unpackOptions())
        } catch {
            try? engine.remove(container.id, force: true)
            throw error
        }
        try engine.remove(container.id, force: true)
        let entry = BuildCache.Entry(layer: layer, created: Timestamp.now().rfc3339)
        cache.store(key, entry)
        apply(layer, key: key, createdBy: createdBy, created: entry.created, to: &state)
        emit(.done(String(layer.diffID.hex.prefix(12))))
    }

    /// Labels of a RUN step's container: the Dockerfile line, and the build's pid.
    static let stepLabel = "io.hako.build.line"
    static let pidLabel = "io.hako.build.pid"

    /// Removes the RUN containers of builds that were killed outright
    /// (SIGKILL, a crash): their builder's pid is gone.
    func removeOrphanedStepContainers() {
        guard let containers = try? engine.list() else { return }
        for c in containers {
            guard let pid = c.config.labels[Builder.pidLabel].flatMap({ Int32($0) }), pid != getpid(),
                  !FS.processExists(pid) else { continue }
            try? engine.remove(c.id, force: true)
        }
    }

    /// A cached layer for `key` whose blob and snapshot are still stored.
    func cachedLayer(_ key: String, _ state: StageState) -> AddedLayer? {
        guard !options.noCache, let hit = cache.lookup(key), let layer = hit.layer,
              engine.images.hasLayer(layer, above: state.diffIDs) else { return nil }
        emit(.cached)
        return layer
    }

    func apply(_ layer: AddedLayer, key: String, createdBy: String, created: String? = nil, to state: inout StageState) {
        let when = created ?? cache.lookup(key)?.created ?? Timestamp.now().rfc3339
        state.added.append(layer)
        state.key = key
        state.created = when
        state.history.append(OCIImage.History(created: when, createdBy: createdBy))
    }

    /// Relays the step's output until it exits; its exit code. A signal to
    /// the build kills the container (the caller removes it).
    func attach(_ config: ContainerConfig) throws -> Int32 {
        guard let conn = try engine.start(created: config, attach: true) else {
            throw HakoError(.failed, "the build container did not start")
        }
        var interrupted: Int32 = 0
        while true {
            for f in try conn.pending() {
                switch f {
                case .stdout(let b): emit(.output(1, b))
                case .stderr(let b): emit(.output(2, b))
                case .exit(let code, _):
                    if interrupted > 0 { throw BuildInterrupted(signal: interrupted) }
                    return code
                default: break
                }
            }
            var fds = [pollfd(fd: conn.fd.rawValue, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: signals?.rawValue ?? -1, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 2, -1) < 0 {
                if errno == EINTR { continue }
                throw SystemError("poll")
            }
            if fds[1].revents != 0, let fd = signals {
                let sig = hako_signalfd_read(fd.rawValue)
                if sig > 0 {
                    interrupted = sig
                    try? conn.send(.signal(SIGKILL))
                }
            }
            if fds[0].revents != 0, try !conn.fill() {
                if interrupted > 0 { throw BuildInterrupted(signal: interrupted) }
                for f in try conn.pending() {
                    if case .exit(let code, _) = f { return code }
                }
                throw HakoError(.failed, "lost the connection to the build container's monitor")
            }
        }
    }
}
