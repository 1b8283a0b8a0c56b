import FerryCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The health servers need two readings of "now", as Go's time.Time carries two:
// a monotonic one to measure how long an update has been queued (so a wall-clock
// step never makes the proxy look healthy or unhealthy), and a wall-clock one to
// print the RFC 3339 `lastUpdated` / `currentTime` fields that kube-proxy serves.
// The clock is passed in (STYLE.md rule 7) so tests step it instead of sleeping.

/// One reading of the health-check clock.
public struct HealthCheckInstant: Hashable, Sendable, CustomStringConvertible {
    /// CLOCK_MONOTONIC; only differences mean anything.
    public var monotonic: Timestamp
    /// CLOCK_REALTIME, nanoseconds since 1970-01-01T00:00:00Z.
    public var unixNanoseconds: Int64

    public init(monotonic: Timestamp, unixNanoseconds: Int64) {
        self.monotonic = monotonic
        self.unixNanoseconds = unixNanoseconds
    }

    /// The wall-clock reading as RFC 3339 text, in Go's `time.RFC3339Nano` layout
    /// (what `encoding/json` prints for a `time.Time`): UTC with a `Z`, fraction
    /// digits only as many as needed, none when the fraction is zero.
    public var rfc3339: String { RFC3339.format(unixNanoseconds: unixNanoseconds) }

    /// The time elapsed since `earlier` on the monotonic clock; zero if `earlier`
    /// is later (a monotonic clock does not go back, but an injected one might).
    public func monotonicNanoseconds(since earlier: HealthCheckInstant) -> UInt64 {
        monotonic.nanoseconds >= earlier.monotonic.nanoseconds
            ? monotonic.nanoseconds - earlier.monotonic.nanoseconds : 0
    }

    public var description: String { rfc3339 }
}

/// Where the health servers read the time.
public protocol HealthCheckClock: Sendable {
    func now() -> HealthCheckInstant
}

/// The machine's clocks: CLOCK_MONOTONIC and CLOCK_REALTIME.
/// The corresponding C function is `clock_gettime`.
public struct SystemHealthCheckClock: HealthCheckClock {
    public init() {}

    public func now() -> HealthCheckInstant {
        var mono = timespec()
        var wall = timespec()
        // clock_gettime fails only with EINVAL (unknown clock) or EFAULT (bad
        // pointer); both would be bugs here, not conditions to recover from.
        precondition(clock_gettime(CLOCK_MONOTONIC, &mono) == 0, "clock_gettime(CLOCK_MONOTONIC)")
        precondition(clock_gettime(CLOCK_REALTIME, &wall) == 0, "clock_gettime(CLOCK_REALTIME)")
        return HealthCheckInstant(
            monotonic: Timestamp(nanoseconds: UInt64(mono.tv_sec) &* 1_000_000_000 &+ UInt64(mono.tv_nsec)),
            unixNanoseconds: Int64(wall.tv_sec) &* 1_000_000_000 &+ Int64(wall.tv_nsec))
    }
}

/// RFC 3339 section 5.6 `date-time` text for a Unix time, in Go's RFC3339Nano layout.
enum RFC3339 {
    /// What Go prints for the zero `time.Time`, which kube-proxy serves as
    /// `lastUpdated` before the first update. It lies before what an `Int64` of
    /// nanoseconds since 1970 can hold, so it is a constant.
    static let goZeroTime = "0001-01-01T00:00:00Z"

    static func format(unixNanoseconds: Int64) -> String {
        // Floor division, so instants before 1970 land on the right day and second.
        let nanosPerSecond: Int64 = 1_000_000_000
        var seconds = unixNanoseconds / nanosPerSecond
        var fraction = unixNanoseconds % nanosPerSecond
        if fraction < 0 {
            fraction += nanosPerSecond
            seconds -= 1
        }
        var days = seconds / 86_400
        var secondOfDay = seconds % 86_400
        if secondOfDay < 0 {
            secondOfDay += 86_400
            days -= 1
        }
        let (year, month, day) = civilDate(daysSince1970: days)

        var text = pad(year, 4) + "-" + pad(month, 2) + "-" + pad(day, 2)
        text += "T" + pad(secondOfDay / 3600, 2) + ":" + pad(secondOfDay / 60 % 60, 2)
        text += ":" + pad(secondOfDay % 60, 2)
        if fraction != 0 {
            // Go's ".999999999" layout: nine digits, trailing zeros dropped.
            var digits = Array(pad(fraction, 9).utf8)
            while digits.last == UInt8(ascii: "0") { digits.removeLast() }
            text += "." + String(decoding: digits, as: UTF8.self)
        }
        return text + "Z"
    }

    /// The proleptic Gregorian date of a day number counted from 1970-01-01.
    /// Shifts the year to start on March 1 so the leap day is the last day of a
    /// year, then splits into 400-year eras of 146 097 days (the usual
    /// days-to-civil construction).
    static func civilDate(daysSince1970: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = daysSince1970 + 719_468  // days from 0000-03-01 to 1970-01-01
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097  // [0, 146096]
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)  // from March 1
        let shiftedMonth = (5 * dayOfYear + 2) / 153  // 0 = March
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }

    private static func pad(_ n: Int64, _ width: Int) -> String {
        let digits = String(n)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}
