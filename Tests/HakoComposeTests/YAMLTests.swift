import Testing
@testable import HakoCompose

@Suite struct YAMLTests {
    static func parse(_ s: String) throws -> YAMLNode {
        try #require(try YAML.parse(s))
    }

    /// (key, value) of a mapping's scalars, for short expectations.
    static func flat(_ n: YAMLNode) -> [String] {
        guard case .mapping(let pairs) = n.value else { return [] }
        return pairs.map { p in
            let k: String
            if case .scalar(let s) = p.key.value { k = s.text } else { k = "?" }
            switch p.value.value {
            case .scalar(let s): return "\(k)=\(s.text)@\(p.value.line)"
            case .sequence(let l): return "\(k)=[\(l.count)]@\(p.value.line)"
            case .mapping(let m): return "\(k)={\(m.count)}@\(p.value.line)"
            }
        }
    }

    @Test func linesAndOrder() throws {
        let n = try YAMLTests.parse("# comment\nb: 1\na: two\nc:\n  - x\n  - y\nd: {e: 1}\n")
        #expect(YAMLTests.flat(n) == ["b=1@2", "a=two@3", "c=[2]@5", "d={1}@7"])
        #expect(n.line == 2)
    }

    @Test func scalarsKeepStyleAndTag() throws {
        let n = try YAMLTests.parse("a: ~\nb: 'null'\nc:\nd: !!str 3\ne: \"\"\nf: !!null x\n")
        guard case .mapping(let p) = n.value else { Issue.record("not a mapping"); return }
        let scalars = p.compactMap { pair -> YAMLScalar? in if case .scalar(let s) = pair.value.value { return s }; return nil }
        #expect(scalars.map(\.isNull) == [true, false, true, false, false, true])
        #expect(scalars[3].tag == "tag:yaml.org,2002:str")
        #expect(scalars[1].plain == false)
    }

    @Test func aliasesCopyTheAnchoredNodeAtTheAliasLine() throws {
        let n = try YAMLTests.parse("base: &b\n  x: 1\ncopy: *b\n")
        guard case .mapping(let p) = n.value else { Issue.record("not a mapping"); return }
        #expect(p[1].value.line == 3)
        #expect(YAMLTests.flat(p[1].value) == ["x=1@2"])
    }

    /// YAML's merge key: own keys win, then earlier merged mappings over later ones.
    @Test func mergeKeys() throws {
        let n = try YAMLTests.parse("""
            a: &a {x: a, y: a, z: a}
            b: &b {y: b, w: b}
            m:
              <<: [*b, *a]
              z: own
            single:
              <<: *a
            """)
        guard case .mapping(let p) = n.value else { Issue.record("not a mapping"); return }
        #expect(YAMLTests.flat(p[2].value).map { String($0.prefix(while: { $0 != "@" })) } == ["z=own", "y=b", "w=b", "x=a"])
        #expect(YAMLTests.flat(p[3].value).count == 3)
    }

    @Test func quotedMergeKeyIsAnOrdinaryKey() throws {
        let n = try YAMLTests.parse("'<<': 1\n")
        #expect(YAMLTests.flat(n) == ["<<=1@1"])
    }

    @Test func emptyStreamIsNil() throws {
        #expect(try YAML.parse("") == nil)
        #expect(try YAML.parse("# only a comment\n") == nil)
    }

    @Test func explicitDocumentMarkers() throws {
        let n = try YAMLTests.parse("---\na: 1\n...\n")
        #expect(YAMLTests.flat(n) == ["a=1@2"])
    }

    @Test func blockScalars() throws {
        let n = try YAMLTests.parse("cmd: |\n  line one\n  line two\nfolded: >-\n  a\n  b\n")
        guard case .mapping(let p) = n.value, case .scalar(let s) = p[0].value.value, case .scalar(let f) = p[1].value.value else {
            Issue.record("shape"); return
        }
        #expect(s.text == "line one\nline two\n")
        #expect(f.text == "a b")
        #expect(!s.plain)
    }

    /// A bounded expansion that fits is fine.
    @Test func aliasesWithinTheLimit() throws {
        var text = "a0: &a0 [x, x]\n"
        for i in 1...5 { text += "a\(i): &a\(i) [*a\(i - 1), *a\(i - 1)]\n" }
        #expect(try YAML.parse(text) != nil)
        #expect(throws: YAMLError.self) { try YAML.parse(text, limits: .init(maxNodes: 100)) }
    }
}
