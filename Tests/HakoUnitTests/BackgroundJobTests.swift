#if canImport(Glibc)
import Glibc
#endif
import HakoSystem
import Testing

/// `BackgroundJob`: the job runs on another thread while the caller goes on,
/// and `join` hands back its result or its error, as often as asked.
@Suite struct BackgroundJobTests {
    struct Failed: Error, Equatable { let code: Int }

    @Test func runsOnAnotherThreadAndReturnsItsResult() throws {
        let caller = pthread_self()
        let job = BackgroundJob { pthread_equal(pthread_self(), caller) == 0 ? 42 : -1 }
        #expect(try job.join() == 42)
        #expect(try job.join() == 42)
    }

    @Test func theCallerGoesOnWhileTheJobRuns() throws {
        // The job waits for the caller's byte: one run inline would wait out its 5 s and fail.
        var fds: [Int32] = [-1, -1]
        #expect(pipe(&fds) == 0)
        let readEnd = fds[0], writeEnd = fds[1]
        defer { close(readEnd) }
        let job = BackgroundJob { () -> Int in
            var p = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
            var byte: UInt8 = 0
            guard poll(&p, 1, 5000) == 1 else { return -1 }
            return read(readEnd, &byte, 1) == 1 ? Int(byte) : -1
        }
        var go: UInt8 = 7
        #expect(write(writeEnd, &go, 1) == 1)
        close(writeEnd)
        #expect(try job.join() == 7)
    }

    @Test func joinThrowsTheJobsError() {
        let job = BackgroundJob { () throws -> Int in throw Failed(code: 3) }
        #expect(throws: Failed(code: 3)) { try job.join() }
        #expect(throws: Failed(code: 3)) { try job.join() }
    }
}

/// `Handoff`: a value passed from a job that goes on running; the first
/// `fulfil` counts, and `wait` blocks until it has come.
@Suite struct HandoffTests {
    struct Failed: Error, Equatable { let code: Int }

    @Test func theWaiterGetsTheValueWhileTheJobGoesOn() throws {
        let handoff = Handoff<Int>()
        var fds: [Int32] = [-1, -1]
        #expect(pipe(&fds) == 0)
        let readEnd = fds[0], writeEnd = fds[1]
        defer { close(readEnd) }
        // The job hands 5 over, then waits for the caller's byte: the value
        // arrives before the job ends, or the caller would wait it out.
        let job = BackgroundJob { () -> Int in
            handoff.fulfil(.success(5))
            handoff.fulfil(.success(6))  // too late: the first counts
            var p = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
            var byte: UInt8 = 0
            guard poll(&p, 1, 5000) == 1, read(readEnd, &byte, 1) == 1 else { return -1 }
            return Int(byte)
        }
        #expect(try handoff.wait() == 5)
        var go: UInt8 = 9
        #expect(write(writeEnd, &go, 1) == 1)
        close(writeEnd)
        #expect(try job.join() == 9)
        #expect(try handoff.wait() == 5)
    }

    @Test func aFailureReachesTheWaiter() {
        let handoff = Handoff<Int>()
        let job = BackgroundJob { handoff.fulfil(.failure(Failed(code: 4))) }
        #expect(throws: Failed(code: 4)) { try handoff.wait() }
        _ = try? job.join()
    }
}
