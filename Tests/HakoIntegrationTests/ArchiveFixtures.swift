import Foundation
import HakoSystem

/// Tar archives byte by byte, for fixtures no real tar would write
/// (escapes, whiteouts), and docker-archives made of them.
struct MiniTar {
    enum Kind { case file(String), dir, symlink(String), hardlink(String) }
    private(set) var bytes: [UInt8] = []

    mutating func add(_ name: String, _ kind: Kind, mode: Int = 0o644) {
        switch kind {
        case .file(let text): add(name, type: 0x30, content: Array(text.utf8), mode: mode)
        case .dir: add(name, type: 0x35, mode: mode)
        case .symlink(let target): add(name, type: 0x32, link: target, mode: 0o777)
        case .hardlink(let target): add(name, type: 0x31, link: target, mode: mode)
        }
    }

    mutating func addFile(_ name: String, bytes data: [UInt8]) {
        add(name, type: 0x30, content: data, mode: 0o644)
    }

    private mutating func add(_ name: String, type: UInt8, content: [UInt8] = [], link: String = "", mode: Int) {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, _ o: Int, _ l: Int) { for (i, b) in s.utf8.prefix(l).enumerated() { h[o + i] = b } }
        func octal(_ v: Int, _ o: Int, _ l: Int) {
            let s = String(v, radix: 8)
            put(String(repeating: "0", count: max(0, l - 1 - s.count)) + s, o, l - 1)
        }
        put(name, 0, 100)
        octal(mode, 100, 8); octal(0, 108, 8); octal(0, 116, 8)
        octal(content.count, 124, 12); octal(1_600_000_000, 136, 12)
        h[156] = type
        put(link, 157, 100)
        put("ustar\0", 257, 6); put("00", 263, 2)
        for i in 148..<156 { h[i] = 0x20 }
        let sum = String(h.reduce(0) { $0 + Int($1) }, radix: 8)
        put(String(repeating: "0", count: max(0, 6 - sum.count)) + sum, 148, 6)
        h[154] = 0
        bytes += h + content + [UInt8](repeating: 0, count: (512 - content.count % 512) % 512)
    }

    var archive: [UInt8] { bytes + [UInt8](repeating: 0, count: 1024) }
}

enum DockerArchive {
    /// Writes a legacy docker-archive named `name` with these layer tars
    /// (lowest first). DiffIDs are hashed with sha256sum.
    static func write(to path: String, name: String, layers: [[UInt8]], cmd: [String] = ["/bin/sh"]) throws {
        var archive = MiniTar()
        var diffIDs: [String] = []
        var layerPaths: [String] = []
        for (i, data) in layers.enumerated() {
            let file = path + ".layer\(i)"
            try Data(data).write(to: URL(fileURLWithPath: file))
            diffIDs.append("sha256:" + TestFiles.sha256(file))
            try? FileManager.default.removeItem(atPath: file)
            archive.addFile("layer\(i)/layer.tar", bytes: data)
            layerPaths.append("layer\(i)/layer.tar")
        }
        let config: [String: Any] = [
            "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
            "config": ["Cmd": cmd, "Env": ["PATH=/bin"]],
            "rootfs": ["type": "layers", "diff_ids": diffIDs],
        ]
        let configBytes = Array(try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]))
        archive.addFile("config.json", bytes: configBytes)
        let manifest: [[String: Any]] = [["Config": "config.json", "RepoTags": [name], "Layers": layerPaths]]
        archive.addFile("manifest.json", bytes: Array(try JSONSerialization.data(withJSONObject: manifest)))
        try Data(archive.archive).write(to: URL(fileURLWithPath: path))
    }
}
