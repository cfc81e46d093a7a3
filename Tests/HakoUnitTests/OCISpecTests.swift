@testable import HakoRuntime
import HakoSystem
import Testing

@Suite struct OCISpecTests {
    let minimal = #"{"ociVersion":"1.0.2","process":{"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"}}"#

    @Test func decodesAFullConfig() throws {
        let text = #"""
        {"ociVersion":"1.2.0",
         "process":{"terminal":true,"consoleSize":{"height":24,"width":80},"user":{"uid":1,"gid":2,"additionalGids":[5,6]},
           "args":["/bin/sh","-c","true"],"env":["PATH=/bin"],"cwd":"/tmp",
           "capabilities":{"bounding":["CAP_KILL"],"effective":["CAP_KILL"],"permitted":["CAP_KILL"]},
           "rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],"noNewPrivileges":true,"oomScoreAdj":100},
         "root":{"path":"rootfs","readonly":true},"hostname":"h",
         "mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/data","type":"bind","source":"/srv","options":["rbind","ro"]}],
         "hooks":{"prestart":[{"path":"/bin/true","args":["true"],"timeout":5}]},
         "annotations":{"a":"b"},
         "linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/run/netns/x"}],
           "uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],
           "devices":[{"type":"c","path":"/dev/fuse","major":10,"minor":229,"fileMode":438}],
           "cgroupsPath":"/hako/x","resources":{"devices":[{"allow":false,"access":"rwm"}],"memory":{"limit":134217728},"cpu":{"quota":50000,"period":100000},"pids":{"limit":64}},
           "rootfsPropagation":"rprivate","seccomp":{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]}]},
           "sysctl":{"net.ipv4.ip_forward":"1"},"maskedPaths":["/proc/kcore"],"readonlyPaths":["/proc/sys"],
           "personality":{"domain":"LINUX"}}}
        """#
        let s = try OCI.decode(Array(text.utf8))
        #expect(s.process?.terminal == true)
        #expect(s.process?.user.additionalGids == [5, 6])
        #expect(s.process?.capabilities?.bounding == ["CAP_KILL"])
        #expect(s.process?.rlimits.first?.type == "RLIMIT_NOFILE")
        #expect(s.root?.readonly == true)
        #expect(s.mounts.count == 2 && s.mounts[1].options == ["rbind", "ro"])
        #expect(s.hooks.prestart.first?.timeout == 5)
        #expect(s.annotations.first?.0 == "a")
        #expect(s.linux.namespaces.count == 2 && s.linux.namespaces[1].path == "/run/netns/x")
        #expect(s.linux.uidMappings.first?.hostID == 100000)
        #expect(s.linux.devices.first?.minor == 229)
        #expect(s.linux.resources?.memory?.limit == 134217728)
        #expect(s.linux.resources?.pidsLimit == 64)
        #expect(s.linux.seccomp?.syscalls.first?.args.first?.op == "SCMP_CMP_EQ")
        #expect(s.linux.sysctl.first?.1 == "1")
    }

    @Test func unknownFieldsAreNamed() {
        func error(_ text: String) -> String {
            do { _ = try OCI.decode(Array(text.utf8)); return "" } catch { return "\(error)" }
        }
        #expect(error(minimal).isEmpty)
        #expect(error(#"{"ociVersion":"1.0.0","windows":{}}"#).contains("windows"))
        #expect(error(#"{"ociVersion":"1.0.0","linux":{"intelRdt":{"closID":"x"}}}"#).contains("linux.intelRdt"))
        #expect(error(#"{"ociVersion":"1.0.0","process":{"args":["x"],"cwd":"/","ioPriority":{"class":"IOPRIO_CLASS_RT"}}}"#).contains("process.ioPriority"))
        #expect(error(#"{"ociVersion":"1.0.0","mounts":[{"destination":"/x","uidMappings":[]}]}"#).contains("mounts[0].uidMappings"))
        // Properties the runtime spec does not define are extensions: ignored, as the spec says.
        #expect(error(#"{"ociVersion":"1.0.0","mounts":[{"destination":"/x","wat":1}],"unknown":"x"}"#).isEmpty)
        #expect(error(#"{"ociVersion":"1.0.0","linux":{"namespaces":[{"type":"bogus"}]}}"#).contains("linux.namespaces[0].type"))
        #expect(error(#"{"ociVersion":"2.0.0"}"#).contains("ociVersion"))
        #expect(error(#"{"ociVersion":"1.0.0","process":{"args":["x"],"cwd":"relative"}}"#).contains("process.cwd"))
        #expect(error(#"{"ociVersion":"1.0.0","process":{"args":["x"],"cwd":"/","apparmorProfile":"docker-default"}}"#).isEmpty,
                "a profile is decoded; whether the host can apply it is the plan's question")
        #expect(error("[1]").contains("object"))
        #expect(error("{").contains("JSON"))
    }
}
