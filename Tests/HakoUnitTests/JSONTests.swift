import HakoSystem
import Testing

@Suite struct JSONTests {
    @Test func parsesEveryKind() throws {
        let j = try JSON.parse(#"{"a": [1, -2.5e3, true, false, null], "b": {"c": "x\"y\\z\n\u00e9\ud83d\ude00"}, "big": 18446744073709551615}"#)
        #expect(j["a"]?.array?.count == 5)
        #expect(j["a"]?.array?[0].int64 == 1)
        #expect(j["a"]?.array?[1].double == -2500)
        #expect(j["a"]?.array?[2].bool == true)
        #expect(j["a"]?.array?[4].isNull == true)
        #expect(j["b"]?["c"]?.string == "x\"y\\z\né😀")
        #expect(j["big"]?.uint64 == UInt64.max, "64-bit integers survive exactly")
        #expect(j["missing"] == nil)
    }

    @Test func roundTrips() throws {
        let text = #"{"k":"v\t\u0001","n":[1,2.5,{"x":null}],"e":{},"f":[]}"#
        let j = try JSON.parse(text)
        #expect(j.serialized() == text)
        #expect(try JSON.parse(j.serialized(pretty: true)) == j)
    }

    @Test func refusesMalformedInput() {
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "01", "1.", "-", "\"abc", "\"\\x\"", "\"\u{01}\"",
                    "tru", "nul", "[1] 2", "{\"a\":\"\\ud800\"}", "1e", "{1:2}"] {
            #expect(throws: JSON.ParseError.self, "\(bad)") { try JSON.parse(bad) }
        }
        let deep = String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000)
        #expect(throws: JSON.ParseError.self) { try JSON.parse(deep) }
    }

    @Test func fuzzNeverCrashes() {
        var g = SplitMix(seed: 7)
        let alphabet = Array("{}[]\",:0123456789-+.eEtrufalsn \\u\n".utf8)
        for _ in 0..<3000 {
            let n = Int(g.next() % 40)
            let bytes = (0..<n).map { _ in alphabet[Int(g.next() % UInt64(alphabet.count))] }
            _ = try? JSON.parse(bytes)
        }
    }
}
