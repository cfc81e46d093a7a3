#if canImport(Glibc)
import Glibc
#endif
import HakoImage
import HakoSystem

extension Engine {
    /// Paths in a container's upper directory that the runtime made as mount
    /// points (Docker keeps them in its "init layer"): never part of a commit.
    public static let runtimeMountPoints: Set<String> = ["proc", "sys", "dev", "etc/hostname", "etc/hosts", "etc/resolv.conf", "sbin/hako-init"]

    /// `hako commit`: the container's changes become a new image. The
    /// container's settings (command, entrypoint, environment, working dir,
    /// user, labels, stop signal) become the image's, then `changes` apply.
    /// A running container is paused meanwhile (unless `pause` is false).
    public func commit(_ ref: String, reference: String?, changes: [String] = [], author: String? = nil,
                       message: String? = nil, pause: Bool = true) throws -> Image {
        let c = try lookup(ref)
        guard let base = try images.find(c.config.imageID) else {
            throw HakoError(.notFound(.image, String(c.config.imageID.prefix(12))), "cannot commit \(c.name): its image \(c.config.imageID.prefix(12)) was removed")
        }
        var config = base.config
        config.env = c.config.env
        config.cmd = c.config.cmd
        config.entrypoint = c.config.entrypoint.isEmpty ? nil : c.config.entrypoint
        config.workingDir = c.config.workingDir
        config.user = c.config.user.isEmpty ? nil : c.config.user
        config.labels = c.config.labels.isEmpty ? nil : c.config.labels
        config.healthcheck = c.config.healthCheck
        config.stopSignal = c.config.stopSignal == SIGTERM ? base.config.stopSignal : Signals.name(c.config.stopSignal)
        let options = CommitOptions(config: config, changes: changes, author: author, message: message,
                                    createdBy: c.config.args.joined(separator: " "))
        let freeze = pause && c.status == .running
        if freeze { try self.pause(c.id) }
        defer { if freeze { try? unpause(c.id) } }
        return try images.commit(upper: c.paths.upper, base: base, exclude: Engine.runtimeMountPoints, options: options,
                                 reference: reference, unpack: try unpackOptions())
    }

    /// `hako export`: the container's file system (its image's layers with
    /// its own changes on top) as a tar stream.
    public func export(_ ref: String, to sink: any ByteSink) throws {
        let c = try lookup(ref)
        if c.config.imageID == ImageStore.hostImageID {
            throw HakoError(.invalidArgument("container"), "cannot export \(c.name): it runs on the built-in host image")
        }
        try images.exportTree([c.paths.upper] + c.config.layerDirs.reversed(), to: sink)
    }
}
