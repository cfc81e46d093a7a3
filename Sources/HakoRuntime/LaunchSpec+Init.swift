import CHakoShim
import HakoSystem

/// MOUNT_ATTR_* bits set and cleared on a whole mount tree (mount_setattr
/// with AT_RECURSIVE): OCI's "rro", "rnosuid" … options.
public struct MountAttributes: Sendable, Equatable, Codable {
    public var set: UInt64
    public var clear: UInt64
    public init(set: UInt64, clear: UInt64) { self.set = set; self.clear = clear }

    public static let readOnly: UInt64 = 0x1
    public static let noSUID: UInt64 = 0x2
    public static let noDev: UInt64 = 0x4
    public static let noExec: UInt64 = 0x8
    public static let atimeMask: UInt64 = 0x70
    public static let relatime: UInt64 = 0x00
    public static let noatime: UInt64 = 0x10
    public static let strictatime: UInt64 = 0x20
    public static let noDirAtime: UInt64 = 0x80
    public static let noSymFollow: UInt64 = 0x20_0000
}

/// A hook the container's init runs itself (the others run in the runtime).
public struct InitHook: Sendable, Equatable {
    public enum Kind: UInt32, Sendable { case createContainer = 0, startContainer = 1 }
    public var kind: Kind
    public var path: String
    public var args: [String]
    public var env: [String]
    /// Seconds; nil: no limit.
    public var timeout: UInt32?

    public init(kind: Kind, path: String, args: [String], env: [String], timeout: UInt32?) {
        self.kind = kind; self.path = path; self.args = args; self.env = env; self.timeout = timeout
    }
}

/// What the OCI runtime (hako-runtime) asks of the init path beyond what a
/// hako container needs: runc's create/start model and the rest of config.json.
public struct InitOptions: Sendable, Equatable {
    /// Create mode: the init reports "created" and waits on this FIFO for `start`.
    public var execFifo: String?
    /// fds 3 … 3+N-1 stay open across exec (--preserve-fds).
    public var preserveFds: UInt32 = 0
    /// MS_MOVE + chroot instead of pivot_root (--no-pivot).
    public var noPivot = false
    public var domainname: String?
    /// personality(2) persona (PER_LINUX 0, PER_LINUX32 8).
    public var personality: UInt32?
    public var umask: UInt32?
    /// A new time namespace with these offsets (seconds, nanoseconds).
    public var timeOffsets: (monotonic: (Int64, Int64), boottime: (Int64, Int64))?
    public var hooks: [InitHook] = []
    /// Stop before pivot_root for the runtime's prestart/createRuntime hooks; the
    /// answer carries the state the container's own hooks read.
    public var hookSync = false
    /// SECCOMP_FILTER_FLAG_* for seccomp(2).
    public var seccompFlags: UInt32 = 0
    /// Join a new session keyring of this name (runc's default; --no-new-keyring: nil).
    public var keyring: String?

    public init() {}

    public static func == (a: InitOptions, b: InitOptions) -> Bool {
        var x = RecordWriter(), y = RecordWriter()
        x.initOptions(a)
        y.initOptions(b)
        return x.bytes == y.bytes
    }
}

extension RecordWriter {
    mutating func initOptions(_ o: InitOptions) {
        if let f = o.execFifo { string(HAKO_T_EXEC_FIFO, f) }
        if o.preserveFds > 0 { u32(HAKO_T_PRESERVE_FDS, o.preserveFds) }
        if o.noPivot { empty(HAKO_T_NO_PIVOT) }
        if let d = o.domainname { string(HAKO_T_DOMAINNAME, d) }
        if let p = o.personality { u32(HAKO_T_PERSONALITY, p) }
        if let u = o.umask { u32(HAKO_T_UMASK, u) }
        if let t = o.timeOffsets {
            let v = [t.monotonic.0, t.monotonic.1, t.boottime.0, t.boottime.1]
            raw(HAKO_T_TIME_OFFSETS, v.flatMap { le64(UInt64(bitPattern: $0)) })
        }
        for h in o.hooks {
            var b = le32(h.kind.rawValue) + le32(h.timeout ?? 0) + le32(UInt32(h.args.count))
            for s in [h.path] + h.args + h.env { b += Array(s.utf8) + [0] }
            raw(HAKO_T_HOOK, b)
        }
        if o.hookSync { empty(HAKO_T_HOOK_SYNC) }
        if o.seccompFlags != 0 { u32(HAKO_T_SECCOMP_FLAGS, o.seccompFlags) }
        if let k = o.keyring { string(HAKO_T_KEYRING, k) }
    }
}
