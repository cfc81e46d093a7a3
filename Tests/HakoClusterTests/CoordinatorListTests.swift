import Dispatch
import Foundation
@testable import HakoCluster
import HakoSystem
import Testing

/// `hako cluster coordinator ls` with several coordinators on one host
/// (`raft_peers`, 127.0.0.1 and a port each): one row per coordinator, each
/// with its own address, and only the leader marked as leading.
@Suite struct CoordinatorListTests {
    @Test func coordinatorsOnOneHostAreToldApartByRaftID() throws {
        let dir = TempDir("peers")
        let base = UInt16.random(in: 20000...40000)
        func config(_ i: Int) -> CoordinatorConfig {
            var c = CoordinatorConfig()
            c.dataDir = dir.path + "/c\(i)"
            c.listen = Endpoint(host: "127.0.0.1", port: base + UInt16(i))
            var r = RaftSettings(id: UInt64(i + 1), address: Endpoint(host: "127.0.0.1", port: base + 10 + UInt16(i)))
            r.bootstrap = (0..<3).map { (UInt64($0 + 1), "127.0.0.1:\(base + 10 + UInt16($0))") }
            r.electionTimeout = 0.3
            c.raft = r
            return c
        }
        _ = try ClusterInit.run(config(0), adminDir: dir.path + "/admin", now: Timestamp.now().secondsSince1970)
        for i in 1..<3 { try FileManager.default.copyItem(atPath: config(0).dataDir, toPath: config(i).dataDir) }
        var running: [(Coordinator, DispatchSemaphore)] = []
        defer {
            for (c, done) in running {
                c.stop()
                _ = done.wait(timeout: .now() + 10)
            }
        }
        for i in 0..<3 {
            let c = try Coordinator(config: config(i), log: .silent)
            let done = DispatchSemaphore(value: 0)
            Thread { c.run(); done.signal() }.start()
            running.append((c, done))
        }
        let addresses = (0..<3).map { "127.0.0.1:\(base + UInt16($0))" }
        let admin = AdminCredentials(dir: dir.path + "/admin")
        func survey() -> [ClusterClient.CoordinatorState] {
            (try? ClusterClient.surveyCoordinators(admin, address: addresses.joined(separator: ","))) ?? []
        }
        var rows: [ClusterClient.CoordinatorState] = []
        let deadline = monotonicSeconds() + 20
        repeat {
            rows = survey()
            if rows.contains { $0.leader } && rows.allSatisfy { $0.reachable } { break }
            usleep(100_000)
        } while monotonicSeconds() < deadline
        #expect(rows.map { $0.id } == [1, 2, 3], "\(rows)")
        #expect(rows.map { $0.address } == addresses, "each coordinator at its own port: \(rows)")
        #expect(rows.filter { $0.leader }.count == 1, "exactly one leader: \(rows)")
        #expect(rows.allSatisfy { $0.reachable }, "\(rows)")
        // The one marked is the one that leads.
        let leader = try #require(rows.first { $0.leader })
        let leading = running.map { $0.0 }.firstIndex { $0.replica?.status.role == .leader }
        #expect(leading.map { UInt64($0 + 1) } == leader.id)
    }
}
