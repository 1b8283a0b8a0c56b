import Glibc

/// A file descriptor number. Does not own the descriptor: the type that opened it
/// closes it.
public struct FileDescriptor: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    @inlinable public init(rawValue: Int32) { self.rawValue = rawValue }
    public var description: String { "fd \(rawValue)" }
}

/// Monotonic time for the packet loop and for timeouts.
public enum MonotonicClock {
    /// Nanoseconds of CLOCK_MONOTONIC: never jumps with wall-clock changes, so it is
    /// the one to compare conntrack ages against.
    /// The corresponding C function is `clock_gettime(CLOCK_MONOTONIC)`.
    @inlinable public static func now() -> UInt64 {
        var ts = timespec()
        // clock_gettime cannot fail for CLOCK_MONOTONIC with a valid pointer.
        _ = clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
