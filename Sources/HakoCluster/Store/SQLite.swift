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

    func exec(_ sql: String) throws(ClusterError) {
        var err: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(db, sql, nil, nil, &err) != SQLITE_OK {
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
            try? exec("ROLLBACK")
            throw error
        }
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
        }
    }

    /// True when a row is ready to read; false when done.
    func step() throws(ClusterError) -> Bool {
        switch sqlite3_step(stmt) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw .store("\(db.path): \(db.message)")
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
}

enum SQLiteValue {
    case null
    case int(Int64)
    case double(Double)
    case text(String)

    static func opt(_ s: String?) -> SQLiteValue { s.map { .text($0) } ?? .null }
    static func opt(_ i: Int32?) -> SQLiteValue { i.map { .int(Int64($0)) } ?? .null }
}
