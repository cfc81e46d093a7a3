/// A container's slice of host ids (`--userns auto`): id N inside is
/// `start + N` on the host, for N below `count`. What `hako cp` maps owners
/// through, as docker's archive code does for a remapped daemon: files copied
/// in get the container's ids as the host stores them, files copied out the
/// ids the container sees.
public struct IDShift: Sendable, Equatable {
    public var start: UInt32
    public var count: UInt32

    public init(start: UInt32, count: UInt32) {
        self.start = start
        self.count = count
    }

    /// The id the container sees for a host id: outside its slice, the
    /// overflow id (nobody), as the kernel shows it inside.
    public func inside(_ hostID: UInt32) -> UInt32 {
        hostID >= start && hostID - start < count ? hostID - start : IDShift.overflowID
    }

    /// The host id of an id inside the container; nil for one the container has not.
    public func host(_ containerID: UInt32) -> UInt32? {
        containerID < count ? start + containerID : nil
    }

    public static let overflowID: UInt32 = 65534
}
