#if canImport(Glibc)
import Glibc
#endif
import HakoBuild
import HakoEngine
import HakoSystem
import Synchronization

/// `hako build --progress tty` (and `auto` on a terminal): BuildKit's shape.
/// The running step is one line with its clock, redrawn in place ten times a
/// second, and under it the last lines of its output; when the step ends its
/// line is written for good ("=> STEP 2/5: RUN make   3.4s", "=> CACHED …")
/// and its output is cleared. A failed step's whole output (its last 64 KiB)
/// is printed after the display, so the error is not lost with the redraws.
final class BuildProgressTTY: @unchecked Sendable {
    private struct Step {
        var title: String
        var started: Double
        var cached = false
    }

    private struct State {
        var step: Step?
        /// The running step's output, its last 64 KiB; split into lines to draw.
        var output: [UInt8] = []
        /// Lines of the live area on the screen (the step line and its tail).
        var drawn = 0
        var stopped = false
    }

    static let tailLines = 6
    static let keptOutput = 64 << 10

    private let fd: Int32
    private let state = Mutex(State())
    private var ticker: pthread_t?

    init(fd: Int32) {
        self.fd = fd
    }

    /// Whether `--progress` asks for this display on `fd`.
    static func wanted(_ progress: String, fd: Int32) -> Bool {
        guard progress == "tty" || progress == "auto" else { return false }
        let term = getenv("TERM").map { String(cString: $0) } ?? "dumb"
        return isatty(fd) == 1 && term != "dumb"
    }

    func start() {
        var t = pthread_t()
        let box = Unmanaged.passRetained(self).toOpaque()
        if pthread_create(&t, nil, { raw in
            guard let raw else { return nil }
            let view = Unmanaged<BuildProgressTTY>.fromOpaque(raw).takeRetainedValue()
            // Bounded by the build: finish() stops it.
            while true {
                usleep(100_000)
                let running = view.state.withLock { s -> Bool in
                    guard !s.stopped else { return false }
                    view.redraw(&s)
                    return true
                }
                if !running { return nil }
            }
        }, box) == 0 {
            ticker = t
        } else {
            Unmanaged<BuildProgressTTY>.fromOpaque(box).release()
        }
    }

    func handle(_ event: BuildEvent) {
        state.withLock { s in
            switch event {
            case .step(let title):
                settle(&s, mark: nil)
                s.step = Step(title: title, started: monotonicSeconds())
                s.output = []
                redraw(&s)
            case .cached:
                s.step?.cached = true
                settle(&s, mark: nil)
            case .done:
                settle(&s, mark: nil)
            case .note(let n):
                above(&s, "hako: note: \(n)")
            case .output(_, let bytes):
                s.output += bytes
                if s.output.count > BuildProgressTTY.keptOutput { s.output.removeFirst(s.output.count - BuildProgressTTY.keptOutput) }
                redraw(&s)
            }
        }
    }

    /// Ends the display: the running step settles as failed (its output
    /// printed whole) or done; the clock stops.
    func finish(failed: Bool) {
        state.withLock { s in
            if failed, s.step != nil {
                let output = s.output
                settle(&s, mark: "ERROR")
                if !output.isEmpty {
                    var text = output
                    if text.last != UInt8(ascii: "\n") { text.append(UInt8(ascii: "\n")) }
                    write(String(decoding: text, as: UTF8.self))
                }
            } else {
                settle(&s, mark: nil)
            }
            s.stopped = true
        }
        if let t = ticker { pthread_join(t, nil) }
        ticker = nil
    }

    // MARK: - drawing (under the lock)

    /// The running step's line written for good; the live area cleared.
    private func settle(_ s: inout State, mark: String?) {
        guard let step = s.step else { return }
        let label = mark.map { "\($0) " } ?? (step.cached ? "CACHED " : "")
        let line = fit("=> \(label)\(step.title)", clock: step.cached ? "" : seconds(monotonicSeconds() - step.started))
        write(clearLive(&s) + line + "\n")
        s.step = nil
        s.output = []
    }

    /// A line printed above the live area, which is drawn again under it.
    private func above(_ s: inout State, _ line: String) {
        write(clearLive(&s) + String(line.prefix(width)) + "\n")
        redraw(&s)
    }

    private func redraw(_ s: inout State) {
        guard let step = s.step else { return }
        var out = clearLive(&s)
        var lines = [fit("=> \(step.title)", clock: seconds(monotonicSeconds() - step.started))]
        for l in tail(s.output) { lines.append("\u{1b}[2m" + String(("  " + l).prefix(width)) + "\u{1b}[0m") }
        out += lines.joined(separator: "\n") + "\n"
        s.drawn = lines.count
        write(out)
    }

    /// Back to the first line of the live area, erased to the end of the screen.
    private func clearLive(_ s: inout State) -> String {
        defer { s.drawn = 0 }
        return s.drawn > 0 ? "\u{1b}[\(s.drawn)A\r\u{1b}[J" : "\r\u{1b}[J"
    }

    /// The last lines of a step's output, without control characters (they
    /// would move the cursor under the display's feet).
    private func tail(_ output: [UInt8]) -> [String] {
        let text = String(decoding: output, as: UTF8.self)
        let lines = text.split(whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }).suffix(BuildProgressTTY.tailLines)
        return lines.map { String($0.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7f || $0 == "\t" }.map(Character.init)) }
    }

    /// The title cut to the terminal's width, the clock right-aligned.
    private func fit(_ title: String, clock: String) -> String {
        let room = max(10, width - clock.count - 1)
        let t = title.count > room ? String(title.prefix(room - 1)) + "…" : title
        return clock.isEmpty ? t : t + String(repeating: " ", count: max(1, width - t.count - clock.count)) + clock
    }

    private var width: Int {
        if let size = RawTerminal.size(of: fd), size.cols > 20 { return Int(size.cols) - 1 }
        return 79
    }

    private func seconds(_ s: Double) -> String {
        let tenths = Int((max(0, s) * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)s"
    }

    private func write(_ text: String) {
        AttachSession.writeAll(fd, Array(text.utf8))
    }
}
