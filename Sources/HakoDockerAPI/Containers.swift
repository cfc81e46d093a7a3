#if canImport(Glibc)
import Glibc
#endif
import HakoEngine
import HakoRuntime
import HakoSystem

extension DockerAPI {
    func containers(_ p: [String], _ r: HTTPRequest, _ c: HTTPConnection) throws {
        let m = r.method
        if p.count == 1 && p[0] == "json" { try only(m, "GET", r); return try list(r, c) }
        if p.count == 1 && p[0] == "create" { try only(m, "POST", r); return try create(r, c) }
        if p.count == 1 && p[0] == "prune" { try only(m, "POST", r); return try containerPrune(r, c) }
        guard !p.isEmpty else { throw notFound(r) }
        let ref = p[0]
        if p.count == 1 {
            try only(m, "DELETE", r)
            do {
                try engine.remove(ref, force: r.flag("force"), volumes: r.flag("v"))
            } catch {
                throw DockerAPI.apiError(error)
            }
            return c.respond(204)
        }
        guard p.count == 2 else { throw notFound(r) }
        let action = p[1]
        switch action {
        case "json":
            try only(m, "GET", r)
            c.respond(200, json: try inspectJSON(ref))
        case "logs":
            try only(m, "GET", r)
            try logs(ref, r, c)
        case "stats":
            try only(m, "GET", r)
            try stats(ref, r, c)
        case "attach":
            try only(m, "POST", r)
            try attach(ref, r, c)
        case "wait":
            try only(m, "POST", r)
            try wait(ref, r, c)
        case "exec":
            try only(m, "POST", r)
            try execCreate(ref, r, c)
        case "archive":
            try archive(ref, r, c)
        case "changes":
            try only(m, "GET", r)
            try changes(ref, c)
        case "top":
            try only(m, "GET", r)
            try top(ref, r, c)
        case "rename":
            try only(m, "POST", r)
            try rename(ref, r, c)
        case "export":
            try only(m, "GET", r)
            try export(ref, c)
        default:
            try only(m, "POST", r)
            try control(action, ref, r, c)
        }
    }

    func lookup(_ ref: String) throws -> Container {
        do { return try engine.lookup(ref) } catch { throw DockerAPI.apiError(error) }
    }

    // MARK: create

    func create(_ r: HTTPRequest, _ c: HTTPConnection) throws {
        let body = try DockerAPI.body(r)
        guard body.members != nil else { throw APIError(400, "invalid JSON: the body is not an object") }
        let config: ContainerConfig
        do {
            let spec = try CreateMapping.spec(body, name: r.query("name").flatMap { $0.isEmpty ? nil : $0 })
            // The client pulls (images/create) on a 404 and tries again.
            config = try engine.create(spec, pull: ImagePullOptions(policy: .never))
        } catch {
            let e = DockerAPI.apiError(error)
            // A name in use is Docker's 409 with its wording.
            throw e
        }
        c.respond(201, json: .object([("Id", .string(config.id)), ("Warnings", .array([]))]))
    }

    // MARK: start, stop and the others

    func control(_ action: String, _ ref: String, _ r: HTTPRequest, _ c: HTTPConnection) throws {
        do {
            switch action {
            case "start":
                let cont = try lookup(ref)
                if cont.isRunning || cont.status == .restarting { return c.respond(304) }
                try start(cont)
            case "stop":
                let cont = try lookup(ref)
                if !(cont.isRunning || cont.status == .restarting) { return c.respond(304) }
                try engine.stop(cont.id, timeout: r.query("t").flatMap { Int($0) })
            case "restart":
                let cont = try engine.stopForRestart(try lookup(ref).id, timeout: r.query("t").flatMap { Int($0) })
                try start(try lookup(cont.id))
            case "kill":
                let cont = try lookup(ref)
                var sig = SIGKILL
                if let s = r.query("signal"), !s.isEmpty {
                    guard let n = Signals.parse(s) else { throw APIError(400, "Invalid signal: \(s)") }
                    sig = n
                }
                if !(cont.isRunning || cont.status == .restarting) {
                    throw APIError(409, "Cannot kill container: \(ref): Container \(cont.id) is not running")
                }
                try engine.kill(cont.id, signal: sig)
            case "pause":
                try engine.pause(ref)
            case "unpause":
                try engine.unpause(ref)
            case "resize":
                let cont = try lookup(ref)
                guard let h = r.query("h").flatMap({ UInt16($0) }), let w = r.query("w").flatMap({ UInt16($0) }) else {
                    throw APIError(400, "invalid h or w")
                }
                guard cont.isRunning, let conn = try MonitorConnection.connect(runDir: cont.paths.runDir) else {
                    throw APIError(409, "Container \(cont.id) is not running")
                }
                try conn.send(.resize(rows: h, cols: w))
                return c.respond(200, body: [], contentType: nil)
            case "update":
                let body = try DockerAPI.body(r)
                let limits = try CreateMapping.limits(body)
                let policy = try body["RestartPolicy"].flatMap { try CreateMapping.restartPolicy($0) }
                guard !limits.isEmpty || policy != nil else { throw APIError(400, "you must provide one or more flags when using this command") }
                // The policy first: docker update --restart with limits changes both, the policy even when the limits are refused.
                if let policy { try engine.updateRestartPolicy(ref, policy) }
                if !limits.isEmpty { _ = try engine.update(ref, limits) }
                return c.respond(200, json: .object([("Warnings", .array([]))]))
            default:
                throw notFound(r)
            }
        } catch {
            throw DockerAPI.apiError(error)
        }
        c.respond(204)
    }

    /// Starts a container; an attach or a wait registered before (docker run)
    /// gets the monitor connection from its first byte.
    func start(_ cont: Container) throws {
        let (attach, waited) = sessions.takeForStart(cont.id)
        if attach == nil && !waited {
            try engine.start(cont.id)
            return
        }
        guard let conn = try engine.start(cont.id, attach: true) else { return }
        sessions.relaying(cont.id)
        if let attach {
            attach.handoff.withLock { $0 = conn }
            attach.ready.signal()
        } else {
            let id = cont.id
            Thread.detach { [sessions] in
                while let f = try? conn.receive() {
                    if case .exit(let code, _) = f { sessions.exited(id, code: code); return }
                }
                sessions.exited(id, code: 137)
            }
        }
    }

    // MARK: attach and wait

    func attach(_ ref: String, _ r: HTTPRequest, _ c: HTTPConnection) throws {
        let cont = try lookup(ref)
        let streams = AttachRelay.Streams(stdin: r.flag("stdin"), stdout: r.flag("stdout"), stderr: r.flag("stderr"), tty: cont.config.tty)
        guard r.flag("stream") || r.query("stream") == nil else {
            // logs=1 without stream: what was written so far, then the end.
            c.hijack(r, multiplexed: !cont.config.tty)
            return
        }
        if cont.isRunning {
            guard let conn = try MonitorConnection.connect(runDir: cont.paths.runDir) else { throw APIError(409, "Container \(cont.id) is not running") }
            try conn.send(.attach)
            c.hijack(r, multiplexed: !cont.config.tty)
            if let code = AttachRelay.run(conn, client: c, streams, untilExit: false) { sessions.exited(cont.id, code: code) }
            return
        }
        // Not running: the start that follows hands over its connection.
        let pending = sessions.addAttach(cont.id)
        c.hijack(r, multiplexed: !cont.config.tty)
        var conn: MonitorConnection?
        while conn == nil {
            conn = pending.handoff.withLock { $0 }
            if conn != nil { break }
            if c.peerClosed || !FS.isDirectory(cont.paths.dir) {
                pending.cancelled.store(true, ordering: .releasing)
                sessions.removeAttach(cont.id, pending)
                // Handed over in between: the exit must still be learnt.
                conn = pending.handoff.withLock { $0 }
                if conn == nil { return }
                break
            }
            pending.ready.wait(client: c, timeout: 250)
        }
        guard let conn else { return }
        let code = AttachRelay.run(conn, client: c, streams, untilExit: true)
        sessions.exited(cont.id, code: code ?? 137)
    }

    func wait(_ ref: String, _ r: HTTPRequest, _ c: HTTPConnection) throws {
        let cont = try lookup(ref)
        let condition = r.query("condition") ?? "not-running"
        guard ["not-running", "next-exit", "removed", ""].contains(condition) else {
            throw APIError(400, "invalid condition: \"\(condition)\"")
        }
        let running = cont.isRunning || cont.status == .restarting
        func finish(_ code: Int32) {
            c.chunk(Array((JSON.object([("StatusCode", .int(Int64(code))), ("Error", .null)]).serialized() + "\n").utf8))
            c.endChunks()
        }
        if !running && (condition == "not-running" || condition == "") {
            c.beginChunks()
            return finish(cont.exitCode)
        }
        let waiter = sessions.addWaiter(cont.id)
        defer { sessions.removeWaiter(cont.id, waiter) }
        // The headers go out now: the client starts the container only after them.
        c.beginChunks()
        var code: Int32?
        var sawRunning = running
        var monitor: MonitorConnection?
        while code == nil {
            if let x = waiter.code.withLock({ $0 }) { code = x; break }
            if c.peerClosed { return }
            // Started by this service: the start's own connection reports the exit to the waiter.
            if sessions.isRelayed(cont.id) {
                waiter.ready.wait(client: c, timeout: 1000)
                continue
            }
            guard let now = try? engine.lookup(cont.id) else {
                // Removed (--rm): its exit reaches the waiter from the start's connection, if not already.
                let deadline = monotonicSeconds() + 1
                while code == nil && monotonicSeconds() < deadline {
                    waiter.ready.wait(client: c, timeout: 100)
                    code = waiter.code.withLock { $0 }
                }
                break
            }
            if now.isRunning || now.status == .restarting {
                sawRunning = true
                // Started elsewhere (or before): its monitor reports the exit.
                if monitor == nil { monitor = try? MonitorConnection.connect(runDir: now.paths.runDir) }
                if let conn = monitor {
                    do {
                        if let f = try conn.receive(timeout: 0.2) {
                            if case .exit(let x, _) = f { code = x }
                        } else {
                            monitor = nil
                        }
                    } catch {
                        if (error as? SystemError)?.errno != ETIMEDOUT { monitor = nil }
                    }
                    continue
                }
            } else if sawRunning || condition == "not-running" || condition == "" {
                code = now.exitCode
                break
            }
            // Not started yet: the start (here, signalling the waiter) or a look again in 100 ms (a start elsewhere).
            waiter.ready.wait(client: c, timeout: 100)
        }
        if condition == "removed" {
            // The monitor removes an --rm container right after its exit: a short look every 2 ms.
            let deadline = monotonicSeconds() + 30
            while FS.isDirectory(cont.paths.dir) && monotonicSeconds() < deadline && !c.peerClosed { usleep(2_000) }
        }
        finish(code ?? 0)
    }
}
