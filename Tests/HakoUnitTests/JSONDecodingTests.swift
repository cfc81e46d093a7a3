import Foundation
@testable import HakoEngine
import HakoNetwork
import HakoSystem
import Testing

/// hako's records are read by HakoSystem's `JSONDecoding`: what Foundation's
/// decoder reads from the same text, it reads; what Foundation refuses, it
/// refuses, with the same kind of `DecodingError`.
@Suite struct JSONDecodingTests {
    typealias Everything = JSONEncodingTests.Everything

    func both<T: Decodable>(_ type: T.Type, _ text: String) -> (mine: Result<T, any Error>, foundation: Result<T, any Error>) {
        let bytes = Array(text.utf8)
        return (Result { try JSONDecoding().decode(type, from: bytes) }, Result { try JSONDecoder().decode(type, from: Data(bytes)) })
    }

    @Test func readsWhatFoundationReads() throws {
        let text = try JSONEncoding().encode(Everything())
        let mine = try JSONDecoding().decode(Everything.self, from: text)
        let theirs = try JSONDecoder().decode(Everything.self, from: Data(text))
        #expect(mine.text == theirs.text && mine.flags == theirs.flags)
        #expect(mine.small == -128 && mine.big == .max && mine.low == .min && mine.int == 0 && mine.uint == 7)
        #expect(mine.doubles == theirs.doubles && mine.floats == theirs.floats)
        #expect(mine.none == nil && mine.nested == theirs.nested && mine.empty.isEmpty)
        #expect(mine.byString == theirs.byString && mine.byInt == theirs.byInt && mine.byRaw == theirs.byRaw)
        #expect(mine.choices == theirs.choices && mine.raw == theirs.raw)
        #expect(mine.derived.own == "d" && mine.derived.parent.base == 1, "a super decoder")
    }

    /// Optional members: absent and null both read as nil; a null where a
    /// value must be is refused.
    @Test func absentAndNullMembers() throws {
        struct Opt: Decodable, Equatable { var a: Int?; var b: [String?]; var c: String }
        for text in [#"{"b":[null,"x"],"c":"c"}"#, #"{"a":null,"b":[null,"x"],"c":"c"}"#] {
            let (mine, foundation) = both(Opt.self, text)
            #expect(try mine.get() == Opt(a: nil, b: [nil, "x"], c: "c"))
            #expect(try foundation.get() == (try mine.get()))
        }
        #expect(try JSONDecoding().decode(Opt.self, from: Array(#"{"a":5,"b":[],"c":"","extra":{"x":[1]}}"#.utf8)) == Opt(a: 5, b: [], c: ""),
                "members the type does not know are skipped")
        for text in [#"{"b":[]}"#, #"{"b":[],"c":null}"#, #"{"b":[],"c":1}"#, #"{"b":{},"c":""}"#, #"[1]"#, #"{"a":1.5,"b":[],"c":""}"#,
                     #"{"a":300000000000000000000,"b":[],"c":""}"#, "{", ""] {
            let (mine, foundation) = both(Opt.self, text)
            #expect(throws: DecodingError.self, "\(text)") { try mine.get() }
            #expect(throws: (any Error).self, "\(text)") { try foundation.get() }
        }
    }

    @Test func theErrorSaysWhatAndWhere() {
        struct Inner: Decodable { var port: UInt16 }
        struct Outer: Decodable { var items: [Inner] }
        let missing = Result { try JSONDecoding().decode(Outer.self, from: Array(#"{"items":[{"port":1},{}]}"#.utf8)) }
        guard case .failure(DecodingError.keyNotFound(let key, let context)) = missing else { Issue.record("\(missing)"); return }
        #expect(key.stringValue == "port" && context.codingPath.map(\.stringValue) == ["items", "Index 1"])
        let wide = Result { try JSONDecoding().decode(Outer.self, from: Array(#"{"items":[{"port":70000}]}"#.utf8)) }
        guard case .failure(DecodingError.dataCorrupted(let c)) = wide else { Issue.record("\(wide)"); return }
        #expect(c.codingPath.map(\.stringValue) == ["items", "Index 0", "port"])
        let kind = Result { try JSONDecoding().decode(Outer.self, from: Array(#"{"items":[{"port":"80"}]}"#.utf8)) }
        guard case .failure(DecodingError.typeMismatch(let t, _)) = kind else { Issue.record("\(kind)"); return }
        #expect(ObjectIdentifier(t) == ObjectIdentifier(UInt16.self))
    }

    @Test func numbersWrittenOtherwise() throws {
        #expect(try JSONDecoding().decode([Int].self, from: Array("[1e3, 2.0, -0, 9223372036854775807]".utf8)) == [1000, 2, 0, .max])
        #expect(try JSONDecoding().decode([Double].self, from: Array("[1, 1e-3, -2.5E+2]".utf8)) == [1, 0.001, -250])
        #expect(throws: DecodingError.self) { try JSONDecoding().decode([UInt8].self, from: Array("[-1]".utf8)) }
    }

    /// The engine's records read back the same: a container's (every part
    /// set, as the encoding tests build it) and a network's.
    @Test func theEnginesRecordsReadBackTheSame() throws {
        let records = try JSONEncodingTests.everyPartOfAContainersRecord()
        #expect(try JSONDecoding().decode(ContainerConfig.self, from: try JSONEncoding().encode(records)) == records)
        let net = NetworkDefinition(id: "n1", name: "front", driver: .bridge, subnet: IPv4Network("10.1.0.0/24"), gateway: IPv4Address(0x0a01_0001),
                                    bridge: "hk-front", created: "2026-12-07T00:00:00Z")
        let text = try JSONEncoding().encode(net)
        #expect(try JSONDecoding().decode(NetworkDefinition.self, from: text) == (try JSONDecoder().decode(NetworkDefinition.self, from: Data(text))))
    }
}
