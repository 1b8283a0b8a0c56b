// swift-tools-version: 6.1
//
// Ferry's module map. Dependencies point one way:
//
//   FerryPacket  (pure: packet views, checksums; no Glibc, no Foundation)
//      ↑
//   FerryCore    (pure: service table, backend selection, conntrack, NAT, pipeline)
//      ↑
//   FerryControlPlane (Kubernetes Services/EndpointSlices → ServiceTable; Yams, Foundation)
//
//   FerryLinux   (AF_PACKET rings, libnl, namespaces, inotify; imports FerryPacket for
//                 address types only, never FerryCore)
//
//   FerryAgent   (glues core, control plane and Linux I/O; admin API, health checks)
//      ↑
//   ferry        (the one executable, subcommands)
import PackageDescription

let package = Package(
    name: "Ferry",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ferry", targets: ["ferry"]),
        .library(name: "FerryPacket", targets: ["FerryPacket"]),
        .library(name: "FerryCore", targets: ["FerryCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.1"),
    ],
    targets: [
        .target(name: "FerryPacket"),
        .target(name: "FerryCore", dependencies: ["FerryPacket"]),
        .target(
            name: "FerryControlPlane",
            dependencies: ["FerryCore", "FerryPacket", .product(name: "Yams", package: "Yams")]
        ),
        .target(name: "CFerryLinux"),
        .systemLibrary(
            name: "CNetlinkRoute",
            pkgConfig: "libnl-route-3.0",
            providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]
        ),
        .target(name: "FerryLinux", dependencies: ["CFerryLinux", "CNetlinkRoute", "FerryPacket"]),
        .target(
            name: "FerryAgent",
            dependencies: [
                "FerryCore", "FerryPacket", "FerryLinux", "FerryControlPlane",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "ferry",
            dependencies: [
                "FerryAgent", "FerryControlPlane", "FerryCore", "FerryPacket",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Control-plane sync benchmark (netns-lab/sync-bench): Ferry's reload path beside
        // the rules kube-proxy would write for the same cluster.
        .executableTarget(
            name: "ferry-sync-bench",
            dependencies: ["FerryAgent", "FerryControlPlane", "FerryCore", "FerryPacket"]
        ),
        .testTarget(name: "FerryPacketTests", dependencies: ["FerryPacket"], exclude: ["make_scapy_fixtures.py"]),
        .testTarget(name: "FerryCoreTests", dependencies: ["FerryCore", "FerryPacket"]),
        .testTarget(name: "FerryControlPlaneTests", dependencies: ["FerryControlPlane", "FerryCore"], resources: [.copy("Manifests")]),
        .testTarget(name: "FerryLinuxTests", dependencies: ["FerryLinux", "FerryPacket"]),
        .testTarget(name: "FerryAgentTests", dependencies: ["FerryAgent", "FerryControlPlane", "FerryCore", "FerryPacket"]),
    ],
    swiftLanguageModes: [.v6]
)
