import CHakoShim
import Foundation
import Testing
@testable import HakoEngine
import HakoSystem

/// `Engine.list(cache:)`: the same answers as `list()`, from files decoded
/// once and again only after they change.
@Suite struct ContainerListCacheTests {
    static func container(_ engine: Engine, _ id: String, name: String) throws {
        try FileManager.default.createDirectory(atPath: engine.paths.container(id).dir, withIntermediateDirectories: true)
        var c = Engine.placeholderConfig(id: id)
        c.name = name
        try engine.writeConfig(c)
    }

    @Test func followsEveryChangeAndReusesUnchangedFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hako-listcache-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let engine = try Engine(paths: EnginePaths(root: dir + "/root", runRoot: dir + "/run"))
        let cache = ContainerListCache()
        let a = String(repeating: "a", count: 64), b = String(repeating: "b", count: 64)
        try Self.container(engine, a, name: "first")
        try Self.container(engine, b, name: "second")

        var listed = try engine.list(cache: cache)
        #expect(Set(listed.map(\.name)) == ["first", "second"])
        #expect(listed.allSatisfy { $0.status == .created })
        #expect(cache.count == 2)

        // A new state file (the monitor renames one over the old) is read.
        try engine.writeState(a, MonitorState(status: "exited", exitCode: 3))
        listed = try engine.list(cache: cache)
        let first = try #require(listed.first { $0.id == a })
        #expect(first.status == .exited && first.state?.exitCode == 3)
        try engine.writeState(a, MonitorState(status: "exited", exitCode: 4))
        #expect(try engine.list(cache: cache).first { $0.id == a }?.state?.exitCode == 4)

        // A rewritten configuration is read.
        var renamed = try engine.readConfig(b)
        renamed.name = "renamed"
        try engine.writeConfig(renamed)
        #expect(try engine.list(cache: cache).first { $0.id == b }?.name == "renamed")

        // An unchanged file is not read again: overwrite its bytes in place and
        // put its modification time back; the uncached listing sees the damage.
        let path = engine.paths.container(b).config
        var st = stat()
        #expect(stat(path, &st) == 0)
        let fd = open(path, O_WRONLY)
        #expect(fd >= 0)
        let junk = [UInt8](repeating: UInt8(ascii: "x"), count: Int(st.st_size))
        #expect(write(fd, junk, junk.count) == junk.count)
        close(fd)
        let times = [st.st_atim, st.st_mtim]
        #expect(utimensat(AT_FDCWD, path, times, 0) == 0)
        #expect(try engine.list().first { $0.id == b }?.status == .dead)
        #expect(try engine.list(cache: cache).first { $0.id == b }?.name == "renamed")

        // A container that is gone leaves the cache.
        try FileManager.default.removeItem(atPath: engine.paths.container(b).dir)
        #expect(try engine.list(cache: cache).map(\.id) == [a])
        #expect(cache.count == 1)
    }

    /// The monitor records each probe in the live health file, in place, and
    /// the state file only at a change of status: both listings show the
    /// file's health when it is whole, the state file's when it is not.
    @Test func theHealthIsTheLiveFilesWhenItIsWhole() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hako-listcache-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let engine = try Engine(paths: EnginePaths(root: dir + "/root", runRoot: dir + "/run"))
        let cache = ContainerListCache()
        let id = String(repeating: "c", count: 64)
        try Self.container(engine, id, name: "checked")
        var state = MonitorState(status: "exited", exitCode: 0)
        state.health = HealthState(status: "starting", failingStreak: 0, log: [])
        try engine.writeState(id, state)
        func health(cached: Bool) throws -> HealthState? {
            try (cached ? engine.list(cache: cache) : engine.list()).first { $0.id == id }?.state?.health
        }
        #expect(try health(cached: true)?.status == "starting")

        func live(_ body: String) -> [UInt8] {
            let b = Array(body.utf8)
            var header = [CChar](repeating: 0, count: Int(HAKO_HEALTH_HEADER_LEN) + 1)
            b.withUnsafeBytes { hako_health_header(&header, $0.baseAddress, $0.count) }
            return header.prefix(Int(HAKO_HEALTH_HEADER_LEN)).map { UInt8(truncatingIfNeeded: $0) } + b
        }
        let body = #"{"status":"healthy","failingStreak":0,"log":[{"start":"s","end":"e","exitCode":0,"output":"ok"}]}"#
        try FS.writeFile(engine.paths.container(id).health, live(body))
        for cached in [true, false] {
            let h = try #require(try health(cached: cached))
            #expect(h.status == "healthy" && h.log.map(\.output) == ["ok"], "cached: \(cached)")
        }
        // Never whole (a write that never ends cannot happen; a damaged file can): the state file's.
        try FS.writeFile(engine.paths.container(id).health, Array(live(body).dropLast()))
        #expect(try health(cached: true)?.status == "starting")
        #expect(try health(cached: false)?.status == "starting")
    }
}
