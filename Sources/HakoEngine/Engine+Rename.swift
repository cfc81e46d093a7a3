#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

extension Engine {
    /// `hako rename`: gives a container a new name, running or not. The new
    /// name is claimed before the old one is released (under the engine lock),
    /// so the container is never without a name; peers on its user-defined
    /// networks see the new name in their /etc/hosts at once.
    public func renameContainer(_ ref: String, to newName: String) throws {
        let name = newName.hasPrefix("/") ? String(newName.dropFirst()) : newName
        guard Names.isValid(name) else {
            throw HakoError(.invalidArgument("--name"), "invalid container name \"\(newName)\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        }
        let id = try resolveID(ref)
        let global = try FileLock.acquire(paths.lock)
        defer { global.release() }
        let lock = try FileLock.acquire(paths.container(id).lock)
        defer { lock.release() }
        var config = try readConfig(id)
        let old = config.name
        guard name != old else {
            throw HakoError(.invalidArgument("name"), "cannot rename container \(old): the new name is the same as the old one")
        }
        if let target = FS.readLink(paths.nameLink(name)) {
            let other = String(target.split(separator: "/").last ?? "")
            throw HakoError(.conflict(.nameInUse(.container, name)), "the container name \"/\(name)\" is already in use by container \"\(other)\"; remove (or rename) that container to reuse the name")
        }
        try FS.symlink("../containers/\(id)", at: paths.nameLink(name))
        config.name = name
        do {
            try writeConfig(config)
        } catch {
            try? FS.unlinkIfPresent(paths.nameLink(name))
            throw error
        }
        if !old.isEmpty, let target = FS.readLink(paths.nameLink(old)), target.split(separator: "/").last.map(String.init) == id {
            try? FS.unlinkIfPresent(paths.nameLink(old))
        }
        renameEndpoint(id, to: name)
        recordEvent("rename", config, ["oldName": "/" + old])
    }

    /// A running container's endpoint carries its name for its peers' /etc/hosts.
    private func renameEndpoint(_ id: String, to name: String) {
        guard let lock = try? networkStore.lock() else { return }
        defer { lock.release() }
        guard var record = readEndpoint(id) else { return }
        record.name = name
        try? writeEndpoint(record)
        try? refreshNameFiles(changed: Set(record.attachments.map(\.networkID)), also: nil)
    }
}
