import FerryControlPlane
import Foundation

/// Writes a generated cluster and the same cluster with one endpoint moved to a new
/// address: the smallest change an EndpointSlice update makes (a pod replaced).
enum Generate {
    static func run(_ o: Options) throws {
        let services = try o.int("services", default: 1000)
        let endpoints = try o.int("endpoints", default: 10)
        let seed = UInt64(try o.int("seed", default: 1))
        let format = o.string("format", default: "yaml")
        let dir = try o.string("out")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)

        let t0 = monotonicNanoseconds()
        let text: String
        switch format {
        case "yaml": text = ClusterGenerator.kubectlYAML(services: services, endpointsPerService: endpoints, seed: seed)
        case "json": text = ClusterGenerator.kubectlJSON(services: services, endpointsPerService: endpoints, seed: seed)
        default: throw ToolError("--format is yaml or json")
        }
        let generated = monotonicNanoseconds() - t0
        let target = "svc-" + String(repeating: "0", count: max(0, 5 - String(services / 2).count)) + String(services / 2)
        let (changed, old, new) = try changeOneEndpoint(text, service: target)
        let base = dir + "/cluster." + format
        let other = dir + "/cluster-changed." + format
        try writeFile(text, to: base)
        try writeFile(changed, to: other)
        printJSON([
            "services": services, "endpointsPerService": endpoints, "seed": Int(seed), "format": format,
            "file": base, "changedFile": other, "bytes": text.utf8.count,
            "changedService": target, "oldAddress": old, "newAddress": new,
            "generateMilliseconds": milliseconds(generated),
        ] as [String: Any])
    }

    /// Replaces the first endpoint address of `service`'s first EndpointSlice.
    ///
    /// The generator writes each slice as `endpoints` (each starting with its address),
    /// then `metadata`; pod names are `<service>-<hash>-<suffix>`, so the first
    /// occurrence of `<service>-` is the first endpoint's targetRef, and the nearest pod
    /// address before it is that endpoint's own. Works for the YAML and the JSON form.
    static func changeOneEndpoint(_ text: String, service: String) throws -> (String, String, String) {
        var bytes = Array(text.utf8)
        guard let marker = find(Array((service + "-").utf8), in: bytes, from: 0) else {
            throw ToolError("no endpoint of \(service) in the generated file")
        }
        let pod = Array("10.244.".utf8)
        var start = marker - pod.count
        while start >= 0, !bytes[start..<(start + pod.count)].elementsEqual(pod) { start -= 1 }
        guard start >= 0 else { throw ToolError("no endpoint address before \(service)'s first pod") }
        var end = start
        while end < bytes.count, bytes[end] == UInt8(ascii: ".") || (bytes[end] >= 0x30 && bytes[end] <= 0x39) { end += 1 }
        let old = String(decoding: bytes[start..<end], as: UTF8.self)
        // 10.245.0.0/16 is outside the generator's pod range, so the new address is
        // new to the Service (an add and a remove, not a condition change).
        let new = "10.245.0.7"
        bytes.replaceSubrange(start..<end, with: Array(new.utf8))
        return (String(decoding: bytes, as: UTF8.self), old, new)
    }

    static func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        guard !needle.isEmpty, hay.count >= needle.count else { return nil }
        var i = from
        let first = needle[0]
        while i <= hay.count - needle.count {
            if hay[i] == first, hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}
