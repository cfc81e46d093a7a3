import CSQLite
import HakoSystem

/// A connection to one SQLite database, used from one thread.
final class SQLiteDatabase {
    private var db: OpaquePointer?
    private var statements: [String: SQLiteStatement] = [:]
    let path: String

    init(path: String) throws(ClusterError) {
        self.path = path
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let handle else {
            let msg = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(handle)
            throw .store("cannot open the database \(path): \(msg)")
        }
        db = handle
        sqlite3_extended_result_codes(handle, 1)
    }

    deinit {
        statements.removeAll()
        sqlite3_close_v2(db)
    }

    var message: String { db.map { String(cString: sqlite3_errmsg($0)) } ?? "closed" }

    /// The primary result code of the last statement or exec that failed.
    var lastFailure: Int32 = SQLITE_OK

    /// Whether that failure is this machine's (disk full, I/O error, …) rather
    /// than the statement's: another coordinator applying the same change
    /// would not meet it, and it may pass once the machine recovers.
    var lastFailureIsLocal: Bool {
        [SQLITE_BUSY, SQLITE_LOCKED, SQLITE_NOMEM, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN,
         SQLITE_PROTOCOL, SQLITE_NOLFS].contains(lastFailure)
    }

    func exec(_ sql: String) throws(ClusterError) {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            lastFailure = rc & 0xff
            let m = err.map { String(cString: $0) } ?? message
            sqlite3_free(err)
            throw .store("\(path): \(m)")
        }
    }

    /// A prepared statement, kept for reuse.
    func prepare(_ sql: String) throws(ClusterError) -> SQLiteStatement {
        if let s = statements[sql] {
            s.reset()
            return s
        }
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK, let stmt else {
            throw .store("\(path): cannot prepare \(sql.prefix(60)): \(message)")
        }
        let s = SQLiteStatement(stmt, db: self)
        statements[sql] = s
        return s
    }

    /// Runs `body` in one transaction: all of it lands, or none.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        try exec("BEGIN IMMEDIATE")
        do {
            let r = try body()
            for st in statements.values { st.reset() }
            try exec("COMMIT")
            return r
        } catch {
            let failure = lastFailure
            try? exec("ROLLBACK")
            lastFailure = failure
            throw error
        }
    }

    /// The whole database as the bytes of its file (WAL content included).
    func serialize() throws(ClusterError) -> [UInt8] {
        var size: sqlite3_int64 = 0
        guard let p = sqlite3_serialize(db, "main", &size, 0) else { throw .store("\(path): cannot serialize: \(message)") }
        defer { sqlite3_free(p) }
        return Array(UnsafeRawBufferPointer(start: p, count: Int(size)))
    }

    /// Replaces the whole database by `image` (what `serialize` made), in one
    /// step: the image is opened in memory and copied over with the backup API.
    func replace(with image: UnsafeRawBufferPointer) throws(ClusterError) {
        guard image.count >= 100, let base = image.baseAddress else { throw .store("\(path): a database image of \(image.count) bytes") }
        var mem: OpaquePointer?
        guard sqlite3_open_v2(":memory:", &mem, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK, let mem else {
            sqlite3_close(mem)
            throw .store("cannot open an in-memory database")
        }
        defer { sqlite3_close(mem) }
        guard let copy = sqlite3_malloc64(sqlite3_uint64(image.count)) else { throw .store("out of memory") }
        copy.copyMemory(from: base, byteCount: image.count)
        // An image of a WAL database says so in its header (bytes 18, 19); in memory it is a rollback one.
        copy.storeBytes(of: 1, toByteOffset: 18, as: UInt8.self)
        copy.storeBytes(of: 1, toByteOffset: 19, as: UInt8.self)
        let flags = UInt32(SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE)
        guard sqlite3_deserialize(mem, "main", copy.assumingMemoryBound(to: UInt8.self), sqlite3_int64(image.count), sqlite3_int64(image.count), flags) == SQLITE_OK else {
            throw .store("a database image that does not open: \(String(cString: sqlite3_errmsg(mem)))")
        }
        for st in statements.values { st.reset() }
        guard let backup = sqlite3_backup_init(db, "main", mem, "main") else { throw .store("\(path): cannot replace: \(message)") }
        let rc = sqlite3_backup_step(backup, -1)
        sqlite3_backup_finish(backup)
        guard rc == SQLITE_DONE else { throw .store("\(path): cannot replace: \(message)") }
    }

    /// Rows changed through this connection since it was opened.
    var totalChanges: Int64 { Int64(sqlite3_total_changes(db)) }

    func scalarInt(_ sql: String) throws(ClusterError) -> Int64 {
        let s = try prepare(sql)
        defer { s.reset() }
        guard try s.step() else { return 0 }
        return s.int(0)
    }
}

/// One prepared statement: bind by position (1-based), step, read columns (0-based).
final class SQLiteStatement {
    private let stmt: OpaquePointer
    private unowned let db: SQLiteDatabase

    init(_ stmt: OpaquePointer, db: SQLiteDatabase) {
        self.stmt = stmt
        self.db = db
    }

    deinit { sqlite3_finalize(stmt) }

    func reset() {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
    }

    @discardableResult
    func bind(_ values: [SQLiteValue]) -> SQLiteStatement {
        for (i, v) in values.enumerated() { bind(Int32(i + 1), v) }
        return self
    }

    func bind(_ i: Int32, _ v: SQLiteValue) {
        switch v {
        case .null: sqlite3_bind_null(stmt, i)
        case .int(let x): sqlite3_bind_int64(stmt, i, x)
        case .double(let x): sqlite3_bind_double(stmt, i, x)
        case .text(let s): sqlite3_bind_text(stmt, i, s, -1, hako_sqlite_transient())
        case .blob(let b): b.withUnsafeBytes { _ = sqlite3_bind_blob64(stmt, i, $0.baseAddress, sqlite3_uint64($0.count), hako_sqlite_transient()) }
        }
    }

    /// True when a row is ready to read; false when done.
    func step() throws(ClusterError) -> Bool {
        switch sqlite3_step(stmt) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let rc:
            db.lastFailure = rc & 0xff
            throw .store("\(db.path): \(db.message)")
        }
    }

    /// Steps through to the end (INSERT, UPDATE, DELETE).
    func run(_ values: [SQLiteValue] = []) throws(ClusterError) {
        reset()
        bind(values)
        while try step() {}
    }

    func int(_ col: Int32) -> Int64 { sqlite3_column_int64(stmt, col) }
    func double(_ col: Int32) -> Double { sqlite3_column_double(stmt, col) }
    func isNull(_ col: Int32) -> Bool { sqlite3_column_type(stmt, col) == SQLITE_NULL }
    func text(_ col: Int32) -> String {
        guard let p = sqlite3_column_text(stmt, col) else { return "" }
        return String(cString: p)
    }
    func optionalText(_ col: Int32) -> String? { isNull(col) ? nil : text(col) }
    func blob(_ col: Int32) -> [UInt8] {
        // The pointer first, then the length (SQLite's documented order).
        guard let p = sqlite3_column_blob(stmt, col) else { return [] }
        let n = Int(sqlite3_column_bytes(stmt, col))
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }
}

enum SQLiteValue {
    case null
    case int(Int64)
    case double(Double)
    case text(String)
    case blob([UInt8])

    static func opt(_ s: String?) -> SQLiteValue { s.map { .text($0) } ?? .null }
    static func opt(_ i: Int32?) -> SQLiteValue { i.map { .int(Int64($0)) } ?? .null }
}
