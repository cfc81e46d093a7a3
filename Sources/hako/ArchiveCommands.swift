import HakoCLI
#if canImport(Glibc)
import Glibc
#endif
import HakoEngine
import HakoImage
import HakoSystem

/// Where an archive goes: a file (written whole or not at all) or stdout,
/// never a terminal.
private func withOutput(_ path: String?, what: String, _ body: (any ByteSink) throws -> Void) throws {
    if let path, path != "-" {
        let sink: AtomicFileSink
        do { sink = try AtomicFileSink(path: path) } catch { throw HakoError(.failed, "cannot write \(path)", cause: error) }
        try body(sink)
        do { try sink.commit() } catch { throw HakoError(.failed, "cannot write \(path)", cause: error) }
        return
    }
    guard isatty(1) == 0 else {
        throw HakoError(.failed, "cowardly refusing to write \(what) to a terminal: use -o FILE or redirect the output")
    }
    try body(FileSink(FileDescriptor(dup(1))))
}

struct Save: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "save", abstract: "Write images to an archive (docker-archive or oci-archive).")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short("o"), .long("output")], help: "Write to a file instead of stdout.") var output: String?
    @Option(name: .long("format"), help: "docker-archive (default; also an OCI layout) or oci-archive.") var format = "docker-archive"
    @Argument(help: "IMAGE...") var references: [String]

    func run() throws {
        guard let f = ArchiveFormat(rawValue: format) else { throw HakoError(.failed, "unknown format \"\(format)\" (docker-archive or oci-archive)") }
        guard !references.isEmpty else { throw ValidationError("\"save\" requires at least one image") }
        let engine = try global.engine()
        try withOutput(output, what: "an image archive") { sink in
            try engine.images.save(references, format: f, to: sink)
        }
    }
}

struct Load: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "load", abstract: "Load images from an archive (docker save, podman save, OCI archives; plain, gzip or zstd).")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short("i"), .long("input")], help: "Read from a file instead of stdin.") var input: String?
    @Flag(name: [.short("q"), .long("quiet")], help: "Do not show progress.") var quiet = false

    func run() throws {
        let engine = try global.engine()
        if input == nil && isatty(0) == 1 {
            throw HakoError(.failed, "requested load from stdin, but stdin is empty: use -i FILE or redirect the input")
        }
        let view = ProgressView(fd: 1, quiet: quiet || isatty(1) != 1)
        let loaded = try engine.load(from: input ?? "-", progress: view)
        view.finish()
        for image in loaded {
            if image.names.isEmpty { print("Loaded image ID: sha256:\(image.id)") }
            for n in image.names { print("Loaded image: \(n)") }
        }
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export", abstract: "Write a container's file system as a tar archive.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short("o"), .long("output")], help: "Write to a file instead of stdout.") var output: String?
    @Argument(help: "CONTAINER") var container: String

    func run() throws {
        let engine = try global.engine()
        try withOutput(output, what: "a file system archive") { sink in try engine.export(container, to: sink) }
    }
}

struct Commit: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "commit", abstract: "Make an image from a container's changes.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short("a"), .long("author")], help: "Author.") var author: String?
    @Option(name: [.short("m"), .long("message")], help: "Commit message.") var message: String?
    @Option(name: [.short("c"), .long("change")], help: "Apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL, HEALTHCHECK).")
    var change: [String] = []
    @Option(name: [.short("p"), .long("pause")], help: "Pause the container while committing.") var pause: Bool = true
    @Argument(help: "CONTAINER") var container: String
    @Argument(help: "REPOSITORY[:TAG]") var reference: String?

    func run() throws {
        let engine = try global.engine()
        let image = try engine.commit(container, reference: reference, changes: change, author: author, message: message, pause: pause)
        print("sha256:" + image.id)
    }
}
