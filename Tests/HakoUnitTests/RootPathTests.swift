#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoSystem
import Testing

/// `hako_mkdir_in_root`: how the init makes a mount point inside the
/// container's root. Every component resolves inside the root, whether the
/// path exists already (one lookup) or is made component by component.
@Suite struct RootPathTests {
    let base: String
    let root: String
    let rootFD: Int32

    init() throws {
        var template = Array("/tmp/hako-rootpath-XXXXXX".utf8CString)
        base = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        root = base + "/root"
        try FS.makeDirectories(root + "/etc", mode: 0o755)
        rootFD = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    }

    func cleanUp() {
        close(rootFD)
        try? FS.removeTree(base)
    }

    /// The path the returned descriptor names, as the host sees it.
    func made(_ path: String) -> (path: String?, errno: Int32) {
        let fd = hako_mkdir_in_root(rootFD, path, 0o755)
        guard fd >= 0 else { return (nil, errno) }
        defer { close(fd) }
        return (FS.readLink("/proc/self/fd/\(fd)"), 0)
    }

    @Test func existingAndMissingComponentsAreResolvedAndMade() {
        defer { cleanUp() }
        #expect(made("/etc").path == root + "/etc", "an existing directory: found")
        #expect(made("/").path == root)
        #expect(made("/sys/fs/cgroup/cpu").path == root + "/sys/fs/cgroup/cpu", "every missing component made")
        #expect(FS.isDirectory(root + "/sys/fs/cgroup/cpu"))
        #expect(made("/sys/fs/cgroup/memory/").path == root + "/sys/fs/cgroup/memory", "the parent exists: one made")
        #expect(made("dev//pts").path == root + "/dev/pts", "relative and doubled slashes")
    }

    @Test func symbolicLinksResolveInsideTheRoot() throws {
        defer { cleanUp() }
        let outside = base + "/outside"
        // An absolute link to a host path names that path inside the root.
        try FS.symlink(outside, at: root + "/abs")
        try FS.makeDirectories(root + outside, mode: 0o755)
        #expect(made("/abs/sub").path == root + outside + "/sub")
        #expect(!FS.exists(outside), "nothing made on the host")
        // A relative link climbing above the root stays at the root.
        try FS.symlink("../../../..", at: root + "/up")
        #expect(made("/up/etc").path == root + "/etc")
        // A link to a directory the root does not have: refused, nothing made.
        try FS.symlink("/missing", at: root + "/dangling")
        #expect(made("/dangling/sub").errno == ENOENT)
        #expect(!FS.exists(root + "/missing") && !FS.exists("/missing"))
    }

    @Test func dotComponentsAndFilesAreRefused() throws {
        defer { cleanUp() }
        #expect(made("/etc/../etc").errno == EINVAL)
        #expect(made("/./etc").errno == EINVAL)
        #expect(made("/new/..").errno == EINVAL)
        #expect(!FS.exists(root + "/new"))
        try FS.writeFile(root + "/etc/file", [])
        #expect(made("/etc/file").errno == ENOTDIR)
        #expect(made("/etc/file/sub").errno == ENOTDIR)
    }
}
