import Yams

// YAML through Yams' composer (libyaml underneath): every Node carries its Mark, which
// becomes the entry's line and column. The basic resolver is used on purpose: Yams'
// default resolver runs a regular expression per scalar to guess its type, and kubectl's
// schema needs only "is this unquoted scalar a number, a bool or null", answered below
// without one.

struct YAMLSyntaxError: Error {
    var message: String
    var line: Int?
    var column: Int?
}

enum YAMLReader {
    static func read(_ text: String) throws(YAMLSyntaxError) -> ManifestTree {
        var tree = ManifestTree()
        do {
            let parser = try Parser(yaml: text, resolver: .basic, constructor: .default, encoding: .utf8)
            while let root = try parser.nextRoot() {
                tree.roots.append(Int32(tree.entries.count))
                append(root, to: &tree)
            }
        } catch let e as YamlError {
            throw syntaxError(e)
        } catch {
            throw YAMLSyntaxError(message: "\(error)", line: nil, column: nil)
        }
        return tree
    }

    private static func syntaxError(_ e: YamlError) -> YAMLSyntaxError {
        switch e {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            var message = problem
            if let context {
                message += " (\(context.text) at line \(context.mark.line), column \(context.mark.column))"
            }
            return YAMLSyntaxError(message: message, line: mark.line, column: mark.column)
        case let .reader(problem, offset, _, yaml):
            // The reader reports a character offset; turn it into a line for the message.
            var line = 1, column = 1
            if let offset {
                for ch in yaml.prefix(offset) {
                    if ch == "\n" { line += 1; column = 1 } else { column += 1 }
                }
            }
            return YAMLSyntaxError(message: problem, line: line, column: column)
        default:
            return YAMLSyntaxError(message: "\(e)", line: nil, column: nil)
        }
    }

    private static func append(_ node: Node, to tree: inout ManifestTree) {
        let mark = node.mark
        let line = mark?.line ?? 0, column = mark?.column ?? 0
        switch node {
        case .scalar(let s):
            let start = tree.text.count
            tree.text.append(contentsOf: s.string.utf8)
            tree.scalar(kind(of: s), start: start, end: tree.text.count, line: line, column: column)
        case .mapping(let m):
            let me = tree.open(.mapping, line: line, column: column)
            for (k, v) in m {
                append(k, to: &tree)
                append(v, to: &tree)
            }
            tree.close(me, count: m.count * 2)
        case .sequence(let s):
            let me = tree.open(.sequence, line: line, column: column)
            for v in s { append(v, to: &tree) }
            tree.close(me, count: s.count)
        }
    }

    /// YAML 1.2 core-schema resolution of a scalar, as far as kubectl's output needs:
    /// quoted or explicitly tagged scalars are text; unquoted ones may be null, a bool or
    /// a number (YAML 1.2 section 10.3.2).
    static func kind(of s: Node.Scalar) -> ManifestTree.Kind {
        let tag = s.tag.description
        if !tag.isEmpty {
            switch tag {
            case "tag:yaml.org,2002:int", "tag:yaml.org,2002:float": return .number
            case "tag:yaml.org,2002:bool": return .bool
            case "tag:yaml.org,2002:null": return .null
            default: return .string  // !!str, "!" (non-specific) and application tags
            }
        }
        guard s.style == .plain || s.style == .any else { return .string }
        switch s.string {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE", "false", "False", "FALSE": return .bool
        default: return looksNumeric(s.string) ? .number : .plain
        }
    }

    /// `[-+]?[0-9]+` optionally followed by a fraction and exponent.
    static func looksNumeric(_ s: String) -> Bool {
        var u = s.utf8[...]
        if let f = u.first, f == UInt8(ascii: "-") || f == UInt8(ascii: "+") { u = u.dropFirst() }
        var intDigits = 0
        while let f = u.first, f &- UInt8(ascii: "0") < 10 { intDigits += 1; u = u.dropFirst() }
        guard intDigits > 0 else { return false }
        if let f = u.first, f == UInt8(ascii: ".") {
            u = u.dropFirst()
            while let f = u.first, f &- UInt8(ascii: "0") < 10 { u = u.dropFirst() }
        }
        if let f = u.first, f | 0x20 == UInt8(ascii: "e") {
            u = u.dropFirst()
            if let f = u.first, f == UInt8(ascii: "-") || f == UInt8(ascii: "+") { u = u.dropFirst() }
            var expDigits = 0
            while let f = u.first, f &- UInt8(ascii: "0") < 10 { expDigits += 1; u = u.dropFirst() }
            guard expDigits > 0 else { return false }
        }
        return u.isEmpty
    }
}
