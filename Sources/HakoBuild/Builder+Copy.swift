#if canImport(Glibc)
import Glibc
#endif
import HakoEngine
import HakoImage
import HakoSystem

extension Builder {
    /// One file or directory a COPY or ADD takes: where it is in its source
    /// view, and its path below the destination ("" for the destination itself).
    struct Source {
        var components: [String]
        var entry: LayeredRoot.Entry
    }

    /// COPY and ADD: the matched sources laid out under the destination in a
    /// staging tree (the destination's existing parents keep their metadata;
    /// symlinks on the way resolved inside the image), which becomes the layer.
    func copy(_ i: Instruction, state: inout StageState, file: Dockerfile, plan: BuildPlan, built: [Int: StageState],
              word: (String) throws -> String, words: (String) throws -> [String]) throws {
        var from: String?, chown: String?, chmod: mode_t?
        for (name, value) in i.flags {
            switch name {
            case "from": from = try words(value).first
            case "chown": chown = try words(value).first
            case "chmod":
                guard let m = mode_t(value, radix: 8), m <= 0o7777 else { throw bad(file, i, "invalid --chmod \(value) (an octal mode)") }
                chmod = m
            case "link": break  // a layer of its own is what every COPY makes here
            default: throw bad(file, i, "--\(name) is not supported (COPY and ADD take --from, --chown, --chmod, --link)")
            }
        }
        var args = try i.json.map { try $0.map { try word($0) } } ?? words(i.rest)
        guard args.count >= 2 else { throw bad(file, i, "\(i.keyword) requires at least two arguments: SOURCE… DEST") }
        let dest = args.removeLast()

        // The view the sources come from, and what identifies its content for the cache.
        let view: LayeredRoot
        var viewKey: String
        let fromContext = from == nil
        if let from {
            if let b = plan.stage(named: from), let s = built[b] {
                view = LayeredRoot(layers: Array(try engine.images.layerDirectories(s.diffIDs).reversed()))
                viewKey = "stage " + s.key
            } else if plan.stage(named: from) != nil {
                throw bad(file, i, "--from=\(from) names a later stage or the stage itself")
            } else {
                let pull = ImagePullOptions(policy: options.pull ? .always : .missing, platform: options.platform, tlsVerify: options.tlsVerify)
                let image: Image
                do { image = try engine.imageForRun(from, pull: pull) } catch { throw fail(file, i, "--from=\(from): \(error)") }
                guard !image.isHost else { throw bad(file, i, "--from=host: the built-in host image cannot be copied from") }
                view = LayeredRoot(layers: Array(image.layerDirs.reversed()))
                viewKey = "image " + image.id
            }
        } else {
            guard let c = contextRoot else {
                throw fail(file, i, "there is no build context (the Dockerfile came on stdin): nothing to copy from")
            }
            view = c
            viewKey = "context"
        }

        var sources: [Source] = []
        var downloads: StagingDirectory?
        defer { downloads?.remove() }
        for pattern in args {
            if i.keyword == "ADD" && fromContext && (pattern.hasPrefix("http://") || pattern.hasPrefix("https://")) {
                let dir = try downloads ?? StagingDirectory(root: engine.paths.root)
                downloads = dir
                sources.append(try fetch(pattern, into: dir.path, file: file, i: i))
                continue
            }
            let matched = match(pattern, in: view, context: fromContext)
            if matched.isEmpty && !Glob(pattern).isLiteral { continue }
            guard !matched.isEmpty else {
                throw fail(file, i, "\(pattern): no such file or directory in the \(fromContext ? "build context" : "source \(from ?? "")")\(fromContext && ignore.excludes(DockerIgnore.clean(pattern)) ? " (excluded by .dockerignore)" : "")")
            }
            sources += matched
        }
        guard !sources.isEmpty else { throw fail(file, i, "no source files were specified") }

        let workdir = state.config.workingDir ?? "/"
        let destPath = dest.hasPrefix("/") ? dest : workdir + "/" + dest
        let image = LayeredRoot(layers: Array(try engine.images.layerDirectories(state.diffIDs).reversed()))
        guard let destComponents = image.resolve(destPath) else { throw fail(file, i, "\(dest): too many levels of symbolic links") }
        let destExistsAsDir = image.entry(destComponents)?.isDirectory == true
        let destIsDir = dest.hasSuffix("/") || dest.hasSuffix("/.") || destExistsAsDir || sources.count > 1
            || (sources.count == 1 && sources[0].entry.isDirectory)
        if sources.count > 1 && !dest.hasSuffix("/") && !destExistsAsDir {
            throw fail(file, i, "when using \(i.keyword) with more than one source file, the destination must be a directory and end with a /")
        }
        let owner = try chown.map { try resolveOwner($0, state: state, file: file, i: i) }

        // The cache key: the state, the step, and the digest of every file it reads.
        var parts = [state.key, i.keyword, viewKey, dest, json(destComponents), chown ?? "", chmod.map { String($0, radix: 8) } ?? ""]
        for s in sources { parts += [json(s.components), try treeDigest(s, in: view, context: fromContext)] }
        if i.keyword == "ADD" { parts.append("extract") }
        let key = try BuildCache.key(parts)
        let createdBy = "\(i.keyword) " + (args + [dest]).joined(separator: " ")
        if let layer = cachedLayer(key, state) {
            apply(layer, key: key, createdBy: createdBy, to: &state)
            return
        }
        try checkInterrupt()

        let staging = try StagingDirectory(root: engine.paths.root)
        defer { staging.remove() }
        // The destination's parents, with their metadata in the image where they exist.
        let parentCount = destIsDir ? destComponents.count : destComponents.count - 1
        for n in 0..<parentCount {
            let prefix = Array(destComponents.prefix(n + 1))
            let path = staging.path + "/" + prefix.joined(separator: "/")
            if let e = image.entry(prefix), e.isDirectory {
                try makeDirectory(path, mode: e.st.st_mode & 0o7777, uid: e.st.st_uid, gid: e.st.st_gid, times: e.st)
            } else {
                try makeDirectory(path, mode: 0o755, uid: owner?.0 ?? 0, gid: owner?.1 ?? 0, times: nil)
            }
        }
        let destHost = staging.path + (destComponents.isEmpty ? "" : "/" + destComponents.joined(separator: "/"))
        let attrs = CopyAttributes(owner: owner, mode: chmod)
        for s in sources {
            try checkInterrupt()
            let fetched = downloads.map { s.entry.hostPath.hasPrefix($0.path + "/") } ?? false
            if i.keyword == "ADD", fromContext, !fetched, s.entry.isRegular, archiveKind(s.entry.hostPath) != nil {
                try extract(s.entry.hostPath, into: destIsDir ? destHost : FS.parentDirectory(destHost), file: file, i: i)
            } else if s.entry.isDirectory {
                try copyTree(s, in: view, to: destHost, attrs: attrs, context: fromContext, isTop: true)
            } else {
                let target = destIsDir ? destHost + "/" + (s.components.last ?? "") : destHost
                try copyEntry(s.entry, to: target, attrs: attrs)
            }
        }
        let layer = try engine.images.addLayer(from: staging.path, above: state.diffIDs, unpack: try engine.unpackOptions())
        let entry = BuildCache.Entry(layer: layer, created: Timestamp.now().rfc3339)
        cache.store(key, entry)
        apply(layer, key: key, createdBy: createdBy, created: entry.created, to: &state)
        emit(.done(String(layer.diffID.hex.prefix(12))))
    }

    /// WORKDIR: the directory is created (a layer) when the image does not have it.
    func workdir(_ i: Instruction, _ state: inout StageState, file: Dockerfile) throws {
        let dir = state.config.workingDir ?? "/"
        let image = LayeredRoot(layers: Array(try engine.images.layerDirectories(state.diffIDs).reversed()))
        guard let resolved = image.resolve(dir), image.entry(resolved)?.isDirectory != true else {
            try metadata(i, &state, describe: "WORKDIR " + dir)
            return
        }
        let key = try BuildCache.key([state.key, "WORKDIR", dir])
        if let layer = cachedLayer(key, state) {
            apply(layer, key: key, createdBy: "WORKDIR " + dir, to: &state)
            return
        }
        let staging = try StagingDirectory(root: engine.paths.root)
        defer { staging.remove() }
        for n in 0..<resolved.count {
            let prefix = Array(resolved.prefix(n + 1))
            let path = staging.path + "/" + prefix.joined(separator: "/")
            if let e = image.entry(prefix), e.isDirectory {
                try makeDirectory(path, mode: e.st.st_mode & 0o7777, uid: e.st.st_uid, gid: e.st.st_gid, times: e.st)
            } else {
                try makeDirectory(path, mode: 0o755, uid: 0, gid: 0, times: nil)
            }
        }
        let layer = try engine.images.addLayer(from: staging.path, above: state.diffIDs, unpack: try engine.unpackOptions())
        let entry = BuildCache.Entry(layer: layer, created: Timestamp.now().rfc3339)
        cache.store(key, entry)
        apply(layer, key: key, createdBy: "WORKDIR " + dir, created: entry.created, to: &state)
    }

    // MARK: sources

    /// The entries a source pattern names: a path, or a glob matched one path
    /// component at a time (Go's filepath.Match); in the context, what
    /// .dockerignore excludes is not there.
    func match(_ pattern: String, in view: LayeredRoot, context: Bool) -> [Source] {
        let parts = LayeredRoot.components(pattern)
        var found: [[String]] = [[]]
        for part in parts {
            var next: [[String]] = []
            let glob = Glob(part)
            for dir in found {
                if glob.isLiteral {
                    // Symlinked directories on the way are followed inside the view.
                    let base = view.resolve(dir.joined(separator: "/")) ?? dir
                    if view.entry(base + [part]) != nil { next.append(dir + [part]) }
                } else {
                    for name in view.list(view.resolve(dir.joined(separator: "/")) ?? dir) where glob.matches(name) {
                        next.append(dir + [name])
                    }
                }
            }
            found = next
        }
        return found.compactMap { comps -> Source? in
            if context && !comps.isEmpty && ignore.excludes(comps.joined(separator: "/")) { return nil }
            // The last component itself is taken as it is (a symlink is copied as one), the ones before resolved.
            guard let resolvedParent = view.resolve(comps.dropLast().joined(separator: "/")) else { return nil }
            let real = comps.isEmpty ? [] : resolvedParent + [comps.last ?? ""]
            guard let e = view.entry(real) else { return nil }
            return Source(components: real, entry: e)
        }
    }

    /// A digest of a source's content: names, types, modes, link targets and file bytes.
    func treeDigest(_ s: Source, in view: LayeredRoot, context: Bool) throws -> String {
        let hasher = try SHA256Hasher()
        var count = 0
        func visit(_ comps: [String], _ e: LayeredRoot.Entry, _ rel: String) throws {
            count += 1
            guard count < 1_000_000 else { throw HakoError(.failed, "more than a million files in one COPY source") }
            hasher.update(Array("\(rel)\u{0}\(e.st.st_mode)\u{0}".utf8))
            if e.isRegular {
                let fd = try FileDescriptor.open(e.hostPath, O_RDONLY | O_NOFOLLOW)
                var buf = [UInt8](repeating: 0, count: 1 << 16)
                while true {
                    let n = buf.withUnsafeMutableBytes { read(fd.rawValue, $0.baseAddress, $0.count) }
                    if n < 0 { if errno == EINTR { continue }; throw SystemError("read", e.hostPath) }
                    if n == 0 { break }
                    buf.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                }
            } else if e.isSymlink {
                hasher.update(Array((FS.readLink(e.hostPath) ?? "").utf8))
            } else if e.isDirectory {
                for name in view.list(comps) {
                    let c = comps + [name]
                    guard let ce = view.entry(c), !excluded(c, ce, context: context) else { continue }
                    try visit(c, ce, rel + "/" + name)
                }
            }
        }
        try visit(s.components, s.entry, "")
        return try hasher.finalize().hex
    }

    /// Whether .dockerignore leaves a context entry out; an excluded directory
    /// an exception pattern may re-include from is still walked (its other
    /// entries stay out, each checked on its own).
    func excluded(_ components: [String], _ e: LayeredRoot.Entry, context: Bool) -> Bool {
        guard context else { return false }
        let path = components.joined(separator: "/")
        guard ignore.excludes(path) else { return false }
        return !(e.isDirectory && ignore.mayReinclude(below: path))
    }

    // MARK: copying

    struct CopyAttributes {
        var owner: (UInt32, UInt32)?
        var mode: mode_t?
    }

    /// A directory source: its contents into `dest`.
    func copyTree(_ s: Source, in view: LayeredRoot, to dest: String, attrs: CopyAttributes, context: Bool, isTop: Bool) throws {
        if !isTop || !FS.isDirectory(dest) {
            try makeDirectory(dest, mode: attrs.mode ?? (s.entry.st.st_mode & 0o7777), uid: attrs.owner?.0 ?? 0,
                              gid: attrs.owner?.1 ?? 0, times: s.entry.st)
        }
        for name in view.list(s.components) {
            let c = s.components + [name]
            guard let e = view.entry(c), !excluded(c, e, context: context) else { continue }
            if e.isDirectory {
                try copyTree(Source(components: c, entry: e), in: view, to: dest + "/" + name, attrs: attrs, context: context, isTop: false)
            } else {
                try copyEntry(e, to: dest + "/" + name, attrs: attrs)
            }
        }
        if isTop { setTimes(dest, s.entry.st, follow: true) }
    }

    /// One file, symlink or special file (copied as what it is; owner root unless --chown).
    func copyEntry(_ e: LayeredRoot.Entry, to dest: String, attrs: CopyAttributes) throws {
        let uid = attrs.owner?.0 ?? 0, gid = attrs.owner?.1 ?? 0
        var st = stat()
        if lstat(dest, &st) == 0 {
            if (st.st_mode & S_IFMT) == S_IFDIR { try FS.removeTree(dest) } else { _ = unlink(dest) }
        }
        if e.isSymlink {
            guard let target = FS.readLink(e.hostPath) else { throw SystemError("readlink", e.hostPath) }
            try sys("symlink", dest) { symlink(target, dest) }
            _ = lchown(dest, uid, gid)
            setTimes(dest, e.st, follow: false)
        } else if e.isRegular {
            let src = try FileDescriptor.open(e.hostPath, O_RDONLY | O_NOFOLLOW)
            let out = try FileDescriptor(sys("open", dest) { open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600) })
            try copyBytes(src, out, dest)
            try sys("fchown", dest) { fchown(out.rawValue, uid, gid) }
            try sys("fchmod", dest) { fchmod(out.rawValue, attrs.mode ?? (e.st.st_mode & 0o7777)) }
            setTimes(dest, e.st, follow: true)
        } else if (e.st.st_mode & S_IFMT) == S_IFIFO {
            try sys("mkfifo", dest) { mkfifo(dest, e.st.st_mode & 0o7777) }
            _ = lchown(dest, uid, gid)
        }
        // Sockets and device nodes are not copied (Docker skips sockets; devices need --privileged builds).
    }

    func copyBytes(_ src: FileDescriptor, _ out: FileDescriptor, _ dest: String) throws {
        var buf = [UInt8](repeating: 0, count: 1 << 17)
        while true {
            let n = buf.withUnsafeMutableBytes { read(src.rawValue, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw SystemError("read", dest) }
            if n == 0 { return }
            var off = 0
            while off < n {
                let w = buf.withUnsafeBytes { write(out.rawValue, $0.baseAddress.map { $0 + off }, n - off) }
                if w < 0 { if errno == EINTR { continue }; throw SystemError("write", dest) }
                off += w
            }
        }
    }

    func makeDirectory(_ path: String, mode: mode_t, uid: UInt32, gid: UInt32, times: stat?) throws {
        var st = stat()
        if lstat(path, &st) != 0 {
            try sys("mkdir", path) { mkdir(path, 0o700) }
        } else if (st.st_mode & S_IFMT) != S_IFDIR {
            _ = unlink(path)
            try sys("mkdir", path) { mkdir(path, 0o700) }
        }
        try sys("chown", path) { lchown(path, uid, gid) }
        try sys("chmod", path) { Glibc.chmod(path, mode) }
        if let times { setTimes(path, times, follow: false) }
    }

    func setTimes(_ path: String, _ st: stat, follow: Bool) {
        var ts = [st.st_atim, st.st_mtim]
        _ = utimensat(AT_FDCWD, path, &ts, follow ? 0 : AT_SYMLINK_NOFOLLOW)
    }

    /// "user[:group]" of --chown: numbers as they are, names from the image's /etc/passwd and /etc/group.
    func resolveOwner(_ spec: String, state: StageState, file: Dockerfile, i: Instruction) throws -> (UInt32, UInt32) {
        let parts = spec.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let userPart = parts.first, !userPart.isEmpty, parts.count == 1 || !parts[1].isEmpty else {
            throw bad(file, i, "invalid --chown \(spec)")
        }
        let layers = Array(try engine.images.layerDirectories(state.diffIDs).reversed())
        let uid: UInt32
        if let n = UInt32(userPart) { uid = n } else {
            guard let passwd = UserResolver.readFromLayers("/etc/passwd", layers: layers),
                  let u = try? UserResolver.resolve(userPart, passwd: passwd, group: nil) else {
                throw fail(file, i, "--chown: unable to find user \(userPart) in the image's /etc/passwd")
            }
            uid = u.uid
        }
        guard parts.count == 2 else { return (uid, uid) }
        if let n = UInt32(parts[1]) { return (uid, n) }
        let group = UserResolver.readFromLayers("/etc/group", layers: layers) ?? ""
        for line in group.split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            if f.count >= 3, f[0] == parts[1], let g = UInt32(f[2]) { return (uid, g) }
        }
        throw fail(file, i, "--chown: unable to find group \(parts[1]) in the image's /etc/group")
    }

    // MARK: ADD of a local archive

    /// The compression of a local tar archive ADD extracts, nil when the file is not one.
    func archiveKind(_ path: String) -> Compression? {
        guard let fd = try? FileDescriptor.open(path, O_RDONLY | O_NOFOLLOW) else { return nil }
        var head = [UInt8](repeating: 0, count: 512)
        let n = head.withUnsafeMutableBytes { read(fd.rawValue, $0.baseAddress, $0.count) }
        guard n >= 6 else { return nil }
        let kind = Compression.detect(Array(head.prefix(6)))
        if kind != .none { return kind }
        // A plain tar: "ustar" at offset 257.
        return n == 512 && Array(head[257..<262]) == Array("ustar".utf8) ? Compression.none : nil
    }

    func extract(_ path: String, into dir: String, file: Dockerfile, i: Instruction) throws {
        try FS.makeDirectories(dir)
        do {
            _ = try LayerUnpacker(options: UnpackOptions()).unpack(FileSource(try FileDescriptor.open(path, O_RDONLY | O_NOFOLLOW)), into: dir)
        } catch {
            throw fail(file, i, "cannot extract \(path.split(separator: "/").last.map(String.init) ?? path): \(error)")
        }
    }
}

/// A directory a build step lays a layer out in: `<root>/build-tmp/<pid>.<n>`,
/// removed when the step is done; the leftovers of a killed build are removed
/// by the next one.
final class StagingDirectory {
    let path: String

    init(root: String) throws {
        let base = root + "/build-tmp"
        try FS.makeDirectories(base, mode: 0o700)
        for name in (try? FS.list(base)) ?? [] {
            if let pid = Int32(name.split(separator: ".").first ?? ""), pid != getpid(), !FS.processExists(pid) {
                try? FS.removeTree(base + "/" + name)
            }
        }
        var n = 0
        var candidate = "\(base)/\(getpid()).\(n)"
        while mkdir(candidate, 0o755) != 0 {
            guard errno == EEXIST, n < 10000 else { throw SystemError("mkdir", candidate) }
            n += 1
            candidate = "\(base)/\(getpid()).\(n)"
        }
        path = candidate
    }

    func remove() { try? FS.removeTree(path) }
}
