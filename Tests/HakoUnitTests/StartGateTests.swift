#if canImport(Glibc)
import Glibc
#endif
import HakoRuntime
import HakoSystem
import Testing

/// `StartGate`: the init's one byte comes only when every part is done, and
/// the first part that fails closes the socket unwritten.
@Suite struct StartGateTests {
    /// What the init's end holds now: a byte, EOF, or nothing yet.
    enum Seen: Equatable { case byte, eof, nothing }

    func look(_ fd: FileDescriptor) -> Seen {
        var p = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 0) == 1 else { return .nothing }
        var b: UInt8 = 0
        return recv(fd.rawValue, &b, 1, 0) == 1 ? .byte : .eof
    }

    @Test func theByteComesWhenEveryPartIsDone() throws {
        let (initEnd, engineEnd) = try makeSocketPair()
        let gate = StartGate(engineEnd, parts: 2)
        gate.done()
        #expect(look(initEnd) == .nothing, "one part of two is no reason to go on")
        let other = BackgroundJob { gate.done() }
        try other.join()
        #expect(look(initEnd) == .byte)
        #expect(look(initEnd) == .eof, "one byte, then the gate's end is closed")
    }

    @Test func aFailedPartClosesItUnwritten() throws {
        let (initEnd, engineEnd) = try makeSocketPair()
        let gate = StartGate(engineEnd, parts: 2)
        gate.done()
        gate.fail()
        #expect(look(initEnd) == .eof)
        gate.done()  // a part that ends after the failure sends nothing
        #expect(look(initEnd) == .eof)
    }
}
