// Sysctls, network namespaces and running `ip`/`nft`: what the agent does once at
// start and what the tests use to build topologies.
import CFerryLinux
import Glibc

/// Reads and writes /proc/sys. Values in net/ are per network namespace: they are the
/// calling thread's namespace's (proc_sys opens resolve current->nsproxy->net_ns).
public enum Sysctl {
    /// `name` is a path under /proc/sys, with slashes or dots: "net/ipv4/ip_forward"
    /// or "net.ipv4.ip_forward". Returns the value without the trailing newline.
    public static func read(_ name: String) throws(SystemError) -> String {
        let path = procPath(name)
        let fd = try check("open(\(path))", Sys.open(path, O_RDONLY))
        defer { Sys.close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = try check("read(\(path))", chunk.withUnsafeMutableBytes { Sys.read(fd, $0.baseAddress!, $0.count) })
            if n == 0 { break }
            out += chunk[0..<n]
        }
        var s = String(decoding: out, as: UTF8.self)
        while s.last == "\n" { s.removeLast() }
        return s
    }

    /// Writes `value` (a newline is added).
    public static func write(_ name: String, _ value: String) throws(SystemError) {
        let path = procPath(name)
        let fd = try check("open(\(path))", Sys.open(path, O_WRONLY))
        defer { Sys.close(fd) }
        let bytes = Array((value + "\n").utf8)
        _ = try check("write(\(path))", bytes.withUnsafeBytes { Sys.write(fd, $0.baseAddress!, $0.count) })
    }

    static func procPath(_ name: String) -> String {
        if name.hasPrefix("/") { return name }
        let rel = name.contains("/") ? name : name.replacingDots()
        return "/proc/sys/" + rel
    }
}

extension String {
    fileprivate func replacingDots() -> String {
        String(self.map { $0 == "." ? "/" : $0 })
    }
}

/// Network namespaces made by `ip netns add` (bind mounts under /run/netns).
public enum NetworkNamespace {
    /// Where `ip netns` keeps its namespaces.
    public static let directory = "/run/netns"

    /// Moves the **calling thread** into namespace `name`: setns(2) changes only the
    /// thread that calls it, and nothing moves it back. Every socket the thread opens
    /// afterwards belongs to that namespace; sockets opened before stay where they were.
    /// Use it at the start of a thread dedicated to the namespace (the agent's packet
    /// thread), never on a shared pool thread — see `perform(in:_:)` for that.
    /// The corresponding C function is `setns(fd, CLONE_NEWNET)`.
    public static func enter(name: String) throws(SystemError) {
        let path = directory + "/" + name
        let fd = try check("open(\(path))", Sys.open(path, O_RDONLY))
        defer { Sys.close(fd) }
        _ = try check("setns(\(name))", retryingOnInterrupt { ferry_setns(fd, ferry_clone_newnet()) })
    }

    /// Runs `body` on a new thread that entered namespace `name`, waits for it, and
    /// returns its result. The caller's thread never changes namespace. Sockets and
    /// rings created in `body` stay in `name` wherever they are used afterwards.
    public static func perform<T: Sendable>(in name: String, _ body: @Sendable @escaping () throws -> T) throws -> T {
        let box = NamespaceThreadBox<T>(name, body)
        let unmanaged = Unmanaged.passRetained(box)
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<AnyNamespaceThreadBox>.fromOpaque(raw!).takeRetainedValue()
            box.run()
            return nil
        }, unmanaged.toOpaque())
        guard rc == 0 else {
            unmanaged.release()
            throw SystemError("pthread_create", Errno(rawValue: rc))
        }
        pthread_join(thread, nil)
        return try box.result!.get()
    }
}

/// What a namespace thread runs; the non-generic base lets the C thread entry point
/// call it without knowing `T`.
private class AnyNamespaceThreadBox: @unchecked Sendable {
    func run() {}
}

private final class NamespaceThreadBox<T: Sendable>: AnyNamespaceThreadBox, @unchecked Sendable {
    // Written by the namespace thread before it exits, read after pthread_join.
    var result: Result<T, any Error>?
    let body: @Sendable () throws -> T
    let name: String
    init(_ name: String, _ body: @Sendable @escaping () throws -> T) {
        self.name = name
        self.body = body
    }
    override func run() {
        do {
            try NetworkNamespace.enter(name: name)
            result = .success(try body())
        } catch {
            result = .failure(error)
        }
    }
}

/// The outcome of `Command.run`.
public struct CommandResult: Hashable, Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

/// An error from `Command.run`'s checked form.
public struct CommandFailed: Error, CustomStringConvertible, Sendable {
    public let argv: [String]
    public let result: CommandResult
    public var description: String {
        "`\(argv.joined(separator: " "))` exited \(result.status): \(result.stderr)"
    }
}

/// Runs `ip`, `nft` and friends.
public enum Command {
    /// Starts `argv[0]` (searched in PATH) with `argv`, waits for it, and returns its
    /// exit status (128+signal when killed) and what it wrote. Runs in the calling
    /// thread's network namespace.
    /// The corresponding C functions are `posix_spawnp` and `waitpid`.
    public static func run(_ argv: [String]) throws(SystemError) -> CommandResult {
        precondition(!argv.isEmpty)
        var outPipe: [Int32] = [0, 0]
        var errPipe: [Int32] = [0, 0]
        _ = try check("pipe2", retryingOnInterrupt { ferry_pipe2(&outPipe, O_CLOEXEC) })
        _ = try check("pipe2", retryingOnInterrupt { ferry_pipe2(&errPipe, O_CLOEXEC) })
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)

        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cArgs.append(nil)
        defer { for p in cArgs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], &actions, nil, cArgs, ferry_environ())
        Sys.close(outPipe[1])
        Sys.close(errPipe[1])
        defer {
            Sys.close(outPipe[0])
            Sys.close(errPipe[0])
        }
        guard rc == 0 else { throw SystemError("posix_spawnp(\(argv[0]))", Errno(rawValue: rc)) }

        // Drain both pipes together so a child filling one cannot block on it.
        var out: [UInt8] = []
        var err: [UInt8] = []
        var open = [true, true]
        var chunk = [UInt8](repeating: 0, count: 4096)
        var pfds = [pollfd(fd: outPipe[0], events: Int16(POLLIN), revents: 0), pollfd(fd: errPipe[0], events: Int16(POLLIN), revents: 0)]
        while open[0] || open[1] {
            for i in 0..<2 { pfds[i].fd = open[i] ? (i == 0 ? outPipe[0] : errPipe[0]) : -1 }
            _ = pfds.withUnsafeMutableBufferPointer { Sys.poll($0.baseAddress!, 2, -1) }
            for i in 0..<2 where open[i] && pfds[i].revents != 0 {
                let r = chunk.withUnsafeMutableBytes { Sys.read(pfds[i].fd, $0.baseAddress!, $0.count) }
                switch r {
                case .success(let n) where n > 0:
                    if i == 0 { out += chunk[0..<n] } else { err += chunk[0..<n] }
                default:
                    open[i] = false
                }
            }
        }
        var status: Int32 = 0
        _ = try check("waitpid", retryingOnInterrupt { waitpid(pid, &status, 0) })
        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros: decode the wait status by hand
        // (bits/waitstatus.h).
        let exit: Int32 = status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return CommandResult(status: exit, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }

    /// Like `run`, but throws `CommandFailed` unless the command exits 0. Returns stdout.
    @discardableResult
    public static func runChecked(_ argv: [String]) throws -> String {
        let r = try run(argv)
        guard r.status == 0 else { throw CommandFailed(argv: argv, result: r) }
        return r.stdout
    }
}
