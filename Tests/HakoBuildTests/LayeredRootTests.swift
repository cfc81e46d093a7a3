#if canImport(Glibc)
import Glibc
#endif
import HakoSystem
import Testing
@testable import HakoBuild

/// The read-only view over layer directories: links resolved inside the
/// view's root, never followed by the kernel out of a layer.
@Suite struct LayeredRootTests {
    /// Two layers: lower has bin/ with a file and an absolute link to the
    /// host's /etc; upper adds a file and a relative link.
    static func makeLayers() throws -> (String, [String]) {
        var template = Array("/tmp/hako-layeredroot-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ buf in buf.baseAddress.flatMap { mkdtemp($0) } }) else { throw Failure() }
        let base = String(cString: made)
        let lower = base + "/lower", upper = base + "/upper"
        for d in [lower, lower + "/usr", lower + "/usr/bin", upper, upper + "/usr", upper + "/usr/bin"] { mkdir(d, 0o755) }
        for (path, text) in [(lower + "/usr/bin/tool", "lower"), (upper + "/usr/bin/new", "upper")] {
            let fd = open(path, O_WRONLY | O_CREAT, 0o644)
            _ = text.withCString { write(fd, $0, strlen($0)) }
            close(fd)
        }
        symlink("usr/bin", lower + "/bin")           // merged-/usr style, relative
        symlink("/etc", lower + "/hostetc")          // absolute: must stay inside the view
        symlink("../../..", upper + "/usr/bin/up")   // climbs above the root: stops at it
        return (base, [upper, lower])
    }

    struct Failure: Error {}

    @Test func linksResolveInsideTheRoot() throws {
        let (base, layers) = try LayeredRootTests.makeLayers()
        defer { try? FS.removeTree(base) }
        let view = LayeredRoot(layers: layers)
        #expect(view.resolve("/bin/tool") == ["usr", "bin", "tool"])
        #expect(view.entry(["usr", "bin", "tool"])?.isRegular == true)
        #expect(view.entry(["usr", "bin", "new"])?.hostPath == layers[0] + "/usr/bin/new")
        // /hostetc -> /etc resolves to the view's /etc, which does not exist: not the host's.
        #expect(view.resolve("/hostetc/passwd") == ["etc", "passwd"])
        #expect(view.entry(["etc", "passwd"]) == nil)
        // Unresolved, the kernel would follow the link to the host's /etc/passwd; the view refuses.
        #expect(view.entry(["hostetc", "passwd"]) == nil)
        #expect(view.resolve("/usr/bin/up/usr/bin/tool") == ["usr", "bin", "tool"])
        #expect(view.list(["usr", "bin"]) == ["new", "tool", "up"])
        #expect(view.list([]) == ["bin", "hostetc", "usr"])
    }

    @Test func linkLoopsEnd() throws {
        let (base, layers) = try LayeredRootTests.makeLayers()
        defer { try? FS.removeTree(base) }
        symlink("/loop", layers[0] + "/loop")
        #expect(LayeredRoot(layers: layers).resolve("/loop/x") == nil)
    }
}
