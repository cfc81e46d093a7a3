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
}
