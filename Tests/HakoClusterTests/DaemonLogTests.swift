#if canImport(Glibc)
import Glibc
#endif
import Foundation
@testable import HakoCluster
import HakoSystem
import Testing

/// The daemons' log lines: plain with a time stamp, or for the journal with
/// sd-daemon priority prefixes when standard error is the journal's stream.
@Suite struct DaemonLogTests {
    @Test func plainAndJournalLines() {
        let plain = ClusterLog.Format.plain.line(.warning, component: "agent", message: "disk full", now: "2026-11-29T06:00:00Z")
        #expect(plain == "2026-11-29T06:00:00Z warn agent: disk full\n")
        let journal = ClusterLog.Format.journal.line(.error, component: "coordinator", message: "a\nb", now: "unused")
        #expect(journal == "<3>coordinator: a\n<3>coordinator: b\n")
        #expect([ClusterLog.Level.debug, .info, .warning, .error].map(\.syslogPriority) == [7, 6, 4, 3])
    }

    @Test func detectsTheJournalStreamByDeviceAndInode() throws {
        let path = NSTemporaryDirectory() + "hako-journal-\(getpid())"
        let fd = open(path, O_CREAT | O_RDWR, 0o600)
        try #require(fd >= 0)
        defer { close(fd); unlink(path) }
        var st = stat()
        fstat(fd, &st)
        #expect(ClusterLog.Format.detect(environment: "\(st.st_dev):\(st.st_ino)", stderr: fd) == .journal)
        #expect(ClusterLog.Format.detect(environment: "\(st.st_dev):\(st.st_ino + 1)", stderr: fd) == .plain, "another stream: the journal is not ours")
        #expect(ClusterLog.Format.detect(environment: nil, stderr: fd) == .plain)
        #expect(ClusterLog.Format.detect(environment: "garbage", stderr: fd) == .plain)
    }

    @Test func linesGoThroughTheSinkInTheChosenFormat() {
        final class Lines: @unchecked Sendable { var all: [String] = [] }
        let lines = Lines()
        var log = ClusterLog(component: "agent", level: .info, sink: { lines.all.append($0) })
        log.format = .journal
        log.debug("hidden")
        log.info("started")
        #expect(lines.all == ["<6>agent: started\n"])
    }
}
