// The parsed form of a manifest file, whether it was YAML or JSON: a flat, pre-order array
// of entries, each knowing its line and column. One array instead of a tree of objects
// keeps a 10,000-Service file (about three million values) to a few large allocations,
// and lets the JSON reader point scalars at the source bytes instead of copying them.

/// A position in the file, 1-based. Columns count bytes for JSON and Unicode scalars for
/// YAML (libyaml's convention); both are the same for the ASCII that manifests hold.
struct SourceLocation: Hashable, Sendable {
    var line: Int
    var column: Int
}

struct ManifestTree {
    enum Kind: UInt8 {
        case mapping
        case sequence
        /// Quoted YAML scalars and JSON strings: always text, never a number.
        case string
        /// Unquoted scalars that read as numbers (`8080`, `-1`, `1.5e3`).
        case number
        case bool
        case null
        /// Any other unquoted YAML scalar (`ClusterIP`, `10.96.0.1`, `http`): text.
        case plain
    }

    struct Entry {
        var kind: Kind
        var line: Int32
        var column: Int32
        /// Index of the entry after this one's subtree; children are the entries between.
        var next: Int32
        /// Children: items of a sequence, key/value pairs of a mapping (each pair two entries).
        var count: Int32
        /// The scalar's bytes in `text` (empty for collections).
        var start: Int32
        var end: Int32
    }

    var entries: [Entry] = []
    var text: [UInt8] = []
    /// Index of each document's root (a YAML stream holds several; JSON holds one).
    var roots: [Int32] = []

    typealias Index = Int32

    @inline(__always) func kind(_ i: Index) -> Kind { entries[Int(i)].kind }

    func location(_ i: Index) -> SourceLocation {
        let e = entries[Int(i)]
        return SourceLocation(line: Int(e.line), column: Int(e.column))
    }

    /// The items of a sequence, or the values of a mapping's pairs.
    func items(_ i: Index) -> ChildIterator {
        let e = entries[Int(i)]
        return ChildIterator(entries: entries, position: i + 1, remaining: Int(e.count), pairs: e.kind == .mapping)
    }

    /// A mapping's key/value pairs as (key index, value index).
    func pairs(_ i: Index) -> PairIterator {
        let e = entries[Int(i)]
        return PairIterator(entries: entries, position: i + 1, remaining: e.kind == .mapping ? Int(e.count) / 2 : 0)
    }

    func count(_ i: Index) -> Int {
        let e = entries[Int(i)]
        return e.kind == .mapping ? Int(e.count) / 2 : Int(e.count)
    }

    /// The value for `key` in a mapping, nil when `i` is not a mapping or has no such key.
    /// Keys compare byte for byte with no allocation; kubectl's objects have at most a
    /// dozen keys per mapping, so a linear scan beats hashing.
    func value(_ key: StaticString, in i: Index) -> Index? {
        let e = entries[Int(i)]
        guard e.kind == .mapping else { return nil }
        var k = i + 1
        for _ in 0..<Int(e.count) / 2 {
            let v = entries[Int(k)].next
            if equals(k, key) { return v }
            k = entries[Int(v)].next
        }
        return nil
    }

    func equals(_ i: Index, _ s: StaticString) -> Bool {
        let e = entries[Int(i)]
        guard e.kind != .mapping, e.kind != .sequence else { return false }
        let n = Int(e.end - e.start)
        guard n == s.utf8CodeUnitCount else { return false }
        return s.withUTF8Buffer { want in
            text.withUnsafeBufferPointer { have in
                var j = 0
                var k = Int(e.start)
                while j < n {
                    if want[j] != have[k] { return false }
                    j += 1
                    k += 1
                }
                return true
            }
        }
    }

    /// The scalar's text (for any scalar kind); nil for collections.
    func string(_ i: Index) -> String? {
        let e = entries[Int(i)]
        guard e.kind != .mapping, e.kind != .sequence else { return nil }
        return text.withUnsafeBufferPointer {
            String(decoding: UnsafeBufferPointer(rebasing: $0[Int(e.start)..<Int(e.end)]), as: UTF8.self)
        }
    }

    /// An unquoted integer, parsed without allocating; nil for anything else (including
    /// `8080.0` and `"8080"`, which the Kubernetes API rejects for integer fields).
    func integer(_ i: Index) -> Int? {
        let e = entries[Int(i)]
        guard e.kind == .number else { return nil }
        return text.withUnsafeBufferPointer { buf -> Int? in
            var p = Int(e.start)
            let end = Int(e.end)
            var negative = false
            if p < end, buf[p] == UInt8(ascii: "-") || buf[p] == UInt8(ascii: "+") {
                negative = buf[p] == UInt8(ascii: "-")
                p += 1
            }
            guard p < end else { return nil }
            var v = 0
            while p < end {
                let d = buf[p] &- UInt8(ascii: "0")
                guard d < 10 else { return nil }
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(Int(d))
                guard !o1, !o2 else { return nil }
                v = a
                p += 1
            }
            return negative ? -v : v
        }
    }

    func bool(_ i: Index) -> Bool? {
        guard kind(i) == .bool else { return nil }
        return equals(i, "true") || equals(i, "True") || equals(i, "TRUE")
    }

    /// A short rendering of a value for messages: the scalar's text, or `a mapping`/`a list`.
    func describe(_ i: Index) -> String {
        switch kind(i) {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .null: return "null"
        case .string: return "\"\(string(i) ?? "")\""
        default: return string(i) ?? ""
        }
    }

    // The iterators hold only the entries (one reference to retain, not three).
    struct ChildIterator: IteratorProtocol, Sequence {
        let entries: [Entry]
        var position: Index
        var remaining: Int
        let pairs: Bool
        mutating func next() -> Index? {
            guard remaining > 0 else { return nil }
            if pairs {
                position = entries[Int(position)].next  // skip the key
                remaining -= 2
            } else {
                remaining -= 1
            }
            let v = position
            position = entries[Int(position)].next
            return v
        }
    }

    struct PairIterator: IteratorProtocol, Sequence {
        let entries: [Entry]
        var position: Index
        var remaining: Int
        mutating func next() -> (Index, Index)? {
            guard remaining > 0 else { return nil }
            remaining -= 1
            let k = position
            let v = entries[Int(k)].next
            position = entries[Int(v)].next
            return (k, v)
        }
    }
}

// MARK: - Building

extension ManifestTree {
    /// Opens a collection; children are appended after it, then `close` patches it.
    mutating func open(_ kind: Kind, line: Int, column: Int) -> Index {
        let i = Index(entries.count)
        entries.append(Entry(kind: kind, line: Int32(clamping: line), column: Int32(clamping: column),
                             next: 0, count: 0, start: 0, end: 0))
        return i
    }

    mutating func close(_ i: Index, count: Int) {
        entries[Int(i)].next = Index(entries.count)
        entries[Int(i)].count = Int32(count)
    }

    mutating func scalar(_ kind: Kind, start: Int, end: Int, line: Int, column: Int) {
        let i = Int32(entries.count)
        entries.append(Entry(kind: kind, line: Int32(clamping: line), column: Int32(clamping: column),
                             next: i + 1, count: 0, start: Int32(start), end: Int32(end)))
    }
}
