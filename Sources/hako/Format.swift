import HakoCLI
import FoundationEssentials
import HakoSystem

/// `--format` as docker reads it: "table" (or nothing) for the command's own
/// table, "json" for one object per line, "table TEMPLATE" for a template
/// with a header row and aligned columns, any other text a Go template
/// printed once per row. `\t` and `\n` written in the format are a tab and a
/// newline, as in docker.
enum OutputFormat {
    case table
    case json
    case template(Template, table: Bool)

    init(parsing text: String) throws {
        let t = text.trimmed
        if t.isEmpty || t == "table" { self = .table; return }
        if t == "json" { self = .json; return }
        var body = t
        var table = false
        if t.hasPrefix("table ") || t.hasPrefix("table\t") {
            table = true
            body = String(t.dropFirst(6)).trimmed
        }
        body = body.replacing("\\t", with: "\t").replacing("\\n", with: "\n")
        do {
            self = .template(try Template(body), table: table)
        } catch let e as TemplateError {
            throw HakoError(.failed, "invalid --format: \(e)")
        }
    }

    var isJSON: Bool { if case .json = self { return true } else { return false } }

    /// Prints `rows`: `table()` draws the command's own table; a template
    /// table's header names each field by `headers` (else its name in capitals).
    func print<Row: Encodable>(_ rows: [Row], headers: [String: String] = [:], table: () throws -> Void) throws {
        switch self {
        case .table:
            try table()
        case .json:
            for r in rows { Swift.print(try jsonLine(r)) }
        case .template(let t, let isTable):
            var lines: [String] = []
            let values = try rows.map(OutputFormat.value)
            if isTable, let header = try? t.render(OutputFormat.header(values.first, headers)) { lines.append(header) }
            for v in values {
                do {
                    lines.append(try t.render(v))
                } catch let e as TemplateError {
                    throw HakoError(.failed, "--format: \(e)")
                }
            }
            if isTable {
                for l in TabWriter.align(lines) { Swift.print(l) }
            } else {
                for l in lines { Swift.print(l) }
            }
        }
    }

    /// A value as a template sees it: its JSON (keys sorted, as docker's maps are).
    static func value<T: Encodable>(_ v: T) throws -> TemplateValue {
        try TemplateValue(json: try jsonLine(v))
    }

    /// The header row's data: every field of a row named in capitals.
    static func header(_ row: TemplateValue?, _ names: [String: String]) -> TemplateValue {
        guard case .object(let o)? = row else { return .object([]) }
        return .object(o.keys.map { k in
            if case .object? = o[k] { return (k, header(o[k], [:])) }
            return (k, .string(names[k] ?? capitals(k)))
        })
    }

    /// "RunningFor" → "RUNNING FOR", "ID" → "ID".
    static func capitals(_ name: String) -> String {
        var out = ""
        var previous: Character?
        for c in name {
            if c.isUppercase, let p = previous, p.isLowercase { out += " " }
            out += c.uppercased()
            previous = c
        }
        return out
    }
}

/// Go's tabwriter as docker configures it for `table` formats: cells padded
/// to the widest in their column plus 3, at least 20; the last cell of a line
/// is not padded.
enum TabWriter {
    static func align(_ lines: [String]) -> [String] {
        let split = lines.flatMap { $0.split(separator: "\n", omittingEmptySubsequences: false) }
            .map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        var widths: [Int] = []
        for cells in split {
            for (i, c) in cells.dropLast().enumerated() {
                if widths.count <= i { widths.append(20) }
                widths[i] = max(widths[i], c.count + 3)
            }
        }
        return split.map { cells in
            var line = ""
            for (i, c) in cells.enumerated() {
                line += i == cells.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count)
            }
            return line
        }
    }
}

/// `inspect --format`: nothing (or "json") prints the objects as one pretty
/// JSON array; a template is rendered once per object, each on its own line.
func printInspected(_ items: [any Encodable], format: String) throws {
    let f = format.trimmed
    if f.isEmpty || f == "json" {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let parts = try items.map { String(decoding: try e.encode($0), as: UTF8.self) }
        // Each object as JSONEncoder indents it, inside the array's brackets.
        print(parts.isEmpty ? "[]" : "[\n" + parts.map { "    " + $0.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\n    ") }.joined(separator: ",\n") + "\n]")
        return
    }
    guard case .template(let t, _) = try OutputFormat(parsing: f) else { return }
    for item in items {
        do { print(try t.render(try OutputFormat.value(item))) } catch let e as TemplateError { throw HakoError(.failed, "--format: \(e)") }
    }
}
