import CHakoShim
@testable import HakoRuntime
import HakoSystem
import Testing

/// The health check's live state file (HAKO_HEALTH_* in hako_shim.h): the
/// monitor writes it in place, so a reader must tell a whole write from a
/// read that raced one.
@Suite struct MonitorHealthFileTests {
    /// What the monitor writes for `body`: the header hako_health_header makes, then the body.
    func content(_ body: String) -> [UInt8] {
        let b = Array(body.utf8)
        var header = [CChar](repeating: 0, count: Int(HAKO_HEALTH_HEADER_LEN) + 1)
        b.withUnsafeBytes { hako_health_header(&header, $0.baseAddress, $0.count) }
        return header.prefix(Int(HAKO_HEALTH_HEADER_LEN)).map { UInt8(truncatingIfNeeded: $0) } + b
    }

    let healthy = #"{"status":"healthy","failingStreak":0,"log":[{"start":"a","end":"b","exitCode":0,"output":""}]}"#
    let unhealthy = #"{"status":"unhealthy","failingStreak":3,"log":[{"start":"c","end":"d","exitCode":1,"output":"no"}]}"#

    @Test func aWholeWriteIsItsBodyWhateverFollowsIt() {
        let whole = content(healthy)
        #expect(String(decoding: Array(MonitorHealthFile.body(of: whole) ?? []), as: UTF8.self) == healthy)
        #expect(whole.prefix(15) == ArraySlice("hako-health-v1 ".utf8))
        // A shorter write over a longer one, before the file is cut: the tail is not part of it.
        let over = content(healthy) + Array(content(unhealthy).suffix(20))
        #expect(String(decoding: Array(MonitorHealthFile.body(of: over) ?? []), as: UTF8.self) == healthy)
        #expect(MonitorHealthFile.body(of: content("")) == [])
    }

    @Test func aReadThatRacedAWriteIsRefused() {
        let old = content(unhealthy), new = content(healthy)
        // The new header with the old body's start, the old header with the new body's start, a cut body.
        let mixed = Array(new.prefix(60)) + Array(old.dropFirst(60))
        let mixed2 = Array(old.prefix(Int(HAKO_HEALTH_HEADER_LEN))) + Array(new.dropFirst(Int(HAKO_HEALTH_HEADER_LEN)))
        #expect(MonitorHealthFile.body(of: mixed) == nil)
        #expect(MonitorHealthFile.body(of: mixed2) == nil)
        #expect(MonitorHealthFile.body(of: Array(new.dropLast())) == nil)
        var flipped = new
        flipped[flipped.count - 5] ^= 1
        #expect(MonitorHealthFile.body(of: flipped) == nil)
        #expect(MonitorHealthFile.body(of: []) == nil)
        #expect(MonitorHealthFile.body(of: Array(healthy.utf8)) == nil, "a state.json-style file is not a health file")
    }

    @Test func theReaderReadsTheFileAndGivesUpOnNone() throws {
        let dir = tempDir("health-file")
        defer { try? FS.removeTree(dir) }
        let path = dir + "/health"
        #expect(MonitorHealthFile.read(path) == nil)
        try FS.writeFile(path, content(unhealthy))
        #expect(MonitorHealthFile.read(path).map { String(decoding: Array($0), as: UTF8.self) } == unhealthy)
        try FS.writeFile(path, Array(content(unhealthy).dropLast(2)))
        #expect(MonitorHealthFile.read(path) == nil)
    }
}
