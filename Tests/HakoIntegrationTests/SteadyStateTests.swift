#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// An idle container costs nothing in steady state: its monitor neither
/// spins (CPU time) nor writes to storage (the Pi's SD card), with or
/// without an attach stream on the way in.
@Suite(.needsRoot)
final class SteadyStateTests {
    let host = TestHost.make("steady")
    deinit { host.cleanup() }

    /// The hako-monitor holding this container's run dir.
    func monitor(_ id: String) -> pid_t? {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(entry), (try? String(contentsOfFile: "/proc/\(entry)/comm", encoding: .utf8))?.hasPrefix("hako-monitor") == true else { continue }
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(entry)/fd")) ?? []
            if fds.contains(where: { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(entry)/fd/\($0)"))?.hasSuffix("/containers/\(id)") == true }) {
                return pid
            }
        }
        return nil
    }

    func cpuTicks(_ pid: pid_t) -> Int {
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        // Fields after the command's closing parenthesis; utime and stime are the 14th and 15th of the line.
        guard let close = stat.lastIndex(of: ")") else { return -1 }
        let f = stat[stat.index(after: close)...].split(separator: " ")
        return f.count > 12 ? (Int(f[11]) ?? -1) + (Int(f[12]) ?? -1) : -1
    }

    func writeBytes(_ pid: pid_t) -> Int {
        let io = (try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8)) ?? ""
        return io.split(separator: "\n").first { $0.hasPrefix("write_bytes:") }.flatMap { Int($0.split(separator: " ").last ?? "") } ?? -1
    }

    @Test func anIdleContainersMonitorNeitherSpinsNorWrites() throws {
        let detached = host.hako("run", "-d", "--network", "none", host.busybox, "sleep", "600")
        try #require(detached.status == 0, "\(detached.stderr)")
        let id = detached.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let pid = try #require(monitor(id), "no monitor holds \(id)")
        usleep(300_000)
        let (t0, w0) = (cpuTicks(pid), writeBytes(pid))
        sleep(2)
        let (t1, w1) = (cpuTicks(pid), writeBytes(pid))
        #expect(t0 >= 0 && t1 - t0 <= 2, "the monitor used \(t1 - t0) ticks in 2 s: it spins")
        #expect(w0 >= 0 && w1 == w0, "the monitor wrote \(w1 - w0) bytes while idle")
        // Still a working monitor: it answers a stop.
        #expect(host.hako("stop", "-t", "1", id).status == 0)
    }
}
