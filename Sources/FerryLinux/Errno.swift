// Typed errors and the one place where libc calls are made, swift-system style:
// one internal wrapper per syscall, EINTR retried once here, EBADF/EFAULT trap
// because they mean the program holds a dead descriptor or a bad pointer (a bug).
import Glibc

/// An error number from a failed system call, with English names for the ones
/// Ferry reacts to.
public struct Errno: Error, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32

    @inlinable public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let interrupted = Errno(rawValue: EINTR)
    public static let wouldBlock = Errno(rawValue: EAGAIN)
    public static let noSuchFileOrDirectory = Errno(rawValue: ENOENT)
    public static let noSuchDevice = Errno(rawValue: ENODEV)
    public static let noSuchDeviceOrAddress = Errno(rawValue: ENXIO)
    public static let permissionDenied = Errno(rawValue: EACCES)
    public static let notPermitted = Errno(rawValue: EPERM)
    public static let invalidArgument = Errno(rawValue: EINVAL)
    public static let messageTooLong = Errno(rawValue: EMSGSIZE)
    public static let noBufferSpace = Errno(rawValue: ENOBUFS)
    public static let networkDown = Errno(rawValue: ENETDOWN)
    public static let resourceBusy = Errno(rawValue: EBUSY)
    public static let outOfMemory = Errno(rawValue: ENOMEM)
    public static let fileExists = Errno(rawValue: EEXIST)
    public static let timedOut = Errno(rawValue: ETIMEDOUT)
    public static let badFileDescriptor = Errno(rawValue: EBADF)
    public static let badAddress = Errno(rawValue: EFAULT)

    /// The current thread's `errno`.
    @usableFromInline static var current: Errno { Errno(rawValue: errno) }

    public var description: String {
        guard let s = strerror(rawValue) else { return "errno \(rawValue)" }
        return "\(String(cString: s)) (errno \(rawValue))"
    }
}

/// An error from libnl, carrying the libnl error code and its message.
public struct NetlinkError: Error, Hashable, Sendable, CustomStringConvertible {
    public let code: Int32
    public let operation: String
    public let message: String
    public var description: String { "\(operation): \(message) (libnl \(code))" }
}

/// A failed step of setting something up, naming what was being done.
public struct SystemError: Error, Sendable, CustomStringConvertible {
    public let operation: String
    public let errno: Errno
    public init(_ operation: String, _ errno: Errno) {
        self.operation = operation
        self.errno = errno
    }
    public var description: String { "\(operation): \(errno)" }
}

// MARK: - Syscall wrappers

/// Runs `body` until it does not fail with EINTR. Returns the result, or the errno.
/// EBADF and EFAULT trap: they are programming errors, not conditions to handle.
@inline(__always)
@usableFromInline
func retryingOnInterrupt<R: BinaryInteger>(_ body: () -> R) -> Result<R, Errno> {
    while true {
        let r = body()
        if r != -1 { return .success(r) }
        let e = Errno.current
        if e == .interrupted { continue }
        precondition(e != .badFileDescriptor, "system call on a closed descriptor")
        precondition(e != .badAddress, "system call with a bad address")
        return .failure(e)
    }
}

@inline(__always)
func check<R>(_ what: @autoclosure () -> String, _ result: Result<R, Errno>) throws(SystemError) -> R {
    switch result {
    case .success(let r): return r
    case .failure(let e): throw SystemError(what(), e)
    }
}

enum Sys {
    /// The corresponding C function is `socket`.
    static func socket(_ domain: Int32, _ type: Int32, _ proto: Int32) -> Result<Int32, Errno> {
        retryingOnInterrupt { Glibc.socket(domain, type, proto) }
    }

    /// The corresponding C function is `setsockopt`.
    static func setsockopt<T: BitwiseCopyable>(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: T) -> Result<Int32, Errno> {
        withUnsafeBytes(of: value) { v in
            retryingOnInterrupt { Glibc.setsockopt(fd, level, name, v.baseAddress, socklen_t(v.count)) }
        }
    }

    /// The corresponding C function is `getsockopt`.
    static func getsockopt<T: BitwiseCopyable>(_ fd: Int32, _ level: Int32, _ name: Int32, into value: inout T) -> Result<Int32, Errno> {
        var len = socklen_t(MemoryLayout<T>.size)
        return withUnsafeMutableBytes(of: &value) { v in
            retryingOnInterrupt { Glibc.getsockopt(fd, level, name, v.baseAddress, &len) }
        }
    }

    /// The corresponding C function is `bind`.
    static func bind<A: BitwiseCopyable>(_ fd: Int32, _ address: A) -> Result<Int32, Errno> {
        var a = address
        return retryingOnInterrupt {
            withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.bind(fd, $0, socklen_t(MemoryLayout<A>.size))
                }
            }
        }
    }

    /// The corresponding C function is `mmap`. Returns nil and the errno on failure.
    static func mmap(length: Int, fd: Int32) -> Result<UnsafeMutableRawPointer, Errno> {
        let p = Glibc.mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED | MAP_POPULATE, fd, 0)
        if p == MAP_FAILED || p == nil {
            let e = Errno.current
            // MAP_LOCKED fails with EAGAIN/ENOMEM under RLIMIT_MEMLOCK; the ring still
            // works unlocked, only page faults on first touch are not avoided.
            let q = Glibc.mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0)
            if q == MAP_FAILED || q == nil { return .failure(e) }
            return .success(q!)
        }
        return .success(p!)
    }

    /// The corresponding C function is `munmap`.
    static func munmap(_ p: UnsafeMutableRawPointer, _ length: Int) {
        _ = Glibc.munmap(p, length)
    }

    /// The corresponding C function is `send`.
    static func send(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ length: Int, _ flags: Int32) -> Result<Int, Errno> {
        retryingOnInterrupt { Glibc.send(fd, buffer, length, flags) }
    }

    /// The corresponding C function is `recv`.
    static func recv(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ length: Int, _ flags: Int32) -> Result<Int, Errno> {
        retryingOnInterrupt { Glibc.recv(fd, buffer, length, flags) }
    }

    /// The corresponding C function is `read`.
    static func read(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ length: Int) -> Result<Int, Errno> {
        retryingOnInterrupt { Glibc.read(fd, buffer, length) }
    }

    /// The corresponding C function is `write`.
    static func write(_ fd: Int32, _ buffer: UnsafeRawPointer, _ length: Int) -> Result<Int, Errno> {
        retryingOnInterrupt { Glibc.write(fd, buffer, length) }
    }

    /// The corresponding C function is `poll`. EINTR is reported as zero ready
    /// descriptors rather than retried, so a caller's timeout is not restarted.
    static func poll(_ fds: UnsafeMutablePointer<pollfd>, _ count: Int, _ timeoutMilliseconds: Int32) -> Result<Int32, Errno> {
        let r = Glibc.poll(fds, nfds_t(count), timeoutMilliseconds)
        if r == -1 {
            let e = Errno.current
            if e == .interrupted { return .success(0) }
            precondition(e != .badAddress, "poll with a bad address")
            return .failure(e)
        }
        return .success(r)
    }

    /// The corresponding C function is `open`.
    static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Result<Int32, Errno> {
        retryingOnInterrupt { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    /// The corresponding C function is `close`. EINTR is not retried: on Linux the
    /// descriptor is released even when close reports EINTR (close(2), NOTES).
    static func close(_ fd: Int32) {
        let r = Glibc.close(fd)
        if r == -1 {
            precondition(errno != EBADF, "close of a closed descriptor")
        }
    }
}
