import Foundation
import Testing
@testable import HakoCompose

/// Compose files in the shapes of `docker stack deploy`'s public examples
/// (Golden/*.yml), loaded and translated to a stack named "home"; the dump is
/// compared with Golden/NAME.golden. HAKO_UPDATE_GOLDEN=1 rewrites the files
/// (then read the diff: the golden files are the expectation).
@Suite struct GoldenTests {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden").path
    /// The project directory of every golden load (relative paths resolve against it).
    static let project = "/srv/stacks/home"
    static let environment = ["HOME": "/root", "DEBUG": "1", "REGISTRY": "registry.local:5000"]
    static let dotEnv = "# the stack's .env\nKV_TAG=7.2\nREGISTRY=ignored.example:5000\n"

    static func read(_ name: String) throws -> String {
        try String(contentsOfFile: dir + "/" + name, encoding: .utf8)
    }

    /// Loads the named files of Golden/ with a fake project directory whose `.env` is `dotEnv`.
    static func load(_ names: [String], env: [String: String] = environment, dotEnv: String? = dotEnv,
                     files: [String: String] = [:]) throws -> ComposeLoad {
        let sources = try names.map { (name: $0, text: try read($0)) }
        let loader = ComposeLoader(environment: env, projectDirectory: project) { path in
            if path == project + "/.env" { return dotEnv }
            return files[path]
        }
        return try loader.load(sources)
    }

    static func dump(_ load: ComposeLoad, stack: String = "home") throws -> String {
        let s = try Stack.translate(load.project, name: stack)
        var out = ""
        for i in load.ignored { out += "ignored \(i.path) (\(i.file):\(i.line))\n" }
        for v in load.unsetVariables { out += "unset variable \(v)\n" }
        func objects(_ kind: String, _ l: [StackObject]) {
            for o in l {
                out += "\(kind) \(o.name) key=\(o.key)"
                if o.external { out += " external" }
                if let d = o.driver { out += " driver=\(d)" }
                if !o.options.isEmpty { out += " options=" + o.options.keys.sorted().map { "\($0)=\(o.options[$0] ?? "")" }.joined(separator: ",") }
                if !o.labels.isEmpty { out += " labels=" + o.labels.keys.sorted().map { "\($0)=\(o.labels[$0] ?? "")" }.joined(separator: ",") }
                if let f = o.file { out += " file=\(f)" }
                out += "\n"
            }
        }
        objects("volume", s.volumes)
        for n in s.networks {
            out += "network \(n.name) key=\(n.key)"
            if n.external { out += " external" }
            if n.attachable { out += " attachable" }
            if let sub = n.subnet { out += " subnet=\(sub)" }
            if !n.labels.isEmpty { out += " labels=" + n.labels.keys.sorted().map { "\($0)=\(n.labels[$0] ?? "")" }.joined(separator: ",") }
            out += "\n"
        }
        objects("secret", s.secrets)
        objects("config", s.configs)
        for svc in s.services {
            out += "service \(svc.name)\n"
            for (k, v) in svc.fields { out += "  \(k): \(v)\n" }
            let gaps = svc.clusterGaps
            if !gaps.isEmpty { out += "  needs cluster work: \(gaps.joined(separator: ", "))\n" }
        }
        return out
    }

    static func check(_ names: [String], golden: String) throws {
        let got = try dump(try load(names))
        let path = dir + "/" + golden
        if ProcessInfo.processInfo.environment["HAKO_UPDATE_GOLDEN"] == "1" {
            try got.write(toFile: path, atomically: true, encoding: .utf8)
            return
        }
        let want = try String(contentsOfFile: path, encoding: .utf8)
        if got != want {
            let g = got.split(separator: "\n", omittingEmptySubsequences: false), w = want.split(separator: "\n", omittingEmptySubsequences: false)
            let first = zip(g, w).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(g.count, w.count)
            Issue.record("""
                \(golden) differs from line \(first + 1):
                  got:  \(first < g.count ? String(g[first]) : "<end>")
                  want: \(first < w.count ? String(w[first]) : "<end>")
                """)
        }
    }

    @Test func votingApp() throws { try GoldenTests.check(["voting-app.yml"], golden: "voting-app.golden") }
    @Test func secrets() throws { try GoldenTests.check(["secrets.yml"], golden: "secrets.golden") }
    @Test func configs() throws { try GoldenTests.check(["configs.yml"], golden: "configs.golden") }
    @Test func deploy() throws { try GoldenTests.check(["deploy.yml"], golden: "deploy.golden") }
    @Test func home() throws { try GoldenTests.check(["home.yml"], golden: "home.golden") }
    @Test func homeWithOverride() throws { try GoldenTests.check(["home.yml", "home.override.yml"], golden: "home.override.golden") }
    @Test func ignoredKeys() throws { try GoldenTests.check(["ignored.yml"], golden: "ignored.golden") }
    @Test func networks() throws { try GoldenTests.check(["networks.yml"], golden: "networks.golden") }
}
