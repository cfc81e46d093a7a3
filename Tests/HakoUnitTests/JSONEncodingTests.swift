import Foundation
@testable import HakoEngine
import HakoImage
import HakoNetwork
import HakoRuntime
import HakoSecurity
import HakoSystem
import Testing

/// hako's records are written by HakoSystem's `JSONEncoding`, read by
/// Foundation's decoder: the text must be what Foundation's encoder writes
/// (the same JSON tree), and read back to the same value.
@Suite struct JSONEncodingTests {
    struct Inner: Codable, Equatable { var a: Int8; var b: [UInt16]; var c: String? }
    enum Choice: Codable, Equatable { case plain, one(String), two(x: Int, y: [Inner]) }
    enum Raw: String, Codable { case up, down }
    final class Base: Codable { var base = 1 }
    final class Derived: Codable {
        var own = "d"
        var parent = Base()
        enum CodingKeys: String, CodingKey { case own }
        init() {}
        required init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            own = try c.decode(String.self, forKey: .own)
            parent = try Base(from: c.superDecoder())
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(own, forKey: .own)
            try parent.encode(to: c.superEncoder())
        }
    }
    struct Everything: Codable {
        var text = "q\"uo\\te / é 😀 \u{1} \n"
        var flags = [true, false]
        var small: Int8 = -128, big: UInt64 = .max, low: Int64 = .min, int = 0, uint: UInt32 = 7
        var doubles: [Double] = [1.5, 2, -0.25, 1e20, 123456.789, 0]
        var floats: [Float] = [0.5, 0.1, 3.4e38, -2]
        var none: String? = nil
        var nested = [[1, 2], [], [3]]
        var byString = ["b": Inner(a: 1, b: [2], c: nil), "a": Inner(a: -1, b: [], c: "x")]
        var byInt = [3: "three", -1: "minus one"]
        var byRaw: [Raw: Int] = [.up: 1]
        var choices: [Choice] = [.plain, .one("o"), .two(x: 2, y: [Inner(a: 0, b: [1], c: "c")])]
        var raw = Raw.down
        var derived = Derived()
        var empty: [String: Int] = [:]
    }

    func foundationTree<T: Encodable>(_ v: T) throws -> JSON {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return try JSON.parse(Array(try e.encode(v)))
    }

    @Test func writesWhatFoundationWrites() throws {
        let v = Everything()
        let mine = try JSONEncoding().tree(v)
        #expect(mine == (try foundationTree(v)))
        // The text parses back to the same tree, and Foundation reads it.
        let text = try JSONEncoding().encode(v)
        #expect(try JSON.parse(text) == mine)
        let back = try JSONDecoder().decode(Everything.self, from: Data(text))
        #expect(back.text == v.text && back.big == .max && back.low == .min && back.doubles == v.doubles && back.floats == v.floats)
        #expect(back.byString == v.byString && back.byInt == v.byInt && back.choices == v.choices && back.derived.parent.base == 1)
        // Sorted keys: the same value always gives the same bytes.
        #expect(String(decoding: try JSONEncoding().encode(["b": 1, "a": 2, "c": 3]), as: UTF8.self) == #"{"a":2,"b":1,"c":3}"#)
    }

    @Test func refusesWhatIsNotANumber() {
        #expect(throws: JSONEncoding.Failure.self) { try JSONEncoding().encode(["x": [1, Double.nan]]) }
        #expect(throws: JSONEncoding.Failure.self) { try JSONEncoding().encode(Double.infinity) }
    }

    /// A container's record with every part set, as `commit` writes it.
    @Test func aContainersRecordReadsBackTheSame() throws {
        let c = try Self.everyPartOfAContainersRecord()
        let mine = try JSONEncoding().tree(c)
        #expect(mine == (try foundationTree(c)))
        #expect(try JSONDecoder().decode(ContainerConfig.self, from: Data(try JSONEncoding().encode(c))) == c)
    }

    static func everyPartOfAContainersRecord() throws -> ContainerConfig {
        var c = ContainerConfig(id: "abc", name: "web", created: Timestamp.now(), image: "busybox", imageID: "0", layerDirs: ["/l/1", "/l/2"],
                                args: ["sh", "-c", "echo \"hi\""], entrypoint: ["/init"], cmd: ["sh"], env: ["A=1", "B=é"], workingDir: "/srv",
                                user: "1000:1000", hostname: "abc", labels: ["com.example": "x", "empty": ""],
                                tty: true, openStdin: true, autoRemove: true, restartPolicy: "on-failure:3", pidMode: .host, utsMode: .private,
                                ipcMode: .private, cgroupnsMode: .host, networkMode: .bridge, stopSignal: 3, stopTimeout: 20,
                                logMaxSize: 1 << 20, logMaxFiles: 3, cgroupParent: "hako")
        var iso = IsolationConfig()
        iso.limits.memory = 64 << 20
        iso.limits.nanoCPUs = 500_000_000
        iso.capAdd = ["NET_ADMIN"]
        iso.seccomp = .profile(SeccompProfile(defaultAction: "SCMP_ACT_ERRNO", syscalls: [.init(["read", "write"])]))
        iso.sysctls = [.init(key: "net.ipv4.ip_forward", value: "1")]
        iso.oomScoreAdj = -500
        c.isolation = iso
        var net = ContainerNetworking()
        net.networks = [NetworkJoin(name: "front", ip: IPv4Address(0x0a00_0005), aliases: ["db"])]
        net.ports = [PortBinding(proto: .tcp, hostIP: nil, hostPort: 8080, containerPort: 80)]
        net.extraHosts = [.init(name: "h", address: "host-gateway")]
        c.networking = net
        var storage = ContainerStorage()
        var m = MountRequest(kind: .bind, source: "/srv/site", target: "/www")
        m.readOnly = true
        m.propagation = .rslave
        storage.mounts = [m, MountRequest(kind: .tmpfs, source: "", target: "/tmp")]
        c.storage = storage
        c.shmSize = 128 << 20
        c.groupAdd = ["audio"]
        c.initProcess = true
        c.logAttributeOptions = ["tag": "{{.Name}}"]
        c.healthCheck = HealthCheck(test: .shell("true"), interval: .seconds(2), retries: 3)
        return c
    }
}
