import HakoSystem
import Testing

@Suite struct HashTests {
    /// The published FNV-1a 64 test vectors, through a String's UTF-8 and an array alike.
    @Test func fnv1a64KnownValues() {
        for (text, expected) in [("", 0xcbf2_9ce4_8422_2325), ("a", 0xaf63_dc4c_8601_ec8c), ("foobar", 0x8594_4171_f739_67e8)] as [(String, UInt64)] {
            var s = FNV1a64()
            s.combine(text.utf8)
            var a = FNV1a64()
            a.combine(Array(text.utf8))
            var split = FNV1a64()
            split.combine(text.utf8.prefix(2))
            split.combine(Array(text.utf8.dropFirst(2)))
            #expect(s.value == expected && a.value == expected && split.value == expected, "\(text)")
        }
    }
}
