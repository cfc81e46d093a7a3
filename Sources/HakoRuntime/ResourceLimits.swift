/// A container's resource limits, as Docker's flags give them. nil: not limited
/// (the kernel's default). Validated by the engine; turned into cgroup files by
/// `CgroupLimitPlan`.
public struct ResourceLimits: Sendable, Equatable, Codable {
    /// --cpus × 10⁹ (CFS quota over a 100 ms period).
    public var nanoCPUs: Int64?
    /// --cpu-shares (v1 cpu.shares; converted to cpu.weight on v2).
    public var cpuShares: UInt64?
    /// --cpuset-cpus / --cpuset-mems ("0-2,4").
    public var cpusetCpus: String?
    public var cpusetMems: String?
    /// --memory, bytes.
    public var memory: Int64?
    /// --memory-high, bytes: the kernel reclaims (throttles) above it instead of killing.
    public var memoryHigh: Int64?
    /// --memory-reservation, bytes (a soft guarantee: v2 memory.low, v1 soft limit).
    public var memoryReservation: Int64?
    /// --memory-swap: memory plus swap in bytes, -1 unlimited; nil: Docker's default (twice --memory).
    public var memorySwap: Int64?
    /// --pids-limit; -1 (or 0) unlimited.
    public var pidsLimit: Int64?
    /// --blkio-weight, 10…1000.
    public var blkioWeight: UInt16?
    public var deviceReadBps: [DeviceRate] = []
    public var deviceWriteBps: [DeviceRate] = []
    public var deviceReadIOps: [DeviceRate] = []
    public var deviceWriteIOps: [DeviceRate] = []

    public init() {}

    public var isEmpty: Bool { self == ResourceLimits() }

    /// `patch` laid over these limits: what `hako update` changes.
    public func merging(_ patch: ResourceLimits) -> ResourceLimits {
        var m = self
        if let v = patch.nanoCPUs { m.nanoCPUs = v }
        if let v = patch.cpuShares { m.cpuShares = v }
        if let v = patch.cpusetCpus { m.cpusetCpus = v }
        if let v = patch.cpusetMems { m.cpusetMems = v }
        if let v = patch.memory {
            m.memory = v
            // Swap follows a new memory limit unless it was given (or is given now).
            if patch.memorySwap == nil, let s = m.memorySwap, s != -1, s < v { m.memorySwap = nil }
        }
        if let v = patch.memoryHigh { m.memoryHigh = v }
        if let v = patch.memoryReservation { m.memoryReservation = v }
        if let v = patch.memorySwap { m.memorySwap = v }
        if let v = patch.pidsLimit { m.pidsLimit = v }
        if let v = patch.blkioWeight { m.blkioWeight = v }
        for (dst, src) in [(\ResourceLimits.deviceReadBps, patch.deviceReadBps), (\.deviceWriteBps, patch.deviceWriteBps),
                           (\.deviceReadIOps, patch.deviceReadIOps), (\.deviceWriteIOps, patch.deviceWriteIOps)] {
            for r in src {
                m[keyPath: dst].removeAll { $0.major == r.major && $0.minor == r.minor }
                m[keyPath: dst].append(r)
            }
        }
        return m
    }
}

/// A per-device I/O rate: bytes or operations per second for one block device.
public struct DeviceRate: Sendable, Equatable, Codable {
    public var path: String
    public var major: UInt32
    public var minor: UInt32
    public var rate: UInt64

    public init(path: String, major: UInt32, minor: UInt32, rate: UInt64) {
        self.path = path; self.major = major; self.minor = minor; self.rate = rate
    }
}
