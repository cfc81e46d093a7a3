import HakoSystem

extension OCI {
    /// Fields of runtime-spec 1.2 that hako-runtime does not implement.
    static let unimplementedFields: Set<String> = [
        "windows", "solaris", "vm", "zos", "process.ioPriority", "process.scheduler", "process.execCPUAffinity",
        "process.commandLine", "linux.intelRdt", "linux.memoryPolicy", "linux.netDevices", "linux.resources.rdma",
        "mounts.uidMappings", "mounts.gidMappings",
    ]

    /// A config.json that hako cannot honour: the field is named.
    public struct SpecError: Error, CustomStringConvertible, Sendable {
        public var field: String
        public var reason: String
        public var description: String { "config.json: \(field): \(reason)" }
    }

    /// One JSON object being decoded: every member must be taken, or the
    /// leftovers are reported as unsupported fields.
    struct Fields {
        let path: String
        let members: [(String, JSON)]
        private(set) var taken: Set<String> = []

        init(_ json: JSON, path: String) throws {
            guard let m = json.members else { throw SpecError(field: path.isEmpty ? "(document)" : path, reason: "must be an object") }
            self.path = path
            self.members = m
        }

        func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

        mutating func take(_ key: String) -> JSON? {
            taken.insert(key)
            guard let v = members.last(where: { $0.0 == key })?.1, !v.isNull else { return nil }
            return v
        }

        mutating func string(_ key: String) throws -> String? {
            guard let v = take(key) else { return nil }
            guard let s = v.string else { throw SpecError(field: name(key), reason: "must be a string") }
            return s
        }

        mutating func requiredString(_ key: String) throws -> String {
            guard let s = try string(key) else { throw SpecError(field: name(key), reason: "is required") }
            return s
        }

        mutating func bool(_ key: String) throws -> Bool? {
            guard let v = take(key) else { return nil }
            guard let b = v.bool else { throw SpecError(field: name(key), reason: "must be true or false") }
            return b
        }

        mutating func int64(_ key: String) throws -> Int64? {
            guard let v = take(key) else { return nil }
            guard let n = v.int64 else { throw SpecError(field: name(key), reason: "must be an integer") }
            return n
        }

        mutating func uint64(_ key: String) throws -> UInt64? {
            guard let v = take(key) else { return nil }
            guard let n = v.uint64 else { throw SpecError(field: name(key), reason: "must be a non-negative integer") }
            return n
        }

        mutating func uint32(_ key: String) throws -> UInt32? {
            guard let n = try uint64(key) else { return nil }
            guard n <= UInt64(UInt32.max) else { throw SpecError(field: name(key), reason: "is out of range") }
            return UInt32(n)
        }

        mutating func strings(_ key: String) throws -> [String] {
            guard let v = take(key) else { return [] }
            guard let a = v.array else { throw SpecError(field: name(key), reason: "must be an array of strings") }
            return try a.enumerated().map { i, e in
                guard let s = e.string else { throw SpecError(field: "\(name(key))[\(i)]", reason: "must be a string") }
                return s
            }
        }

        mutating func objects(_ key: String) throws -> [(String, JSON)] {
            guard let v = take(key) else { return [] }
            guard let a = v.array else { throw SpecError(field: name(key), reason: "must be an array") }
            return a.enumerated().map { ("\(name(key))[\($0)]", $1) }
        }

        mutating func object(_ key: String) throws -> Fields? {
            guard let v = take(key) else { return nil }
            return try Fields(v, path: name(key))
        }

        mutating func stringMap(_ key: String) throws -> [(String, String)] {
            guard let v = take(key) else { return [] }
            guard let m = v.members else { throw SpecError(field: name(key), reason: "must be an object") }
            return try m.map { k, e in
                guard let s = e.string else { throw SpecError(field: "\(name(key)).\(k)", reason: "must be a string") }
                return (k, s)
            }
        }

        /// A member not taken is either a field the runtime spec defines and
        /// hako-runtime does not implement (an error naming it), or a property
        /// unknown to the spec, which the spec says to ignore.
        func finish() throws {
            for (k, _) in members where !taken.contains(k) {
                let field = name(k)
                var generic = ""
                var skipping = false
                for c in field {
                    if c == "[" { skipping = true } else if c == "]" { skipping = false } else if !skipping { generic.append(c) }
                }
                if OCI.unimplementedFields.contains(generic) {
                    throw SpecError(field: field, reason: "is not supported by hako-runtime")
                }
            }
        }
    }

    public static func decode(_ text: [UInt8]) throws -> Spec {
        let json: JSON
        do { json = try JSON.parse(text) } catch { throw SpecError(field: "(document)", reason: "\(error)") }
        var f = try Fields(json, path: "")
        var spec = Spec(ociVersion: try f.requiredString("ociVersion"))
        guard spec.ociVersion.hasPrefix("1.") else {
            throw SpecError(field: "ociVersion", reason: "\(spec.ociVersion) is not a 1.x runtime spec")
        }
        if var p = try f.object("process") { spec.process = try decodeProcess(&p) }
        if var r = try f.object("root") {
            spec.root = Root(path: try r.requiredString("path"), readonly: try r.bool("readonly") ?? false)
            try r.finish()
        }
        spec.hostname = try f.string("hostname")
        spec.domainname = try f.string("domainname")
        for (path, m) in try f.objects("mounts") {
            var mf = try Fields(m, path: path)
            spec.mounts.append(Mount(destination: try mf.requiredString("destination"), type: try mf.string("type"),
                                     source: try mf.string("source"), options: try mf.strings("options")))
            try mf.finish()
        }
        if var h = try f.object("hooks") { spec.hooks = try decodeHooks(&h) }
        spec.annotations = try f.stringMap("annotations")
        if var l = try f.object("linux") { spec.linux = try decodeLinux(&l) }
        try f.finish()
        return spec
    }

    static func decodeProcess(_ p: inout Fields) throws -> Process {
        var out = Process()
        out.terminal = try p.bool("terminal") ?? false
        if var c = try p.object("consoleSize") {
            out.consoleSize = (try c.uint32("height") ?? 0, try c.uint32("width") ?? 0)
            try c.finish()
        }
        if var u = try p.object("user") {
            out.user.uid = try u.uint32("uid") ?? 0
            out.user.gid = try u.uint32("gid") ?? 0
            out.user.umask = try u.uint32("umask")
            if let gids = u.take("additionalGids") {
                guard let a = gids.array else { throw SpecError(field: "process.user.additionalGids", reason: "must be an array") }
                out.user.additionalGids = try a.map { g in
                    guard let n = g.uint64, n <= UInt64(UInt32.max) else { throw SpecError(field: "process.user.additionalGids", reason: "must hold group ids") }
                    return UInt32(n)
                }
            }
            if let name = try u.string("username"), !name.isEmpty {
                throw SpecError(field: "process.user.username", reason: "is for Windows")
            }
            try u.finish()
        }
        out.args = try p.strings("args")
        out.env = try p.strings("env")
        out.cwd = try p.string("cwd") ?? "/"
        if var c = try p.object("capabilities") {
            out.capabilities = Capabilities(bounding: try c.strings("bounding"), effective: try c.strings("effective"),
                                            inheritable: try c.strings("inheritable"), permitted: try c.strings("permitted"),
                                            ambient: try c.strings("ambient"))
            try c.finish()
        }
        for (path, r) in try p.objects("rlimits") {
            var rf = try Fields(r, path: path)
            out.rlimits.append(Rlimit(type: try rf.requiredString("type"), soft: try rf.uint64("soft") ?? 0, hard: try rf.uint64("hard") ?? 0))
            try rf.finish()
        }
        out.noNewPrivileges = try p.bool("noNewPrivileges") ?? false
        if let adj = try p.int64("oomScoreAdj") {
            guard (-1000...1000).contains(adj) else { throw SpecError(field: "process.oomScoreAdj", reason: "must be between -1000 and 1000") }
            out.oomScoreAdj = Int32(adj)
        }
        out.apparmorProfile = try p.string("apparmorProfile")
        out.selinuxLabel = try p.string("selinuxLabel")
        try p.finish()
        guard !out.cwd.isEmpty, out.cwd.hasPrefix("/") else { throw SpecError(field: "process.cwd", reason: "must be an absolute path") }
        return out
    }

    static func decodeHooks(_ h: inout Fields) throws -> Hooks {
        func list(_ key: String) throws -> [Hook] {
            try h.objects(key).map { path, j in
                var hf = try Fields(j, path: path)
                let hook = Hook(path: try hf.requiredString("path"), args: try hf.strings("args"), env: try hf.strings("env"),
                                timeout: try hf.int64("timeout").map { Int($0) })
                try hf.finish()
                guard hook.path.hasPrefix("/") else { throw SpecError(field: "\(path).path", reason: "must be absolute") }
                if let t = hook.timeout, t <= 0 { throw SpecError(field: "\(path).timeout", reason: "must be positive") }
                return hook
            }
        }
        let out = Hooks(prestart: try list("prestart"), createRuntime: try list("createRuntime"),
                        createContainer: try list("createContainer"), startContainer: try list("startContainer"),
                        poststart: try list("poststart"), poststop: try list("poststop"))
        try h.finish()
        return out
    }

    static func decodeIDMappings(_ f: inout Fields, _ key: String) throws -> [IDMapping] {
        try f.objects(key).map { path, j in
            var m = try Fields(j, path: path)
            let out = IDMapping(containerID: try m.uint32("containerID") ?? 0, hostID: try m.uint32("hostID") ?? 0, size: try m.uint32("size") ?? 0)
            try m.finish()
            return out
        }
    }

    static func decodeLinux(_ l: inout Fields) throws -> Linux {
        var out = Linux()
        for (path, j) in try l.objects("namespaces") {
            var n = try Fields(j, path: path)
            let ns = Namespace(type: try n.requiredString("type"), path: try n.string("path"))
            try n.finish()
            guard ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"].contains(ns.type) else {
                throw SpecError(field: "\(path).type", reason: "unknown namespace \"\(ns.type)\"")
            }
            if out.namespaces.contains(where: { $0.type == ns.type }) {
                throw SpecError(field: "\(path).type", reason: "namespace \"\(ns.type)\" given twice")
            }
            out.namespaces.append(ns)
        }
        out.uidMappings = try decodeIDMappings(&l, "uidMappings")
        out.gidMappings = try decodeIDMappings(&l, "gidMappings")
        if let t = l.take("timeOffsets") {
            guard let m = t.members else { throw SpecError(field: "linux.timeOffsets", reason: "must be an object") }
            for (clock, v) in m {
                var tf = try Fields(v, path: "linux.timeOffsets.\(clock)")
                guard clock == "monotonic" || clock == "boottime" else { throw SpecError(field: "linux.timeOffsets.\(clock)", reason: "unknown clock") }
                out.timeOffsets.append((clock, try tf.int64("secs") ?? 0, try tf.uint32("nanosecs") ?? 0))
                try tf.finish()
            }
        }
        for (path, j) in try l.objects("devices") {
            var d = try Fields(j, path: path)
            let dev = Device(type: try d.requiredString("type"), path: try d.requiredString("path"),
                             major: try d.int64("major") ?? 0, minor: try d.int64("minor") ?? 0,
                             fileMode: try d.uint32("fileMode"), uid: try d.uint32("uid"), gid: try d.uint32("gid"))
            try d.finish()
            guard ["c", "b", "u", "p"].contains(dev.type) else { throw SpecError(field: "\(path).type", reason: "must be c, b, u or p") }
            guard dev.path.hasPrefix("/") else { throw SpecError(field: "\(path).path", reason: "must be absolute") }
            out.devices.append(dev)
        }
        out.cgroupsPath = try l.string("cgroupsPath")
        if var r = try l.object("resources") { out.resources = try decodeResources(&r) }
        out.rootfsPropagation = try l.string("rootfsPropagation")
        if var s = try l.object("seccomp") { out.seccomp = try decodeSeccomp(&s) }
        out.sysctl = try l.stringMap("sysctl")
        out.maskedPaths = try l.strings("maskedPaths")
        out.readonlyPaths = try l.strings("readonlyPaths")
        // SELinux labels are kept: the runtime refuses them where SELinux is on (it cannot apply them).
        out.mountLabel = try l.string("mountLabel")
        if var p = try l.object("personality") {
            out.personality = Personality(domain: try p.requiredString("domain"), flags: try p.strings("flags"))
            try p.finish()
            guard ["LINUX", "LINUX32"].contains(out.personality?.domain ?? "") else {
                throw SpecError(field: "linux.personality.domain", reason: "must be LINUX or LINUX32")
            }
            if !(out.personality?.flags.isEmpty ?? true) { throw SpecError(field: "linux.personality.flags", reason: "no flags are defined") }
        }
        try l.finish()
        return out
    }

    /// linux.resources alone (`update --resources`).
    public static func decodeResources(_ text: [UInt8]) throws -> Resources {
        let json: JSON
        do { json = try JSON.parse(text) } catch { throw SpecError(field: "linux.resources", reason: "\(error)") }
        var f = try Fields(json, path: "linux.resources")
        return try decodeResources(&f)
    }

    /// A process (`exec --process`), decoded as config.json's.
    public static func decodeProcess(_ text: [UInt8]) throws -> Process {
        let json: JSON
        do { json = try JSON.parse(text) } catch { throw SpecError(field: "process", reason: "\(error)") }
        var f = try Fields(json, path: "process")
        return try decodeProcess(&f)
    }

    static func decodeResources(_ r: inout Fields) throws -> Resources {
        var out = Resources()
        for (path, j) in try r.objects("devices") {
            var d = try Fields(j, path: path)
            guard let allow = try d.bool("allow") else { throw SpecError(field: "\(path).allow", reason: "is required") }
            let rule = DeviceRule(allow: allow, type: try d.string("type"), major: try d.int64("major"), minor: try d.int64("minor"), access: try d.string("access"))
            try d.finish()
            if let t = rule.type, !["a", "c", "b"].contains(t) { throw SpecError(field: "\(path).type", reason: "must be a, c or b") }
            if let a = rule.access, a.isEmpty || !a.allSatisfy({ "rwm".contains($0) }) {
                throw SpecError(field: "\(path).access", reason: "must be a combination of r, w and m")
            }
            out.devices.append(rule)
        }
        if var m = try r.object("memory") {
            out.memory = Memory(limit: try m.int64("limit"), reservation: try m.int64("reservation"), swap: try m.int64("swap"),
                                kernel: try m.int64("kernel"), kernelTCP: try m.int64("kernelTCP"), swappiness: try m.uint64("swappiness"),
                                disableOOMKiller: try m.bool("disableOOMKiller"), useHierarchy: try m.bool("useHierarchy"),
                                checkBeforeUpdate: try m.bool("checkBeforeUpdate"))
            try m.finish()
        }
        if var c = try r.object("cpu") {
            out.cpu = CPU(shares: try c.uint64("shares"), quota: try c.int64("quota"), burst: try c.uint64("burst"), period: try c.uint64("period"),
                          realtimeRuntime: try c.int64("realtimeRuntime"), realtimePeriod: try c.uint64("realtimePeriod"),
                          cpus: try c.string("cpus"), mems: try c.string("mems"), idle: try c.int64("idle"))
            try c.finish()
        }
        if var p = try r.object("pids") {
            out.pidsLimit = try p.int64("limit")
            try p.finish()
        }
        if var b = try r.object("blockIO") {
            var io = BlockIO()
            func weight(_ key: String) throws -> UInt16? {
                guard let v = try b.uint64(key) else { return nil }
                guard v <= 1000 else { throw SpecError(field: "linux.resources.blockIO.\(key)", reason: "must be 10 to 1000") }
                return UInt16(v)
            }
            io.weight = try weight("weight")
            io.leafWeight = try weight("leafWeight")
            for (path, j) in try b.objects("weightDevice") {
                var w = try Fields(j, path: path)
                io.weightDevice.append(WeightDevice(major: try w.int64("major") ?? 0, minor: try w.int64("minor") ?? 0,
                                                    weight: try w.uint64("weight").map { UInt16(clamping: $0) },
                                                    leafWeight: try w.uint64("leafWeight").map { UInt16(clamping: $0) }))
                try w.finish()
            }
            func throttle(_ key: String) throws -> [ThrottleDevice] {
                try b.objects(key).map { path, j in
                    var t = try Fields(j, path: path)
                    let d = ThrottleDevice(major: try t.int64("major") ?? 0, minor: try t.int64("minor") ?? 0, rate: try t.uint64("rate") ?? 0)
                    try t.finish()
                    return d
                }
            }
            io.throttleReadBpsDevice = try throttle("throttleReadBpsDevice")
            io.throttleWriteBpsDevice = try throttle("throttleWriteBpsDevice")
            io.throttleReadIOPSDevice = try throttle("throttleReadIOPSDevice")
            io.throttleWriteIOPSDevice = try throttle("throttleWriteIOPSDevice")
            try b.finish()
            out.blockIO = io
        }
        for (path, j) in try r.objects("hugepageLimits") {
            var h = try Fields(j, path: path)
            out.hugepageLimits.append(HugepageLimit(pageSize: try h.requiredString("pageSize"), limit: try h.uint64("limit") ?? 0))
            try h.finish()
        }
        if var n = try r.object("network") {
            out.networkClassID = try n.uint32("classID")
            for (path, j) in try n.objects("priorities") {
                var p = try Fields(j, path: path)
                out.networkPriorities.append((try p.requiredString("name"), try p.uint32("priority") ?? 0))
                try p.finish()
            }
            try n.finish()
        }
        out.unified = try r.stringMap("unified")
        if let rdma = r.take("rdma"), !(rdma.members?.isEmpty ?? true) {
            throw SpecError(field: "linux.resources.rdma", reason: "is not supported by hako-runtime")
        }
        try r.finish()
        return out
    }

    static func decodeSeccomp(_ s: inout Fields) throws -> Seccomp {
        var out = Seccomp(defaultAction: try s.requiredString("defaultAction"))
        out.defaultErrnoRet = try s.uint32("defaultErrnoRet")
        out.architectures = try s.strings("architectures")
        out.flags = try s.strings("flags")
        if let l = try s.string("listenerPath"), !l.isEmpty {
            throw SpecError(field: "linux.seccomp.listenerPath", reason: "seccomp notify listeners are not supported by hako-runtime")
        }
        _ = try s.string("listenerMetadata")
        for (path, j) in try s.objects("syscalls") {
            var r = try Fields(j, path: path)
            var rule = SeccompRule(names: try r.strings("names"), action: try r.requiredString("action"), errnoRet: try r.uint32("errnoRet"))
            for (apath, a) in try r.objects("args") {
                var af = try Fields(a, path: apath)
                rule.args.append(SeccompArg(index: try af.uint32("index") ?? 0, value: try af.uint64("value") ?? 0,
                                            valueTwo: try af.uint64("valueTwo") ?? 0, op: try af.requiredString("op")))
                try af.finish()
            }
            try r.finish()
            out.syscalls.append(rule)
        }
        try s.finish()
        return out
    }
}
