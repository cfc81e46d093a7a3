@testable import HakoCluster
import Testing

/// `service logs`: which tasks a reference names (a service, a task id or
/// prefix, a task's name), the time window passed to the nodes, and the
/// reply's lines named after their task and node.
@Suite struct ServiceLogsTests {
    /// Sends `service.logs`; returns the requests the nodes were sent, by node.
    func ask(_ f: CoreFixture, _ nodes: [SimNode], _ r: ServiceLogsRequest) throws -> [String: LogsRequest] {
        try askWithIDs(f, nodes, r).mapValues(\.request)
    }

    func askWithIDs(_ f: CoreFixture, _ nodes: [SimNode], _ r: ServiceLogsRequest) throws -> [String: (id: Int, request: LogsRequest)] {
        let reply = f.core.handle(try envelope(MessageType.serviceLogs, id: 9, r), from: .admin, connection: 1, address: "test")
        if let reply {
            let env = try decodeLine(reply)
            if env.type == MessageType.error { throw ClusterError.wire(code: env.error?.code.rawValue ?? "", message: env.error?.message ?? "") }
        }
        var out: [String: (id: Int, request: LogsRequest)] = [:]
        for o in f.core.takeOutgoing() {
            guard case .send(let c, let line) = o, let n = nodes.first(where: { $0.connection == c }) else { continue }
            let env = try decodeLine(line)
            if env.type == MessageType.logs, let id = env.id { out[n.name] = (id, try env.body(LogsRequest.self)) }
        }
        return out
    }

    @Test func aServiceOrOneTaskAndTheWindowReachTheNodes() throws {
        let f = try CoreFixture()
        let nodes = try (1...2).map { try SimNode(f, name: "n\($0)") }
        var spec = ServiceSpec(name: "web", image: "busybox:test")
        spec.replicas = 3
        try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: spec), as: ServiceView.self)
        try settle(f, nodes)
        let tasks = try f.admin(MessageType.servicePs, ServicePsRequest(service: "web", all: false), as: TaskList.self).tasks
        try #require(tasks.count == 3)

        // The whole service: every task, on its node, with the window.
        var sent = try ask(f, nodes, ServiceLogsRequest(service: "web", tail: 5, since: 100, until: 200))
        #expect(Set(sent.values.flatMap(\.taskIDs)) == Set(tasks.map(\.id)))
        #expect(sent.values.allSatisfy { $0.since == 100 && $0.until == 200 && $0.tail == 5 })

        // One task: by its name, its id, an id prefix, or as the logs print it.
        let two = try #require(tasks.first { $0.slot == 2 })
        for ref in ["web.2", two.id, String(two.id.prefix(10)), "web.2.\(two.id.prefix(12))"] {
            sent = try ask(f, nodes, ServiceLogsRequest(service: ref, tail: 0))
            #expect(sent.values.flatMap(\.taskIDs) == [two.id], "\(ref)")
            #expect(sent.count == 1 && sent[two.nodeName ?? ""] != nil)
        }
        #expect(throws: ClusterError.self) { try ask(f, nodes, ServiceLogsRequest(service: "web.9", tail: 0)) }
        #expect(throws: ClusterError.self) { try ask(f, nodes, ServiceLogsRequest(service: "web", tail: 0, since: 10, until: 5)) }

        // The node's answer comes back as the reply, each line named after its task and node.
        let asked = try askWithIDs(f, nodes, ServiceLogsRequest(service: "web.2", tail: 0))
        let node = try #require(nodes.first { $0.name == two.nodeName })
        let rid = try #require(asked[node.name]?.id)
        #expect(f.core.takeOutgoing().isEmpty, "no reply before the node's")
        let answer = try decodeLine(WireEncoder.reply(to: rid, LogsReply(entries: [LogEntry(taskID: two.id, time: "2026-01-01T00:00:01.5Z", stream: "stdout", text: "hello")], truncated: false)))
        _ = f.core.handle(answer, from: .node(node.id), connection: node.connection, address: "x")
        let replies = try f.core.takeOutgoing().compactMap { o -> ServiceLogsReply? in
            guard case .send(1, let line) = o else { return nil }
            return try decodeLine(line).body(ServiceLogsReply.self)
        }
        let entry = try #require(replies.first?.entries.first)
        #expect(entry.task == "web.2.\(two.id.prefix(12))" && entry.node == node.name && entry.text == "hello")
    }
}
