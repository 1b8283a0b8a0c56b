// swift-tools-version: 6.1
//
// Ferry's microbenchmarks, in a package of their own so that the main package's
// `swift build` and `swift test` never fetch or compile the benchmark harness.
//
//   cd Tests/Benchmarks && swift package --allow-writing-to-package-directory benchmark
//
// (`make bench-micro` runs exactly that.) The benchmark plugin finds executable targets
// under a directory named `Benchmarks`, hence `Benchmarks/FerryCoreBenchmarks/`.
import PackageDescription

let package = Package(
    name: "FerryBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // Named, so that the products below do not depend on the checkout's directory name
        // (a path dependency's identity is its last path component).
        .package(name: "Ferry", path: "../.."),
        // MallocInterposer provides the malloc counters (mallocCountTotal) on Swift 6.3;
        // the other default trait (the ARC runtime interposer) is left off.
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "FerryCoreBenchmarks",
            dependencies: [
                .product(name: "FerryCore", package: "Ferry"),
                .product(name: "FerryPacket", package: "Ferry"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/FerryCoreBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
