import CHakoShim
@testable import HakoEngine
import HakoImage
@testable import HakoRuntime
import HakoSystem
import Testing

/// The health check from the engine's typed options to the monitor's C spec.
@Suite struct HealthSpecTests {
    @Test func theProbeAndItsScheduleReachTheCParser() {
        var (r, m) = LaunchSpecTests().sample()
        m.health = HealthProbe(command: ["/bin/sh", "-c", "test -f /ok"], intervalMs: 1500, timeoutMs: 700, startPeriodMs: 9000,
                               startIntervalMs: 300, retries: 4)
        m.eventLog = "/var/lib/hako/events.jsonl"
        m.eventAttributes = #"{"image":"busybox","name":"web"}"#
        let (ok, s, msg, keep) = parseWithC(LaunchSpecEncoder.encode(r, monitor: m))
        withExtendedLifetime(keep) {
            #expect(ok, "\(msg)")
            #expect(s.health_argc == 3 && str(s.health_argv[2]) == "test -f /ok" && s.health_argv[3] == nil)
            #expect(s.health_interval_ms == 1500 && s.health_timeout_ms == 700)
            #expect(s.health_start_period_ms == 9000 && s.health_start_interval_ms == 300 && s.health_retries == 4)
            #expect(str(s.event_log) == "/var/lib/hako/events.jsonl" && str(s.event_attrs) == #"{"image":"busybox","name":"web"}"#)
            #expect(s.argc == 3 && str(s.argv[2]) == "echo hi", "the container's own command is untouched")
        }
        r.process.args = ["/bin/true"]
        let (plain, p, _, keep2) = parseWithC(LaunchSpecEncoder.encode(r, monitor: LaunchSpecTests().sample().1))
        withExtendedLifetime(keep2) {
            #expect(plain && p.health_argc == 0 && p.health_argv[0] == nil && p.event_log == nil)
        }
    }

    @Test func aProbeWithoutItsScheduleIsRefused() {
        let (r, _) = LaunchSpecTests().sample()
        var blob = LaunchSpecEncoder.encode(r, monitor: nil)
        let arg = Array("/bin/true".utf8) + [0]
        blob += withUnsafeBytes(of: UInt16(HAKO_T_HEALTH_ARG.rawValue)) { Array($0) } + withUnsafeBytes(of: UInt32(arg.count)) { Array($0) } + arg
        let (ok, _, msg, _) = parseWithC(blob)
        #expect(!ok && msg.contains("health"), "\(msg)")
    }

    @Test func dockerDefaultsFillTheProbe() throws {
        var c = try #require(try Engine.healthCheck(HealthCheck(test: .shell("true")), image: nil))
        var config = sampleConfig()
        config.healthCheck = c
        let p = try #require(config.healthProbe)
        #expect(p.command == ["/bin/sh", "-c", "true"])
        #expect(p.intervalMs == 30000 && p.timeoutMs == 30000 && p.startPeriodMs == 0 && p.startIntervalMs == 5000 && p.retries == 3)
        c.test = .none
        config.healthCheck = c
        #expect(config.healthProbe == nil)
    }

    func sampleConfig() -> ContainerConfig {
        ContainerConfig(id: "abc", name: "web", created: Timestamp.now(), image: "busybox", imageID: "0", layerDirs: [],
                        args: ["sh"], entrypoint: [], cmd: ["sh"], env: [], workingDir: "/", user: "", hostname: "abc", labels: [:],
                        tty: false, openStdin: false, autoRemove: false, restartPolicy: "no", pidMode: .private, utsMode: .private,
                        ipcMode: .private, cgroupnsMode: .private, networkMode: .none, stopSignal: 15, stopTimeout: 10,
                        logMaxSize: 1 << 20, logMaxFiles: 1, cgroupParent: "hako")
    }

    @Test func flagsMergeOverTheImagesCheck() throws {
        let image = HealthCheck(test: .exec(["/check"]), interval: .seconds(10), retries: 2)
        let merged = try #require(try Engine.healthCheck(HealthCheck(test: .inherit, timeout: .seconds(1)), image: image))
        #expect(merged == HealthCheck(test: .exec(["/check"]), interval: .seconds(10), timeout: .seconds(1), retries: 2))
        #expect(try Engine.healthCheck(nil, image: image) == image)
        #expect(try Engine.healthCheck(nil, image: nil) == nil)
        #expect(try Engine.healthCheck(HealthCheck(test: .none), image: image)?.test == HealthCheck.Test.none)
        // Only --health-interval, and no test anywhere: refused.
        #expect(throws: HakoError.self) { try Engine.healthCheck(HealthCheck(test: .inherit, interval: .seconds(1)), image: nil) }
    }
}
