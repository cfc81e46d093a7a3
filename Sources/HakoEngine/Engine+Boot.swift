import HakoRuntime
import HakoSystem

extension Engine {
    /// Whether a stopped container comes back when the host starts again:
    /// `always`, or `unless-stopped` and not stopped by a person (a shutdown's
    /// SIGTERM to its monitor does not count), as docker's daemon does at start.
    public static func restartsAtBoot(_ c: Container) -> Bool {
        guard !c.config.autoRemove, c.state != nil else { return false }  // never started: nothing to come back to
        switch c.config.restart {
        case .always: return true
        case .unlessStopped: return !(c.state?.manualStop ?? false)
        default: return false
        }
    }

    /// `hako start --all-restartable` (deploy/hako-restart.service at boot):
    /// starts every container `restartsAtBoot` admits that does not run,
    /// oldest first; what could not start is reported, the rest still start.
    public func startRestartable() throws -> [(id: String, name: String, error: (any Error)?)] {
        var out: [(id: String, name: String, error: (any Error)?)] = []
        for c in try list().reversed() where (c.status == .exited || c.status == .created) && Engine.restartsAtBoot(c) {
            do {
                try start(c.id)
                out.append((c.id, c.name, nil))
            } catch {
                out.append((c.id, c.name, error))
            }
        }
        return out
    }
}
