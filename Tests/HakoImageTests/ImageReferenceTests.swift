import HakoTestSupport
import Testing
@testable import HakoImage

@Suite struct ImageReferenceTests {
    @Test(arguments: [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
        ("docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("index.docker.io/library/busybox:x", "docker.io/library/busybox:x", "busybox:x"),
        ("me/app", "docker.io/me/app:latest", "me/app:latest"),
        ("docker.io/me/app:v1.2-rc_3", "docker.io/me/app:v1.2-rc_3", "me/app:v1.2-rc_3"),
        ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
        ("localhost:5000/a/b/c:t", "localhost:5000/a/b/c:t", "localhost:5000/a/b/c:t"),
        ("registry.example.com/x__y.z-w---v", "registry.example.com/x__y.z-w---v:latest", "registry.example.com/x__y.z-w---v:latest"),
        ("[::1]:5000/app", "[::1]:5000/app:latest", "[::1]:5000/app:latest"),
        ("Registry.Example.com/app", "Registry.Example.com/app:latest", "Registry.Example.com/app:latest"),
    ])
    func normalisation(input: String, full: String, short: String) throws {
        let ref = try ImageReference(parsing: input).withDefaultTag()
        #expect(ref.string == full)
        #expect(ref.familiarString == short)
    }

    @Test func digestReferences() throws {
        let hex = String(repeating: "a", count: 64)
        let ref = try ImageReference(parsing: "busybox@sha256:" + hex)
        #expect(ref.tag == nil)
        #expect(ref.digest?.hex == hex)
        #expect(ref.withDefaultTag().string == "docker.io/library/busybox@sha256:" + hex)
    }

    @Test(arguments: [
        "", "Busybox", "busybox:", ":tag", "busy box", "busybox:tag with space", "-busybox", "busybox-",
        "a//b", "a/", "/a", "busybox:" + String(repeating: "t", count: 129), "busybox:.tag",
        "a..b", "a___b", "localhost:port/app", "busybox@sha256:abc", String(repeating: "a", count: 64),
        "host.example.com:/app", "a/" + String(repeating: "b", count: 260),
    ])
    func invalidReferences(input: String) {
        #expect(throws: ImageError.self) { try ImageReference(parsing: input) }
    }
}
