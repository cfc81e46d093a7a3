#if canImport(Glibc)
import Glibc
#endif

/// Signal names and numbers, as `kill -s` and Docker's --stop-signal accept them.
public enum Signals {
    public static let table: [(String, Int32)] = [
        ("HUP", SIGHUP), ("INT", SIGINT), ("QUIT", SIGQUIT), ("ILL", SIGILL), ("TRAP", SIGTRAP),
        ("ABRT", SIGABRT), ("IOT", SIGABRT), ("BUS", SIGBUS), ("FPE", SIGFPE), ("KILL", SIGKILL),
        ("USR1", SIGUSR1), ("SEGV", SIGSEGV), ("USR2", SIGUSR2), ("PIPE", SIGPIPE), ("ALRM", SIGALRM),
        ("TERM", SIGTERM), ("STKFLT", 16), ("CHLD", SIGCHLD), ("CONT", SIGCONT), ("STOP", SIGSTOP),
        ("TSTP", SIGTSTP), ("TTIN", SIGTTIN), ("TTOU", SIGTTOU), ("URG", SIGURG), ("XCPU", SIGXCPU),
        ("XFSZ", SIGXFSZ), ("VTALRM", SIGVTALRM), ("PROF", SIGPROF), ("WINCH", SIGWINCH),
        ("IO", SIGIO), ("POLL", SIGIO), ("PWR", SIGPWR), ("SYS", SIGSYS),
    ]

    /// "TERM", "SIGTERM", "sigterm", "15", "RTMIN+3" → number; nil when unknown.
    public static func parse(_ s: String) -> Int32? {
        if let n = Int32(s) { return (1...64).contains(n) ? n : nil }
        var name = s.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        if let hit = table.first(where: { $0.0 == name }) { return hit.1 }
        let rtmin: Int32 = 34, rtmax: Int32 = 64
        if name.hasPrefix("RTMIN") {
            let rest = name.dropFirst(5)
            if rest.isEmpty { return rtmin }
            if rest.hasPrefix("+"), let k = Int32(rest.dropFirst()), rtmin + k <= rtmax { return rtmin + k }
        }
        if name.hasPrefix("RTMAX") {
            let rest = name.dropFirst(5)
            if rest.isEmpty { return rtmax }
            if rest.hasPrefix("-"), let k = Int32(rest.dropFirst()), rtmax - k >= rtmin { return rtmax - k }
        }
        return nil
    }

    public static func name(_ n: Int32) -> String {
        table.first { $0.1 == n }.map { "SIG" + $0.0 } ?? String(n)
    }
}
