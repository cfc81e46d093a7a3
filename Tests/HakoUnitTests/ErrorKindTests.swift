#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import Foundation
@testable import HakoDockerAPI
@testable import HakoEngine
import HakoImage
@testable import HakoRuntime
import HakoSystem
import Testing

/// The error model: every kind maps once to an exit status and an HTTP
/// status, the errors below HakoError say their kind, and the engine's
/// errors carry the kind callers branch on.
@Suite struct ErrorKindTests {
    /// One of each kind, with what each edge makes of it.
    static let table: [(kind: HakoError.Kind, exit: Int32, http: Int)] = [
        (.failed, 125, 500),
        (.notFound(.container, "web"), 125, 404),
        (.notFound(.volume, "data"), 125, 404),
        (.conflict(.nameInUse(.container, "web")), 125, 409),
        (.conflict(.running("web")), 125, 409),
        (.conflict(.inUse(.volume, "data", by: ["web"])), 125, 409),
        (.invalidArgument("--memory"), 125, 400),
        (.permissionDenied, 125, 403),
        (.unsupported(missing: "the freezer cgroup controller"), 125, 400),
        (.kernel(operation: "mount", errno: EPERM), 125, 500),
        (.cannotExecute, 126, 400),
        (.commandNotFound, 127, 400),
    ]

    @Test func everyKindHasOneExitStatusAndOneHTTPStatus() {
        for row in Self.table {
            #expect(HakoError(row.kind, "x").exitStatus == row.exit, "\(row.kind)")
            #expect(DockerAPI.status(of: row.kind) == row.http, "\(row.kind)")
            #expect(DockerAPI.apiError(HakoError(row.kind, "x")).status == row.http, "\(row.kind)")
        }
    }

    @Test func errorsBelowHakoErrorSayTheirKind() {
        #expect(HakoError.kind(of: SystemError("mount", "/x", errno: EBUSY)) == .kernel(operation: "mount", errno: EBUSY))
        #expect(HakoError.kind(of: ImageError.noSuchImage("busybox:1")) == .notFound(.image, "busybox:1"))
        #expect(HakoError.kind(of: ImageError.invalidReference("A", reason: "upper case")) == .invalidArgument("reference"))
        #expect(ImageError.noSuchImage("b").hakoError.kind == .notFound(.image, "b"))
        // A failure of hako's own whose cause is the kernel's reads as the kernel's.
        #expect(HakoError.kind(of: HakoError(.failed, "cannot do it", cause: SystemError("open", errno: EACCES))) == .kernel(operation: "open", errno: EACCES))
        #expect(HakoError.kind(of: CancellationError()) == .failed)
        // The init's failures: 127, 126, else the stage and errno.
        let notFound = StartFailure(stage: Int32(HAKO_STAGE_EXEC_NOT_FOUND.rawValue), errno: ENOENT, detail: "nope")
        let cannot = StartFailure(stage: Int32(HAKO_STAGE_EXEC.rawValue), errno: EACCES, detail: "/etc")
        let mount = StartFailure(stage: Int32(HAKO_STAGE_PIVOT_ROOT.rawValue), errno: EINVAL, detail: "")
        #expect(notFound.hakoError.exitStatus == 127 && notFound.hakoError.kind == .commandNotFound)
        #expect(cannot.hakoError.exitStatus == 126 && cannot.hakoError.kind == .cannotExecute)
        #expect(mount.hakoError.exitStatus == 125 && mount.kind == .kernel(operation: mount.stageName, errno: EINVAL))
    }

    @Test func dockerAPIWordsNotFoundAsDockerd() {
        let c = DockerAPI.apiError(HakoError(.notFound(.container, "ghost"), "no such container: ghost"))
        #expect(c.status == 404 && c.message == "No such container: ghost")
        let i = DockerAPI.apiError(ImageError.noSuchImage("not-here:1").hakoError)
        #expect(i.status == 404 && i.message == "No such image: not-here:1")
        let inUse = DockerAPI.apiError(HakoError(.conflict(.inUse(.volume, "v", by: ["a"])), "volume v is in use by container(s) a; remove them first"))
        #expect(inUse.status == 409 && inUse.message == "volume v is in use by container(s) a; remove them first")
        // The API's own answers pass through unchanged.
        #expect(DockerAPI.apiError(APIError(413, "too big")).status == 413)
    }

    /// The engine's errors carry the kind (and name) a caller branches on.
    @Test func engineErrorsAreTyped() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hako-errors-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let engine = try Engine(paths: EnginePaths(root: dir + "/root", runRoot: dir + "/run"))
        func kind(_ body: () throws -> Void) -> HakoError.Kind? {
            do { try body(); return nil } catch { return HakoError.kind(of: error) }
        }
        #expect(kind { _ = try engine.lookup("ghost") } == .notFound(.container, "ghost"))
        #expect(kind { _ = try engine.inspectVolume("nothing") } == .notFound(.volume, "nothing"))
        #expect(kind { try engine.removeVolume("nothing") } == .notFound(.volume, "nothing"))
        #expect(kind { _ = try engine.createVolume("bad name") } == .invalidArgument("volume name"))
        #expect(kind { _ = try engine.inspectNetwork("elsewhere") } == .notFound(.network, "elsewhere"))
        #expect(kind { _ = try engine.createNetwork(name: "n1", subnet: "10.0.0.1/33", gateway: nil) } == .invalidArgument("--subnet"))
        #expect(kind { _ = try engine.createNetwork(name: "bridge", subnet: nil, gateway: nil) } == .permissionDenied)
        // Two containers whose ids share a prefix: the prefix is ambiguous, not missing.
        for id in [String(repeating: "a", count: 64), "a" + String(repeating: "b", count: 63)] {
            try FileManager.default.createDirectory(atPath: engine.paths.container(id).dir, withIntermediateDirectories: true)
            var c = Engine.placeholderConfig(id: id)
            c.name = "c" + id.suffix(3)
            try engine.writeConfig(c)
        }
        #expect(kind { _ = try engine.lookup("a") } == .invalidArgument("container"))
        #expect(DockerAPI.apiError(try #require(error { _ = try engine.lookup("ghost") })).message == "No such container: ghost")
    }

    func error(_ body: () throws -> Void) -> (any Error)? {
        do { try body(); return nil } catch { return error }
    }
}
