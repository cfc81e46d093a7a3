import Testing
@testable import HakoBuild

@Suite struct DockerfileParserTests {
    @Test func continuationsCommentsAndForms() throws {
        let text = """
        # syntax=docker/dockerfile:1
        # a comment
        FROM busybox AS base
        RUN echo one \\
            # a comment inside the continuation
            two \\
          three
        CMD ["sh", "-c", "echo hi"]
        cmd echo shell form

        COPY --chown=1:2 --chmod=644 a b /dst/
        ENTRYPOINT [not json
        """
        let f = try Dockerfile.parse(text)
        #expect(f.notes.count == 1)
        #expect(f.notes.first?.contains("syntax") == true)
        #expect(f.instructions.map(\.keyword) == ["FROM", "RUN", "CMD", "CMD", "COPY", "ENTRYPOINT"])
        #expect(f.instructions.map(\.line) == [3, 4, 8, 9, 11, 12])
        #expect(f.instructions[1].rest == "echo one     two   three")
        #expect(f.instructions[2].json == ["sh", "-c", "echo hi"])
        #expect(f.instructions[3].json == nil)
        #expect(f.instructions[3].rest == "echo shell form")
        #expect(f.instructions[4].flag("chown") == "1:2")
        #expect(f.instructions[4].flag("chmod") == "644")
        #expect(f.instructions[4].rest == "a b /dst/")
        #expect(f.instructions[5].json == nil)
    }

    @Test func escapeDirective() throws {
        let f = try Dockerfile.parse("# escape=`\nFROM scratch\nCOPY a `\n  b c:\\\\dir\\\\\n")
        #expect(f.escape == "`")
        #expect(f.instructions[1].rest == "a   b c:\\\\dir\\\\")
        // A directive after an instruction is a comment.
        let g = try Dockerfile.parse("FROM scratch\n# escape=`\nRUN a \\\n b")
        #expect(g.escape == "\\")
        #expect(g.instructions[1].rest == "a  b")
    }

    @Test func errorsCarryTheLine() {
        #expect(throws: BuildError.self) { try Dockerfile.parse("FROM busybox\n\nFOO bar") }
        do {
            _ = try Dockerfile.parse("FROM busybox\n\nFOO bar")
        } catch {
            #expect(error.description == "Dockerfile:3: unknown instruction: FOO")
        }
        do {
            _ = try Dockerfile.parse("# escape=x\nFROM a")
        } catch {
            #expect(error.description.hasPrefix("Dockerfile:1: invalid escape token"))
        }
        do {
            _ = try Dockerfile.parse("FROM a\nSHELL /bin/bash -c")
        } catch {
            #expect(error.description == "Dockerfile:2: SHELL requires the arguments to be in JSON form")
        }
    }

    @Test func crlfAndBOM() throws {
        let f = try Dockerfile.parse("\u{FEFF}FROM a\r\nRUN x \\\r\n y\r\n")
        try #require(f.instructions.map(\.keyword) == ["FROM", "RUN"])
        #expect(f.instructions[1].rest == "x  y")
    }
}

@Suite struct SubstitutionTests {
    let vars = ["A": "apple", "EMPTY": "", "P": "/usr/local"]
    var sub: Substitution { Substitution(variables: vars) }

    @Test func forms() throws {
        #expect(try sub.word("$A") == "apple")
        #expect(try sub.word("${A}s") == "apples")
        #expect(try sub.word("${NOPE:-x}") == "x")
        #expect(try sub.word("${EMPTY:-x}") == "x")
        #expect(try sub.word("${EMPTY-x}") == "")
        #expect(try sub.word("${NOPE-x}") == "x")
        #expect(try sub.word("${A:+set}") == "set")
        #expect(try sub.word("${EMPTY:+set}") == "")
        #expect(try sub.word("${EMPTY+set}") == "set")
        #expect(try sub.word("${NOPE:-$P/bin}") == "/usr/local/bin")
        #expect(try sub.word("$NOPE") == "")
        #expect(try sub.word("cost: $5") == "cost: $5")
    }

    @Test func quotesAndEscapes() throws {
        #expect(try sub.word("'$A'") == "$A")
        #expect(try sub.word("\"$A pie\"") == "apple pie")
        #expect(try sub.word("\\$A") == "$A")
        #expect(try sub.word("\"a\\\"b\"") == "a\"b")
        #expect(try sub.words("x=\"1 2\" y=$A 'z w'") == ["x=1 2", "y=apple", "z w"])
        #expect(try Substitution(escape: "`", variables: vars).word("`$A") == "$A")
    }

    @Test func errors() {
        #expect(throws: Substitution.Failure.unset("NOPE", "need it")) { try sub.word("${NOPE:?need it}") }
        #expect(throws: Substitution.Failure.self) { try sub.word("${A") }
        #expect(throws: Substitution.Failure.self) { try sub.word("'open") }
        #expect(throws: Substitution.Failure.self) { try sub.word("${A%%x}") }
    }
}

@Suite struct DockerIgnoreTests {
    @Test func docker_rules() {
        let ignore = DockerIgnore("""
        # comment
        *.log
        /secret
        build/
        **/*.tmp
        !keep.log
        docs/**
        !docs/README.md
        """)
        #expect(ignore.excludes("a.log"))
        #expect(!ignore.excludes("keep.log"))
        #expect(!ignore.excludes("dir/a.log"))           // * does not cross /
        #expect(ignore.excludes("secret"))
        #expect(ignore.excludes("secret/inner/file"))    // a parent matches
        #expect(ignore.excludes("build/x/y"))
        #expect(ignore.excludes("x.tmp"))
        #expect(ignore.excludes("a/b/c.tmp"))
        #expect(ignore.excludes("docs/guide.md"))
        #expect(!ignore.excludes("docs/README.md"))
        #expect(!ignore.excludes("src/main.c"))
    }

    @Test func globs() {
        #expect(Glob("*.go").matches("main.go"))
        #expect(!Glob("*.go").matches("a/main.go"))
        #expect(Glob("file?.txt").matches("file1.txt"))
        #expect(Glob("[a-c]x").matches("bx"))
        #expect(!Glob("[^a-c]x").matches("bx"))
        #expect(Glob("\\*").matches("*"))
        #expect(Glob("a/**/b", doubleStar: true).matches("a/b"))
        #expect(Glob("a/**/b", doubleStar: true).matches("a/x/y/b"))
        #expect(Glob("**", doubleStar: true).matches("any/thing"))
        #expect(DockerIgnore.clean("/a/./b/../c/") == "a/c")
    }
}

@Suite struct BuildPlanTests {
    let text = """
    ARG BASE=busybox
    FROM $BASE AS build
    RUN make
    FROM build AS test
    RUN make test
    FROM scratch AS unused
    COPY x y
    FROM busybox
    COPY --from=build /out /bin/
    """

    @Test func onlyTheNeededStages() throws {
        let plan = try BuildPlan(try Dockerfile.parse(text))
        #expect(plan.globalArgs.count == 1)
        #expect(plan.stages.map(\.name) == ["build", "test", "unused", nil])
        let resolve = { (s: String) in s == "$BASE" ? "busybox" : s }
        #expect(plan.needed(for: try plan.target(nil), resolve: resolve) == [0, 3])
        #expect(plan.needed(for: try plan.target("test"), resolve: resolve) == [0, 1])
        #expect(plan.needed(for: try plan.target("UNUSED"), resolve: resolve) == [2])
        #expect(throws: BuildError.self) { try plan.target("nope") }
    }

    @Test func planErrors() throws {
        #expect(throws: BuildError.self) { try BuildPlan(try Dockerfile.parse("RUN x\nFROM a")) }
        #expect(throws: BuildError.self) { try BuildPlan(try Dockerfile.parse("FROM a AS x\nFROM b AS x")) }
        #expect(throws: BuildError.self) { try BuildPlan(try Dockerfile.parse("FROM a AS 1x")) }
        #expect(throws: BuildError.self) { try BuildPlan(try Dockerfile.parse("# only a comment")) }
    }
}
