#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Foundation
import HakoSystem
import Testing
@testable import HakoCluster

/// A loopback port that answers nothing a client could use: a listener that
/// never accepts. `fill` queues one plain connection first, so that with a
/// backlog of 0 the kernel drops every later SYN and a connect hangs (a dead
/// Pi's address); otherwise the TCP handshake completes and the TLS
/// handshake is never answered (a hung coordinator).
final class BlackHole {
    let fd: Int32
    let port: UInt16
    let filler: Int32

    init(fill: Bool) throws {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) } }
        guard s >= 0, bound == 0, listen(s, 0) == 0 else {
            if s >= 0 { close(s) }
            throw ClusterError.network("black hole: \(String(cString: strerror(errno)))")
        }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
        var queued: Int32 = -1
        if fill {
            queued = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(queued, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard rc == 0 else {
                close(queued)
                close(s)
                throw ClusterError.network("black hole: cannot fill its queue: \(String(cString: strerror(errno)))")
            }
        }
        fd = s
        port = UInt16(bigEndian: addr.sin_port)
        filler = queued
    }

    deinit {
        if filler >= 0 { close(filler) }
        close(fd)
    }

    var address: String { "127.0.0.1:\(port)" }
}

/// The agent asks every coordinator it knows at once: the first to accept
/// the hello holds the session. One that never answers holds up no other.
@Suite struct AgentConnectTests {
    @Test func coordinatorsThatNeverAnswerDelayNoOther() throws {
        let live = try LiveCoordinator(clock: SystemClusterClock())
        var config = live.agentConfig("far")
        _ = try Agent.join(token: try live.token(), coordinator: live.address, config: config, capacity: FixedProbe().capacity(), log: .silent)
        // Asked one after another, these two would hold the agent for the
        // connect timeout (3 s), then the TLS handshake timeout (10 s).
        let dropsSYNs = try BlackHole(fill: true)
        let neverHandshakes = try BlackHole(fill: false)
        config.coordinator = "\(dropsSYNs.address),\(neverHandshakes.address),\(live.address)"
        let lines = LiveCoordinator.Lines()
        let log = ClusterLog(component: "agent", level: .debug, sink: { line in lines.m.withLock { $0.append(line) } })
        let agent = try Agent(config: config, runtime: FakeRuntime(), probe: FixedProbe(), log: log)
        let stopped = DispatchSemaphore(value: 0)
        let started = monotonicSeconds()
        Thread { agent.run(); stopped.signal() }.start()
        defer {
            agent.stop()
            _ = stopped.wait(timeout: .now() + 10)
        }
        func ready() -> Bool {
            (try? live.adminClient().request(MessageType.nodeList, EmptyBody(), as: NodeList.self))?.nodes.first?.status == .ready
        }
        let deadline = started + 15
        while !ready() && monotonicSeconds() < deadline { usleep(20_000) }
        let took = monotonicSeconds() - started
        #expect(ready(), "the node never became ready: \(lines.m.withLock { $0 })")
        #expect(took < 5, "ready after \(took) s: the black holes held the agent up")
        #expect(lines.m.withLock { $0.contains { $0.contains("session open with \(live.address)") } })
    }

    /// A follower's answer names the leader; an empty name is none.
    @Test func theLeaderAFollowerNames() {
        #expect(Agent.leader(named: "not the leader: the leader is 10.0.0.2:4270") == "10.0.0.2:4270")
        #expect(Agent.leader(named: "not the leader: no leader (no quorum)") == nil)
    }
}
