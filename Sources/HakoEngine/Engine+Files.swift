import CHakoShim
import HakoRuntime
import HakoSystem

/// Files a container gets from memory (`ContainerFile`): a cluster task's
/// secrets and configs. The launch spec carries their bytes to the monitor
/// (a memfd, then its memory); the init path writes them into a tmpfs of the
/// container's own mount namespace and binds each read-only at its target
/// (CHakoShim `place_files`). Nothing of them is written under the data root.
extension Engine {
    /// Docker's /run/secrets: a tmpfs of its own when a file lands in it, so
    /// not even the mount points are in the container's upper directory.
    static let secretsDirectory = "/run/secrets"

    /// Refuses files no container could hold.
    static func checkFiles(_ files: [ContainerFile]) throws {
        var seen = Set<String>()
        for f in files {
            guard f.target.hasPrefix("/"), FS.normalize(f.target) == f.target, f.target != "/", !f.target.contains("\0") else {
                throw HakoError(.invalidArgument("file target"), "invalid file target \"\(f.target)\": an absolute, clean path")
            }
            guard f.mode <= 0o7777 else { throw HakoError(.invalidArgument("mode"), "invalid mode \(String(f.mode, radix: 8)) for \(f.target)") }
            guard seen.insert(f.target).inserted else { throw HakoError(.invalidArgument("file target"), "two files at \(f.target)") }
        }
    }

    static func addFiles(_ files: [ContainerFile], to runtime: inout RuntimeSpec) {
        guard !files.isEmpty else { return }
        if files.contains(where: { $0.target.hasPrefix(secretsDirectory + "/") }) {
            runtime.mounts.append(.filesystem("tmpfs", at: secretsDirectory, options: "mode=755,size=64k",
                                              flags: HAKO_MS_NOSUID | HAKO_MS_NODEV | HAKO_MS_NOEXEC))
        }
        runtime.files = files
    }
}
