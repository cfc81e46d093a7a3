#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoEngine
import HakoRuntime
import HakoSystem
import Synchronization

/// Exec instances (`POST /containers/{id}/exec`), kept in memory as Docker keeps them.
final class ExecRegistry: @unchecked Sendable {
    struct Record: Sendable {
        var id: String
        var containerID: String
        var options: ExecOptions
        var attachStdin: Bool
        var attachStdout: Bool
        var attachStderr: Bool
        var started = false
        var running = false
        var exitCode: Int32?
        var pid: Int32 = 0
        /// The terminal's master side while a terminal exec runs (for resize).
        var terminal: Int32 = -1
    }

    private let records = Mutex<[String: Record]>([:])

    func add(_ r: Record) {
        records.withLock { all in
            // Bounded: the oldest finished instances go first.
            if all.count >= 1024, let old = all.values.first(where: { !$0.running })?.id { all[old] = nil }
            all[r.id] = r
        }
    }

    func get(_ id: String) -> Record? { records.withLock { $0[id] } }

    func update(_ id: String, _ body: (inout Record) -> Void) {
        records.withLock { all in
            if var r = all[id] { body(&r); all[id] = r }
        }
    }

    func ids(for container: String) -> [String]? {
        let ids = records.withLock { $0.values.filter { $0.containerID == container && $0.running }.map(\.id) }
        return ids.isEmpty ? nil : ids.sorted()
    }
}

extension DockerAPI {
    func execCreate(_ ref: String, _ r: HTTPRequest, _ c: HTTPConnection) throws {
        let cont = try lookup(ref)
        let body = try DockerAPI.body(r)
        guard let cmd = try CreateMapping.strings(body["Cmd"], "Cmd"), !cmd.isEmpty else { throw APIError(400, "No exec command specified") }
        if cont.status == .paused { throw APIError(409, "Container \(cont.id) is paused, unpause the container before exec") }
        guard cont.isRunning else { throw APIError(409, "Container \(cont.id) is not running") }
        if body["Privileged"]?.bool == true { throw APIError(400, "Privileged exec is not supported by hako") }
        var o = ExecOptions(command: cmd)
        o.env = (try CreateMapping.strings(body["Env"], "Env") ?? []).filter { $0.contains("=") }
        o.user = CreateMapping.nonEmpty(body["User"]?.string)
        o.workingDir = CreateMapping.nonEmpty(body["WorkingDir"]?.string)
        o.tty = body["Tty"]?.bool ?? false
        o.interactive = body["AttachStdin"]?.bool ?? false
        let id = hexString(randomBytes(32))
        execs.add(.init(id: id, containerID: cont.id, options: o, attachStdin: o.interactive,
                        attachStdout: body["AttachStdout"]?.bool ?? false, attachStderr: body["AttachStderr"]?.bool ?? false))
        c.respond(201, json: .object([("Id", .string(id))]))
    }

    func exec(_ p: [String], _ r: HTTPRequest, _ c: HTTPConnection) throws {
        guard p.count == 2 else { throw notFound(r) }
        let id = p[0]
        guard let rec = execs.get(id) else { throw APIError(404, "No such exec instance: \(id)") }
        switch p[1] {
        case "json":
            try only(r.method, "GET", r)
            c.respond(200, json: .object([
                ("ID", .string(rec.id)), ("Running", .bool(rec.running)), ("ExitCode", rec.exitCode.map { .int(Int64($0)) } ?? .null),
                ("ProcessConfig", .object([("tty", .bool(rec.options.tty)), ("entrypoint", .string(rec.options.command[0])),
                                           ("arguments", .array(rec.options.command.dropFirst().map(JSON.string))),
                                           ("privileged", .bool(false)), ("user", .string(rec.options.user ?? ""))])),
                ("OpenStdin", .bool(rec.attachStdin)), ("OpenStderr", .bool(rec.attachStderr)), ("OpenStdout", .bool(rec.attachStdout)),
                ("CanRemove", .bool(false)), ("ContainerID", .string(rec.containerID)), ("DetachKeys", .string("")), ("Pid", .int(Int64(rec.pid))),
            ]))
        case "resize":
            try only(r.method, "POST", r)
            guard let h = r.query("h").flatMap({ UInt16($0) }), let w = r.query("w").flatMap({ UInt16($0) }) else { throw APIError(400, "invalid h or w") }
            if rec.terminal >= 0 { hako_tty_set_size(rec.terminal, h, w) }
            c.respond(200, body: [], contentType: nil)
        case "start":
            try only(r.method, "POST", r)
            try execStart(rec, r, c)
        default:
            throw notFound(r)
        }
    }

    func execStart(_ rec: ExecRegistry.Record, _ r: HTTPRequest, _ c: HTTPConnection) throws {
        let body = try DockerAPI.body(r)
        let detach = body["Detach"]?.bool ?? false
        var claimed = false
        execs.update(rec.id) { x in
            if !x.started { x.started = true; claimed = true }
        }
        guard claimed else { throw APIError(409, "exec \(rec.id) has already run") }
        let cont = try lookup(rec.containerID)
        guard cont.isRunning else { throw APIError(409, "Container \(cont.id) is not running") }
        var o = rec.options
        if detach {
            let null = try FileDescriptor.open("/dev/null", O_RDWR)
            o.interactive = false
            let p: ExecProcess
            do { p = try engine.exec(cont.id, o, stdio: [null.rawValue, null.rawValue, null.rawValue]) } catch { throw DockerAPI.apiError(error) }
            p.terminal?.close()
            execs.update(rec.id) { $0.running = true; $0.pid = p.pid }
            Thread.detach { [execs] in
                let code = DockerAPI.reap(p.pid)
                execs.update(rec.id) { $0.running = false; $0.exitCode = code }
            }
            return c.respond(200, body: [], contentType: nil)
        }
        let tty = o.tty
        c.hijack(r, multiplexed: !tty)
        var code: Int32
        if tty {
            code = runTerminalExec(rec, o, cont: cont, client: c)
        } else {
            code = runPipedExec(rec, o, cont: cont, client: c)
        }
        if code < 0 { code = 126 }
        execs.update(rec.id) { $0.running = false; $0.exitCode = code; $0.terminal = -1 }
    }

    /// A start failure (command not found…) goes to the client's stderr, as Docker writes it; its exit code is Docker's.
    func execFailed(_ error: any Error, tty: Bool, client: HTTPConnection) -> Int32 {
        let text = "hako: \(error)\n"
        client.write(tty ? Array(text.utf8) : StreamFrame.encode(2, Array(text.utf8)))
        return (error as? HakoError)?.exitStatus ?? 126
    }

    func runPipedExec(_ rec: ExecRegistry.Record, _ o: ExecOptions, cont: Container, client: HTTPConnection) -> Int32 {
        let p: ExecProcess
        var stdinWrite: FileDescriptor?
        let outRead: FileDescriptor
        let errRead: FileDescriptor
        do {
            let null = try FileDescriptor.open("/dev/null", O_RDWR)
            let inPipe = try (rec.attachStdin ? makePipe() : nil)
            let outPipe = try makePipe()
            let errPipe = try makePipe()
            p = try engine.exec(cont.id, o, stdio: [inPipe?.read.rawValue ?? null.rawValue, outPipe.write.rawValue, errPipe.write.rawValue])
            inPipe?.read.close()
            outPipe.write.close()
            errPipe.write.close()
            stdinWrite = inPipe?.write
            outRead = outPipe.read
            errRead = errPipe.read
        } catch {
            return execFailed(error, tty: false, client: client)
        }
        execs.update(rec.id) { $0.running = true; $0.pid = p.pid }
        if let w = stdinWrite, !client.buffer.isEmpty {
            AttachSession.writeAll(w.rawValue, client.buffer)
            client.buffer.removeAll()
        }
        var outOpen = true, errOpen = true, clientReading = true, clientUp = true
        var buf = [UInt8](repeating: 0, count: 32768)
        while outOpen || errOpen {
            var fds = [pollfd(fd: outOpen ? outRead.rawValue : -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: errOpen ? errRead.rawValue : -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: clientReading ? client.fd.rawValue : -1, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 3, 1000) < 0 && errno != EINTR { break }
            for (i, stream) in [(0, UInt8(1)), (1, UInt8(2))] where fds[i].revents != 0 {
                let fd = i == 0 ? outRead.rawValue : errRead.rawValue
                let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    let wanted = stream == 1 ? rec.attachStdout : rec.attachStderr
                    if wanted && clientUp && !client.write(StreamFrame.encode(stream, Array(buf[0..<n]))) { clientUp = false }
                } else if n == 0 || errno != EINTR {
                    if i == 0 { outOpen = false } else { errOpen = false }
                }
            }
            if clientReading && fds[2].revents != 0 {
                let n = buf.withUnsafeMutableBytes { Glibc.recv(client.fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n > 0 {
                    if let w = stdinWrite { AttachSession.writeAll(w.rawValue, Array(buf[0..<n])) }
                } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                    clientReading = false
                    stdinWrite?.close()
                    stdinWrite = nil
                    if n < 0 { clientUp = false }
                }
            }
        }
        stdinWrite?.close()
        return DockerAPI.reap(p.pid)
    }

    func runTerminalExec(_ rec: ExecRegistry.Record, _ o: ExecOptions, cont: Container, client: HTTPConnection) -> Int32 {
        let p: ExecProcess
        do {
            p = try engine.exec(cont.id, o, terminal: TerminalSize(rows: 24, cols: 80))
        } catch {
            return execFailed(error, tty: true, client: client)
        }
        guard let master = p.terminal else { return DockerAPI.reap(p.pid) }
        execs.update(rec.id) { $0.running = true; $0.pid = p.pid; $0.terminal = master.rawValue }
        if !client.buffer.isEmpty {
            AttachSession.writeAll(master.rawValue, client.buffer)
            client.buffer.removeAll()
        }
        var status: Int32 = 0
        var exited = false
        var masterOpen = true, clientReading = rec.attachStdin, clientUp = true
        var buf = [UInt8](repeating: 0, count: 32768)
        while masterOpen {
            if !exited, waitpid(p.pid, &status, WNOHANG) == p.pid { exited = true }
            var fds = [pollfd(fd: master.rawValue, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: clientReading ? client.fd.rawValue : -1, events: Int16(POLLIN), revents: 0)]
            let n = poll(&fds, 2, exited ? 50 : 200)
            if n < 0 && errno != EINTR { break }
            if exited && n == 0 { break }
            if fds[0].revents != 0 {
                let k = buf.withUnsafeMutableBytes { Glibc.read(master.rawValue, $0.baseAddress, $0.count) }
                if k > 0 {
                    if clientUp && !client.write(Array(buf[0..<k])) { clientUp = false }
                } else if k == 0 || errno != EINTR {
                    masterOpen = false
                }
            }
            if clientReading && fds[1].revents != 0 {
                let k = buf.withUnsafeMutableBytes { Glibc.recv(client.fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if k > 0 {
                    AttachSession.writeAll(master.rawValue, Array(buf[0..<k]))
                } else if k == 0 || (errno != EAGAIN && errno != EINTR) {
                    clientReading = false
                    if k < 0 { clientUp = false }
                }
            }
        }
        execs.update(rec.id) { $0.terminal = -1 }
        master.close()
        if exited { return DockerAPI.exitCode(status) }
        return DockerAPI.reap(p.pid)
    }

    /// Waits for a child process; Docker's exit code for it.
    static func reap(_ pid: Int32) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return 126 }
        }
        return exitCode(status)
    }

    static func exitCode(_ status: Int32) -> Int32 {
        let sig = status & 0x7f
        return sig == 0 ? (status >> 8) & 0xff : 128 + sig
    }
}
