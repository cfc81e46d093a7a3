import HakoTestSupport
import Testing
import Foundation
import Glibc
import HakoSystem
@testable import HakoImage

/// The tar writer (checked by the reader and by GNU tar), the tree archiver
/// (overlay diffs back to `.wh.` form, merged views), and `--change`.
@Suite struct TarWriterTests {
    private func archive(_ body: (TarWriter) throws -> Void) throws -> [UInt8] {
        let sink = try CollectSink()
        let tar = TarWriter(sink)
        try body(tar)
        try tar.finish()
        return sink.bytes
    }

    @Test func roundTripThroughTheReaderAndGNUTar() throws {
        let longName = (0..<30).map { "dir\($0)" }.joined(separator: "/") + "/file-with-a-long-name"
        let longLink = String(repeating: "t", count: 150)
        let bytes = try archive { tar in
            try tar.append(TarEntry(path: "etc", kind: .directory, mode: 0o755, modified: Timestamp(seconds: 1000)))
            try tar.append(TarEntry(path: "etc/passwd", kind: .regular, size: 5, mode: 0o644, uid: 0, gid: 0,
                                    modified: Timestamp(seconds: 2000)))
            try tar.writeContent(Array("root\n".utf8))
            try tar.append(TarEntry(path: longName, kind: .regular, size: 1, mode: 0o600, uid: 70000000, gid: 5,
                                    modified: Timestamp(seconds: 3000), xattrs: ["user.k": Array("v".utf8), "security.capability": [1, 2, 3]]))
            try tar.writeContent([0x41])
            try tar.append(TarEntry(path: "l", kind: .symlink, mode: 0o777, linkTarget: longLink))
            try tar.append(TarEntry(path: "h", kind: .hardlink, linkTarget: "etc/passwd"))
            try tar.append(TarEntry(path: "dev/null", kind: .characterDevice, mode: 0o666, deviceMajor: 1, deviceMinor: 3))
            try tar.append(TarEntry(path: "fifo", kind: .fifo, mode: 0o600))
        }
        #expect(bytes.count % 512 == 0)
        let entries = try readAll(BytesSource(bytes))
        #expect(entries.map(\.0.path) == ["etc/", "etc/passwd", longName, "l", "h", "dev/null", "fifo"])
        #expect(entries[1].1 == Array("root\n".utf8))
        #expect(entries[2].0.uid == 70000000 && entries[2].0.gid == 5 && entries[2].0.mode == 0o600)
        #expect(entries[2].0.xattrs == ["user.k": Array("v".utf8), "security.capability": [1, 2, 3]])
        #expect(entries[3].0.linkTarget == longLink)
        #expect(entries[4].0.kind == .hardlink && entries[4].0.linkTarget == "etc/passwd")
        #expect(entries[5].0.deviceMajor == 1 && entries[5].0.deviceMinor == 3)
        #expect(entries[0].0.modified.seconds == 1000)
        // GNU tar reads it the same way.
        let tmp = try TempDir()
        try FS.writeAtomic(tmp.sub("a.tar"), bytes)
        let listing = try run(["/usr/bin/tar", "-tf", tmp.sub("a.tar")])
        #expect(listing.split(separator: "\n").map(String.init) == ["etc/", "etc/passwd", longName, "l", "h", "dev/null", "fifo"])
    }

    @Test func goldenBytes() throws {
        // The same entries always give the same bytes (and so the same DiffID);
        // the header checksum agrees with Python's tarfile (0o6712).
        let bytes = try archive { tar in
            try tar.append(TarEntry(path: "a", kind: .directory, mode: 0o755, modified: Timestamp(seconds: 1_600_000_000)))
            try tar.append(TarEntry(path: "a/b", kind: .regular, size: 3, mode: 0o644, uid: 1, gid: 2,
                                    userName: "u", groupName: "g", modified: Timestamp(seconds: 1_600_000_000)))
            try tar.writeContent(Array("hi\n".utf8))
        }
        #expect(bytes.count == 512 * 5)
        let header = Array(bytes[512..<1024])
        func field(_ o: Int, _ l: Int) -> String { String(decoding: header[o..<(o + l)].prefix { $0 != 0 }, as: UTF8.self) }
        #expect(field(0, 100) == "a/b")
        #expect(field(100, 8) == "0000644")
        #expect(field(108, 8) == "0000001")
        #expect(field(124, 12) == "00000000003")
        #expect(field(136, 12) == "13727410000")
        #expect(field(148, 8) == "006712")
        #expect(header[156] == UInt8(ascii: "0"))
        #expect(field(257, 6) == "ustar")
        let golden = try Digest.sha256(of: bytes).string
        #expect(golden == "sha256:f109e6a584dc135ff6e61f6519034ed37196dc2e0db0bc23decbedc145595c87", "\(golden)")
        #expect(try Digest.sha256(of: bytes) == (try Digest.sha256(of: try archive { tar in
            try tar.append(TarEntry(path: "a/", kind: .directory, mode: 0o755, modified: Timestamp(seconds: 1_600_000_000)))
            try tar.append(TarEntry(path: "a/b", kind: .regular, size: 3, mode: 0o644, uid: 1, gid: 2,
                                    userName: "u", groupName: "g", modified: Timestamp(seconds: 1_600_000_000)))
            try tar.writeContent(Array("hi\n".utf8))
        })))
    }

    @Test func misuseIsAnError() throws {
        let tar = TarWriter(try CollectSink())
        try tar.append(TarEntry(path: "f", kind: .regular, size: 2))
        #expect(throws: ImageError.self) { try tar.writeContent([1, 2, 3]) }
        #expect(throws: ImageError.self) { try tar.append(TarEntry(path: "g", kind: .regular)) }
        #expect(throws: ImageError.self) { try tar.finish() }
    }

    @Test func gzipSinkRoundTrips() throws {
        let data = (0..<1_000_000).map { UInt8(truncatingIfNeeded: $0 % 251) }
        let out = try CollectSink()
        let gz = try GzipSink(out, level: 1)
        try data.withUnsafeBytes { try gz.write($0) }
        try gz.finish()
        #expect(out.bytes.count < data.count / 10)
        #expect(try GzipSource(BytesSource(out.bytes)).read(upTo: 2_000_000) == data)
        let tmp = try TempDir()
        try FS.writeAtomic(tmp.sub("x.gz"), out.bytes)
        try run(["/bin/gzip", "-t", tmp.sub("x.gz")])
    }

    @Test func configChanges() throws {
        var c = ImageConfig(env: ["PATH=/bin", "A=old"], cmd: ["sh"], labels: ["keep": "1"])
        try ConfigChange.apply([
            #"CMD ["echo", "hi"]"#, "ENTRYPOINT /bin/tini --", "ENV A=new B=\"two words\"", "ENV C three words",
            "WORKDIR /srv", "USER 1000:1000", "EXPOSE 80 53/udp", "LABEL a=b c=\"d e\"", "VOLUME /data /cache",
            "STOPSIGNAL SIGQUIT", "cmd [\"lower\"]",
        ], to: &c)
        #expect(c.cmd == ["lower"])
        #expect(c.entrypoint == ["/bin/sh", "-c", "/bin/tini --"])
        #expect(c.env == ["PATH=/bin", "A=new", "B=two words", "C=three words"])
        #expect(c.workingDir == "/srv" && c.user == "1000:1000" && c.stopSignal == "SIGQUIT")
        #expect(c.exposedPorts == ["53/udp", "80/tcp"])
        #expect(c.labels == ["keep": "1", "a": "b", "c": "d e"])
        #expect(c.volumes == ["/cache", "/data"])
        for bad in ["FROM alpine", "CMD", "WORKDIR relative", "EXPOSE 99999", "EXPOSE 80/icmp", "CMD [\"unclosed\"", "LABEL novalue",
                    "ENV A=\"open"] {
            var x = ImageConfig()
            #expect(throws: ImageError.self, "\(bad)") { try ConfigChange.apply([bad], to: &x) }
        }
    }
}
