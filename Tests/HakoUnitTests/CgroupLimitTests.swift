#if canImport(Glibc)
import Glibc
#endif
@testable import HakoRuntime
import HakoSystem
import Testing

/// Records what a driver would attach instead of calling bpf(2).
final class RecordingLoader: DeviceFilterLoader, @unchecked Sendable {
    var attached: [(dir: String, program: [BPFInstruction])] = []
    func attach(_ program: [BPFInstruction], toCgroup dir: String) throws { attached.append((dir, program)) }
}

func tempDir(_ tag: String) -> String {
    var template = Array("/tmp/hako-\(tag)-XXXXXX".utf8CString)
    return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
}

func sampleLimits() -> ResourceLimits {
    var l = ResourceLimits()
    l.nanoCPUs = 500_000_000
    l.cpuShares = 512
    l.cpusetCpus = "0-1"
    l.memory = 64 << 20
    l.memoryReservation = 32 << 20
    l.pidsLimit = 64
    l.deviceReadBps = [DeviceRate(path: "/dev/vda", major: 254, minor: 0, rate: 1 << 20)]
    l.deviceWriteIOps = [DeviceRate(path: "/dev/vda", major: 254, minor: 0, rate: 100)]
    return l
}

@Suite struct CgroupLimitTests {
    @Test func v2Plan() {
        let w = CgroupLimitPlan.v2(sampleLimits()).map(\.description)
        #expect(w == ["cpu.max=50000 100000", "cpu.weight=20", "cpuset.cpus=0-1", "memory.low=33554432",
                      "memory.max=67108864", "memory.swap.max=67108864", "pids.max=64",
                      "io.max=254:0 rbps=1048576 wiops=100"])
        var l = ResourceLimits()
        l.memory = 100 << 20
        l.memorySwap = -1
        l.pidsLimit = -1
        l.memoryHigh = 80 << 20
        l.blkioWeight = 500
        let plan = CgroupLimitPlan.v2(l, swapAccounting: false)
        #expect(plan.map(\.description) == ["memory.high=83886080", "memory.max=104857600", "memory.swap.max=max",
                                             "pids.max=max", "io.weight=default 4950"])
        #expect(plan.last?.fallbackFile == "io.bfq.weight" && plan.last?.fallbackValue == "500")
        #expect(CgroupLimitPlan.cpuWeight(shares: 1024) == 39 && CgroupLimitPlan.cpuWeight(shares: 2) == 1 && CgroupLimitPlan.cpuWeight(shares: 262_144) == 10000)
        #expect(CgroupLimitPlan.cpuQuota(nanoCPUs: 10_000_000) == 1000, "--cpus 0.01 is the CFS minimum")
    }

    @Test func v1Plan() {
        let w = CgroupLimitPlan.v1(sampleLimits()).map(\.description)
        #expect(w == ["cpu.cfs_period_us=100000", "cpu.cfs_quota_us=50000", "cpu.shares=512", "cpuset.cpus=0-1",
                      "memory.soft_limit_in_bytes=33554432", "memory.limit_in_bytes=67108864",
                      "memory.memsw.limit_in_bytes=134217728", "pids.max=64",
                      "blkio.throttle.read_bps_device=254:0 1048576", "blkio.throttle.write_iops_device=254:0 100"])
        var l = ResourceLimits()
        l.memory = 64 << 20
        #expect(!CgroupLimitPlan.v1(l, swapAccounting: false).contains { $0.file.contains("memsw") }, "no swap accounting: no memsw write")
        l.memoryHigh = 48 << 20
        #expect(CgroupLimitPlan.v1(l).first?.description == "memory.soft_limit_in_bytes=50331648", "memory.high's closest on v1")
    }

    @Test func mergingAnUpdate() {
        var old = ResourceLimits()
        old.memory = 64 << 20
        old.memorySwap = 96 << 20
        old.pidsLimit = 10
        var patch = ResourceLimits()
        patch.memory = 128 << 20
        patch.nanoCPUs = 1_000_000_000
        let m = old.merging(patch)
        #expect(m.memory == 128 << 20 && m.nanoCPUs == 1_000_000_000 && m.pidsLimit == 10)
        #expect(m.memorySwap == nil, "a swap limit below the new memory limit goes back to the default")
    }

    /// The v2 driver against a fake cgroup tree: the exact files and values it writes.
    @Test func v2DriverWritesExactFiles() throws {
        let base = tempDir("fakecg2")
        defer { try? FS.removeTree(base) }
        // What the kernel offers at the root; nothing is delegated yet.
        try FS.writeAtomic(base + "/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma\n", durable: false)
        try FS.writeAtomic(base + "/cgroup.subtree_control", "\n", durable: false)
        try FS.makeDirectories(base + "/hako")
        try FS.writeAtomic(base + "/hako/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma\n", durable: false)
        try FS.writeAtomic(base + "/hako/cgroup.subtree_control", "\n", durable: false)
        let loader = RecordingLoader()
        var d = CgroupV2Driver(host: CgroupHost(unified: base, v1: []), parent: "hako")
        d.deviceLoader = loader
        _ = try d.create("c1")
        #expect(try FS.readString(base + "/cgroup.subtree_control") == "+cpuset +cpu +io +memory +pids")
        #expect(try FS.readString(base + "/hako/cgroup.subtree_control") == "+cpuset +cpu +io +memory +pids")
        // The kernel would now create the controllers' files in the container's cgroup.
        let files = ["cpu.max", "cpu.weight", "cpuset.cpus", "memory.low", "memory.max", "memory.swap.max", "pids.max", "io.max"]
        for f in files { try FS.writeAtomic("\(base)/hako/c1/\(f)", "", durable: false) }
        for f in ["cpu.max", "cpu.weight", "memory.max", "memory.swap.max", "io.max"] { try FS.writeAtomic("\(base)/hako/\(f)", "", durable: false) }
        try d.apply(sampleLimits(), to: "c1")
        let got = Dictionary(uniqueKeysWithValues: try files.map { ($0, try FS.readString("\(base)/hako/c1/\($0)")) })
        #expect(got == ["cpu.max": "50000 100000", "cpu.weight": "20", "cpuset.cpus": "0-1", "memory.low": "33554432",
                        "memory.max": "67108864", "memory.swap.max": "67108864", "pids.max": "64",
                        "io.max": "254:0 rbps=1048576 wiops=100"])
        // A second create finds everything delegated and writes nothing again.
        try FS.writeAtomic(base + "/cgroup.subtree_control", "cpuset cpu io memory pids\n", durable: false)
        _ = try d.create("c2")
        #expect(try FS.readString(base + "/cgroup.subtree_control") == "cpuset cpu io memory pids\n")
        // Devices: the generated program goes to the container's directory.
        try d.setDevices(DeviceRules.dockerDefault, for: "c1")
        #expect(loader.attached.count == 1 && loader.attached[0].dir == base + "/hako/c1")
        #expect(loader.attached[0].program == DeviceFilterProgram.generate(DeviceRules.dockerDefault))
        // Statistics from the same tree.
        try FS.writeAtomic(base + "/hako/c1/cpu.stat", "usage_usec 1500\nuser_usec 1000\n", durable: false)
        try FS.writeAtomic(base + "/hako/c1/memory.current", "10485760\n", durable: false)
        try FS.writeAtomic(base + "/hako/c1/memory.stat", "anon 1\ninactive_file 2097152\n", durable: false)
        try FS.writeAtomic(base + "/hako/c1/memory.max", "max\n", durable: false)
        try FS.writeAtomic(base + "/hako/c1/pids.current", "3\n", durable: false)
        try FS.writeAtomic(base + "/hako/c1/io.stat", "254:0 rbytes=100 wbytes=200 rios=1 wios=2\n8:0 rbytes=1 wbytes=2\n", durable: false)
        let s = d.stats("c1")
        #expect(s.cpuNanos == 1_500_000 && s.memoryUsage == 8 << 20 && s.memoryLimit == nil && s.pids == 3)
        #expect(s.blockRead == 101 && s.blockWrite == 202)
    }

    /// A controller the kernel lacks (a Raspberry Pi booted without cgroup_enable=memory).
    @Test func v2RefusesAMissingController() throws {
        let base = tempDir("fakecg2m")
        defer { try? FS.removeTree(base) }
        try FS.writeAtomic(base + "/cgroup.controllers", "cpuset cpu io pids\n", durable: false)
        try FS.writeAtomic(base + "/cgroup.subtree_control", "\n", durable: false)
        let d = CgroupV2Driver(host: CgroupHost(unified: base, v1: []), parent: "hako")
        var l = ResourceLimits()
        l.memory = 64 << 20
        do {
            try d.check(l)
            Issue.record("a memory limit was accepted without a memory controller")
        } catch let e as HakoError {
            #expect(e.message.contains("--memory") && e.message.contains("memory cgroup controller"), "\(e.message)")
            #expect(e.message.contains("cgroup_enable=memory"), "the fix is named: \(e.message)")
            #expect(!e.message.contains("\n"))
        }
        var ok = ResourceLimits()
        ok.pidsLimit = 10
        try FS.makeDirectories(base + "/hako")
        try FS.writeAtomic(base + "/hako/cgroup.controllers", "cpuset cpu io pids\n", durable: false)
        try FS.writeAtomic(base + "/hako/cgroup.subtree_control", "\n", durable: false)
        try d.check(ok)
        // The cpu controller is there but the kernel lacks CFS bandwidth control (no cpu.max).
        try FS.writeAtomic(base + "/hako/cgroup.subtree_control", "pids\n", durable: false)
        var cpu = ResourceLimits()
        cpu.nanoCPUs = 1_000_000_000
        try FS.writeAtomic(base + "/cgroup.subtree_control", "cpuset cpu io pids\n", durable: false)
        #expect(throws: HakoError.self) { try d.check(cpu) }
    }

    /// The v1 driver against a fake tree: refusals name the controller, the file and the fix.
    @Test func v1RefusesWhatTheKernelLacks() throws {
        let base = tempDir("fakecg1")
        defer { try? FS.removeTree(base) }
        for h in ["cpu", "memory", "pids", "blkio"] { try FS.makeDirectories("\(base)/\(h)") }
        try FS.writeAtomic(base + "/cpu/cpu.shares", "1024\n", durable: false)
        try FS.writeAtomic(base + "/blkio/blkio.throttle.read_bps_device", "", durable: false)
        let host = CgroupHost(unified: nil, v1: [("\(base)/cpu", ["cpu"]), ("\(base)/memory", ["memory"]),
                                                  ("\(base)/pids", ["pids"]), ("\(base)/blkio", ["blkio"])])
        let d = CgroupV1Driver(host: host, parent: "hako")
        var l = ResourceLimits()
        l.nanoCPUs = 500_000_000
        do { try d.check(l); Issue.record("--cpus accepted without cpu.cfs_quota_us") } catch let e as HakoError {
            #expect(e.message.contains("--cpus") && e.message.contains("cpu.cfs_quota_us") && e.message.contains("CONFIG_CFS_BANDWIDTH"), "\(e.message)")
        }
        var w = ResourceLimits()
        w.blkioWeight = 300
        do { try d.check(w); Issue.record("--blkio-weight accepted without blkio.weight") } catch let e as HakoError {
            #expect(e.message.contains("blkio.weight") && e.message.contains("BFQ"), "\(e.message)")
        }
        var c = ResourceLimits()
        c.cpusetCpus = "0"
        do { try d.check(c); Issue.record("--cpuset-cpus accepted without a cpuset hierarchy") } catch let e as HakoError {
            #expect(e.message.contains("cpuset cgroup controller is not available"), "\(e.message)")
        }
        var fine = ResourceLimits()
        fine.cpuShares = 512
        fine.memory = 64 << 20
        fine.pidsLimit = 5
        try d.check(fine)
    }

    @Test func statFiles() {
        #expect(CgroupStatFiles.number("max\n") == nil && CgroupStatFiles.number("42\n") == 42)
        #expect(CgroupStatFiles.number("9223372036854771712") == nil, "v1's unlimited")
        let blkio = "254:0 Read 4096\n254:0 Write 8192\n254:0 Sync 0\n254:0 Total 12288\nTotal 12288\n"
        #expect(CgroupStatFiles.blkioServiced(blkio)! == (4096, 8192))
        #expect(CgroupStatFiles.value("total_inactive_file 5\ninactive_file 7\n", "inactive_file") == 7)
        #expect(CgroupStatFiles.workingSet(usage: 10, inactiveFile: 20) == 0)
    }

    @Test func idRanges() throws {
        let pool = IDRange(start: 100_000, count: 65536 * 3)
        let a = IDRangeAllocator.allocate(size: 65536, pool: pool, taken: [])
        #expect(a == IDRange(start: 100_000, count: 65536))
        let b = IDRangeAllocator.allocate(size: 65536, pool: pool, taken: [a!])
        #expect(b == IDRange(start: 165_536, count: 65536))
        // A hole left by a removed container is reused; nothing ever overlaps.
        let c = IDRangeAllocator.allocate(size: 65536, pool: pool, taken: [b!])
        #expect(c == IDRange(start: 100_000, count: 65536))
        let small = IDRangeAllocator.allocate(size: 1000, pool: pool, taken: [a!, b!])
        #expect(small == IDRange(start: 231_072, count: 1000))
        #expect(IDRangeAllocator.allocate(size: 65536, pool: pool, taken: [a!, b!, small!]) == nil, "full")
        var g = SplitMix(seed: 7)
        var taken: [IDRange] = []
        for _ in 0..<200 {
            let size = UInt32(1 + g.next() % 5000)
            guard let r = IDRangeAllocator.allocate(size: size, pool: pool, taken: taken) else { break }
            #expect(r.start >= pool.start && r.end <= pool.end)
            #expect(!taken.contains { $0.overlaps(r) })
            taken.append(r)
            if g.next() % 3 == 0 { taken.remove(at: Int(g.next() % UInt64(taken.count))) }
        }
        #expect(try IDRange(parsing: "100000:65536") == IDRange(start: 100_000, count: 65536))
        for bad in ["", "1", "a:b", "1:0", "4294967295:2"] { #expect(throws: HakoError.self) { try IDRange(parsing: bad) } }
        #expect(IDRangeAllocator.pool(subuid: "alice:100000:65536\nhako:300000:1000000\n", user: "hako") == IDRange(start: 300_000, count: 1_000_000))
    }
}
