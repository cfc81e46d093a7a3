import Foundation
@testable import HakoCluster
import Testing

/// The configuration files shipped in config/ (installed to /etc/hako) spell
/// out every setting; bad values stop the daemon naming the key.
@Suite struct ConfigValidationTests {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("config").path

    /// Every setting is written out in the shipped files, at its default
    /// (ExampleConfigTests checks the values), metrics off.
    @Test func everySettingIsWrittenOut() throws {
        let coordinator = try ConfigFile.load(Self.dir + "/coordinator.toml")
        #expect(coordinator.values.count == 28, "\(coordinator.values.keys.sorted())")
        #expect(try CoordinatorConfig.parse(coordinator).metricsListen == nil)
        #expect(try CoordinatorConfig.parse(coordinator).raft == nil, "the shipped coordinator runs alone")
        let agent = try ConfigFile.load(Self.dir + "/agent.toml")
        #expect(agent.values.count == 18, "\(agent.values.keys.sorted())")
        #expect(try AgentConfig.parse(agent).metricsListen == nil)
    }

    /// A bad value stops the daemon with the key, the reason and (for unknown keys) the line.
    @Test func badValuesNameTheKey() {
        let cases: [(String, String, String)] = [
            ("workers = 0", "workers", "out of range"),
            ("observe_interval = \"forever\"", "observe_interval", "not a duration"),
            ("[resources]\nmemory = \"lots\"", "resources.memory", "not a size"),
            ("coordinator = \"host:99999\"", "coordinator", "invalid port"),
            ("name = \"two words\"", "name", "no spaces"),
            ("log_level = \"chatty\"", "log_level", "debug, info, warning or error"),
            ("metrics_listen = \"[::1\"", "metrics_listen", "invalid address"),
            ("renew_at = 0.95", "renew_at", "out of range"),
            ("obseve_interval = \"1s\"", "obseve_interval", "unknown setting (line 1)"),
        ]
        for (text, key, reason) in cases {
            do {
                _ = try AgentConfig.parse(try ConfigFile(parsing: text))
                Issue.record("accepted: \(text)")
            } catch {
                if case .config(let k, let r) = error {
                    #expect(k == key && r.contains(reason), "\(text): \(k): \(r)")
                } else {
                    Issue.record("\(text): \(error)")
                }
            }
        }
    }
}
