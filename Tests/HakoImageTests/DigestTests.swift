import HakoTestSupport
import Testing
import HakoSystem
@testable import HakoImage

@Suite struct DigestTests {
    @Test func knownVector() throws {
        let d = try Digest.sha256(of: "abc")
        #expect(d.string == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(try Digest(d.string) == d)
    }

    @Test func parsingRejectsMalformedDigests() {
        for bad in ["", "sha256:", "sha256:abc", "md5:" + String(repeating: "a", count: 64),
                    "sha256:" + String(repeating: "A", count: 64), "sha256:" + String(repeating: "g", count: 64),
                    String(repeating: "a", count: 64), "sha256:" + String(repeating: "a", count: 65)] {
            #expect(throws: ImageError.self) { try Digest(bad) }
        }
    }

    @Test func hostImageIDIsTheDocumentedHash() throws {
        #expect(try Digest.sha256(of: "hako built-in image: host").hex == ImageStore.hostImageID)
    }

    @Test func chainIDsFollowTheOCIRule() throws {
        let a = try Digest.sha256(of: "layer a"), b = try Digest.sha256(of: "layer b")
        let chain = try SnapshotStore.chainIDs([a, b])
        #expect(chain[0] == a)
        #expect(chain[1] == (try Digest.sha256(of: a.string + " " + b.string)))
    }
}

@Suite struct ContentStoreTests {
    @Test func writeReadAndDedup() throws {
        let tmp = try TempDir()
        let store = try ContentStore(root: tmp.sub("images"))
        let data = Array("hello blob".utf8)
        let d = try store.write(data)
        #expect(d.digest == (try Digest.sha256(of: data)))
        #expect(d.size == Int64(data.count))
        #expect(try store.read(d.digest) == data)
        #expect(try store.write(data, expected: d.digest) == d)
        #expect(try store.list() == [d.digest])
        #expect(names(store.tempDirectory).isEmpty)
    }

    @Test func digestMismatchLeavesNothing() throws {
        let tmp = try TempDir()
        let store = try ContentStore(root: tmp.sub("images"))
        let wrong = try Digest.sha256(of: "something else")
        let thrown = #expect(throws: ImageError.self) {
            try store.write(Array("actual content".utf8), expected: wrong)
        }
        guard case .digestMismatch(let blob, let expected, _) = thrown else {
            Issue.record("expected a digest mismatch, got \(String(describing: thrown))")
            return
        }
        #expect(blob.contains(wrong.hex))
        #expect(expected == wrong)
        #expect(names(store.blobsDirectory).isEmpty)
        #expect(names(store.tempDirectory).isEmpty)
        #expect(!store.contains(wrong))
    }

    @Test func streamingWriteAndAbandonedWriter() throws {
        let tmp = try TempDir()
        let store = try ContentStore(root: tmp.sub("images"))
        let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let d = try store.write(from: BytesSource(big))
        #expect(d.size == 300_000)
        #expect(try store.size(of: d.digest) == 300_000)
        do {
            let w = try store.makeWriter()
            try big.withUnsafeBytes { try w.write($0) }
            // Being written, the blob has no name at all (O_TMPFILE).
            #expect(names(store.tempDirectory).isEmpty)
            #expect(names(store.blobsDirectory).count == 1)
        }
        // A writer dropped without commit leaves nothing.
        #expect(names(store.tempDirectory).isEmpty)
        #expect(names(store.blobsDirectory).count == 1)
        #expect(throws: ImageError.self) { try store.read(try Digest.sha256(of: "absent")) }
    }
}
