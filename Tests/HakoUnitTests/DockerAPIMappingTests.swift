#if canImport(Glibc)
import Glibc
#endif
@testable import HakoDockerAPI
import HakoEngine
import HakoSystem
import Testing

/// The pure parts of the Docker API service: the create body → ContainerSpec
/// mapping, request targets, the multiplexed stream's frames, times.
struct DockerAPIMappingTests {
    func options(_ json: String) throws -> ContainerSpec {
        try CreateMapping.spec(try JSON.parse(json), name: "web")
    }

    @Test func createBodyBecomesATypedSpec() throws {
        let o = try options("""
        {"Image":"busybox:test","Cmd":["httpd","-f"],"Entrypoint":["/bin/sh","-c"],"Env":["A=1","FROM_CALLER"],
         "Labels":{"com.docker.compose.project":"p"},"Tty":true,"OpenStdin":true,"ExposedPorts":{"80/tcp":{}},
         "Volumes":{"/data":{},"/cache":{}},
         "HostConfig":{"Binds":["vol:/data:rw"],"PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"}],"53/udp":[{"HostIp":"127.0.0.1","HostPort":""}]},
           "RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3},"NetworkMode":"p_default","Memory":67108864,"NanoCpus":500000000,
           "CapDrop":["NET_RAW"],"Tmpfs":{"/run":"size=1m"},"LogConfig":{"Type":"json-file","Config":{"max-size":"1m"}},"Init":true,"ShmSize":1048576,
           "Mounts":[{"Type":"tmpfs","Target":"/scratch","TmpfsOptions":{"SizeBytes":4096,"Mode":448}}]},
         "NetworkingConfig":{"EndpointsConfig":{"p_default":{"Aliases":["web"]}}}}
        """)
        #expect(o.image == "busybox:test" && o.name == "web")
        #expect(o.process.entrypoint == ["/bin/sh", "-c"] && o.process.command == ["httpd", "-f"], "Docker's arrays as they are")
        #expect(o.process.env == ["A=1"], "a bare KEY would take the service's own environment")
        #expect(o.labels == ["com.docker.compose.project": "p"] && o.process.tty && o.process.openStdin)
        #expect(o.mounts.map(\.target) == ["/data", "/cache", "/scratch", "/run"], "Config.Volumes under a bind is not a second mount")
        #expect(o.mounts[0].kind == .volume && o.mounts[0].source == "vol" && o.mounts[1].anonymous)
        #expect(o.mounts[2].kind == .tmpfs && o.mounts[2].tmpfsSize == 4096 && o.mounts[2].tmpfsMode == 0o700)
        #expect(o.mounts[3].tmpfsSize == 1 << 20)
        #expect(Set(o.networking.ports.map(\.description)) == ["0.0.0.0:8080->80/tcp", "127.0.0.1:0->53/udp"])
        #expect(o.restart == .onFailure(maxRetries: 3) && o.network == .bridge && o.networking.network == "p_default" && o.networking.aliases == ["web"])
        #expect(o.resources.memory == 67_108_864 && o.resources.nanoCPUs == 500_000_000 && o.isolation.capDrop == ["NET_RAW"])
        #expect(o.log.maxSize == 1 << 20 && o.process.initProcess && o.shmSize == 1 << 20 && o.expose == ["80/tcp"])
    }

    @Test func limitsComeAsNumbers() throws {
        let l = try CreateMapping.limits(try JSON.parse("{\"CpuQuota\":50000,\"CpuPeriod\":100000,\"PidsLimit\":-5,\"MemorySwap\":-1,\"CpuShares\":512}"))
        #expect(l.nanoCPUs == 500_000_000 && l.pidsLimit == -1 && l.memorySwap == -1 && l.cpuShares == 512)
        #expect(throws: HakoError.self) { try CreateMapping.limits(try JSON.parse("{\"CpusetCpus\":\"x\"}")) }
    }

    @Test func unsupportedFieldsAreRefusedByName() throws {
        for (body, field) in [("{\"Image\":\"b\",\"HostConfig\":{\"VolumesFrom\":[\"x\"]}}", "VolumesFrom"),
                              ("{\"Image\":\"b\",\"HostConfig\":{\"NetworkMode\":\"container:x\"}}", "NetworkMode"),
                              ("{\"Image\":\"b\",\"HostConfig\":{\"LogConfig\":{\"Type\":\"syslog\"}}}", "LogConfig"),
                              ("{\"Image\":\"b\",\"Healthcheck\":{\"Test\":[\"CMD\",\"true\"]}}", "Healthcheck"),
                              ("{\"Cmd\":[\"true\"]}", "Config cannot be empty")] {
            do {
                _ = try options(body)
                Issue.record("accepted \(body)")
            } catch let e as APIError {
                #expect(e.status == 400 && e.message.contains(field), "\(e.message)")
            }
        }
        // The default network's names and an empty command leave the engine's defaults.
        let o = try options("{\"Image\":\"b\",\"Cmd\":[],\"HostConfig\":{\"NetworkMode\":\"default\"},\"NetworkingConfig\":{\"EndpointsConfig\":{\"default\":{}}}}")
        #expect(o.process.command == nil && o.networking.network == nil && o.network == .bridge)
    }

    @Test func targetsFramesAndTimes() {
        let (path, query) = HTTPConnection.splitTarget("/v1.41/images/create?fromImage=127.0.0.1%3A5000%2Ft%2Fb&tag=v+1&x")
        #expect(path == "/v1.41/images/create" && query["fromImage"] == ["127.0.0.1:5000/t/b"] && query["tag"] == ["v 1"] && query["x"] == [""])
        #expect(StreamFrame.encode(2, Array("hi".utf8)) == [2, 0, 0, 0, 0, 0, 0, 2, 104, 105])
        #expect(DockerAPI.timestamp("1700000000.5") == Timestamp(seconds: 1_700_000_000, nanoseconds: 500_000_000))
        #expect(DockerAPI.timestamp("1700000000") == Timestamp(seconds: 1_700_000_000))
        #expect(DockerAPI.timestamp("soon") == nil)
        #expect(DockerAPI.humanDuration(0.2) == "Less than a second" && DockerAPI.humanDuration(90) == "About a minute" && DockerAPI.humanDuration(7200) == "2 hours")
        #expect(APIVersion("1.41") == APIVersion.served && (APIVersion("1.50").map { $0 > APIVersion.served } ?? false) && APIVersion("v1") == nil)
    }

    /// A streamed body (archive PUT, image load) is read from the connection
    /// as the handler asks, chunked or not, and the next request on the
    /// connection is found after it.
    @Test func streamedBodiesAreReadFromTheConnection() throws {
        var pair: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        let client = FileDescriptor(pair[1])
        let payload = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
        var all: [UInt8] = bytes("PUT /v1.41/containers/x/archive?path=/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        all += bytes("1000;ext=1\r\n")
        all += payload[0..<4096]
        all += bytes("\r\n" + String(payload.count - 4096, radix: 16) + "\r\n")
        all += payload[4096...]
        all += bytes("\r\n0\r\n\r\n")
        all += bytes("POST /images/load HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
        all += bytes("GET /_ping HTTP/1.1\r\n\r\n")
        let sent = all
        // The writer runs beside the reader: the whole stream is larger than the socket buffers.
        Thread.detach {
            sent.withUnsafeBytes { b in
                var off = 0
                while off < b.count, let base = b.baseAddress {
                    let n = Glibc.send(client.rawValue, base + off, b.count - off, Int32(MSG_NOSIGNAL))
                    if n <= 0 { break }
                    off += n
                }
            }
        }
        let c = HTTPConnection(fd: FileDescriptor(pair[0]), limits: HTTPLimits())
        func readAll() throws -> [UInt8] {
            var out: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 3000)
            while true {
                let n = try buf.withUnsafeMutableBytes { try c.body().read(into: $0) }
                if n == 0 { return out }
                out += buf[0..<n]
            }
        }
        let first = try #require(try c.readRequest(streamsBody: DockerAPI.streamsBody))
        #expect(first.method == "PUT" && first.body.isEmpty)
        #expect(try readAll() == payload)
        let second = try #require(try c.readRequest(streamsBody: DockerAPI.streamsBody))
        #expect(second.path == "/images/load" && second.body.isEmpty)
        #expect(try readAll() == Array("hello".utf8))
        let third = try #require(try c.readRequest(streamsBody: DockerAPI.streamsBody))
        #expect(third.path == "/_ping" && c.streamedBody == .none && c.keepAlive)
    }

    @Test func restartPolicies() throws {
        #expect(try CreateMapping.restartPolicy(try JSON.parse("{\"Name\":\"on-failure\",\"MaximumRetryCount\":3}")) == .onFailure(maxRetries: 3))
        #expect(try CreateMapping.restartPolicy(try JSON.parse("{\"Name\":\"always\",\"MaximumRetryCount\":0}")) == .always)
        #expect(try CreateMapping.restartPolicy(try JSON.parse("{\"Name\":\"\",\"MaximumRetryCount\":0}")) == nil)
        #expect(throws: APIError.self) { try CreateMapping.restartPolicy(try JSON.parse("{\"Name\":\"sometimes\"}")) }
    }
}
