import FerryAgent
import FerryControlPlane
import FerryCore
import Foundation
import Testing

/// The agent fans Maglev fills out over the cores. Backend choice must not depend on
/// that: a restarted agent, or one that built its table serially, picks the same backend
/// for the same flow hash.
@Suite struct TableBuildExecutorTests {
    static func choices(_ table: ServiceTable) -> [String] {
        var out: [String] = []
        for f in 0..<table.frontends.count {
            for set in [BackendSetKind.cluster, .local] {
                for i in UInt32(0)..<64 {
                    let hash = i &* 0x9E37_79B9
                    out.append(table.selectBackend(frontend: f, set: set, hash: hash)?.description ?? "-")
                }
            }
        }
        return out
    }

    @Test("A table built with the concurrent executor chooses exactly as a serial build, before and after a reload")
    func concurrentMatchesSerial() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-exec-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("cluster.json").path
        try ClusterGenerator.kubectlJSON(services: 300, endpointsPerService: 7, seed: 11)
            .write(toFile: path, atomically: true, encoding: .utf8)
        let node = NodeIdentity(name: "node-1")

        let serial = try ServiceSync(path: path, node: node, executor: .serial)
        let concurrent = try ServiceSync(path: path, node: node, executor: .concurrent)
        #expect(serial.table.frontends.count > 300)
        #expect(concurrent.table.statistics.maglevTablesBuilt == serial.table.statistics.maglevTablesBuilt)
        let before = Self.choices(serial.table)
        #expect(Self.choices(concurrent.table) == before)
        #expect(Set(before).count > 100)  // the hashes really spread over many backends

        // Another endpoint count for every Service: the reload rebuilds (not reuses) the tables.
        try ClusterGenerator.kubectlJSON(services: 300, endpointsPerService: 9, seed: 11)
            .write(toFile: path, atomically: true, encoding: .utf8)
        guard case .applied = serial.reload(), case .applied = concurrent.reload() else {
            Issue.record("reload refused"); return
        }
        let after = Self.choices(serial.table)
        #expect(after != before)
        #expect(Self.choices(concurrent.table) == after)
    }
}
