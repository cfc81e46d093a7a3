import CHakoShim
import HakoRuntime
import HakoSystem

/// config.json mounts → launch-spec mounts. Options follow mount(8) and runc:
/// flags, propagation, recursive attributes ("rro" …, mount_setattr) and the
/// rest as file-system data.
public enum MountOptions {
    public struct Parsed: Sendable, Equatable {
        public var flags: UInt64 = 0
        public var propagation: UInt64 = 0
        public var attributes: MountAttributes?
        public var data: [String] = []
        public var bind = false
    }

    static let MS_RDONLY: UInt64 = 1, MS_NOSUID: UInt64 = 2, MS_NODEV: UInt64 = 4, MS_NOEXEC: UInt64 = 8
    static let MS_SYNCHRONOUS: UInt64 = 16, MS_REMOUNT: UInt64 = 32, MS_MANDLOCK: UInt64 = 64, MS_DIRSYNC: UInt64 = 128
    static let MS_NOSYMFOLLOW: UInt64 = 256, MS_NOATIME: UInt64 = 1024, MS_NODIRATIME: UInt64 = 2048, MS_BIND: UInt64 = 4096
    static let MS_REC: UInt64 = 16384, MS_SILENT: UInt64 = 32768, MS_UNBINDABLE: UInt64 = 1 << 17, MS_PRIVATE: UInt64 = 1 << 18
    static let MS_SLAVE: UInt64 = 1 << 19, MS_SHARED: UInt64 = 1 << 20, MS_RELATIME: UInt64 = 1 << 21
    static let MS_I_VERSION: UInt64 = 1 << 23, MS_STRICTATIME: UInt64 = 1 << 24, MS_LAZYTIME: UInt64 = 1 << 25

    /// option → (set, clear)
    static let flagTable: [String: (UInt64, UInt64)] = [
        "async": (0, MS_SYNCHRONOUS), "atime": (0, MS_NOATIME), "defaults": (0, 0), "dev": (0, MS_NODEV),
        "diratime": (0, MS_NODIRATIME), "dirsync": (MS_DIRSYNC, 0), "exec": (0, MS_NOEXEC), "iversion": (MS_I_VERSION, 0),
        "lazytime": (MS_LAZYTIME, 0), "loud": (0, MS_SILENT), "mand": (MS_MANDLOCK, 0), "noatime": (MS_NOATIME, 0),
        "nodev": (MS_NODEV, 0), "nodiratime": (MS_NODIRATIME, 0), "noexec": (MS_NOEXEC, 0), "noiversion": (0, MS_I_VERSION),
        "nolazytime": (0, MS_LAZYTIME), "nomand": (0, MS_MANDLOCK), "norelatime": (0, MS_RELATIME),
        "nostrictatime": (0, MS_STRICTATIME), "nosuid": (MS_NOSUID, 0), "nosymfollow": (MS_NOSYMFOLLOW, 0),
        "relatime": (MS_RELATIME, 0), "remount": (MS_REMOUNT, 0), "ro": (MS_RDONLY, 0), "rw": (0, MS_RDONLY),
        "silent": (MS_SILENT, 0), "strictatime": (MS_STRICTATIME, 0), "suid": (0, MS_NOSUID), "sync": (MS_SYNCHRONOUS, 0),
    ]
    static let propagationTable: [String: UInt64] = [
        "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC, "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
        "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC, "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
    ]
    /// Recursive attributes → (attr_set, attr_clr).
    static let recursiveTable: [String: (UInt64, UInt64)] = {
        typealias A = MountAttributes
        return [
            "rro": (A.readOnly, 0), "rrw": (0, A.readOnly), "rnosuid": (A.noSUID, 0), "rsuid": (0, A.noSUID),
            "rnodev": (A.noDev, 0), "rdev": (0, A.noDev), "rnoexec": (A.noExec, 0), "rexec": (0, A.noExec),
            "rnodiratime": (A.noDirAtime, 0), "rdiratime": (0, A.noDirAtime), "rrelatime": (A.relatime, A.atimeMask),
            "rnorelatime": (0, 0), "rnoatime": (A.noatime, A.atimeMask), "ratime": (0, A.noatime),
            "rstrictatime": (A.strictatime, A.atimeMask), "rnostrictatime": (0, 0),
            "rnosymfollow": (A.noSymFollow, 0), "rsymfollow": (0, A.noSymFollow),
        ]
    }()

    public static func parse(_ options: [String], field: String) throws -> Parsed {
        var p = Parsed()
        for o in options {
            if o == "bind" { p.bind = true; p.flags |= MS_BIND; continue }
            if o == "rbind" { p.bind = true; p.flags |= MS_BIND | MS_REC; continue }
            if let (set, clear) = flagTable[o] { p.flags = (p.flags & ~clear) | set; continue }
            if let prop = propagationTable[o] { p.propagation = prop; continue }
            if let (set, clear) = recursiveTable[o] {
                var a = p.attributes ?? MountAttributes(set: 0, clear: 0)
                a.set = (a.set & ~clear) | set
                a.clear = (a.clear & ~set) | clear
                p.attributes = a
                continue
            }
            if ["idmap", "ridmap"].contains(o) || o.hasPrefix("idmap=") || o.hasPrefix("ridmap=") {
                throw HakoError(.unsupported(missing: "idmapped mounts in hako-runtime"), "config.json: \(field): option \"\(o)\": idmapped mounts are not supported by hako-runtime")
            }
            if o == "tmpcopyup" || o == "copy-symlink" || o == "notmpcopyup" || o == "src-nofollow" || o == "dest-nofollow" {
                throw HakoError(.invalidArgument(field), "config.json: \(field): option \"\(o)\" is not supported by hako-runtime")
            }
            p.data.append(o)
        }
        return p
    }
}

extension BundlePlan {
    /// The config's mounts, in order; "cgroup" mounts become the container's
    /// own cgroups (CgroupView: cgroup2 in a cgroup namespace of its own, else
    /// its directories bound, under a tmpfs on v1).
    static func mounts(_ spec: OCI.Spec, bundle: String, cgroups: CgroupView, cgroupNamespace: Bool) throws -> [Mount] {
        var out: [Mount] = []
        for (i, m) in spec.mounts.enumerated() {
            let field = "mounts[\(i)]"
            var dest = m.destination
            guard !dest.isEmpty else { throw HakoError(.invalidArgument("\(field).destination"), "config.json: \(field).destination: is required") }
            if !dest.hasPrefix("/") { dest = "/" + dest }
            dest = FS.normalize(dest)
            let o = try MountOptions.parse(m.options, field: "\(field).options")
            let type = m.type ?? ""
            if o.bind || type == "bind" {
                guard var source = m.source, !source.isEmpty else { throw HakoError(.invalidArgument("\(field).source"), "config.json: \(field).source: a bind mount needs a source") }
                if !source.hasPrefix("/") { source = bundle + "/" + source }
                guard FS.exists(source) else { throw HakoError(.invalidArgument("\(field).source"), "config.json: \(field).source: \(source) does not exist") }
                var mount = Mount(kind: .bind, source: source, target: dest, flags: (o.flags | MountOptions.MS_BIND) & ~MountOptions.MS_REMOUNT)
                mount.recursiveAttributes = o.attributes
                mount.propagation = o.propagation
                out.append(mount)
                continue
            }
            if type == "cgroup" || type == "cgroup2" {
                out += cgroups.mounts(at: dest, readOnly: o.flags & MountOptions.MS_RDONLY != 0, ownNamespace: cgroupNamespace)
                continue
            }
            guard !type.isEmpty else { throw HakoError(.invalidArgument("\(field).type"), "config.json: \(field).type: is required for a mount that is not a bind mount") }
            var mount = Mount(kind: .filesystem, source: m.source ?? type, target: dest, fstype: type,
                              options: o.data.joined(separator: ","), flags: o.flags)
            mount.recursiveAttributes = o.attributes
            mount.propagation = o.propagation
            out.append(mount)
        }
        return out
    }
}
