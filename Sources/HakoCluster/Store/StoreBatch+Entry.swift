import FoundationEssentials

/// A `StoreBatch` as one Raft log entry: the magic "HKB", one byte of format
/// version, then the batch as JSON with its synthesized Codable (and spaces
/// up to a multiple of 8 bytes, which libraft's log format needs), so that a
/// field added to `StoreBatch` is replicated with no code here. Fields a
/// decoder does not know are ignored; a field it needs and the entry lacks
/// fails the decoding: a change of the batch's shape that older coordinators
/// cannot read bumps `entryVersion`, and a coordinator refuses a format it does
/// not know (it must be upgraded) instead of applying part of an entry.
extension StoreBatch {
    public static let entryMagic: [UInt8] = Array("HKB".utf8)
    public static let entryVersion: UInt8 = 1

    public func encodedEntry() throws(ClusterError) -> [UInt8] {
        var bytes: [UInt8]
        do { bytes = StoreBatch.entryMagic + [StoreBatch.entryVersion] + (try Wire.encodeJSON(self)) } catch {
            throw .store("cannot encode a log entry: \(error)")
        }
        // libraft's disk format pads each entry to 8 bytes and reads it back
        // so: an entry must be a multiple of 8 long. JSON takes trailing spaces.
        while bytes.count % 8 != 0 { bytes.append(0x20) }
        return bytes
    }

    public static func decode(entry bytes: UnsafeRawBufferPointer) throws(ClusterError) -> StoreBatch {
        guard bytes.count >= 4, Array(bytes[0..<3]) == entryMagic else {
            let head = bytes.prefix(8).map { String($0, radix: 16) }.joined(separator: " ")
            throw .store("a log entry that is not a store batch (\(bytes.count) bytes: \(head))")
        }
        guard bytes[3] == entryVersion else {
            throw .store("a log entry of format \(bytes[3]); this hako reads format \(entryVersion): upgrade it")
        }
        do { return try Wire.decodeJSON(StoreBatch.self, from: Array(bytes[4...])) } catch {
            throw .store("an unreadable log entry: \(error)")
        }
    }
}

extension StoredState {
    /// Everything but the event history as one batch: the first entry a new
    /// Raft cluster commits, so that its log alone rebuilds the store made by
    /// `cluster init` before Raft existed (a coordinator that joins replays it).
    public var seedBatch: StoreBatch {
        var b = StoreBatch()
        b.meta = meta
        b.nodes = nodes
        b.services = services
        b.tasks = tasks
        b.leases = leases.sorted { $0.key < $1.key }.map { LeaseRecord(subnet: $0.key, node: $0.value) }
        b.tokens = tokens
        b.certs = certs
        b.secrets = secrets
        return b
    }
}
