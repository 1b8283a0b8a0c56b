// One poll(2) over the packet rings and the control descriptors (netlink, inotify,
// eventfd). The pollfd array is built once; waiting allocates nothing.
import CFerryLinux
import Glibc

/// Waits on several descriptors for readability.
public struct Poller: ~Copyable {
    /// Which registered descriptor; returned by `add`.
    public struct Token: Hashable, Sendable {
        public let index: Int
    }

    private var fds: UnsafeMutablePointer<pollfd>
    private var capacity: Int
    public private(set) var count = 0

    public init(capacity: Int = 8) {
        self.capacity = max(capacity, 1)
        fds = .allocate(capacity: self.capacity)
    }

    deinit { fds.deallocate() }

    /// Registers `descriptor` for readability (POLLIN). Not for the hot path: it may grow the array.
    public mutating func add(_ descriptor: FileDescriptor) -> Token {
        if count == capacity {
            let bigger = UnsafeMutablePointer<pollfd>.allocate(capacity: capacity * 2)
            bigger.moveInitialize(from: fds, count: count)
            fds.deallocate()
            fds = bigger
            capacity *= 2
        }
        (fds + count).initialize(to: pollfd(fd: descriptor.rawValue, events: Int16(POLLIN), revents: 0))
        count += 1
        return Token(index: count - 1)
    }

    /// Waits until a registered descriptor is readable or `timeoutMilliseconds` pass
    /// (-1: forever, 0: just look). Returns how many are ready; 0 on timeout or when a
    /// signal interrupted the wait.
    /// The corresponding C function is `poll`.
    public mutating func wait(timeoutMilliseconds: Int32) throws(SystemError) -> Int {
        for i in 0..<count { fds[i].revents = 0 }
        return Int(try check("poll", Sys.poll(fds, count, timeoutMilliseconds)))
    }

    /// Whether the descriptor behind `token` was readable (or hung up / in error, which
    /// a read will report) after the last `wait`.
    public func isReady(_ token: Token) -> Bool {
        precondition(token.index < count)
        return fds[token.index].revents & Int16(POLLIN | POLLERR | POLLHUP) != 0
    }
}

/// An eventfd(2) counter: another thread calls `signal()` to wake a loop polling `descriptor`.
public final class EventFD: @unchecked Sendable {
    public let descriptor: FileDescriptor

    /// The corresponding C function is `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)`.
    public init() throws(SystemError) {
        let fd = try check("eventfd", retryingOnInterrupt { eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) })
        descriptor = FileDescriptor(rawValue: fd)
    }

    deinit { Sys.close(descriptor.rawValue) }

    /// Adds one to the counter, making the descriptor readable. Safe from any thread.
    public func signal() {
        var one: UInt64 = 1
        // EAGAIN only when the counter would overflow: it is readable already.
        _ = withUnsafeBytes(of: &one) { Sys.write(descriptor.rawValue, $0.baseAddress!, 8) }
    }

    /// Resets the counter; returns how many signals arrived since the last drain (0 if none).
    @discardableResult
    public func drain() -> UInt64 {
        var value: UInt64 = 0
        switch withUnsafeMutableBytes(of: &value, { Sys.read(descriptor.rawValue, $0.baseAddress!, 8) }) {
        case .success: return value
        case .failure: return 0
        }
    }
}
