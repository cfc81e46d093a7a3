import HakoCLI
#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoEngine
import HakoImage
import HakoSystem

/// `hako cp`: files between a container and the host, or a tar stream (`-`).
struct Cp: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cp",
        abstract: "Copy files between a container and the host (CONTAINER:PATH, a local path, or - for a tar stream).")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short("a"), .long("archive")], help: "Keep the files' owners (uid:gid) instead of making them the receiver's.") var archive = false
    @Flag(name: [.short("L"), .long("follow-link")], help: "Follow a symlink given as the source.") var followLink = false
    @Flag(name: [.short("q"), .long("quiet")], help: "Print nothing (hako prints nothing anyway).") var quiet = false
    @Argument(help: "SOURCE") var source: String
    @Argument(help: "DESTINATION") var destination: String

    /// "name:/path" names a container's path; a local path with a colon is written ./a:b.
    static func split(_ arg: String) -> (container: String, path: String)? {
        guard let colon = arg.firstIndex(of: ":"), !arg.hasPrefix("/"), !arg.hasPrefix(".") else { return nil }
        let name = String(arg[..<colon])
        guard !name.isEmpty, !name.contains("/") else { return nil }
        return (name, String(arg[arg.index(after: colon)...]))
    }

    func run() throws {
        let engine = try global.engine()
        switch (Cp.split(source), Cp.split(destination)) {
        case (let src?, nil): try copyOut(engine, src.container, src.path.isEmpty ? "/" : src.path, to: destination)
        case (nil, let dst?): try copyIn(engine, from: source, dst.container, dst.path.isEmpty ? "/" : dst.path)
        case (.some, .some): throw ValidationError("copying between containers is not supported")
        case (nil, nil): throw ValidationError("must specify at least one container source")
        }
    }

    /// A temporary file for the tar stream in `dir`, unlinked at once.
    func scratch(in dir: String) throws -> FileDescriptor {
        var template = Array("\(dir)/.hako-cp-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw HakoError(.failed, "cannot make a temporary file in \(dir)", cause: SystemError("mkstemp", dir)) }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        unlink(template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        return FileDescriptor(fd)
    }

    func copyOut(_ engine: Engine, _ container: String, _ path: String, to dst: String) throws {
        var srcPath = path
        var found = try engine.pathStat(container, path: srcPath)
        if followLink && found.isSymlink {
            let target = found.linkTarget.hasPrefix("/") ? found.linkTarget
                : (path.split(separator: "/").dropLast().joined(separator: "/") + "/" + found.linkTarget)
            srcPath = target.hasPrefix("/") ? target : "/" + target
            found = try engine.pathStat(container, path: srcPath)
        }
        let contentsOnly = path.hasSuffix("/.")
        if path.hasSuffix("/"), !found.isDirectory {
            throw HakoError(.failed, "\(path): not a directory")
        }
        if dst == "-" {
            guard isatty(1) == 0 else { throw HakoError(.failed, "cowardly refusing to write a tar stream to a terminal: redirect the output") }
            _ = try engine.copyOut(container, path: srcPath, to: FileSink(FileDescriptor(dup(1))))
            return
        }
        // Where the entries land and what the top one is called, as docker decides.
        var st = Glibc.stat()
        let exists = stat(dst, &st) == 0
        let dstIsDir = exists && (st.st_mode & S_IFMT) == S_IFDIR
        var into: String
        var name: String?
        if contentsOnly && found.isDirectory {
            if !exists { try FS.makeDirectories(dst, mode: 0o755) } else if !dstIsDir {
                throw HakoError(.failed, "cannot copy a directory to a file: \(dst)")
            }
            into = dst
            name = "."
        } else if dstIsDir {
            into = dst
        } else {
            if exists && found.isDirectory { throw HakoError(.failed, "cannot copy a directory to a file: \(dst)") }
            if dst.hasSuffix("/") { throw HakoError(.failed, "no such directory: \(dst)") }
            let parts = dst.split(separator: "/", omittingEmptySubsequences: false)
            into = parts.count > 1 ? parts.dropLast().joined(separator: "/") : "."
            if into.isEmpty { into = "/" }
            name = String(parts.last ?? "")
            guard FS.isDirectory(into) else { throw HakoError(.failed, "no such directory: \(into)") }
        }
        let tmp = try scratch(in: into)
        _ = try engine.copyOut(container, path: srcPath, as: name, to: FileSink(FileDescriptor(dup(tmp.rawValue))))
        lseek(tmp.rawValue, 0, SEEK_SET)
        let unpacker = LayerUnpacker(options: UnpackOptions(allowDevices: true, preserveOwnership: archive, whiteouts: false))
        do {
            _ = try unpacker.unpack(FileSource(tmp), into: into)
        } catch let e as ImageError {
            throw HakoError(.failed, "cannot copy to \(dst): \(e)")
        }
    }

    func copyIn(_ engine: Engine, from src: String, _ container: String, _ path: String) throws {
        if src == "-" {
            guard isatty(0) == 0 else { throw HakoError(.failed, "cp - needs a tar stream on stdin") }
            try engine.copyIn(container, directory: path, from: FileSource(FileDescriptor(dup(0))),
                              options: CopyInOptions(keepOwnership: true))
            return
        }
        var st = Glibc.stat()
        var local = src.hasSuffix("/.") ? String(src.dropLast(2)) : src
        if local.isEmpty { local = "/" }
        guard lstat(local, &st) == 0 else { throw HakoError(.failed, "no such file or directory: \(src)") }
        let srcName = String(local.split(separator: "/").last ?? "")
        if followLink, (st.st_mode & S_IFMT) == S_IFLNK {
            // -L: the link's target, under the link's name.
            guard let resolved = realpath(local, nil) else { throw HakoError(.failed, "cannot follow \(src)", cause: SystemError("realpath", local)) }
            local = String(cString: resolved)
            free(resolved)
            guard stat(local, &st) == 0 else { throw HakoError(.failed, "no such file or directory: \(local)") }
        }
        let srcIsDir = (st.st_mode & S_IFMT) == S_IFDIR
        let contentsOnly = src.hasSuffix("/.") && srcIsDir
        // The destination: an existing directory takes the source by its name;
        // otherwise the source lands in the parent under the destination's name.
        let target = try? engine.pathStat(container, path: path)
        var into: String
        var name: String
        if contentsOnly {
            guard target?.isDirectory ?? true else { throw HakoError(.failed, "cannot copy a directory to a file: \(path)") }
            if target == nil {
                let parts = path.split(separator: "/")
                into = "/" + parts.dropLast().joined(separator: "/")
                name = String(parts.last ?? "")
                guard !name.isEmpty else { throw HakoError(.failed, "no such directory in the container: \(path)") }
            } else {
                into = path
                name = "."
            }
        } else if let target, target.isDirectory {
            into = path
            name = srcName
        } else {
            if target != nil && srcIsDir { throw HakoError(.failed, "cannot copy a directory to a file: \(path)") }
            if path.hasSuffix("/") { throw HakoError(.failed, "no such directory in the container: \(path)") }
            let parts = path.split(separator: "/")
            into = "/" + parts.dropLast().joined(separator: "/")
            name = String(parts.last ?? "")
        }
        let parentPath = local.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let parent = try FileDescriptor.open(local.hasPrefix("/") && parentPath.isEmpty ? "/" : (parentPath.isEmpty ? "." : parentPath),
                                             O_RDONLY | O_DIRECTORY)
        let tmp = try scratch(in: engine.paths.root)
        let member = String(local.split(separator: "/").last ?? "")
        do {
            try TreeArchiver(mode: .merged).archive(contentsOnly || member.isEmpty ? "." : member,
                                                    in: contentsOnly || member.isEmpty ? try FileDescriptor.open(local, O_RDONLY | O_DIRECTORY) : parent,
                                                    as: name, to: TarWriter(FileSink(FileDescriptor(dup(tmp.rawValue)))))
        } catch let e as ImageError {
            throw HakoError(.failed, "cannot read \(src): \(e)")
        }
        lseek(tmp.rawValue, 0, SEEK_SET)
        try engine.copyIn(container, directory: into, from: FileSource(tmp), options: CopyInOptions(keepOwnership: archive))
    }
}

/// `hako top`: the container's processes, columns as `ps` options choose.
struct Top: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "top", abstract: "Show the processes of a running container (ps options: -ef, aux, -eo FIELDS, -o FIELDS, l, j, v …).")
    @OptionGroup var global: GlobalOptions
    @Argument(parsing: .passthrough, help: "CONTAINER [ps OPTIONS]") var containerAndOptions: [String] = []

    func run() throws {
        guard let ref = containerAndOptions.first else { throw ValidationError("\"top\" requires a container") }
        let format: PsFormat
        do { format = try PsFormat.parse(Array(containerAndOptions.dropFirst())) } catch let e as PsError {
            throw HakoError(.failed, "\(e)")
        }
        let engine = try global.engine()
        let rows = format.table(try engine.processes(ref), now: Timestamp.now().secondsSince1970)
        if format.showHeader, format.columns.contains(where: { !$0.header.isEmpty }), let header = rows.first {
            printTable(header, Array(rows.dropFirst()))
        } else {
            printTable(Array(repeating: "", count: format.columns.count), rows, header: false)
        }
    }
}

struct Rename: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rename", abstract: "Rename a container.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "CONTAINER") var container: String
    @Argument(help: "NEW_NAME") var newName: String

    func run() throws {
        try global.engine().renameContainer(container, to: newName)
    }
}

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "diff", abstract: "Show the files a container added (A), changed (C) and deleted (D).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "CONTAINER") var container: String

    func run() throws {
        for c in try global.engine().diff(container) { print("\(c.kind.rawValue) \(c.path)") }
    }
}

struct Attach: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "attach", abstract: "Attach this terminal's input and output to a running container.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: .long("no-stdin"), help: "Do not attach stdin.") var noStdin = false
    @Option(name: .long("detach-keys"), help: "Keys that detach from the container (default ctrl-p,ctrl-q).") var detachKeys = DetachKeys.default
    @Option(name: .long("sig-proxy"), help: "Pass signals this process receives to the container (true or false).") var sigProxy = true
    @Argument(help: "CONTAINER") var container: String

    func run() throws {
        let keys = try DetachKeys.parse(detachKeys)
        let (c, conn) = try global.engine().attach(container)
        let stdin = !noStdin && c.config.openStdin
        guard let code = try AttachSession.run(conn, stdin: stdin, tty: c.config.tty, detachKeys: keys, forwardSignals: sigProxy) else {
            if isatty(2) == 1 { writeStderr("read escape sequence\n") }
            return
        }
        throw ExitCode(code)
    }
}
