#if canImport(Glibc)
import Glibc
#endif
import HakoImage
import HakoSystem
import Synchronization

/// Shows pull, push and load progress. On a terminal: one line per layer,
/// redrawn in place (status, bar, bytes, total, rate) at most ten times a
/// second. Otherwise: a plain line whenever a layer changes state.
final class ProgressView: ProgressSink {
    private struct Layer {
        var id: String
        var status: LayerStatus
        var current: Int64
        var total: Int64
        var started: Double?
    }

    private struct State {
        var order: [String] = []
        var layers: [String: Layer] = [:]
        var drawn = 0
        var lastDraw = 0.0
    }

    private let fd: Int32
    let isTerminal: Bool
    private let quiet: Bool
    private let state = Mutex(State())

    init(fd: Int32, quiet: Bool = false) {
        self.fd = fd
        self.quiet = quiet
        isTerminal = isatty(fd) == 1 && (environmentValue("TERM") ?? "dumb") != "dumb"
    }

    func report(_ event: ProgressEvent) {
        guard !quiet else { return }
        state.withLock { s in
            switch event {
            case .status(let line):
                let settled = s.layers.values.allSatisfy { $0.status.isFinal }
                if isTerminal && s.drawn > 0 && !settled {
                    // Layers still moving: the line goes above their block.
                    var out = "\u{1b}[\(s.drawn)A\r\u{1b}[2K" + line + "\n"
                    out += block(s)
                    write(out)
                } else {
                    // Every layer done: the block is final; the line follows it.
                    if isTerminal && s.drawn > 0 { redraw(&s) }
                    s = State()
                    write(line + "\n")
                }
            case .layer(let id, let status, let current, let total):
                let now = monotonicSeconds()
                let isNew = s.layers[id] == nil
                var layer = s.layers[id] ?? Layer(id: id, status: status, current: 0, total: total, started: nil)
                if isNew { s.order.append(id) }
                let changed = isNew || layer.status != status
                if layer.started == nil && current > 0 && !status.isFinal { layer.started = now }
                layer.status = status
                layer.current = current
                layer.total = total
                s.layers[id] = layer
                if isTerminal {
                    guard changed || now - s.lastDraw >= 0.1 else { return }
                    s.lastDraw = now
                    redraw(&s)
                } else if changed {
                    write(plainLine(layer, now: now) + "\n")
                }
            }
        }
    }

    /// Draws the final state (a terminal may have skipped the last updates).
    func finish() {
        state.withLock { s in
            if isTerminal && !s.layers.isEmpty { redraw(&s) }
        }
    }

    private func redraw(_ s: inout State) {
        var out = s.drawn > 0 ? "\u{1b}[\(s.drawn)A" : ""
        out += block(s)
        s.drawn = s.order.count
        write(out)
    }

    private func block(_ s: State) -> String {
        let now = monotonicSeconds()
        var out = ""
        for id in s.order {
            guard let l = s.layers[id] else { continue }
            out += "\r\u{1b}[2K" + terminalLine(l, now: now) + "\n"
        }
        return out
    }

    private func terminalLine(_ l: Layer, now: Double) -> String {
        switch l.status {
        case .downloading, .pushing, .extracting, .loading:
            var line = "\(l.id): \(l.status.rawValue) "
            if l.total > 0 {
                let width = 30
                let done = Int(Double(width) * min(1, Double(l.current) / Double(l.total)))
                line += "[" + String(repeating: "=", count: max(0, done - 1)) + (done > 0 ? ">" : "")
                line += String(repeating: " ", count: width - max(done, 0)) + "] "
                line += "\(humanSize(l.current))/\(humanSize(l.total))"
            } else {
                line += humanSize(l.current)
            }
            if let start = l.started, now - start > 0.2 {
                line += "  \(humanSize(Int64(Double(l.current) / (now - start))))/s"
            }
            return line
        default:
            return "\(l.id): \(l.status.rawValue)"
        }
    }

    private func plainLine(_ l: Layer, now: Double) -> String {
        var line = "\(l.id): \(l.status.rawValue)"
        if l.status.isFinal, l.total > 0, l.status != .exists, l.status != .layerExists {
            line += " (\(humanSize(l.total))"
            if let start = l.started, now - start > 0.01 {
                line += " in \(formatSeconds(now - start)), \(humanSize(Int64(Double(l.total) / (now - start))))/s"
            }
            line += ")"
        } else if l.total > 0 && !l.status.isFinal && l.status != .waiting {
            line += " \(humanSize(l.total))"
        }
        return line
    }

    private func formatSeconds(_ s: Double) -> String {
        let tenths = Int((s * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)s"
    }

    private func write(_ text: String) {
        var bytes = Array(text.utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
            if n <= 0 { if n < 0 && errno == EINTR { continue }; return }
            off += n
        }
    }
}

private func environmentValue(_ key: String) -> String? {
    guard let v = getenv(key) else { return nil }
    return String(cString: v)
}
