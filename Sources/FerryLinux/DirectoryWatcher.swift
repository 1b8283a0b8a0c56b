// inotify(7) on one directory, for manifests edited in place or replaced.
import CFerryLinux
import Glibc

/// Reports names of files created, written, renamed into, or deleted from a directory.
///
/// The mask covers both ways files get replaced: `cmd > file` truncates and writes
/// (IN_CLOSE_WRITE when the writer closes), editors and `kubectl`-style tools write a
/// temporary file and rename it into place (IN_MOVED_TO). IN_CREATE announces new
/// files early; IN_DELETE and IN_MOVED_FROM report removals.
public final class DirectoryWatcher: @unchecked Sendable {
    public let path: String
    public let descriptor: FileDescriptor
    private let buffer: UnsafeMutableRawBufferPointer

    public static let mask: UInt32 = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM)

    /// The corresponding C functions are `inotify_init1` and `inotify_add_watch`.
    public init(path: String) throws(SystemError) {
        self.path = path
        let fd = try check("inotify_init1", retryingOnInterrupt { inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK)) })
        switch retryingOnInterrupt({ inotify_add_watch(fd, path, Self.mask | UInt32(IN_ONLYDIR)) }) {
        case .success: break
        case .failure(let e):
            Sys.close(fd)
            throw SystemError("inotify_add_watch(\(path))", e)
        }
        descriptor = FileDescriptor(rawValue: fd)
        // Room for many events; each is a 16-byte header plus a NUL-padded name.
        buffer = .allocate(byteCount: 64 * 1024, alignment: MemoryLayout<inotify_event>.alignment)
    }

    deinit {
        buffer.deallocate()
        Sys.close(descriptor.rawValue)
    }

    /// Reads every pending event and returns the file names they concern, in order,
    /// without duplicates. Empty when nothing is pending. A queue overflow
    /// (IN_Q_OVERFLOW) is reported as the single name "" meaning "rescan everything".
    public func readEvents() throws(SystemError) -> [String] {
        var names: [String] = []
        while true {
            let n: Int
            switch Sys.read(descriptor.rawValue, buffer.baseAddress!, buffer.count) {
            case .success(let r): n = r
            case .failure(let e) where e == .wouldBlock: return names
            case .failure(let e): throw SystemError("read(inotify)", e)
            }
            if n <= 0 { return names }
            var offset = 0
            let headerSize = MemoryLayout<inotify_event>.size
            while offset + headerSize <= n {
                let p = buffer.baseAddress! + offset
                let mask = p.load(fromByteOffset: MemoryLayout<inotify_event>.offset(of: \.mask)!, as: UInt32.self)
                let len = Int(p.load(fromByteOffset: MemoryLayout<inotify_event>.offset(of: \.len)!, as: UInt32.self))
                var name = ""
                if mask & UInt32(IN_Q_OVERFLOW) != 0 {
                    name = ""
                } else if len > 0 {
                    let bytes = UnsafeRawBufferPointer(start: p + headerSize, count: len)
                    let end = bytes.firstIndex(of: 0) ?? len
                    name = String(decoding: bytes[0..<end], as: UTF8.self)
                }
                if (len > 0 || mask & UInt32(IN_Q_OVERFLOW) != 0) && !names.contains(name) { names.append(name) }
                offset += headerSize + len
            }
        }
    }
}
