/// FNV-1a, 64 bits: a fast hash for change detection and cache file names,
/// where a collision is caught or harmless (never as a security digest).
public struct FNV1a64: Sendable {
    @usableFromInline var state: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public var value: UInt64 { state }

    /// Inlinable so that each caller's byte sequence (a String's UTF-8, an
    /// array) is iterated directly: through the generic witness it cost ~200
    /// instructions a byte, ~4 M on every container start.
    @inlinable
    public mutating func combine<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        let contiguous: Void? = bytes.withContiguousStorageIfAvailable { p in
            for b in p { state = (state ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        }
        if contiguous != nil { return }
        for b in bytes { state = (state ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
    }
}
