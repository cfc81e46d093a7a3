import Foundation
@testable import HakoCluster
import HakoSystem
import Testing

/// Secrets and configs: the AEAD, the store (no plaintext on disk), the
/// protocol's validations, removal while in use, and delivery only to the
/// node that runs a task using them.
@Suite struct SecretTests {
    static let plaintext = Array("hunter2-\(UUID().uuidString)".utf8)

    // MARK: the box

    @Test func sealsAndOpens() throws {
        let box = SecretBox.generate()
        let sealed = try box.seal(Self.plaintext, context: "hako-secret:a")
        #expect(try box.open(sealed, context: "hako-secret:a") == Self.plaintext)
        // Format byte, 12-byte nonce, ciphertext as long as the plaintext, 16-byte tag.
        #expect(sealed.count == 1 + 12 + Self.plaintext.count + 16)
        #expect(!contains(sealed, Self.plaintext))
        // A fresh nonce each time: the same plaintext seals differently.
        #expect(try box.seal(Self.plaintext, context: "hako-secret:a") != sealed)
    }

    @Test func wrongKeyFails() throws {
        let sealed = try SecretBox.generate().seal(Self.plaintext, context: "c")
        #expect(throws: ClusterError.self) { try SecretBox.generate().open(sealed, context: "c") }
    }

    @Test func tamperingFails() throws {
        let box = SecretBox.generate()
        let sealed = try box.seal(Self.plaintext, context: "c")
        // Every byte: the format, the nonce, the ciphertext, the tag.
        for i in sealed.indices {
            var t = sealed
            t[i] ^= 0x01
            #expect(throws: ClusterError.self) { try box.open(t, context: "c") }
        }
        #expect(throws: ClusterError.self) { try box.open(Array(sealed.dropLast()), context: "c") }
        #expect(throws: ClusterError.self) { try box.open([], context: "c") }
        // The context is authenticated: a value moved to another record does not open.
        #expect(throws: ClusterError.self) { try box.open(sealed, context: "d") }
    }

    @Test func keyFileIsPrivateAndReloads() throws {
        let dir = TempDir("secretkey")
        try FS.makeDirectories(dir.path + "/pki", mode: 0o700)
        let a = try SecretBox.loadOrCreate(dataDir: dir.path)
        let path = SecretBox.keyPath(dataDir: dir.path)
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)
        let b = try SecretBox.loadOrCreate(dataDir: dir.path)
        #expect(a.keyID == b.keyID)
        #expect(try b.open(try a.seal([1, 2, 3], context: "x"), context: "x") == [1, 2, 3])
        try "not a key\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ClusterError.self) { try SecretBox.load(path: path) }
    }

    /// A cluster from before secrets: its coordinators joined without a secrets key, and each
    /// makes one at its first start — the same one, from the CA key they share.
    @Test func coordinatorsOfAnOlderClusterDeriveOneKeyFromTheirCAKey() throws {
        let dirs = [TempDir("secretkey-a"), TempDir("secretkey-b"), TempDir("secretkey-c")]
        for (i, d) in dirs.enumerated() {
            try FS.makeDirectories(d.path + "/pki", mode: 0o700)
            try (i < 2 ? "-----BEGIN PRIVATE KEY-----\nshared\n-----END PRIVATE KEY-----\n" : "-----BEGIN PRIVATE KEY-----\nother\n-----END PRIVATE KEY-----\n")
                .write(toFile: CoordinatorPKI(dataDir: d.path).caKey, atomically: true, encoding: .utf8)
        }
        let boxes = try dirs.map { try SecretBox.loadOrCreate(dataDir: $0.path) }
        #expect(boxes[0].keyID == boxes[1].keyID, "one CA key, one secrets key")
        #expect(try boxes[1].open(try boxes[0].seal([7], context: "x"), context: "x") == [7])
        #expect(boxes[2].keyID != boxes[0].keyID, "another cluster's CA key, another secrets key")
        #expect(try SecretBox.loadOrCreate(dataDir: dirs[0].path).keyID == boxes[0].keyID, "written once, then read")
    }

    // MARK: the coordinator and its store

    func createSecret(_ f: CoreFixture, _ name: String, _ data: [UInt8] = SecretTests.plaintext, kind: SecretKind = .secret) throws -> SecretView {
        try f.admin(MessageType.secretCreate, SecretCreateRequest(kind: kind, name: name, labels: ["team": "a"], data: data), as: SecretView.self)
    }

    @Test func theDatabaseHoldsNoPlaintext() throws {
        let f = try CoreFixture()
        let v = try createSecret(f, "db-password")
        #expect(v.size == Self.plaintext.count && v.labels == ["team": "a"] && v.services.isEmpty)
        _ = try createSecret(f, "app.conf", kind: .config)
        // Every file of the coordinator's data dir but the key: the database, its WAL, the PKI.
        for path in try filesUnder(f.config.dataDir) where !path.hasSuffix("/secrets.key") {
            let bytes = try FS.readFile(path)
            #expect(!contains(bytes, Self.plaintext), "\(path) holds the plaintext")
        }
        // The events and the views name it, never its data.
        let events = try f.admin(MessageType.events, EventsRequest(follow: false, since: nil), as: EventList.self)
        #expect(!contains(Array(try Wire.encodeJSON(events)), Self.plaintext))
        #expect(!contains(Array(try Wire.encodeJSON(v)), Self.plaintext))
        // Reloaded by a new core (a restart), it still opens with the key file.
        try f.reopen()
        let r = try f.core.state.findSecret("db-password", kind: .secret)
        #expect(try r.open(with: try #require(f.core.secretBox)) == Self.plaintext)
        // With another key it does not, and says why.
        #expect(throws: ClusterError.self) { try r.open(with: SecretBox.generate()) }
    }

    @Test func namesSizesAndKinds() throws {
        let f = try CoreFixture()
        _ = try createSecret(f, "token")
        #expect(throws: ClusterError.self) { try createSecret(f, "token") }
        // Secrets and configs are separate name spaces.
        _ = try createSecret(f, "token", kind: .config)
        #expect(throws: ClusterError.self) { try createSecret(f, "-bad") }
        #expect(throws: ClusterError.self) { try createSecret(f, "a/b") }
        #expect(throws: ClusterError.self) { try createSecret(f, "empty", []) }
        #expect(throws: ClusterError.self) { try createSecret(f, "big", [UInt8](repeating: 7, count: SecretRecord.maxSize + 1)) }
        _ = try createSecret(f, "max", [UInt8](repeating: 7, count: SecretRecord.maxSize))
        let list = try f.admin(MessageType.secretList, SecretListRequest(kind: .secret), as: SecretList.self).items
        #expect(list.map(\.name) == ["max", "token"])
        let configs = try f.admin(MessageType.secretList, SecretListRequest(kind: .config), as: SecretList.self).items
        #expect(configs.map(\.name) == ["token"])
        try f.admin(MessageType.secretRemove, SecretRef(kind: .secret, ref: "max"), as: EmptyBody.self)
        #expect(throws: ClusterError.self) { try f.admin(MessageType.secretInspect, SecretRef(kind: .secret, ref: "max"), as: SecretView.self) }
    }

    @Test func referencesParseAndValidate() throws {
        let short = try SecretReference(parsing: "db", kind: .secret)
        #expect(short == SecretReference(source: "db", target: "db", uid: 0, gid: 0, mode: 0o444))
        #expect(short.path(.secret) == "/run/secrets/db")
        let long = try SecretReference(parsing: "source=db,target=pw,uid=100,gid=101,mode=0400", kind: .secret)
        #expect(long.source == "db" && long.path(.secret) == "/run/secrets/pw" && long.uid == 100 && long.gid == 101 && long.mode == 0o400)
        let config = try ConfigReference(parsing: "src=app,target=/etc/app.conf", kind: .config)
        #expect(config.path(.config) == "/etc/app.conf")
        #expect(try ConfigReference(parsing: "app", kind: .config).path(.config) == "/app")
        for bad in ["", "target=x", "source=db,mode=999", "source=db,mode=abc", "source=db,uid=-1", "source=db,colour=red", "source=db,target="] {
            #expect(throws: ClusterError.self, "\(bad)") { try SecretReference(parsing: bad, kind: .secret) }
        }
        var spec = ServiceSpec(name: "s", image: "busybox")
        spec.secrets = [try SecretReference(parsing: "source=db,target=../etc/passwd", kind: .secret)]
        #expect(throws: ClusterError.self) { try spec.validate() }
        spec.secrets = [SecretReference(source: "a", target: "x"), SecretReference(source: "b", target: "x")]
        #expect(throws: ClusterError.self) { try spec.validate() }
        spec.secrets = [SecretReference(source: "a", target: "x")]
        spec.configs = [ConfigReference(source: "c", target: "/run/secrets/x")]
        #expect(throws: ClusterError.self) { try spec.validate() }
        spec.configs = [ConfigReference(source: "c", target: "/etc/c.conf")]
        try spec.validate()
        // An older spec without the fields decodes with none.
        let old = try Wire.decodeJSON(ServiceSpec.self, from: Array(#"{"name":"s","image":"busybox"}"#.utf8))
        #expect(old.secrets.isEmpty && old.configs.isEmpty)
    }

    func service(_ f: CoreFixture, secrets: [String], configs: [String] = []) throws -> ServiceView {
        var spec = ServiceSpec(name: "web", image: "busybox:test")
        spec.secrets = try secrets.map { try SecretReference(parsing: $0, kind: .secret) }
        spec.configs = try configs.map { try ConfigReference(parsing: $0, kind: .config) }
        return try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: spec), as: ServiceView.self)
    }

    @Test func inUseCannotBeRemoved() throws {
        let f = try CoreFixture()
        #expect(throws: ClusterError.self) { try service(f, secrets: ["missing"]) }
        let s = try createSecret(f, "db")
        let v = try service(f, secrets: ["source=db,mode=0400"])
        #expect(v.spec.secrets.first?.id == s.id)
        do {
            try f.admin(MessageType.secretRemove, SecretRef(kind: .secret, ref: "db"), as: EmptyBody.self)
            Issue.record("a secret in use was removed")
        } catch {
            #expect("\(error)".contains("in use by service web"))
        }
        #expect(try f.admin(MessageType.secretInspect, SecretRef(kind: .secret, ref: "db"), as: SecretView.self).services == ["web"])
        // Without the service it goes.
        try f.admin(MessageType.serviceRemove, ServiceRef(service: "web"), as: EmptyBody.self)
        try f.admin(MessageType.secretRemove, SecretRef(kind: .secret, ref: s.id), as: EmptyBody.self)
    }

    /// `secret.compare`: whether candidate data is a stored one's — same or
    /// different, nothing else; by name or id, in its kind; an unknown one is
    /// not found; nothing is recorded (no event names the candidate).
    @Test func compareAnswersOnlySameOrDifferent() throws {
        let f = try CoreFixture()
        let s = try createSecret(f, "db")
        _ = try createSecret(f, "app", Array("listen 80\n".utf8), kind: .config)
        let events = try f.admin(MessageType.events, EventsRequest(follow: false, since: nil), as: EventList.self).events.count
        func compare(_ ref: String, _ data: [UInt8], kind: SecretKind = .secret) throws -> Bool {
            try f.admin(MessageType.secretCompare, SecretCompareRequest(kind: kind, ref: ref, data: data), as: SecretCompareReply.self).same
        }
        #expect(try compare("db", Self.plaintext))
        #expect(try compare(s.id, Self.plaintext))
        // The same size with one byte changed, first or last: different.
        var first = Self.plaintext, last = Self.plaintext
        first[0] ^= 0x01
        last[last.count - 1] ^= 0x80
        #expect(try !compare("db", first))
        #expect(try !compare("db", last))
        #expect(try !compare("db", Self.plaintext + [0]))
        #expect(try !compare("db", Array(Self.plaintext.dropLast())))
        #expect(try !compare("db", []))
        #expect(try compare("app", Array("listen 80\n".utf8), kind: .config))
        #expect(try !compare("app", Array("listen 81\n".utf8), kind: .config))
        // The reply is the answer alone.
        let line = try Wire.encodeJSON(SecretCompareReply(same: true))
        #expect(String(decoding: line, as: UTF8.self) == #"{"same":true}"#)
        // Unknown, or of the other kind: not found.
        let unknown: [(String, SecretKind)] = [("nope", .secret), ("app", .secret), ("db", .config)]
        for (ref, kind) in unknown {
            do {
                _ = try compare(ref, Self.plaintext, kind: kind)
                Issue.record("\(kind.rawValue) \(ref) was found")
            } catch ClusterError.wire(let code, let message) {
                #expect(code == WireCode.notFound.rawValue, "\(message)")
            }
        }
        // Only an admin certificate may ask: a node's (or none) is refused.
        let ask = try envelope(MessageType.secretCompare, SecretCompareRequest(kind: .secret, ref: "db", data: Self.plaintext))
        for peer in [PeerIdentity.node(s.id), .anonymous] {
            let answer = try decodeLine(try #require(f.core.handle(ask, from: peer, connection: 2, address: "test")))
            #expect(answer.type == MessageType.error && answer.error?.code == .unauthorized, "\(peer): \(answer.error?.message ?? "")")
        }
        #expect(try f.admin(MessageType.events, EventsRequest(follow: false, since: nil), as: EventList.self).events.count == events)
    }

    @Test func sentOnlyToTheNodeThatRunsATaskUsingIt() throws {
        let f = try CoreFixture()
        let nodes = try (1...2).map { try SimNode(f, name: "n\($0)") }
        let s = try createSecret(f, "db")
        let c = try createSecret(f, "app", Array("listen 80\n".utf8), kind: .config)
        _ = try service(f, secrets: ["db"], configs: ["app"])
        try settle(f, nodes)
        let runner = try #require(nodes.first { !$0.live.isEmpty })
        let other = try #require(nodes.first { $0.live.isEmpty })
        #expect(runner.secretData == [s.id: Self.plaintext, c.id: Array("listen 80\n".utf8)])
        #expect(other.secretData.isEmpty)
        #expect(!other.received.contains(MessageType.secretData))
        // The data comes before the assignment that needs it.
        let firstData = try #require(runner.received.firstIndex(of: MessageType.secretData))
        let firstAssign = try #require(runner.received.lastIndex(of: MessageType.assign))
        #expect(firstData < firstAssign)
    }

    /// The node forgets the data once no task of its refers to it; a new task needing it gets it again.
    @Test func sentAgainAfterTheNodeForgotIt() throws {
        let f = try CoreFixture()
        let nodes = [try SimNode(f, name: "n1")]
        let s = try createSecret(f, "db")
        _ = try service(f, secrets: ["db"])
        try settle(f, nodes)
        #expect(nodes[0].secretData[s.id] == Self.plaintext)
        try f.admin(MessageType.serviceRemove, ServiceRef(service: "web"), as: EmptyBody.self)
        try settle(f, nodes)
        #expect(nodes[0].assignment.isEmpty && nodes[0].secretData.isEmpty)
        _ = try service(f, secrets: ["db"])
        try settle(f, nodes)
        #expect(nodes[0].live.count == 1)
        #expect(nodes[0].secretData[s.id] == Self.plaintext)
    }

    @Test func rotationRollsTheTasks() throws {
        let f = try CoreFixture()
        let nodes = [try SimNode(f, name: "n1")]
        _ = try createSecret(f, "pw-v1")
        let v2 = try createSecret(f, "pw-v2", Array("second".utf8))
        let v = try service(f, secrets: ["source=pw-v1,target=pw"])
        try settle(f, nodes)
        let before = Set(nodes[0].live)
        var spec = v.spec
        spec.secrets = [SecretReference(source: "pw-v2", target: "pw")]
        let updated = try f.admin(MessageType.serviceUpdate, ServiceUpdateRequest(service: v.id, spec: spec, version: v.version), as: ServiceView.self)
        #expect(updated.version == v.version + 1 && updated.spec.secrets.first?.id == v2.id)
        try settle(f, nodes)
        try settle(f, nodes)
        #expect(!nodes[0].live.isEmpty && Set(nodes[0].live).isDisjoint(with: before))
        #expect(nodes[0].secretData[v2.id] == Array("second".utf8))
        // The old one is free again.
        try f.admin(MessageType.secretRemove, SecretRef(kind: .secret, ref: "pw-v1"), as: EmptyBody.self)
    }

    @Test func logEntriesCarrySecretsSealed() throws {
        let box = SecretBox.generate()
        var b = StoreBatch()
        b.secrets = [try SecretRecord.make(kind: .secret, name: "db", labels: [:], data: Self.plaintext, box: box, now: 1)]
        let entry = try b.encodedEntry()
        #expect(!contains(entry, Self.plaintext))
        let back = try entry.withUnsafeBytes { try StoreBatch.decode(entry: $0) }
        #expect(back.secrets == b.secrets)
        #expect(try back.secrets[0].open(with: box) == Self.plaintext)
        // An entry of a coordinator older than secrets (format 1: the bare batch) has none.
        var old = try Wire.encodeJSON(StoreBatch())
        let text = String(decoding: old, as: UTF8.self).replacingOccurrences(of: #","secrets":[]"#, with: "")
            .replacingOccurrences(of: #""removedSecrets":[],"#, with: "")
        old = StoreBatch.entryMagic + [1] + Array(text.utf8)
        #expect(!text.contains("ecrets"))
        #expect(try old.withUnsafeBytes { try StoreBatch.decode(entry: $0) }.secrets.isEmpty)
    }

    // MARK: helpers

    func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
            if Array(haystack[i..<(i + needle.count)]) == needle { return true }
        }
        return false
    }

    func filesUnder(_ dir: String) throws -> [String] {
        var out: [String] = []
        let e = FileManager.default.enumerator(atPath: dir)
        while let p = e?.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: dir + "/" + p, isDirectory: &isDir), !isDir.boolValue { out.append(dir + "/" + p) }
        }
        #expect(!out.isEmpty)
        return out
    }
}
