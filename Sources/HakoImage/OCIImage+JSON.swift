import HakoSystem

/// An image configuration read as its `Decodable` conformance reads it (the
/// same fields required, a null member absent, a member of another type
/// refused, unknown members ignored), through HakoSystem's JSON reader:
/// every `run` and `create` reads its image's configuration, and Foundation's
/// decoder spent ~0.3 ms of type metadata and conformance lookups on it.
extension OCIImage {
    /// Decodes `bytes`; a failure is the error `makeError` makes of a message
    /// that names `what` and the field at fault.
    static func decode(_ bytes: [UInt8], what: String, as makeError: (String) -> ImageError = ImageError.corrupt) throws -> OCIImage {
        let root: JSON
        do { root = try JSON.parse(bytes) } catch { throw makeError("\(what) is not valid JSON") }
        do {
            return try OCIImage(fields: try ConfigFields(root, path: ""))
        } catch let e as ConfigFields.Failure {
            throw makeError("\(what) is not valid: \(e.description)")
        }
    }

    private init(fields o: ConfigFields) throws {
        let rootfs = try o.requiredObject("rootfs")
        self.init(created: try o.string("created"), architecture: try o.requiredString("architecture"),
                  os: try o.requiredString("os"), variant: try o.string("variant"),
                  config: try o.object("config").map(ImageConfig.init(fields:)),
                  diffIDs: try rootfs.requiredArray("diff_ids").map { try $0.digest() },
                  history: try o.array("history")?.map { try History(fields: try $0.object()) })
        author = try o.string("author")
        self.rootfs.type = try rootfs.requiredString("type")
    }
}

extension OCIImage.History {
    fileprivate init(fields o: ConfigFields) throws {
        self.init(created: try o.string("created"), createdBy: try o.string("created_by"), author: try o.string("author"),
                  comment: try o.string("comment"), emptyLayer: try o.bool("empty_layer"))
    }
}

extension ImageConfig {
    fileprivate init(fields o: ConfigFields) throws {
        self.init(user: try o.string("User"), exposedPorts: try o.keys("ExposedPorts"), env: try o.strings("Env"),
                  entrypoint: try o.strings("Entrypoint"), cmd: try o.strings("Cmd"), volumes: try o.keys("Volumes"),
                  workingDir: try o.string("WorkingDir"), labels: try o.stringMap("Labels"),
                  stopSignal: try o.string("StopSignal"), healthcheck: try o.object("Healthcheck").map(HealthCheck.init(fields:)))
        shell = try o.strings("Shell")
        onBuild = try o.strings("OnBuild")
    }
}

extension HealthCheck {
    fileprivate init(fields o: ConfigFields) throws {
        let test: Test
        do { test = try HealthCheck.test(fromList: try o.strings("Test") ?? []) } catch let e as HealthCheckError {
            throw ConfigFields.Failure(path: o.name("Test"), reason: e.description)
        }
        func ns(_ key: String) throws -> Duration { .nanoseconds(try o.int64(key) ?? 0) }
        self.init(test: test, interval: try ns("Interval"), timeout: try ns("Timeout"), startPeriod: try ns("StartPeriod"),
                  startInterval: try ns("StartInterval"), retries: try o.int("Retries") ?? 0)
    }
}

/// One JSON object's members, each read with the type its field has.
private struct ConfigFields {
    struct Failure: Error, CustomStringConvertible {
        var path: String
        var reason: String
        var description: String { path.isEmpty ? reason : "\(reason) at \(path)" }
    }

    let path: String
    let members: [(String, JSON)]

    init(_ json: JSON, path: String) throws {
        guard let m = json.members else { throw Failure(path: path, reason: "expected an object") }
        self.path = path
        members = m
    }

    func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The member, nil when it is missing or null.
    func value(_ key: String) -> Element? {
        guard let v = members.last(where: { $0.0 == key })?.1, !v.isNull else { return nil }
        return Element(json: v, path: name(key))
    }

    func required(_ key: String) throws -> Element {
        guard let v = value(key) else { throw Failure(path: path, reason: "missing field \"\(key)\"") }
        return v
    }

    func string(_ key: String) throws -> String? { try value(key)?.string() }
    func requiredString(_ key: String) throws -> String { try required(key).string() }
    func bool(_ key: String) throws -> Bool? { try value(key)?.bool() }
    func int64(_ key: String) throws -> Int64? { try value(key)?.int64() }
    func int(_ key: String) throws -> Int? {
        guard let n = try int64(key) else { return nil }
        guard let i = Int(exactly: n) else { throw Failure(path: name(key), reason: "the number \(n) does not fit") }
        return i
    }
    func object(_ key: String) throws -> ConfigFields? { try value(key)?.object() }
    func requiredObject(_ key: String) throws -> ConfigFields { try required(key).object() }
    func array(_ key: String) throws -> [Element]? { try value(key)?.array() }
    func requiredArray(_ key: String) throws -> [Element] { try required(key).array() }
    func strings(_ key: String) throws -> [String]? { try array(key)?.map { try $0.string() } }

    func stringMap(_ key: String) throws -> [String: String]? {
        guard let o = try object(key) else { return nil }
        var map: [String: String] = [:]
        for (k, v) in o.members { map[k] = try Element(json: v, path: o.name(k)).string() }
        return map
    }

    /// An object whose keys are the values (ExposedPorts, Volumes), as
    /// sorted keys. The members' values (`{}`) are not read, as the decoder's
    /// empty struct reads none of them.
    func keys(_ key: String) throws -> [String]? {
        guard let o = try object(key) else { return nil }
        return Set(o.members.map(\.0)).sorted()
    }

    struct Element {
        let json: JSON
        let path: String

        func string() throws -> String {
            guard let s = json.string else { throw Failure(path: path, reason: "expected a string") }
            return s
        }
        func bool() throws -> Bool {
            guard let b = json.bool else { throw Failure(path: path, reason: "expected true or false") }
            return b
        }
        func int64() throws -> Int64 {
            guard let n = json.int64 else { throw Failure(path: path, reason: "expected an integer") }
            return n
        }
        func object() throws -> ConfigFields { try ConfigFields(json, path: path) }
        func array() throws -> [Element] {
            guard let a = json.array else { throw Failure(path: path, reason: "expected an array") }
            return a.enumerated().map { Element(json: $1, path: "\(path)[\($0)]") }
        }
        func digest() throws -> Digest {
            let s = try string()
            do { return try Digest(s) } catch { throw Failure(path: path, reason: "\(error)") }
        }
    }
}
