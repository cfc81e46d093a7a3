#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoSystem

/// Starts a process inside a running container: it joins every namespace of
/// the container's init and its cgroups, then takes the given user,
/// capabilities, seccomp filter and working directory. The process is a child
/// of the caller.
public enum ContainerExec {
    public struct Started: Sendable {
        public var pid: Int32
        public var pidfd: Int32
    }

    /// - Parameters:
    ///   - terminalSlave: with `spec.process.terminal`, the path of the terminal inside the container.
    ///   - stdio: the process's stdin, stdout and stderr (ignored with a terminal).
    public static func start(_ spec: RuntimeSpec, targetPid: Int32, terminalSlave: String?, stdio: [Int32]) throws -> Started {
        let blob = LaunchSpecEncoder.encode(spec, monitor: nil)
        let parsed = UnsafeMutablePointer<hako_spec>.allocate(capacity: 1)
        defer { parsed.deallocate() }
        var message = [CChar](repeating: 0, count: 256)
        return try blob.withUnsafeBytes { raw in
            guard hako_spec_parse(raw.baseAddress, raw.count, parsed, &message, message.count) == 0 else {
                throw HakoError(.failed, cString(message))
            }
            defer { hako_spec_free(parsed) }
            var out = hako_proc()
            var fail = hako_failure()
            let rc: Int32 = stdio.withUnsafeBufferPointer { fds in
                if let slave = terminalSlave {
                    return hako_exec(parsed, targetPid, -1, slave, fds.baseAddress, &out, &fail)
                }
                return hako_exec(parsed, targetPid, -1, nil, fds.baseAddress, &out, &fail)
            }
            if rc != 0 {
                let detail = withUnsafeBytes(of: fail.detail) { p in
                    String(decoding: p.prefix { $0 != 0 }, as: UTF8.self)
                }
                throw StartFailure(stage: fail.stage, errno: fail.err, detail: detail)
            }
            return Started(pid: out.pid, pidfd: out.pidfd)
        }
    }
}
