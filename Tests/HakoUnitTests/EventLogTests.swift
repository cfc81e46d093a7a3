import Foundation
@testable import HakoEngine
import HakoSystem
import Testing

/// The engine's event log: lines, rotation, followers reading complete lines, filters.
@Suite struct EventLogTests {
    func temp() -> String { NSTemporaryDirectory() + "hako-events-\(UUID().uuidString)" }

    func event(_ action: String, _ id: String = "abc", t: Double = 1_764_400_000.5, attrs: [String: String] = ["name": "web", "image": "busybox"]) -> EngineEvent {
        EngineEvent(time: t, action: action, id: id, attributes: attrs)
    }

    @Test func linesRoundTrip() throws {
        let e = event("die", attrs: ["name": "a \"quoted\" name", "image": "busybox", "exitCode": "3"])
        #expect(e.json.serialized() == #"{"time":1764400000.500,"type":"container","action":"die","id":"abc","attributes":{"exitCode":"3","image":"busybox","name":"a \"quoted\" name"}}"#)
        #expect(EngineEvent(json: try JSON.parse(e.json.serialized())) == e)
        #expect(format3(12.0005) == "12.001" && format3(7) == "7.000" && format3(1.05) == "1.050")
    }

    @Test func recordReadAndRotate() throws {
        let path = temp()
        defer { unlink(path); unlink(path + ".1") }
        let log = EventLog(path: path, maxBytes: 600)
        for i in 0..<20 { log.record(event("start", "c\(i)", t: Double(1000 + i))) }
        let all = log.read()
        #expect(all.map(\.id).suffix(3) == ["c17", "c18", "c19"], "the newest are kept, in order")
        #expect(all.count < 20 && all.count >= 6, "rotated: one earlier file is kept (\(all.count))")
        #expect(FileManager.default.fileExists(atPath: path + ".1"))
        #expect(log.read(since: 1018).map(\.id) == ["c18", "c19"])
        #expect(log.read(since: 1017, until: 1018).map(\.id) == ["c17", "c18"])
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        #expect(size <= 600)
    }

    @Test func followersReadOnlyCompleteLines() throws {
        let path = temp()
        defer { unlink(path) }
        let log = EventLog(path: path)
        #expect(log.end() == 0 && log.read(from: 0).events.isEmpty)
        log.record(event("create"))
        let (first, offset) = log.read(from: 0)
        #expect(first.map(\.action) == ["create"] && offset == log.end())
        // A writer half-way through a line: nothing until it ends.
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        h.seekToEndOfFile()
        h.write(Data(#"{"time":1,"type":"container","action":"st"#.utf8))
        #expect(log.read(from: offset).events.isEmpty && log.read(from: offset).offset == offset)
        h.write(Data(#"art","id":"x","attributes":{}}"#.utf8 + [10]))
        try h.close()
        #expect(log.read(from: offset).events.map(\.action) == ["start"])
        #expect(log.read(upTo: offset).map(\.action) == ["create"], "a replay stops where a follower took over")
        // A line that is not an event is skipped, not fatal.
        try ("garbage\n" + event("stop").json.serialized() + "\n").write(toFile: path, atomically: false, encoding: .utf8)
        #expect(log.read().map(\.action) == ["stop"])
        // After a rotation (the file shrank), a follower starts over.
        #expect(log.read(from: 1_000_000).events.map(\.action) == ["stop"])
    }

    @Test func filters() throws {
        let e = event("die", "0123456789ab", attrs: ["name": "web", "image": "busybox:test", "tier": "front"])
        func m(_ f: [String]) throws -> Bool { try EventFilter(parsing: f).matches(e) }
        #expect(try m([]) && m(["event=die"]) && m(["event=start", "event=die"]) && m(["container=web"]) && m(["container=0123"]))
        #expect(try !m(["event=start"]) && !m(["container=db"]) && !m(["event=die", "image=other"]))
        #expect(try m(["label=tier"]) && m(["label=tier=front"]) && !m(["label=tier=back"]) && m(["type=container"]))
        #expect(throws: HakoError.self) { try EventFilter(parsing: ["nokey"]) }
        #expect(throws: HakoError.self) { try EventFilter(parsing: ["colour=red"]) }
    }
}
