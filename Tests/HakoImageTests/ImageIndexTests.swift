import Foundation
@testable import HakoImage
import Testing

/// The image index is read without Foundation's decoder: it must read what
/// the `Decodable` conformance reads, and refuse what it refuses.
@Suite struct ImageIndexTests {
    static let full = #"""
    {"images":{"195ea64cc1c1d17156ec21684fc857c4b7e5be79d9879da3ab8a97ffade31741":{"added":"2026-12-06T19:18:26.999406723Z","index":"sha256:1111111111111111111111111111111111111111111111111111111111111111","manifest":"sha256:d1d8b26596f359f1ee330aaa2dbc11a290510439e92d235266edc937519edaa8","repoDigests":["docker.io/library/busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111"],"size":1982469,"unknown":[1,{"x":null}]},"2222222222222222222222222222222222222222222222222222222222222222":{"added":"2026-12-05T01:02:03Z","index":null,"manifest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","size":0}},"references":{"docker.io/library/bench:busybox":"195ea64cc1c1d17156ec21684fc857c4b7e5be79d9879da3ab8a97ffade31741","docker.io/library/b:2":"2222222222222222222222222222222222222222222222222222222222222222"},"version":1}
    """#

    @Test func readsWhatTheDecoderReads() throws {
        let bytes = Array(Self.full.utf8)
        let mine = try ImageIndex(json: bytes, what: "index.json")
        let theirs = try JSONDecoder().decode(ImageIndex.self, from: Data(bytes))
        #expect(mine == theirs)
        #expect(mine.images.count == 2 && mine.references.count == 2)
        #expect(mine.images["2222222222222222222222222222222222222222222222222222222222222222"]?.index == nil)
        // And what the store writes, read back.
        #expect(try ImageIndex(json: try CanonicalJSON.encode(mine), what: "index.json") == mine)
        #expect(try ImageIndex(json: Array(#"{"version":1,"references":{},"images":{}}"#.utf8), what: "i") == ImageIndex())
    }

    @Test func refusesWhatTheDecoderRefuses() {
        let bad = [
            "not json",
            "[]",
            #"{"references":{},"images":{}}"#,
            #"{"version":1,"images":{}}"#,
            #"{"version":"1","references":{},"images":{}}"#,
            #"{"version":1,"references":{"a":2},"images":{}}"#,
            #"{"version":1,"references":{},"images":{"x":{"added":"t","size":1}}}"#,
            #"{"version":1,"references":{},"images":{"x":{"added":"t","size":"1","manifest":"sha256:3333333333333333333333333333333333333333333333333333333333333333"}}}"#,
            #"{"version":1,"references":{},"images":{"x":{"added":"t","size":1,"manifest":"sha256:33"}}}"#,
            #"{"version":1,"references":{},"images":{"x":{"added":"t","size":1,"manifest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","repoDigests":"a"}}}"#,
        ]
        for text in bad {
            let bytes = Array(text.utf8)
            #expect((try? JSONDecoder().decode(ImageIndex.self, from: Data(bytes))) == nil, "the decoder refuses \(text)")
            #expect(throws: ImageError.self, "refused: \(text)") { try ImageIndex(json: bytes, what: "index.json") }
        }
    }
}
