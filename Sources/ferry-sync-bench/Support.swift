import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct ToolError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// `--name value` and `--flag` options.
struct Options {
    private var values: [String: String] = [:]
    private var flags: Set<String> = []

    init(_ args: [String]) {
        var i = 0
        while i < args.count {
            let a = args[i]
            guard a.hasPrefix("--") else { i += 1; continue }
            let name = String(a.dropFirst(2))
            if i + 1 < args.count, !args[i + 1].hasPrefix("--") {
                values[name] = args[i + 1]
                i += 2
            } else {
                flags.insert(name)
                i += 1
            }
        }
    }

    func string(_ name: String) throws -> String {
        guard let v = values[name] else { throw ToolError("--\(name) is required") }
        return v
    }
    func string(_ name: String, default d: String) -> String { values[name] ?? d }
    func int(_ name: String, default d: Int) throws -> Int {
        guard let s = values[name] else { return d }
        guard let v = Int(s) else { throw ToolError("--\(name) wants a number, not \(s)") }
        return v
    }
    func flag(_ name: String) -> Bool { flags.contains(name) }
}

/// CLOCK_MONOTONIC in nanoseconds.
@inline(__always) func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Bytes glibc malloc has handed out and not taken back, from `malloc_info(3)`: memory
/// the arenas hold from the system plus mmapped chunks, less free chunks. The difference
/// across a build is what the built structure holds on the heap. (`mallinfo2` says the
/// same, but `<malloc.h>` is not in Swift's Glibc module, so it is reached by `dlsym`
/// through a function whose signature has only C types.)
func heapInUse() -> Int {
    typealias MallocInfo = @convention(c) (Int32, UnsafeMutablePointer<FILE>?) -> Int32
    // nil is RTLD_DEFAULT: the process's own libc.
    guard let symbol = dlsym(nil, "malloc_info") else { return 0 }
    let mallocInfo = unsafeBitCast(symbol, to: MallocInfo.self)
    var buffer: UnsafeMutablePointer<CChar>? = nil
    var length = 0
    guard let stream = open_memstream(&buffer, &length) else { return 0 }
    _ = mallocInfo(0, stream)
    fclose(stream)
    guard let buffer else { return 0 }
    defer { free(buffer) }
    let xml = String(cString: buffer)
    // The totals over every arena come last in the document.
    func last(_ prefix: String) -> Int {
        guard let r = xml.range(of: prefix, options: .backwards) else { return 0 }
        let rest = xml[r.upperBound...]
        guard let s = rest.range(of: "size=\""), let e = rest[s.upperBound...].firstIndex(of: "\"") else { return 0 }
        return Int(rest[s.upperBound..<e]) ?? 0
    }
    return last("<system type=\"current\"") + last("<total type=\"mmap\"")
        - last("<total type=\"fast\"") - last("<total type=\"rest\"")
}

/// Resident set size from /proc/self/statm.
func residentBytes() -> Int {
    guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = s.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

func median(_ xs: [Double]) -> Double {
    guard !xs.isEmpty else { return .nan }
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

func milliseconds(_ ns: UInt64) -> Double { Double(ns) / 1e6 }

/// Prints a JSON object (keys in the order given) to standard output.
func printJSON(_ value: Any) {
    let data = try! JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .prettyPrinted])
    FileHandle.standardOutput.write(data)
    FileHandle.standardOutput.write(Data("\n".utf8))
}

func writeFile(_ text: String, to path: String) throws {
    guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
        throw ToolError("cannot write \(path)")
    }
}
