import Foundation
import Testing
@testable import FerryControlPlane

// Ferry's JSON reader must accept exactly what Foundation's JSONSerialization accepts
// (RFC 8259), while also giving every value its line and column.

@Suite struct JSONReaderTests {
    static let inputs: [String] = [
        #"{}"#, #"[]"#, #"{"a": 1}"#, #"{"a": [1, 2.5, -0, 1e3, 1E-2, true, false, null, "x"]}"#,
        #"{"s": "tab\tnew\nquote\" slash\/ back\\ \u00e9 \ud83d\ude00"}"#,
        "{\n  \"a\" :\r\n  {\"b\":[ ]}\t}",
        // Malformed.
        #"{"a" 1}"#, #"{a: 1}"#, #"{"a": 01}"#, #"{"a": 1.}"#, #"{"a": .5}"#,
        #"{"a": -}"#, #"{"a": 1e}"#, #"{"a": tru}"#, #"{"a": nul}"#, #"{"a": "\x"}"#, #"{"a": "\u12"}"#,
        #"{"a": "\ud83d"}"#, #"{"a": "\ude00"}"#, "{\"a\": \"line\nbreak\"}", #"{"a": "open}"#,
        #"{"a": 1} x"#, #"{"a": 1}}"#, #"[1 2]"#, #"{"a": [1}"#, #"{"#, #"["#, #"{"a": +1}"#, #"{'a': 1}"#,
    ]

    @Test(arguments: inputs)
    func acceptsExactlyWhatJSONSerializationAccepts(_ text: String) {
        let foundation = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) != nil
        let ours: Bool
        do {
            _ = try JSONReader.read(Array(text.utf8))
            ours = true
        } catch {
            ours = false
        }
        #expect(ours == foundation)
    }

    /// Trailing commas: this Foundation accepts them, RFC 8259 section 4 and 5 do not, and
    /// neither does Go's encoding/json that the API server and kubectl use. Ferry follows
    /// the RFC, so a file kubectl would refuse is refused here too.
    @Test(arguments: [#"{"a": 1,}"#, #"[1, 2,]"#, #"{"a": [1,],}"#])
    func trailingCommasAreRejectedAsRFC8259Says(_ text: String) {
        #expect(throws: JSONSyntaxError.self) { try JSONReader.read(Array(text.utf8)) }
    }

    @Test func stringsAreDecodedAndValuesLocated() throws {
        let text = "{\n  \"s\": \"a\\tb\\u00e9\\ud83d\\ude00\",\n  \"n\": -42,\n  \"list\": [\n    true,\n    null\n  ]\n}"
        let tree = try JSONReader.read(Array(text.utf8))
        let root = tree.roots[0]
        let s = try #require(tree.value("s", in: root))
        #expect(tree.string(s) == "a\tb\u{e9}\u{1F600}")
        #expect(tree.location(s) == SourceLocation(line: 2, column: 8))
        let n = try #require(tree.value("n", in: root))
        #expect(tree.integer(n) == -42)
        #expect(tree.location(n) == SourceLocation(line: 3, column: 8))
        let list = try #require(tree.value("list", in: root))
        let items = Array(tree.items(list))
        #expect(items.map(tree.kind) == [.bool, .null])
        #expect(items.map { tree.location($0).line } == [5, 6])
        #expect(tree.bool(items[0]) == true)
        #expect(tree.value("missing", in: root) == nil)
    }

    @Test func escapesAndMultibyteTextDecodeInPlace() throws {
        // An escape before multibyte text moves the rest of the string left in the buffer.
        let text = "{\"a\": \"x\\\"q\\u00e9 \u{e9}t\u{e9} \u{1F600}\", \"b\": \"plain\"}"
        let tree = try JSONReader.read(Array(text.utf8))
        let root = tree.roots[0]
        #expect(tree.string(try #require(tree.value("a", in: root))) == "x\"q\u{e9} \u{e9}t\u{e9} \u{1F600}")
        #expect(tree.string(try #require(tree.value("b", in: root))) == "plain")
        // A byte order mark before the document is ignored (RFC 8259 section 8.1).
        #expect(throws: Never.self) { try JSONReader.read([0xEF, 0xBB, 0xBF] + Array("{}".utf8)) }
    }

    @Test(arguments: [[0xC3, 0x28], [0xED, 0xA0, 0x80], [0xC0, 0xAF], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82]] as [[UInt8]])
    func invalidUTF8InAStringIsRefused(_ sequence: [UInt8]) {
        let bytes = Array("{\"a\": \"".utf8) + sequence + Array("\"}".utf8)
        #expect(throws: JSONSyntaxError.self) { try JSONReader.read(bytes) }
        #expect((try? JSONSerialization.jsonObject(with: Data(bytes))) == nil)
    }

    @Test func syntaxErrorsCarryLineAndColumn() {
        let text = "{\n  \"a\": 1,\n  \"b\": [1, 2,, 3]\n}"
        do {
            _ = try JSONReader.read(Array(text.utf8))
            Issue.record("must fail")
        } catch {
            #expect(error.line == 3)
            #expect(error.column == 14)
            #expect(error.message == "unexpected ','; expected a value")
        }
    }

    @Test func yamlScalarTypingFollowsTheCoreSchema() throws {
        let tree = try YAMLReader.read("a: 80\nb: \"80\"\nc: http\nd: true\ne: ~\nf: 10.96.0.1\ng: !!str 443\nh: -1.5e3\n")
        let root = tree.roots[0]
        let kinds = ["a", "b", "c", "d", "e", "f", "g", "h"].map { key -> ManifestTree.Kind? in
            var found: ManifestTree.Kind?
            for (k, v) in tree.pairs(root) where tree.string(k) == key { found = tree.kind(v) }
            return found
        }
        #expect(kinds == [.number, .string, .plain, .bool, .null, .plain, .string, .number])
    }
}
