import HakoSystem
import Testing

/// FS.normalize and FS.absolute: lexical clean-up, never above "/".
@Suite struct PathTests {
    @Test func normalizeCollapsesSlashesDotsAndDotDots() {
        let cases: [(String, String)] = [
            ("", "/"), ("/", "/"), ("//", "/"), (".", "/"), ("..", "/"), ("/..", "/"), ("/../..", "/"),
            ("/a", "/a"), ("a", "/a"), ("/a/", "/a"), ("//a//b//", "/a/b"), ("/a/./b", "/a/b"),
            ("/a/b/..", "/a"), ("/a/b/../..", "/"), ("/a/b/../../..", "/"), ("/a/../b", "/b"),
            ("/a/.../b", "/a/.../b"), ("/a/..b/.c", "/a/..b/.c"), ("/ä/ö/../ü", "/ä/ü"), ("/x/../../y/./z/..", "/y"),
        ]
        for (input, want) in cases { #expect(FS.normalize(input) == want, "\(input)") }
    }

    @Test func absoluteKeepsAnAbsolutePathAndAnchorsARelativeOne() {
        #expect(FS.absolute("/var//lib/../run/") == "/var/run")
        let relative = FS.absolute("some/dir")
        #expect(relative.hasPrefix("/") && relative.hasSuffix("/some/dir"))
    }
}
