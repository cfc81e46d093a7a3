#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoSystem

/// A container's init started step by step in this process (no monitor): the
/// OCI runtime's create. The init reports when it waits for the runtime's
/// hooks and when it is "created"; every failure reaps it.
public final class InitLaunch: @unchecked Sendable {
    public enum Event: Sendable, Equatable {
        /// The program runs (no exec FIFO).
        case exec
        /// The init waits before pivot_root: run prestart/createRuntime hooks, then `proceed`.
        case hooks
        /// Create mode: the init waits on its exec FIFO.
        case created
    }

    private let blob: [UInt8]
    private let spec: UnsafeMutablePointer<hako_spec>
    private var launch = hako_launch()
    private var live = false

    public var pid: Int32 { launch.pid }
    /// A pidfd of the init (-1 when the kernel has none); owned by this launch until `takePidfd`.
    public var pidfd: Int32 { launch.pidfd }

    /// Parses the spec and clones the init; it runs to its first report.
    public init(_ runtime: RuntimeSpec, stdio: [Int32]?) throws {
        let bytes = LaunchSpecEncoder.encode(runtime, monitor: nil)
        let parsed = UnsafeMutablePointer<hako_spec>.allocate(capacity: 1)
        var message = [CChar](repeating: 0, count: 256)
        let rc = bytes.withUnsafeBytes { hako_spec_parse($0.baseAddress, $0.count, parsed, &message, message.count) }
        guard rc == 0 else {
            parsed.deallocate()
            throw HakoError(.failed, cString(message))
        }
        blob = bytes
        spec = parsed
        var l = hako_launch()
        var fail = hako_failure()
        let ev: Int32
        if let stdio {
            ev = stdio.withUnsafeBufferPointer { hako_launch_start(parsed, $0.baseAddress, &l, &fail) }
        } else {
            ev = hako_launch_start(parsed, nil, &l, &fail)
        }
        launch = l
        firstEvent = .exec
        guard ev >= 0 else { throw StartFailure(fail) }
        live = true
        firstEvent = try Self.event(ev)
    }

    /// The init's first report.
    public private(set) var firstEvent: Event

    deinit {
        if live { hako_launch_release(&launch) }
        if launch.pidfd >= 0 { Glibc.close(launch.pidfd) }
        hako_spec_free(spec)
        spec.deallocate()
    }

    private static func event(_ ev: Int32) throws -> Event {
        switch ev {
        case Int32(HAKO_EVENT_EXEC.rawValue): return .exec
        case Int32(HAKO_EVENT_HOOKS.rawValue): return .hooks
        case Int32(HAKO_EVENT_CREATED.rawValue): return .created
        default: throw HakoError(.failed, "unexpected report \(ev) of the container's init")
        }
    }

    /// Answers a hooks report with the state JSON the container's own
    /// createContainer and startContainer hooks read; runs to the next report.
    public func proceed(createState: [UInt8], startState: [UInt8]) throws -> Event {
        var msg = le32(UInt32(createState.count)) + createState + le32(UInt32(startState.count)) + startState
        var fail = hako_failure()
        let ev = msg.withUnsafeMutableBytes { hako_launch_continue(&launch, $0.baseAddress, $0.count, &fail) }
        guard ev >= 0 else { live = false; throw StartFailure(fail) }
        return try Self.event(ev)
    }

    /// The terminal's master side (a terminal init sends it before any report).
    public func takeTerminal() throws -> FileDescriptor {
        let fd = hako_launch_take_terminal(&launch)
        if fd < 0 { throw SystemError("receive the container's terminal") }
        return FileDescriptor(fd)
    }

    /// Kills and reaps the init.
    public func abort() {
        guard live else { return }
        hako_launch_abort(&launch)
        live = false
    }

    /// Lets the init go on alone (closes the channels to it); the pidfd stays.
    public func release() {
        guard live else { return }
        hako_launch_release(&launch)
        live = false
    }

    /// Hands the pidfd to the caller (who closes it).
    public func takePidfd() -> FileDescriptor? {
        let fd = launch.pidfd
        launch.pidfd = -1
        return fd >= 0 ? FileDescriptor(fd) : nil
    }
}

extension StartFailure {
    public init(_ f: hako_failure) {
        let detail = withUnsafeBytes(of: f.detail) { p in String(decoding: p.prefix { $0 != 0 }, as: UTF8.self) }
        self.init(stage: f.stage, errno: f.err, detail: detail)
    }
}
