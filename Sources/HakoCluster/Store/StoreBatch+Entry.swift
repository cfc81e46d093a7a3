import FoundationEssentials

/// A `StoreBatch` as one Raft log entry: the magic "HKB", one byte of format
/// version, then the batch made by the synthesized Codable (padded to a
/// multiple of 8 bytes, which libraft's log format needs), so that a field
/// added to `StoreBatch` (or to the records in it) is replicated with no code
/// here. Fields a decoder does not know are ignored; a field it needs and the
/// entry lacks fails the decoding: a change of the entry's shape that older
/// coordinators cannot read bumps `entryVersion`, and a coordinator refuses a
/// format it does not know (it must be upgraded) instead of applying part of
/// an entry. Every format this hako ever wrote still decodes.
///
/// - Format 1: JSON of the batch itself, every task with its service's whole
///   spec (~1 kB a task: 5,000 placements made a 5 MB entry).
/// - Format 2: JSON of `{"batch": …, "specs": […]}`. The batch's tasks carry
///   no spec (null, `SpecOfTask`); the tasks refer to their service by id and
///   version, and the entry carries each service version its tasks run once:
///   from the batch's services when the batch changes the service, else in
///   `specs`. An entry is whole in itself — applying it reads nothing but
///   the entry — so every coordinator applies the same entry alike whatever
///   its store held before Raft. Tasks put several times in one batch (pending,
///   then assigned) travel once, as their last state: the store keeps only
///   that one.
/// - Format 3: the same `Entry` as format 2 in the binary encoding of
///   `BinaryCoder.swift` (varints, length-prefixed strings, each key name once
///   per entry) instead of JSON, zero bytes as padding: under half of format
///   2's bytes, and a fourth to a fifth of its CPU time to encode and decode.
extension StoreBatch {
    public static let entryMagic: [UInt8] = Array("HKB".utf8)
    public static let entryVersion: UInt8 = 3

    /// A service version's spec, carried once for the tasks that run it.
    struct EntrySpec: Codable {
        var serviceID: String
        var version: Int
        var spec: ServiceSpec
    }

    struct Entry: Codable {
        var batch: StoreBatch
        var specs: [EntrySpec]

        /// The batch, each task given its spec from the entry.
        func resolved() throws(ClusterError) -> StoreBatch {
            var byVersion: [String: ServiceSpec] = [:]
            for s in specs { byVersion["\(s.version)@\(s.serviceID)"] = s.spec }
            for s in batch.services { byVersion["\(s.version)@\(s.id)"] = s.spec }
            var out = batch
            for i in out.tasks.indices where out.tasks[i].spec.name.isEmpty {
                let t = out.tasks[i]
                guard let spec = byVersion["\(t.version)@\(t.serviceID)"] else {
                    throw .store("a log entry whose task \(t.id) runs service \(t.serviceID) version \(t.version), which the entry does not carry")
                }
                out.tasks[i].spec = spec
            }
            return out
        }
    }

    /// Format 2's encoder (tests write format 2 entries with it, as coordinators before format 3 did).
    static let jsonEntryEncoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.withoutEscapingSlashes]
        e.userInfo[SpecOfTask.apart] = true
        return e
    }()

    /// The batch as a log entry of the current format (3).
    public func encodedEntry() throws(ClusterError) -> [UInt8] {
        let entry = entryContent()
        // A task is about 100 bytes in format 3.
        let capacity = 1024 + entry.batch.tasks.count * 128 + entry.batch.events.count * 96
        do {
            return try BinaryEncoder(userInfo: [SpecOfTask.apart: true])
                .encode(entry, reserving: capacity, prefix: StoreBatch.entryMagic + [StoreBatch.entryVersion], padding: 8)
        } catch {
            throw .store("cannot encode a log entry: \(error)")
        }
    }

    /// The batch as a format 2 entry (JSON), as coordinators before format 3
    /// wrote it (the tests of old entries and the benchmark's comparison).
    public func encodedEntryFormat2() throws(ClusterError) -> [UInt8] {
        var bytes = StoreBatch.entryMagic + [2]
        do { bytes += try StoreBatch.jsonEntryEncoder.encode(entryContent()) } catch {
            throw .store("cannot encode a log entry: \(error)")
        }
        // JSON takes trailing spaces.
        while bytes.count % 8 != 0 { bytes.append(0x20) }
        return bytes
    }

    /// What formats 2 and 3 carry: the batch without the tasks' specs, and each service version's spec once.
    func entryContent() -> Entry {
        var batch = self
        batch.tasks = StoreBatch.lastOfEach(tasks)
        var carried = Set<String>()
        for s in batch.services { carried.insert("\(s.version)@\(s.id)") }
        var specs: [EntrySpec] = []
        for t in batch.tasks where carried.insert("\(t.version)@\(t.serviceID)").inserted {
            specs.append(EntrySpec(serviceID: t.serviceID, version: t.version, spec: t.spec))
        }
        return Entry(batch: batch, specs: specs)
    }

    public static func decode(entry bytes: UnsafeRawBufferPointer) throws(ClusterError) -> StoreBatch {
        guard bytes.count >= 4, Array(bytes[0..<3]) == entryMagic else {
            let head = bytes.prefix(8).map { String($0, radix: 16) }.joined(separator: " ")
            throw .store("a log entry that is not a store batch (\(bytes.count) bytes: \(head))")
        }
        let body = UnsafeRawBufferPointer(rebasing: bytes[4...])
        let entry: Entry
        switch bytes[3] {
        case 1:
            do { return try JSONDecoder().decode(StoreBatch.self, from: Data(body)) } catch {
                throw .store("an unreadable log entry: \(error)")
            }
        case 2:
            do { entry = try JSONDecoder().decode(Entry.self, from: Data(body)) } catch {
                throw .store("an unreadable log entry: \(error)")
            }
        case 3:
            do { entry = try BinaryDecoder().decode(Entry.self, from: body) } catch {
                throw .store("an unreadable log entry (format 3, \(bytes.count) bytes): \(error)")
            }
        default:
            throw .store("a log entry of format \(bytes[3]); this hako reads formats 1 to \(entryVersion): upgrade it")
        }
        return try entry.resolved()
    }

    /// The last record of each task id, in the order of those last records.
    static func lastOfEach(_ tasks: [TaskRecord]) -> [TaskRecord] {
        var last: [String: Int] = [:]
        for (i, t) in tasks.enumerated() { last[t.id] = i }
        guard last.count < tasks.count else { return tasks }
        return tasks.enumerated().filter { last[$0.element.id] == $0.offset }.map(\.element)
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
        b.networks = networks
        return b
    }
}
