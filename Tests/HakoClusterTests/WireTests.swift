import Foundation
@testable import HakoCluster
import HakoImage
import HakoSystem
import Testing

@Suite struct WireTests {
    @Test func goldenEnvelopes() throws {
        let hb = Heartbeat(sessionID: "s1", load: NodeLoad(cpu: 0.25, load1: 0.5, memoryTotal: 1024, memoryAvailable: 512, containers: 3),
                           tasks: ["t1": .running])
        #expect(String(decoding: WireEncoder.request(MessageType.heartbeat, id: 7, hb), as: UTF8.self) ==
            #"{"body":{"load":{"containers":3,"cpu":0.25,"load1":0.5,"memoryAvailable":512,"memoryTotal":1024},"sessionID":"s1","tasks":{"t1":"running"}},"id":7,"type":"heartbeat","v":1}"# + "\n")
        #expect(String(decoding: WireEncoder.reply(to: 7, HeartbeatReply(nextMs: 1100)), as: UTF8.self) ==
            #"{"body":{"nextMs":1100},"re":7,"type":"reply","v":1}"# + "\n")
        #expect(String(decoding: WireEncoder.error(to: 3, WireError(.notFound, "no such service: web")), as: UTF8.self) ==
            #"{"error":{"code":"not_found","message":"no such service: web"},"re":3,"type":"error","v":1}"# + "\n")
        #expect(String(decoding: WireEncoder.request(MessageType.taskStatus, id: nil, TaskStatusReport(sessionID: "s", statuses: [TaskStatus(taskID: "t", state: .failed, exitCode: 2, message: "exit code 2")])), as: UTF8.self) ==
            #"{"body":{"sessionID":"s","statuses":[{"exitCode":2,"message":"exit code 2","state":"failed","taskID":"t"}]},"type":"task.status","v":1}"# + "\n")
    }

    @Test func decodesAndRoundTrips() throws {
        let spec = ServiceSpec(name: "web", image: "busybox:test")
        let env = try envelope(MessageType.serviceCreate, id: 9, ServiceCreateRequest(spec: spec))
        #expect(env.version == 1 && env.id == 9 && env.type == "service.create")
        #expect(try env.body(ServiceCreateRequest.self).spec == spec)
        // A spec with only the required fields takes every default.
        let minimal = try WireDecoder.decode(Array(#"{"v":1,"id":1,"type":"service.create","body":{"spec":{"name":"a","image":"b"}}}"#.utf8))
        let s = try minimal.body(ServiceCreateRequest.self).spec
        #expect(s.replicas == 1 && s.restart == "on-failure:3" && s.network == "cluster" && s.restartDelay == 5)
        // A missing body reads as {} for bodies that allow it.
        let empty = try WireDecoder.decode(Array(#"{"v":1,"id":2,"type":"node.ls"}"#.utf8))
        _ = try empty.body(EmptyBody.self)
    }

    /// An assignment carries each spec once, however many replicas use it.
    @Test func assignmentsShareTheirSpecs() throws {
        var spec = ServiceSpec(name: "web", image: "busybox")
        spec.env = ["A=1"]
        let tasks = (1...3).map { Assignment(taskID: "t\($0)", serviceID: "s", name: "web.\($0)", slot: $0, version: 2, spec: spec,
                                              desired: .running, state: .assigned) }
        let line = WireEncoder.request(MessageType.assign, id: nil, AssignMessage(generation: 4, tasks: tasks))
        let text = String(decoding: line, as: UTF8.self)
        #expect(text.components(separatedBy: "\"image\":\"busybox\"").count == 2, "one spec on the wire")
        #expect(text.contains(#""specs":{"s@2":{"#) && text.contains(#""spec":"s@2""#))
        let back = try decodeLine(line).body(AssignMessage.self)
        #expect(back.generation == 4 && back.tasks == tasks)
        // A task naming a spec that is not there is refused.
        let broken = text.replacingOccurrences(of: #""spec":"s@2","state":"assigned","taskID":"t3""#, with: #""spec":"s@9","state":"assigned","taskID":"t3""#)
        #expect(broken != text)
        #expect(throws: WireError.self) { try decodeLine(Array(broken.utf8)).body(AssignMessage.self) }
    }

    @Test func refusesWhatIsNotAnEnvelope() {
        func code(_ s: String) -> WireCode? {
            do { _ = try WireDecoder.decode(Array(s.utf8)); return nil } catch { return error.code }
        }
        #expect(code("hello") == .malformed)
        #expect(code("[1,2]") == .malformed)
        #expect(code("{") == .malformed)
        #expect(code(#"{"type":"x"}"#) == .unsupportedVersion)
        #expect(code(#"{"v":2,"type":"x"}"#) == .unsupportedVersion)
        #expect(code(#"{"v":1}"#) == .malformed)
        #expect(code(#"{"v":1,"type":""}"#) == .malformed)
        #expect(code(#"{"v":1,"type":"x","id":-4}"#) == .malformed)
        #expect(code(#"{"v":"1","type":"x"}"#) == .malformed)
        #expect(code("{\"v\":1,\"type\":\"a\u{01}\"}") == .malformed)
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        #expect(code(#"{"v":1,"type":"x","body":"# + deep + "}") == .malformed)
        let invalidUTF8: [UInt8] = Array(#"{"v":1,"type":""#.utf8) + [0xff, 0xfe] + Array(#""}"#.utf8)
        #expect(throws: WireError.self) { try WireDecoder.decode(invalidUTF8) }
        // A body of the wrong shape is a bad request, not a crash.
        let env = try? WireDecoder.decode(Array(#"{"v":1,"id":1,"type":"service.scale","body":{"service":3}}"#.utf8))
        #expect(throws: WireError.self) { try env?.body(ServiceScaleRequest.self) }
    }

    @Test func framesLinesWithABound() {
        var f = LineFramer(maxLine: 64)
        #expect(f.push(Array("a\nbc".utf8)) == [.line(Array("a".utf8))])
        #expect(f.push(Array("d\r\n\n".utf8)) == [.line(Array("bcd".utf8))])
        // Too long: reported once, skipped to its newline, then back in step.
        let long = [UInt8](repeating: 0x78, count: 200)
        #expect(f.push(long) == [.tooLong])
        #expect(f.pending == 0, "a line past the bound is not buffered")
        #expect(f.push(long) == [])
        #expect(f.push(Array("tail\nok\n".utf8)) == [.line(Array("ok".utf8))])
        // Exactly the bound is fine.
        let exact = [UInt8](repeating: 0x79, count: 64) + [0x0a]
        #expect(f.push(exact) == [.line(Array(exact.dropLast()))])
    }

    /// Random and mutated input: the framer and decoder never crash, never
    /// buffer past the bound, and every line gets a verdict.
    @Test func fuzzDecoder() throws {
        var rng = SeededRandom(seed: 0xF022)
        let seeds: [[UInt8]] = [
            WireEncoder.request(MessageType.heartbeat, id: 1, Heartbeat(sessionID: "s", load: NodeLoad(), tasks: ["a": .running])),
            WireEncoder.request(MessageType.serviceCreate, id: 2, ServiceCreateRequest(spec: ServiceSpec(name: "w", image: "i"))),
            WireEncoder.request(MessageType.assign, id: nil, AssignMessage(generation: 1, tasks: [])),
            WireEncoder.error(to: 3, WireError(.badRequest, "x")),
        ].map { Array($0.dropLast()) }
        let bodies: [(Envelope) throws -> Void] = [
            { _ = try $0.body(Heartbeat.self) }, { _ = try $0.body(ServiceCreateRequest.self) }, { _ = try $0.body(AssignMessage.self) },
            { _ = try $0.body(JoinRequest.self) }, { _ = try $0.body(HelloRequest.self) }, { _ = try $0.body(TaskStatusReport.self) },
            { _ = try $0.body(ServiceUpdateRequest.self) }, { _ = try $0.body(LogsRequest.self) }, { _ = try $0.body(NodeRemoveRequest.self) },
        ]
        var framer = LineFramer(maxLine: 4096)
        var verdicts = 0
        for i in 0..<20_000 {
            var line: [UInt8]
            if i % 3 == 0 {
                line = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                line = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
                for _ in 0..<Int.random(in: 1...6, using: &rng) where !line.isEmpty {
                    let at = Int.random(in: 0..<line.count, using: &rng)
                    switch Int.random(in: 0...3, using: &rng) {
                    case 0: line[at] = UInt8.random(in: 0...255, using: &rng)
                    case 1: line.remove(at: at)
                    case 2: line.insert(contentsOf: Array(#"{"[\"#.utf8).shuffled(using: &rng), at: at)
                    default: line.insert(contentsOf: line[at...].prefix(40), at: at)
                    }
                }
            }
            for event in framer.push(line + [0x0a]) {
                guard case .line(let l) = event else { verdicts += 1; continue }
                verdicts += 1
                if let env = try? WireDecoder.decode(l) {
                    for b in bodies { try? b(env) }
                }
            }
            #expect(framer.pending <= 4096)
        }
        #expect(verdicts > 10_000)
    }

    /// An engine error reaches a peer with the code of its kind: the one mapping.
    @Test func engineErrorsKeepTheirKindOnTheWire() {
        let table: [(HakoError.Kind, WireCode)] = [
            (.failed, .internalError), (.notFound(.container, "web"), .notFound), (.notFound(.network, "n"), .notFound),
            (.conflict(.nameInUse(.container, "web")), .conflict), (.conflict(.inUse(.volume, "v", by: ["a"])), .conflict),
            (.invalidArgument("--memory"), .badRequest), (.permissionDenied, .unauthorized),
            (.unsupported(missing: "the cpu controller"), .internalError), (.kernel(operation: "clone3", errno: 1), .internalError),
            (.cannotExecute, .badRequest), (.commandNotFound, .badRequest),
        ]
        for (kind, code) in table {
            #expect(WireCode(kind: kind) == code, "\(kind)")
            let e = WireError(HakoError(kind, "the message"))
            #expect(e.code == code && e.message == "the message", "\(kind)")
        }
        #expect(WireError(ImageError.noSuchImage("busybox:1")).code == .notFound)
        #expect(WireError(SystemError("open", errno: 2)).code == .internalError)
        // The cluster's own errors keep their mapping.
        #expect(WireError(ClusterError.conflict("name in use")).code == .conflict)
    }
}
