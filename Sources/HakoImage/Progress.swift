import HakoSystem

/// What a pull, push or load tells whoever shows progress.
public enum ProgressEvent: Sendable, Equatable {
    /// A line of its own ("latest: Pulling from library/busybox").
    case status(String)
    /// One layer's state: `id` is the short digest Docker shows (12 hex digits).
    case layer(id: String, status: LayerStatus, current: Int64, total: Int64)
}

public enum LayerStatus: String, Sendable, Equatable {
    case waiting = "Waiting"
    case exists = "Already exists"
    case downloading = "Downloading"
    case extracting = "Extracting"
    case complete = "Pull complete"
    case preparing = "Preparing"
    case pushing = "Pushing"
    case pushed = "Pushed"
    case layerExists = "Layer already exists"
    case loading = "Loading layer"
    case loaded = "Loaded"

    /// Whether the layer is done (no more events follow for it).
    public var isFinal: Bool {
        switch self {
        case .exists, .complete, .pushed, .layerExists, .loaded: return true
        default: return false
        }
    }
}

/// Receives progress events, possibly from several threads at once.
public protocol ProgressSink: Sendable {
    func report(_ event: ProgressEvent)
}

/// Counts bytes as they pass and reports them for one layer; gives up
/// when the operation is cancelled or more bytes arrive than announced.
final class ProgressSource: ByteSource {
    private let source: any ByteSource
    private let id: String
    private let total: Int64
    private let sink: (any ProgressSink)?
    private let cancel: CancelFlag?
    private let status: LayerStatus
    private(set) var count: Int64 = 0
    private var reported: Int64 = 0

    init(_ source: any ByteSource, id: String, total: Int64, status: LayerStatus, sink: (any ProgressSink)?, cancel: CancelFlag?) {
        self.source = source
        self.id = id
        self.total = total
        self.status = status
        self.sink = sink
        self.cancel = cancel
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if cancel?.isSet == true { throw ImageError.corrupt("cancelled") }
        let n = try source.read(into: buffer)
        count += Int64(n)
        if total >= 0 && count > total {
            throw ImageError.invalidManifest("blob \(id) is larger than the \(total) bytes its manifest announces")
        }
        // At most every 256 KiB, and at the end.
        if let sink, count - reported >= 256 << 10 || (n == 0 && count != reported) {
            reported = count
            sink.report(.layer(id: id, status: status, current: count, total: total))
        }
        return n
    }
}
