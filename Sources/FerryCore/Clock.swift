// Time is passed in (STYLE.md rule 7): the core never reads a clock. The agent reads
// CLOCK_MONOTONIC once per batch; tests step a fake clock.

/// A monotonic instant in nanoseconds since an arbitrary origin.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var nanoseconds: UInt64
    @inlinable public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }
    @inlinable public static func seconds(_ s: UInt64) -> Timestamp { Timestamp(nanoseconds: s &* 1_000_000_000) }
    @inlinable public static func < (a: Timestamp, b: Timestamp) -> Bool { a.nanoseconds < b.nanoseconds }
    @inlinable public static func + (a: Timestamp, d: Seconds) -> Timestamp {
        Timestamp(nanoseconds: a.nanoseconds &+ d.nanoseconds)
    }
    public static let zero = Timestamp(nanoseconds: 0)
    public var description: String { "t=\(Double(nanoseconds) / 1e9)s" }
}

/// A span of time with nanosecond resolution, built from whole seconds in configuration.
public struct Seconds: Hashable, Comparable, Sendable {
    public var nanoseconds: UInt64
    @inlinable public init(_ seconds: UInt64) { nanoseconds = seconds &* 1_000_000_000 }
    @inlinable public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }
    @inlinable public static func < (a: Seconds, b: Seconds) -> Bool { a.nanoseconds < b.nanoseconds }
    public var wholeSeconds: UInt64 { nanoseconds / 1_000_000_000 }
}
