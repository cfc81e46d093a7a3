#if canImport(Glibc)
import Glibc
#endif
import HakoImage
import HakoRuntime
import HakoSystem

extension Engine {
    // MARK: registries

    /// Registry settings from the engine configuration; `tlsVerify: false`
    /// makes every registry insecure (`--tls-verify=false`).
    public func registryOptions(tlsVerify: Bool = true) throws -> RegistryOptions {
        try Engine.registryOptions(paths: paths, tlsVerify: tlsVerify)
    }

    /// The same for a data root without opening an engine on it (no root needed).
    public static func registryOptions(paths: EnginePaths, tlsVerify: Bool = true) throws -> RegistryOptions {
        let config = try EngineConfig.load(paths.configFile)
        var o = RegistryOptions(tlsVerify: tlsVerify, insecureRegistries: config.registries?.insecure ?? [],
                                caFiles: config.registries?.ca ?? [:],
                                credentials: CredentialStore(path: paths.credentialsFile),
                                loopbackIsInsecure: config.registries?.insecureLoopback ?? true)
        if let n = config.registries?.maxConcurrentDownloads { o.parallelDownloads = n }
        return o
    }

    /// How layers are unpacked: device nodes only when the configuration allows them.
    public func unpackOptions() throws -> UnpackOptions {
        UnpackOptions(allowDevices: try EngineConfig.load(paths.configFile).images?.allowDeviceNodes ?? false)
    }

    /// `hako load`.
    public func load(from path: String, progress: (any ProgressSink)? = nil) throws -> [LoadedImage] {
        try images.load(from: path, unpack: try unpackOptions(), progress: progress)
    }

    /// `docker load` through the API: an archive streamed in, never held whole.
    public func load(from source: any ByteSource, what: String, progress: (any ProgressSink)? = nil) throws -> [LoadedImage] {
        try images.load(from: source, what: what, unpack: try unpackOptions(), progress: progress)
    }

    /// `hako import`.
    public func importImage(from path: String, reference: String?) throws -> Image {
        try images.importRootfs(from: path, reference: reference, unpack: try unpackOptions())
    }

    /// `hako pull`.
    public func pull(_ reference: String, platform: String? = nil, tlsVerify: Bool = true,
                     progress: (any ProgressSink)? = nil) throws -> PullResult {
        var wanted: PlatformSpec?
        if let platform {
            do { wanted = try PlatformSpec(parsing: platform) } catch { throw error.hakoError }
        }
        return try images.pull(reference, platform: wanted, registry: try registryOptions(tlsVerify: tlsVerify),
                               unpack: try unpackOptions(), progress: progress)
    }

    /// `hako push`.
    @discardableResult
    public func push(_ reference: String, tlsVerify: Bool = true, progress: (any ProgressSink)? = nil) throws -> Digest {
        try images.push(reference, registry: try registryOptions(tlsVerify: tlsVerify), progress: progress)
    }

    /// "docker.io" for Docker Hub in any of its spellings; "host[:port]" otherwise.
    public static func registryDomain(_ server: String?) throws -> String {
        guard var s = server?.trimmed, !s.isEmpty else { return ImageReference.defaultDomain }
        for scheme in ["https://", "http://"] where s.hasPrefix(scheme) { s = String(s.dropFirst(scheme.count)) }
        if let slash = s.firstIndex(of: "/") { s = String(s[..<slash]) }
        s = s.lowercased()
        if ["index.docker.io", "registry-1.docker.io", "docker.io", "registry.hub.docker.com"].contains(s) {
            return ImageReference.defaultDomain
        }
        guard !s.isEmpty, (try? ImageReference(parsing: s + "/x")).map({ $0.domain == s }) == true else {
            throw HakoError(.invalidArgument("registry"), "invalid registry \"\(server ?? "")\"")
        }
        return s
    }

    /// `hako login`: checks the credentials with the registry, then keeps them (mode 0600).
    public func login(server: String?, username: String, password: String, tlsVerify: Bool = true) throws -> String {
        let domain = try Engine.registryDomain(server)
        guard !username.isEmpty, !password.isEmpty else { throw HakoError(.invalidArgument("username"), "username and password are required to log in") }
        try images.login(registry: domain, credential: CredentialStore.Credential(username: username, password: password),
                         options: try registryOptions(tlsVerify: tlsVerify))
        return domain
    }

    /// `hako logout`: forgets a registry's credentials; false when there were none.
    public func logout(server: String?) throws -> (String, Bool) {
        let domain = try Engine.registryDomain(server)
        do {
            return (domain, try CredentialStore(path: paths.credentialsFile).remove(for: domain))
        } catch let e as HakoError { throw e } catch {
            throw HakoError(.failed, "cannot log out of \(domain)", cause: error)
        }
    }

    // MARK: the image of a new container

    /// The image `run`/`create` use, pulled first when the policy says so.
    public func imageForRun(_ reference: String, pull: ImagePullOptions = ImagePullOptions()) throws -> Image {
        let local = try images.find(reference)
        if let local, local.isHost { return local }
        // A name can be pulled; an image ID (or "sha256:…") only found.
        let isName = !reference.hasPrefix("sha256:") && !Engine.looksLikeImageID(reference)
        func pulled() throws -> Image {
            _ = try self.pull(reference, platform: pull.platform, tlsVerify: pull.tlsVerify, progress: pull.progress)
            return try images.resolve(reference)
        }
        if pull.policy == .always && isName { return try pulled() }
        if let local {
            // Asked for another platform than the one here: pull that one.
            if let p = pull.platform, pull.policy != .never, isName, let spec = try? PlatformSpec(parsing: p),
               !spec.matches(os: local.os, architecture: local.architecture, variant: local.variant) {
                return try pulled()
            }
            return local
        }
        guard pull.policy != .never, isName else { throw HakoError(.notFound(.image, reference), "no such image: \(reference)") }
        pull.progress?.report(.status("Unable to find image '\(reference)' locally"))
        return try pulled()
    }

    /// 12 to 64 lowercase hex digits: an image ID (prefix), not a repository name.
    static func looksLikeImageID(_ s: String) -> Bool {
        s.count >= 12 && s.count <= 64 && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    // MARK: removal

    /// Image ID → the containers (any state) created from it, running ones first.
    func imageUsers() -> [String: [Container]] {
        var out: [String: [Container]] = [:]
        for c in (try? list()) ?? [] where !c.config.imageID.isEmpty { out[c.config.imageID, default: []].append(c) }
        return out.mapValues { $0.sorted { $0.isRunning && !$1.isRunning } }
    }

    /// Every layer directory a container stacks: never collected.
    func layerDirsInUse() throws -> Set<String> {
        var dirs: Set<String> = []
        // A container still being created (.tmp-<id>) or removed counts too.
        for name in try FS.list(paths.containers) {
            if let c = try? readConfig(name) { dirs.formUnion(c.layerDirs) }
        }
        return dirs
    }

    /// `hako rmi [-f]`. An image a container uses is refused unless forced;
    /// an image a running container uses cannot be removed even then.
    public func removeImage(_ reference: String, force: Bool) throws -> RemovalReport {
        let users = imageUsers()
        let image = try images.resolve(reference)
        if force, let running = users[image.id]?.first(where: { $0.isRunning }) {
            throw HakoError(.conflict(.inUse(.image, image.shortID, by: [running.config.name])), "conflict: unable to delete \(image.shortID) (cannot be forced) - image is being used by running container \(running.config.shortID)")
        }
        let global = try FileLock.acquire(paths.lock)  // no container is created meanwhile
        defer { global.release() }
        return try images.remove(reference, force: force, users: { users[$0]?.map(\.id) ?? [] }, keep: try layerDirsInUse())
    }

    /// `hako image prune [-a]`.
    public func pruneImages(all: Bool) throws -> RemovalReport {
        let users = imageUsers()
        let global = try FileLock.acquire(paths.lock)
        defer { global.release() }
        return try images.prune(all: all, users: { users[$0]?.map(\.id) ?? [] }, keep: try layerDirsInUse())
    }

    // MARK: overlay

    /// When the overlay's options would not fit in a page (many layers), the
    /// lower layers are named by short links and the init mounts from their
    /// directory (`<images>/l`).
    func fitOverlay(_ overlay: OverlayRoot?) throws -> OverlayRoot? {
        guard var o = overlay, o.mountData.utf8.count >= Engine.mountDataLimit else { return overlay }
        var short: [String] = []
        for dir in o.lower {
            guard let name = try images.snapshots.shortLink(forLayerDirectory: dir) else {
                throw HakoError(.unsupported(missing: "room for the layers in the overlay options (one page)"), "too many layers: the overlay options exceed a page and \(dir) is not a snapshot")
            }
            short.append(name)
        }
        o.lower = short
        o.directory = images.snapshots.linksDirectory
        guard o.mountData.utf8.count < Engine.mountDataLimit else {
            throw HakoError(.unsupported(missing: "room for the layers in the overlay options (one page)"), "too many layers (\(o.lower.count)): the overlay options exceed the kernel's page limit")
        }
        return o
    }

    /// The kernel copies at most a page of mount options.
    static let mountDataLimit = 4096 - 1
}
