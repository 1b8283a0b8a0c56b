// A JSON reader (RFC 8259) that builds a ManifestTree with the line and column of every
// value. Foundation's JSONSerialization gives neither field lines nor speed (it builds a
// boxed NSDictionary tree): a 10,000-Service `kubectl get -o json` file is read here in one
// pass over the bytes. Strings stay where they are in the buffer: escapes are decoded in
// place (the decoded form is never longer than the escaped one, so the write position
// never passes the read position), and the buffer becomes the tree's text, uncopied.

struct JSONSyntaxError: Error {
    var message: String
    var line: Int
    var column: Int
}

struct JSONReader {
    /// Deeper nesting than any Kubernetes object needs; the limit keeps a hostile file from
    /// exhausting the stack (RFC 8259 section 9 allows implementations to set one).
    static let maximumDepth = 256

    static func read(_ source: [UInt8]) throws(JSONSyntaxError) -> ManifestTree {
        var bytes = source
        return try read(consuming: &bytes)
    }

    /// Reads `bytes`, decoding string escapes in place, and moves them into the tree.
    static func read(consuming bytes: inout [UInt8]) throws(JSONSyntaxError) -> ManifestTree {
        var tree = ManifestTree()
        // About one value per 30 bytes of kubectl's indented JSON.
        tree.entries.reserveCapacity(bytes.count / 24 + 16)
        let result: JSONSyntaxError? = bytes.withUnsafeMutableBufferPointer { buf in
            var r = JSONReader(buf: buf)
            do throws(JSONSyntaxError) {
                // A UTF-8 byte order mark may be ignored (RFC 8259 section 8.1).
                if buf.count >= 3, buf[0] == 0xEF, buf[1] == 0xBB, buf[2] == 0xBF { r.pos = 3 }
                r.skipWhitespace()
                guard r.pos < buf.count else { throw r.error("the file is empty; expected a JSON object") }
                tree.roots.append(Int32(tree.entries.count))
                try r.value(into: &tree, depth: 0)
                r.skipWhitespace()
                if r.pos < buf.count { throw r.error("unexpected \(r.describeHere()) after the top-level value") }
            } catch {
                return error
            }
            return nil
        }
        if let result { throw result }
        swap(&tree.text, &bytes)
        return tree
    }

    private let buf: UnsafeMutableBufferPointer<UInt8>
    private var pos = 0
    private var line = 1
    private var lineStart = 0

    private init(buf: UnsafeMutableBufferPointer<UInt8>) {
        self.buf = buf
    }

    private var column: Int { pos - lineStart + 1 }

    private func error(_ message: String) -> JSONSyntaxError {
        JSONSyntaxError(message: message, line: line, column: column)
    }

    private func describeHere() -> String {
        guard pos < buf.count else { return "end of file" }
        let b = buf[pos]
        if b >= 0x21 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
        return "byte 0x" + String(b, radix: 16)
    }

    private mutating func skipWhitespace() {
        while pos < buf.count {
            switch buf[pos] {
            case 0x20, 0x09, 0x0D:
                pos += 1
            case 0x0A:
                pos += 1
                line += 1
                lineStart = pos
            default:
                return
            }
        }
    }

    private mutating func value(into tree: inout ManifestTree, depth: Int) throws(JSONSyntaxError) {
        guard depth < JSONReader.maximumDepth else { throw error("nesting deeper than \(JSONReader.maximumDepth) levels") }
        guard pos < buf.count else { throw error("unexpected end of file; expected a value") }
        let l = line, c = column
        switch buf[pos] {
        case UInt8(ascii: "{"):
            pos += 1
            let me = tree.open(.mapping, line: l, column: c)
            var n = 0
            skipWhitespace()
            if pos < buf.count, buf[pos] == UInt8(ascii: "}") {
                pos += 1
            } else {
                while true {
                    skipWhitespace()
                    guard pos < buf.count, buf[pos] == UInt8(ascii: "\"") else {
                        throw error("expected a string key, found \(describeHere())")
                    }
                    try string(into: &tree)
                    skipWhitespace()
                    guard pos < buf.count, buf[pos] == UInt8(ascii: ":") else {
                        throw error("expected ':' after the key, found \(describeHere())")
                    }
                    pos += 1
                    skipWhitespace()
                    try value(into: &tree, depth: depth + 1)
                    n += 2
                    skipWhitespace()
                    guard pos < buf.count else { throw error("unexpected end of file; expected ',' or '}'") }
                    if buf[pos] == UInt8(ascii: ",") { pos += 1; continue }
                    if buf[pos] == UInt8(ascii: "}") { pos += 1; break }
                    throw error("expected ',' or '}', found \(describeHere())")
                }
            }
            tree.close(me, count: n)
        case UInt8(ascii: "["):
            pos += 1
            let me = tree.open(.sequence, line: l, column: c)
            var n = 0
            skipWhitespace()
            if pos < buf.count, buf[pos] == UInt8(ascii: "]") {
                pos += 1
            } else {
                while true {
                    skipWhitespace()
                    try value(into: &tree, depth: depth + 1)
                    n += 1
                    skipWhitespace()
                    guard pos < buf.count else { throw error("unexpected end of file; expected ',' or ']'") }
                    if buf[pos] == UInt8(ascii: ",") { pos += 1; continue }
                    if buf[pos] == UInt8(ascii: "]") { pos += 1; break }
                    throw error("expected ',' or ']', found \(describeHere())")
                }
            }
            tree.close(me, count: n)
        case UInt8(ascii: "\""):
            try string(into: &tree)
        case UInt8(ascii: "t"):
            try literal("true", .bool, into: &tree)
        case UInt8(ascii: "f"):
            try literal("false", .bool, into: &tree)
        case UInt8(ascii: "n"):
            try literal("null", .null, into: &tree)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try number(into: &tree)
        default:
            throw error("unexpected \(describeHere()); expected a value")
        }
    }

    private mutating func literal(_ word: StaticString, _ kind: ManifestTree.Kind,
                                  into tree: inout ManifestTree) throws(JSONSyntaxError) {
        let n = word.utf8CodeUnitCount
        let start = pos
        let ok = word.withUTF8Buffer { w -> Bool in
            guard start + n <= buf.count else { return false }
            for j in 0..<n where buf[start + j] != w[j] { return false }
            return true
        }
        guard ok else { throw error("unexpected \(describeHere()); expected a value") }
        tree.scalar(kind, start: start, end: start + n, line: line, column: column)
        pos += n
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` (RFC 8259 section 6).
    private mutating func number(into tree: inout ManifestTree) throws(JSONSyntaxError) {
        let start = pos, c = column
        func digits(_ r: inout JSONReader) -> Int {
            let s = r.pos
            while r.pos < r.buf.count, r.buf[r.pos] &- UInt8(ascii: "0") < 10 { r.pos += 1 }
            return r.pos - s
        }
        if buf[pos] == UInt8(ascii: "-") { pos += 1 }
        guard pos < buf.count, buf[pos] &- UInt8(ascii: "0") < 10 else { throw error("a number needs a digit here") }
        if buf[pos] == UInt8(ascii: "0") {
            pos += 1
            if pos < buf.count, buf[pos] &- UInt8(ascii: "0") < 10 { throw error("numbers may not have leading zeros") }
        } else {
            _ = digits(&self)
        }
        if pos < buf.count, buf[pos] == UInt8(ascii: ".") {
            pos += 1
            guard digits(&self) > 0 else { throw error("a number needs a digit after '.'") }
        }
        if pos < buf.count, buf[pos] | 0x20 == UInt8(ascii: "e") {
            pos += 1
            if pos < buf.count, buf[pos] == UInt8(ascii: "+") || buf[pos] == UInt8(ascii: "-") { pos += 1 }
            guard digits(&self) > 0 else { throw error("a number needs a digit in its exponent") }
        }
        tree.scalar(.number, start: start, end: pos, line: line, column: c)
    }

    /// A string token. Plain strings are referenced where they are; escapes are decoded
    /// in place. Non-ASCII bytes are checked as UTF-8 here, the only place JSON allows them.
    private mutating func string(into tree: inout ManifestTree) throws(JSONSyntaxError) {
        let l = line, c = column
        pos += 1  // opening quote
        let start = pos
        var out = -1  // write position once an escape was seen
        while pos < buf.count {
            let b = buf[pos]
            if b == UInt8(ascii: "\"") {
                tree.scalar(.string, start: start, end: out < 0 ? pos : out, line: l, column: c)
                pos += 1
                return
            }
            if b < 0x20 { throw error("control character in a string; it must be escaped") }
            if b >= 0x80 {
                let n = try utf8Sequence()
                if out >= 0 {
                    for k in 0..<n { buf[out + k] = buf[pos + k] }
                    out += n
                }
                pos += n
                continue
            }
            if b != UInt8(ascii: "\\") {
                if out >= 0 {
                    buf[out] = b
                    out += 1
                }
                pos += 1
                continue
            }
            if out < 0 { out = pos }
            pos += 1
            guard pos < buf.count else { break }
            let decoded: UInt8
            switch buf[pos] {
            case UInt8(ascii: "\""): decoded = 0x22
            case UInt8(ascii: "\\"): decoded = 0x5C
            case UInt8(ascii: "/"): decoded = 0x2F
            case UInt8(ascii: "b"): decoded = 0x08
            case UInt8(ascii: "f"): decoded = 0x0C
            case UInt8(ascii: "n"): decoded = 0x0A
            case UInt8(ascii: "r"): decoded = 0x0D
            case UInt8(ascii: "t"): decoded = 0x09
            case UInt8(ascii: "u"):
                pos += 1
                var scalar = try hex4()
                if scalar & 0xFC00 == 0xD800 {
                    // A high surrogate must be followed by an escaped low one (RFC 8259 section 7).
                    guard pos + 1 < buf.count, buf[pos] == UInt8(ascii: "\\"), buf[pos + 1] == UInt8(ascii: "u") else {
                        throw error("a \\u high surrogate must be followed by a low surrogate")
                    }
                    pos += 2
                    let low = try hex4()
                    guard low & 0xFC00 == 0xDC00 else { throw error("invalid \\u low surrogate") }
                    scalar = 0x10000 + (scalar - 0xD800) << 10 + (low - 0xDC00)
                } else if scalar & 0xFC00 == 0xDC00 {
                    throw error("a \\u low surrogate without a high one")
                }
                // UTF-8 takes at most as many bytes as the six (or twelve) of the escape.
                for unit in UTF8.encode(Unicode.Scalar(scalar)!)! {
                    buf[out] = unit
                    out += 1
                }
                continue  // hex4 left pos after the digits
            default:
                throw error("invalid escape \\\(describeHere())")
            }
            buf[out] = decoded
            out += 1
            pos += 1
        }
        throw JSONSyntaxError(message: "unterminated string", line: l, column: c)
    }

    /// Checks the UTF-8 sequence at `pos` (RFC 3629 section 4: no overlong forms, no
    /// surrogates, nothing above U+10FFFF) and returns its length.
    private func utf8Sequence() throws(JSONSyntaxError) -> Int {
        let b0 = buf[pos]
        let n: Int
        var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
        switch b0 {
        case 0xC2...0xDF: n = 2
        case 0xE0: n = 3; lo = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: n = 3
        case 0xED: n = 3; hi = 0x9F
        case 0xF0: n = 4; lo = 0x90
        case 0xF1...0xF3: n = 4
        case 0xF4: n = 4; hi = 0x8F
        default: throw error("invalid UTF-8 byte 0x\(String(b0, radix: 16)); the file must be UTF-8 text")
        }
        guard pos + n <= buf.count else { throw error("truncated UTF-8 sequence") }
        for k in 1..<n {
            let b = buf[pos + k]
            let (l, h) = k == 1 ? (lo, hi) : (UInt8(0x80), UInt8(0xBF))
            guard b >= l, b <= h else {
                throw error("invalid UTF-8 sequence; the file must be UTF-8 text")
            }
        }
        return n
    }

    private mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard pos < buf.count else { throw error("\\u needs four hex digits") }
            let b = buf[pos]
            let d: UInt8
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = b - UInt8(ascii: "A") + 10
            default: throw error("\\u needs four hex digits")
            }
            v = v << 4 | UInt32(d)
            pos += 1
        }
        return v
    }
}
