import Testing
import HakoSystem
#if canImport(Glibc)
import Glibc
#endif
@testable import HakoCompose

@Suite struct InterpolationTests {
    static let env = ["TAG": "1.4", "EMPTY": "", "NAME": "web"]

    static func apply(_ s: String) throws(Interpolation.Failure) -> String {
        var unset: [String] = []
        return try Interpolation.apply(s, lookup: { env[$0] }, unset: &unset)
    }

    @Test(arguments: [
        ("nginx:$TAG", "nginx:1.4"),
        ("nginx:${TAG}", "nginx:1.4"),
        ("${NAME}_${TAG}", "web_1.4"),
        ("$NAME-x", "web-x"),
        ("${MISSING:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${MISSING-fallback}", "fallback"),
        ("${EMPTY-fallback}", ""),
        ("${TAG:-fallback}", "1.4"),
        ("${MISSING:-a b:c/d}", "a b:c/d"),
        ("${MISSING:-}", ""),
        ("${MISSING:-$TAG}", "$TAG"),
        ("Price: $$5", "Price: $5"),
        ("$$TAG", "$TAG"),
        ("$$$TAG", "$1.4"),
        ("${TAG:?needed}", "1.4"),
        ("${EMPTY?needed}", ""),
        ("no variables", "no variables"),
        ("ünïcödé ${TAG}", "ünïcödé 1.4"),
    ])
    func substitutes(_ input: String, _ output: String) throws {
        #expect(try InterpolationTests.apply(input) == output)
    }

    @Test func unsetVariablesBecomeEmptyAndAreReported() throws {
        var unset: [String] = []
        #expect(try Interpolation.apply("a${X}b$Y", lookup: { _ in nil }, unset: &unset) == "ab")
        #expect(unset == ["X", "Y"])
    }

    @Test(arguments: [
        ("${MISSING:?set it}", Interpolation.Failure.required(variable: "MISSING", message: "set it")),
        ("${EMPTY:?}", .required(variable: "EMPTY", message: "")),
        ("${MISSING?x}", .required(variable: "MISSING", message: "x")),
        ("5$", .invalid("5$")),
        ("$1", .invalid("$1")),
        ("${}", .invalid("${}")),
        ("${1A}", .invalid("${1A}")),
        ("${A B}", .invalid("${A B}")),
        ("${A:+x}", .invalid("${A:+x}")),
        ("${A", .invalid("${A")),
    ])
    func refuses(_ input: String, _ failure: Interpolation.Failure) {
        #expect(throws: failure) { try InterpolationTests.apply(input) }
    }

    /// The environment wins over .env; .env fills in what the environment lacks;
    /// keys are never interpolated; an env_file's variables lose to `environment`.
    @Test func loaderPrecedence() throws {
        let yaml = """
            services:
              web:
                image: "nginx:${TAG}"
                env_file: [web.env]
                environment:
                  FROM_DOTENV: ${ONLY_DOTENV}
                  BOTH: ${BOTH}
                  OVERRIDDEN: from-environment-key
                  PASSED:
                  ABSENT:
                labels:
                  ${NOT_A_KEY}: kept
            """
        let files = ["/p/.env": "ONLY_DOTENV='quoted value'\nBOTH=dotenv\nexport TAG=from-dotenv\n",
                     "/p/web.env": "OVERRIDDEN=from-file\nFILE_ONLY=\"kept as written\"\nPASSED\n"]
        let loader = ComposeLoader(environment: ["BOTH": "process", "PASSED": "p", "NOT_A_KEY": "x"], projectDirectory: "/p") { files[$0] }
        let load = try loader.load([(name: "c.yml", text: yaml)])
        let web = try #require(load.project.services["web"])
        #expect(web.image == "nginx:from-dotenv")
        #expect(web.environment == ["FROM_DOTENV": "quoted value", "BOTH": "process", "OVERRIDDEN": "from-environment-key",
                                    "PASSED": "p", "FILE_ONLY": "\"kept as written\""])
        #expect(web.labels == ["${NOT_A_KEY}": "kept"])
        #expect(load.unsetVariables.isEmpty)
    }

    @Test(arguments: [
        ("10s", 10.0), ("1m30s", 90), ("1.5h", 5400), ("250ms", 0.25), ("0", 0), ("1h2m3s", 3723), ("500us", 0.0005),
    ])
    func goDurations(_ s: String, _ seconds: Double) {
        #expect(GoDuration.seconds(s) == seconds)
    }

    @Test(arguments: [(0.0, "0s"), (0.25, "250ms"), (1.5, "1.5s"), (90, "1m30s"), (3723.05, "1h2m3.05s"), (3600, "1h"), (120, "2m")])
    func formatsGoDurations(_ seconds: Double, _ text: String) {
        #expect(GoDuration.format(seconds) == text)
        #expect(GoDuration.seconds(text) == seconds)
    }

    @Test(arguments: ["10", "s", "1x", "", "1.2.3s", "m5"])
    func badGoDurations(_ s: String) {
        #expect(GoDuration.seconds(s) == nil)
    }

    @Test(arguments: [
        ("nginx -g 'daemon off;'", ["nginx", "-g", "daemon off;"]),
        ("sh -c \"echo \\\"hi\\\" $HOME\"", ["sh", "-c", "echo \"hi\" $HOME"]),
        ("  a   b\\ c  ", ["a", "b c"]),
        ("''", [""]),
        ("a\"b\"c", ["abc"]),
    ])
    func shellWords(_ s: String, _ words: [String]) throws {
        #expect(try ShellWords.split(s) == words)
    }
}

@Suite struct DiskLoadTests {
    /// The loader as the CLI will call it: files on disk, the first file's
    /// directory the project directory, its .env read, paths resolved there.
    @Test func loadsFilesAndDotEnvFromDisk() throws {
        let dir = "/tmp/hako-compose-test-\(getpid())"
        try FS.makeDirectories(dir + "/sub")
        defer { try? FS.removeTree(dir) }
        try FS.writeFile(dir + "/compose.yml", Array("""
            version: "3.8"
            x-raw: "5$ is not interpolated here"
            services:
              web:
                image: web:${TAG}
                env_file: ./web.env
                volumes: ["./static:/srv:ro"]
            """.utf8))
        try FS.writeFile(dir + "/sub/override.yml", Array("services:\n  web:\n    environment: [B=2]\n".utf8))
        try FS.writeFile(dir + "/.env", Array("TAG=3\n".utf8))
        try FS.writeFile(dir + "/web.env", Array("A=1\n".utf8))
        let load = try ComposeLoader.load(files: [dir + "/compose.yml", dir + "/sub/override.yml"], environment: [:])
        let web = try #require(load.project.services["web"])
        #expect(web.image == "web:3")
        #expect(web.environment == ["A": "1", "B": "2"])
        #expect(web.volumes.map { $0.source ?? "" } == [dir + "/static"])
        #expect(throws: ComposeError(file: dir + "/missing.yml", line: nil, "no such file")) {
            try ComposeLoader.load(files: [dir + "/missing.yml"], environment: [:])
        }
    }
}
