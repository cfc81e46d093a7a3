import Foundation
import HakoEngine
import HakoSystem
import Testing

/// The data root's layout as `ensure` makes it.
@Suite struct EnginePathsTests {
    /// The directories containers come and go in carry ext4's "top of
    /// directory hierarchies" flag, so that each container's inodes go to a
    /// group of their own (not past the ones the previous containers freed).
    @Test func containersAreSpreadOverTheFileSystem() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hako-paths-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let paths = EnginePaths(root: dir + "/root", runRoot: dir + "/run")
        try paths.ensure()
        // A file system without inode flags (tmpfs) has nothing to show.
        guard FS.inodeFlags(ofDirectory: paths.root) != nil else { return }
        for d in [paths.containers, paths.runRoot + "/containers"] {
            let flags = try #require(FS.inodeFlags(ofDirectory: d))
            #expect(flags & FS.InodeFlags.topDirectory != 0, "\(d)")
        }
        #expect((FS.inodeFlags(ofDirectory: paths.names) ?? 0) & FS.InodeFlags.topDirectory == 0, "only where trees come and go")
    }
}
