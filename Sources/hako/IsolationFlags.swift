import HakoCLI
import HakoEngine

/// Resource limits: `run`, `create` and `update` take them.
struct ResourceFlags: ParsableArguments {
    @Option(name: .long("cpus"), help: "Number of CPUs (e.g. 0.5).") var cpus: String?
    @Option(name: [.short("c"), .long("cpu-shares")], help: "CPU shares (relative weight, 2-262144).") var cpuShares: Int?
    @Option(name: .long("cpuset-cpus"), help: "CPUs in which to allow execution (0-3, 0,1).") var cpusetCpus: String?
    @Option(name: .long("cpuset-mems"), help: "Memory nodes in which to allow execution (0-3, 0,1).") var cpusetMems: String?
    @Option(name: [.short("m"), .long("memory")], help: "Memory limit (e.g. 512m); over it the container is OOM-killed.") var memory: String?
    @Option(name: .long("memory-high"), help: "Memory throttle limit: the kernel reclaims above it instead of killing.") var memoryHigh: String?
    @Option(name: .long("memory-reservation"), help: "Memory soft limit.") var memoryReservation: String?
    @Option(name: .long("memory-swap"), help: "Memory plus swap limit (-1: unlimited swap).") var memorySwap: String?
    @Option(name: .long("pids-limit"), help: "Maximum number of processes (-1: unlimited).") var pidsLimit: Int?
    @Option(name: .long("blkio-weight"), help: "Block I/O weight, 10-1000 (needs the BFQ scheduler).") var blkioWeight: Int?
    @Option(name: .long("device-read-bps"), help: "Limit reads from a device (e.g. /dev/sda:1mb).") var deviceReadBps: [String] = []
    @Option(name: .long("device-write-bps"), help: "Limit writes to a device (e.g. /dev/sda:1mb).") var deviceWriteBps: [String] = []
    @Option(name: .long("device-read-iops"), help: "Limit read operations per second (e.g. /dev/sda:100).") var deviceReadIops: [String] = []
    @Option(name: .long("device-write-iops"), help: "Limit write operations per second (e.g. /dev/sda:100).") var deviceWriteIops: [String] = []

    func fill(_ o: inout RunFlags.Isolation) {
        o.cpus = cpus; o.cpuShares = cpuShares; o.cpusetCpus = cpusetCpus; o.cpusetMems = cpusetMems
        o.memory = memory; o.memoryHigh = memoryHigh; o.memoryReservation = memoryReservation; o.memorySwap = memorySwap
        o.pidsLimit = pidsLimit; o.blkioWeight = blkioWeight
        o.deviceReadBps = deviceReadBps; o.deviceWriteBps = deviceWriteBps
        o.deviceReadIOps = deviceReadIops; o.deviceWriteIOps = deviceWriteIops
    }
}

/// Limits and hardening of `run` and `create`.
struct IsolationFlags: ParsableArguments {
    @OptionGroup var resources: ResourceFlags
    @Option(name: .long("device"), help: "Add a host device (HOST[:CONTAINER][:rwm]).") var device: [String] = []
    @Option(name: .long("device-cgroup-rule"), help: "Add a rule to the device allow-list (e.g. 'c 189:* rwm').") var deviceCgroupRule: [String] = []
    @Option(name: .long("cap-add"), help: "Add a capability (or ALL).") var capAdd: [String] = []
    @Option(name: .long("cap-drop"), help: "Drop a capability (or ALL).") var capDrop: [String] = []
    @Option(name: .long("security-opt"), help: "seccomp=unconfined|PROFILE.json, no-new-privileges, systempaths=unconfined.") var securityOpt: [String] = []
    @Flag(name: .long("privileged"), help: "Give the container every capability and device, no seccomp, no masked paths (dangerous).") var privileged = false
    @Flag(name: .long("read-only"), help: "Mount the container's root file system read-only.") var readOnly = false
    @Option(name: .long("sysctl"), help: "Set a namespaced kernel parameter (KEY=VALUE).") var sysctl: [String] = []
    @Option(name: .long("ulimit"), help: "Set a resource limit (NAME=SOFT[:HARD], e.g. nofile=1024:2048).") var ulimit: [String] = []
    @Option(name: .long("oom-score-adj"), help: "Tune the OOM killer's preference (-1000 to 1000).") var oomScoreAdj: Int?
    @Option(name: .long("userns"), help: "User namespace: host, auto or auto:size=N.") var userns: String?

    func flags() -> RunFlags.Isolation {
        var o = RunFlags.Isolation()
        resources.fill(&o)
        o.devices = device; o.deviceCgroupRules = deviceCgroupRule
        o.capAdd = capAdd; o.capDrop = capDrop; o.securityOpt = securityOpt
        o.privileged = privileged; o.readOnly = readOnly
        o.sysctls = sysctl; o.ulimits = ulimit; o.oomScoreAdj = oomScoreAdj; o.userns = userns
        return o
    }
}
