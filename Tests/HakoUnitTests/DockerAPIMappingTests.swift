@testable import HakoDockerAPI
import HakoEngine
import HakoSystem
import Testing

/// The pure parts of the Docker API service: the create body → RunOptions
/// mapping, request targets, the multiplexed stream's frames, times.
struct DockerAPIMappingTests {
    func options(_ json: String) throws -> RunOptions {
        try CreateMapping.runOptions(try JSON.parse(json), name: "web")
    }

    @Test func createBodyBecomesRunOptions() throws {
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
        #expect(o.image == "busybox:test" && o.name == "web" && o.pull.policy == .never)
        #expect(o.entrypoint == "/bin/sh" && o.command == ["-c", "httpd", "-f"])
        #expect(o.env == ["A=1"], "a bare KEY would take the service's own environment")
        #expect(o.labels == ["com.docker.compose.project=p"] && o.tty && o.interactive)
        #expect(o.storage.volumes == ["vol:/data:rw", "/cache"], "Config.Volumes under a bind is not a second mount")
        #expect(Set(o.networking.publish) == ["8080:80/tcp", "127.0.0.1::53/udp"])
        #expect(o.restart == "on-failure:3" && o.network == .bridge && o.networking.network == "p_default" && o.networking.aliases == ["web"])
        #expect(o.isolation.memory == "67108864" && o.isolation.cpus == "0.5" && o.isolation.capDrop == ["NET_RAW"])
        #expect(o.storage.tmpfs == ["/run:size=1m"] && o.storage.mounts == ["type=tmpfs,target=/scratch,tmpfs-size=4096,tmpfs-mode=700"])
        #expect(o.logOptions == ["max-size=1m"] && o.initProcess && o.shmSize == 1 << 20 && o.expose == ["80/tcp"])
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
        #expect(o.command == nil && o.networking.network == nil && o.network == .bridge)
    }

    @Test func targetsFramesAndTimes() {
        let (path, query) = HTTPConnection.splitTarget("/v1.41/images/create?fromImage=127.0.0.1%3A5000%2Ft%2Fb&tag=v+1&x")
        #expect(path == "/v1.41/images/create" && query["fromImage"] == ["127.0.0.1:5000/t/b"] && query["tag"] == ["v 1"] && query["x"] == [""])
        #expect(StreamFrame.encode(2, Array("hi".utf8)) == [2, 0, 0, 0, 0, 0, 0, 2, 104, 105])
        #expect(DockerAPI.timestamp("1700000000.5") == Timestamp(seconds: 1_700_000_000, nanoseconds: 500_000_000))
        #expect(DockerAPI.timestamp("1700000000") == Timestamp(seconds: 1_700_000_000))
        #expect(DockerAPI.timestamp("soon") == nil)
        #expect(CreateMapping.decimal(1_500_000_000, scale: 1_000_000_000) == "1.5" && CreateMapping.decimal(50_000, scale: 100_000) == "0.5")
        #expect(DockerAPI.humanDuration(0.2) == "Less than a second" && DockerAPI.humanDuration(90) == "About a minute" && DockerAPI.humanDuration(7200) == "2 hours")
        #expect(APIVersion("1.41") == APIVersion.served && (APIVersion("1.50").map { $0 > APIVersion.served } ?? false) && APIVersion("v1") == nil)
    }
}
