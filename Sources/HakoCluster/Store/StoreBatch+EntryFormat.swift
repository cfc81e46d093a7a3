import HakoSystem

/// What a coordinator reads, as it states it in the replicated store (meta
/// `coordinator_reads.<raft id>`): the newest log entry format and the newest
/// database schema (a snapshot is the database's image). The leader writes
/// the newest format every member reads (`RaftReplica.writeFormat`); a
/// member that has not stated it (a hako from before the statements, or one
/// whose statement is not committed yet) is taken to read format 1, which
/// every hako reads.
public struct CoordinatorReads: Codable, Sendable, Equatable {
    public var entryFormat: UInt8
    public var schema: Int64
    public init(entryFormat: UInt8, schema: Int64) {
        self.entryFormat = entryFormat
        self.schema = schema
    }

    public static let metaPrefix = "coordinator_reads."
    public static func metaKey(_ id: UInt64) -> String { metaPrefix + String(id) }
    /// What a member that said nothing is taken to read.
    public static let unstated = CoordinatorReads(entryFormat: 1, schema: 1)

    public var encoded: String { "\(entryFormat) \(schema)" }
    public static func decode(_ text: String) -> CoordinatorReads? {
        let parts = text.split(separator: " ")
        guard parts.count == 2, let f = UInt8(parts[0]), f >= 1, let s = Int64(parts[1]), s >= 1 else { return nil }
        return CoordinatorReads(entryFormat: f, schema: s)
    }
}

/// The formats a coordinator writes and reads, for coordinators of two hako
/// versions in one cluster (`StoreBatch+Entry.swift` has the formats).
extension StoreBatch {
    /// The format byte of an entry, or nil when it is not a store batch.
    static func entryFormat(of bytes: UnsafeRawBufferPointer) -> UInt8? {
        guard bytes.count >= 4, bytes[0] == entryMagic[0], bytes[1] == entryMagic[1], bytes[2] == entryMagic[2] else { return nil }
        return bytes[3]
    }

    /// The entry in `format`: this hako's own (`entryVersion`), format 2
    /// (JSON), or format 1 (every task with its whole spec), which every
    /// hako reads — what a leader of the oldest Raft-capable hako writes.
    func encodedEntry(format: UInt8) throws(ClusterError) -> [UInt8] {
        switch format {
        case StoreBatch.entryVersion:
            return try encodedEntry()
        case 2:
            return try encodedEntryFormat2()
        case 1:
            var bytes = StoreBatch.entryMagic + [1]
            do { bytes += try Wire.encodeJSON(self) } catch { throw .store("cannot encode a log entry: \(error)") }
            while bytes.count % 8 != 0 { bytes.append(0x20) }
            return bytes
        default:
            throw .store("this hako writes log entries of format 1 to \(StoreBatch.entryVersion), not \(format)")
        }
    }
}
