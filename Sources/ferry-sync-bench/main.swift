// ferry-sync-bench: the control-plane half of netns-lab/sync-bench.
//
//   ferry-sync-bench generate --services N [--endpoints 10] [--seed 1] [--format yaml|json] --out DIR
//       writes DIR/cluster.EXT and DIR/cluster-changed.EXT (the same cluster with one
//       endpoint address replaced) and prints what it changed as JSON.
//   ferry-sync-bench ferry --file F --changed F2 [--node node-0] [--table-sizes "16381 4093"]
//                          [--change-table-size 16381] [--repetitions 3]
//       times Ferry's own paths on those files and prints JSON: read + parse + validate;
//       the table build per Maglev size, serial and with the fills in parallel, and the
//       table's heap footprint; the one-endpoint change through the agent's reload path
//       (`ServiceSync.reload`), per phase.
//   ferry-sync-bench rules --file F --changed F2 [--node node-0] [--cluster-cidr C] --out DIR
//       writes the rules kube-proxy would program for the same cluster:
//       iptables-full.rules / iptables-partial.rules (iptables-restore input, full sync and
//       the partial sync of the one-endpoint change) and nft-full.nft / nft-partial.nft.
//
// It is a measuring tool, not part of the agent: it prints numbers, the shell script
// runs the kernel tools and writes the report.

import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first else {
    FileHandle.standardError.write(Data("usage: ferry-sync-bench generate|ferry|rules [options]\n".utf8))
    exit(2)
}
let options = Options(Array(arguments.dropFirst()))
do {
    switch command {
    case "generate": try Generate.run(options)
    case "ferry": try FerryMeasurement.run(options)
    case "rules": try KubeProxyRules.run(options)
    default: throw ToolError("unknown command \(command)")
    }
} catch {
    FileHandle.standardError.write(Data("ferry-sync-bench: \(error)\n".utf8))
    exit(1)
}
