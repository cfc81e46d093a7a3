import HakoSystem

/// A seeded generator (SplitMix64): the scheduler's and the dispatcher's
/// randomness in tests, so every decision is repeatable.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The kernel's randomness (getrandom), buffered: the daemons' generator.
public struct KernelRandom: RandomNumberGenerator, Sendable {
    public init() {}
    public mutating func next() -> UInt64 {
        randomBytes(8).reduce(0) { $0 << 8 | UInt64($1) }
    }
}
