import HakoCLI
import HakoCluster
import HakoSystem

/// `service create|update`'s container options (Swarm's); on `update` a
/// list given replaces the service's, a flag given sets.
struct ServiceContainerFlags: ParsableArguments {
    @Option(name: .long("mount"), help: "Mount: type=volume|bind|tmpfs,source=…,target=…[,readonly][,volume-driver=local] (a named volume is made on the node on first use and kept there).") var mount: [String] = []
    @Option(name: .long("device"), help: "Host device: HOST[:CONTAINER[:PERMISSIONS]] (the tasks go only to nodes that report it).") var device: [String] = []
    @Option(name: .long("hostname"), help: "Container hostname, a template: {{.Service.Name}}-{{.Task.Slot}}, {{.Node.Hostname}}, …") var hostname: String?
    @Option(name: .long("dns"), help: "DNS server for the containers (after the node's, which answers service names).") var dns: [String] = []
    @Option(name: .long("dns-search"), help: "DNS search domain.") var dnsSearch: [String] = []
    @Option(name: .long("dns-option"), help: "DNS option (resolv.conf's options).") var dnsOption: [String] = []
    @Option(name: .long("sysctl"), help: "Namespaced kernel parameter (KEY=VALUE).") var sysctl: [String] = []
    @Option(name: .long("cap-add"), help: "Add a Linux capability.") var capAdd: [String] = []
    @Option(name: .long("cap-drop"), help: "Drop a Linux capability.") var capDrop: [String] = []
    @Option(name: .long("limit-pids"), help: "Processes each task may have (0: no limit).") var limitPids: Int?
    @OptionalFlag(name: .long("read-only"), help: "Mount the containers' root filesystem read-only (on update, --read-only=false turns it off).") var readOnly: Bool?
    @OptionalFlag(name: .long("init"), help: "Run an init (hako-init) as PID 1 that forwards signals and reaps processes (on update, --init=false turns it off).") var initProcess: Bool?

    func apply(to c: inout ServiceContainerOptions) throws {
        if !mount.isEmpty { c.mounts = try mount.map { try ServiceMount(parsing: $0) } }
        if !device.isEmpty { c.devices = try device.map { try ServiceDevice(parsing: $0) } }
        if let h = hostname { c.hostname = h.isEmpty ? nil : h }
        if !dns.isEmpty { c.dns = dns }
        if !dnsSearch.isEmpty { c.dnsSearch = dnsSearch }
        if !dnsOption.isEmpty { c.dnsOptions = dnsOption }
        if !sysctl.isEmpty {
            var m: [String: String] = [:]
            for kv in sysctl {
                let p = kv.split(separator: "=", maxSplits: 1).map(String.init)
                guard p.count == 2, !p[0].isEmpty else { throw HakoError(.failed, "invalid --sysctl \"\(kv)\" (KEY=VALUE)") }
                m[p[0]] = p[1]
            }
            c.sysctls = m
        }
        if !capAdd.isEmpty { c.capAdd = capAdd }
        if !capDrop.isEmpty { c.capDrop = capDrop }
        if let p = limitPids { c.pidsLimit = p }
        if let r = readOnly { c.readOnly = r }
        if let i = initProcess { c.initProcess = i }
    }
}
