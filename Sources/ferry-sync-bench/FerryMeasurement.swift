import FerryAgent
import FerryControlPlane
import FerryCore
import Foundation

/// Ferry's side: the first load and the one-endpoint change, through the same calls the
/// agent makes.
enum FerryMeasurement {
    static func run(_ o: Options) throws {
        let file = try o.string("file")
        let changedFile = try o.string("changed")
        let node = NodeIdentity(name: o.string("node", default: "node-0"))
        let sizes = try o.string("table-sizes", default: String(MaglevTable.defaultSize)).split(separator: " ").map { s in
            guard let m = Int(s), BackendSelector.Strategy.maglev(tableSize: m).isValid else {
                throw ToolError("--table-sizes: \(s) is not a valid Maglev table size (a prime)")
            }
            return m
        }
        let changeSize = try o.int("change-table-size", default: MaglevTable.defaultSize)
        let repetitions = try o.int("repetitions", default: 3)

        // Read + parse + validate: what ControlPlaneLoader.load does, the same for every
        // table size.
        var parseMs: [Double] = []
        var document: ControlPlaneDocument?
        for _ in 0..<repetitions {
            document = nil
            let t0 = monotonicNanoseconds()
            document = try ControlPlaneLoader.load(contentsOf: file)
            parseMs.append(milliseconds(monotonicNanoseconds() - t0))
        }
        let doc = document!
        let cluster = doc.cluster ?? ClusterConfig()

        // The table build from nothing, per table size, serial and with the Maglev fills
        // fanned out over the cores. Heap: what the built table holds (malloc_info).
        var builds: [[String: Any]] = []
        for size in sizes {
            for (mode, executor) in [("serial", TableBuildExecutor.serial), ("parallel", TableBuildExecutor.concurrent)] {
                var runs: [Double] = []
                var heap: [Int] = []
                var stats: ServiceTableBuildStatistics?
                for _ in 0..<repetitions {
                    let heap0 = heapInUse()
                    let t0 = monotonicNanoseconds()
                    let table = ServiceTable(services: doc.services, slices: doc.slices, node: node, cluster: cluster,
                                             strategy: .maglev(tableSize: size), executor: executor)
                    runs.append(milliseconds(monotonicNanoseconds() - t0))
                    heap.append(heapInUse() - heap0)
                    stats = table.statistics
                    withExtendedLifetime(table) {}
                }
                builds.append([
                    "tableSize": size, "mode": mode, "buildMs": runs, "medianBuildMs": median(runs),
                    "firstLoadMs": median(parseMs) + median(runs),
                    "heapBytes": heap.sorted()[heap.count / 2], "maglevBytes": stats!.maglevBytes,
                    "maglevTablesBuilt": stats!.maglevTablesBuilt, "maglevTablesShared": stats!.maglevTablesShared,
                    "servicePorts": stats!.servicePorts, "frontends": stats!.frontends,
                ])
            }
        }

        // The one-endpoint change through ServiceSync, the agent's reload path, with the
        // agent's default executor: the file is rewritten (changed → base → changed …)
        // and each reload is timed from the moment the write is complete to the next
        // table being ready to publish.
        let ext = file.split(separator: ".").last.map(String.init) ?? "yaml"
        let scratch = NSTemporaryDirectory() + "ferry-sync-bench-\(getpid()).\(ext)"
        defer { unlink(scratch) }
        let baseText = try Data(contentsOf: URL(fileURLWithPath: file))
        let changedText = try Data(contentsOf: URL(fileURLWithPath: changedFile))
        guard FileManager.default.createFile(atPath: scratch, contents: baseText) else { throw ToolError("cannot write \(scratch)") }
        let t0 = monotonicNanoseconds()
        let sync = try ServiceSync(path: scratch, node: node, strategy: .maglev(tableSize: changeSize))
        let agentFirstLoad = milliseconds(monotonicNanoseconds() - t0)
        var reloadMs: [Double] = [], loadMs: [Double] = [], buildMs: [Double] = [], diffMs: [Double] = []
        var built = 0, reused = 0
        var diffs: Set<String> = []
        for r in 0..<repetitions {
            guard FileManager.default.createFile(atPath: scratch, contents: r % 2 == 0 ? changedText : baseText) else {
                throw ToolError("cannot write \(scratch)")
            }
            switch sync.reload(now: monotonicNanoseconds) {
            case .applied(let a):
                reloadMs.append(milliseconds(a.elapsedNanoseconds))
                loadMs.append(milliseconds(a.phases.loadNanoseconds))
                buildMs.append(milliseconds(a.phases.buildNanoseconds))
                diffMs.append(milliseconds(a.phases.diffNanoseconds))
                built = a.table.statistics.maglevTablesBuilt
                reused = a.table.statistics.maglevTablesReused
                diffs.insert(a.diff.description)
            case .refused(let e):
                throw ToolError("the changed file was refused: \(e)")
            }
        }
        let tableUpdate = zip(buildMs, diffMs).map { $0 + $1 }

        printJSON([
            "file": file, "bytes": baseText.count, "repetitions": repetitions,
            "counts": ["services": doc.services.count, "slices": doc.slices.count, "endpoints": doc.endpointCount],
            "parse": ["readParseValidateMs": parseMs, "medianMs": median(parseMs)],
            "builds": builds,
            "agentFirstLoadMs": agentFirstLoad,
            "oneEndpointChange": [
                "tableSize": changeSize, "reloadMs": reloadMs, "medianReloadMs": median(reloadMs),
                "medianReadParseValidateMs": median(loadMs), "medianBuildMs": median(buildMs),
                "medianDiffMs": median(diffMs), "medianTableUpdateMs": median(tableUpdate),
                "maglevTablesBuilt": built, "maglevTablesReused": reused, "diffs": diffs.sorted(),
            ] as [String: Any],
            "residentBytes": residentBytes(),
        ] as [String: Any])
    }
}
