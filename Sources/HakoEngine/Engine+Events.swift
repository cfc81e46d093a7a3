import HakoSystem

extension Engine {
    public var eventLog: EventLog { EventLog(path: paths.root + "/events.jsonl") }

    /// Records an event for a container (Docker's attributes: name, image, and the action's own).
    func recordEvent(_ action: String, _ config: ContainerConfig, _ extra: [String: String] = [:]) {
        eventLog.record(EngineEvent(time: Timestamp.now().secondsSince1970, action: action, id: config.id,
                                    attributes: Engine.eventAttributes(config, extra)))
    }

    static func eventAttributes(_ config: ContainerConfig, _ extra: [String: String] = [:]) -> [String: String] {
        var attrs = extra
        attrs["name"] = config.name
        attrs["image"] = config.image
        for (k, v) in config.labels where attrs[k] == nil { attrs[k] = v }
        return attrs
    }

    /// The attributes of a container's events as a JSON object: what its
    /// monitor writes with the events it records itself (health_status).
    func eventAttributes(_ config: ContainerConfig) -> JSON {
        .object(Engine.eventAttributes(config).sorted { $0.key < $1.key }.map { ($0.key, JSON.string($0.value)) })
    }

    /// What a follower remembers between polls.
    public struct EventFollower: Sendable {
        public var offset: Int
        /// Running containers: id → (name, image).
        var running: [String: (name: String, image: String)] = [:]
        /// Containers whose end was logged (stop, kill): no second `die` for them.
        var ended: Set<String> = []
        public init(offset: Int) { self.offset = offset }
    }

    /// The follower at the log's end, knowing what runs now.
    public func eventFollower() -> EventFollower {
        var f = EventFollower(offset: eventLog.end())
        for c in (try? list()) ?? [] where c.isRunning || c.status == .restarting { f.running[c.id] = (c.name, c.config.image) }
        return f
    }

    /// Events logged since the follower's last poll, and a `die` for each
    /// container seen to have ended on its own (its monitor writes no event):
    /// one that was running, or whose start was just logged, and runs no more.
    public func pollEvents(_ f: inout EventFollower) -> [EngineEvent] {
        let (logged, next) = eventLog.read(from: f.offset)
        f.offset = next
        var events = logged
        var watched = f.running
        for e in logged {
            if e.action == "die" || e.action == "destroy" { f.ended.insert(e.id) }
            if e.action == "start" {
                f.ended.remove(e.id)
                watched[e.id] = (e.attributes["name"] ?? "", e.attributes["image"] ?? "")
            }
        }
        let now = (try? list()) ?? []
        var still: [String: (name: String, image: String)] = [:]
        for c in now where c.isRunning || c.status == .restarting { still[c.id] = (c.name, c.config.image) }
        for (id, what) in watched.sorted(by: { $0.key < $1.key }) where still[id] == nil && !f.ended.contains(id) {
            var attrs = ["name": what.name, "image": what.image]
            if let c = now.first(where: { $0.id == id }) { attrs["exitCode"] = String(c.exitCode) }
            events.append(EngineEvent(time: Timestamp.now().secondsSince1970, action: "die", id: id, attributes: attrs))
            f.ended.insert(id)
        }
        f.running = still
        return events
    }
}
