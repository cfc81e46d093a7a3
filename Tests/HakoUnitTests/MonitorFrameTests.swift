@testable import HakoRuntime
import HakoSystem
import Testing

@Suite struct MonitorFrameTests {
    @Test func roundTrip() throws {
        let frames: [MonitorFrame] = [
            .stdin([1, 2, 3]), .closeStdin, .resize(rows: 50, cols: 132), .signal(15), .stop(signal: 9, timeout: 7),
            .stop(signal: 15, timeout: 3, keep: true),
            .attach, .stdout(Array("hello\n".utf8)), .stderr([]), .exit(code: 137, final: true), .exit(code: -1, final: false), .reply(3),
        ]
        var buffer = frames.flatMap { $0.encode() }
        var decoded: [MonitorFrame] = []
        while let f = try MonitorFrame.decode(&buffer) { decoded.append(f) }
        #expect(decoded == frames)
        #expect(buffer.isEmpty)
    }

    @Test func goldenBytes() {
        #expect(MonitorFrame.stop(signal: 15, timeout: 10).encode() == [0x73, 0, 0, 0, 8, 0, 0, 0, 15, 0, 0, 0, 10])
        // A restart's stop keeps the container: one more byte.
        #expect(MonitorFrame.stop(signal: 15, timeout: 10, keep: true).encode() == [0x73, 0, 0, 0, 9, 0, 0, 0, 15, 0, 0, 0, 10, 1])
        #expect(MonitorFrame.resize(rows: 0x0102, cols: 0x0304).encode() == [0x72, 0, 0, 0, 4, 1, 2, 3, 4])
        #expect(MonitorFrame.exit(code: 2, final: true).encode() == [0x78, 0, 0, 0, 5, 0, 0, 0, 2, 1])
    }

    @Test func partialFramesWait() throws {
        let whole = MonitorFrame.stdout(Array("abcdef".utf8)).encode()
        for cut in 0..<whole.count {
            var part = Array(whole.prefix(cut))
            #expect(try MonitorFrame.decode(&part) == nil)
            #expect(part.count == cut)
        }
    }

    @Test func badFramesAreRefused() {
        var unknown: [UInt8] = [0x5a, 0, 0, 0, 0]
        #expect(throws: HakoError.self) { try MonitorFrame.decode(&unknown) }
        var huge: [UInt8] = [0x6f, 0x7f, 0xff, 0xff, 0xff]
        #expect(throws: HakoError.self) { try MonitorFrame.decode(&huge) }
        var shortExit: [UInt8] = [0x78, 0, 0, 0, 1, 0]
        #expect(throws: HakoError.self) { try MonitorFrame.decode(&shortExit) }
    }
}
