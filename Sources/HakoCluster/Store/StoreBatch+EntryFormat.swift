import HakoSystem

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
