import HakoRuntime

/// A task's secrets and configs on the node: their data arrives over the
/// session (`secret.data`), stays in the agent's memory, and reaches the
/// container only through the engine's `ContainerFile`s (a tmpfs inside it).
extension Agent {
    /// The files of a task's secrets and configs; a task whose data has not come is refused (the coordinator places it again).
    static func files(for a: Assignment?, data: [String: [UInt8]]) throws -> [ContainerFile] {
        guard let a else { return [] }
        return try a.spec.fileReferences.map { kind, ref in
            guard let content = data[ref.id] else {
                throw ClusterError.notFound("the data of \(kind.rawValue) \(ref.source) has not come from the coordinator")
            }
            return ContainerFile(target: ref.path(kind), uid: ref.uid, gid: ref.gid, mode: ref.mode, content: content)
        }
    }

    /// Drops the data no assigned task refers to any more.
    func forgetUnusedSecrets() {
        guard !secretData.isEmpty else { return }
        let used = Set(assignments.values.flatMap { $0.spec.fileReferences.map(\.ref.id) })
        for id in secretData.keys where !used.contains(id) { secretData[id] = nil }
    }
}
