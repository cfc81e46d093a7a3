#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Tests of the kernel and of containers need root. Outside CI they are
/// skipped without it; under CI=true a missing privilege fails the run
/// instead of skipping (a tier that silently runs nothing is no tier).
public enum Privileges {
    public static let isRoot = getuid() == 0
    public static let inCI = ProcessInfo.processInfo.environment["CI"] == "true"
    public static var enabled: Bool { isRoot || inCI }
}

extension Trait where Self == ConditionTrait {
    public static var needsRoot: Self { .enabled(if: Privileges.enabled, "needs root (set CI=true to fail instead of skip)") }
}
