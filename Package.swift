// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "hako",
    products: [
        .executable(name: "hako", targets: ["hako"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    // hako-monitor (Sources/hako-monitor, C) is built by the Makefile with the C
    // compiler: SwiftPM would link the Swift runtime into it, and one monitor
    // runs per container (docs/architecture.md, "The monitor").
    targets: [
        // C: syscalls glibc does not wrap, the clone → exec path, the monitor's loop.
        .target(name: "CHakoShim", path: "Sources/CHakoShim",
                cSettings: [.define("_GNU_SOURCE")]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL"),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),

        // system: thin typed Swift over syscalls.
        .target(name: "HakoSystem", dependencies: ["CHakoShim"]),

        // facilities
        .target(name: "HakoRuntime", dependencies: ["HakoSystem", "CHakoShim"]),
        .target(name: "HakoImage", dependencies: ["HakoSystem", "CHakoShim", "CZlib", "COpenSSL"]),

        // engine
        .target(name: "HakoEngine", dependencies: ["HakoSystem", "HakoRuntime", "HakoImage"]),

        // cluster: coordinator, agent, protocol, PKI, store, scheduler (the engine never imports it)
        .target(name: "HakoCluster", dependencies: ["HakoSystem", "HakoImage", "HakoEngine", "COpenSSL", "CSQLite"]),

        // apps
        .executableTarget(name: "hako", dependencies: [
            "HakoEngine", "HakoRuntime", "HakoSystem", "HakoCluster",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // make bench only: the scheduler's throughput in-process, simulated agents.
        .executableTarget(name: "hako-cluster-bench", dependencies: ["HakoCluster", "HakoSystem"]),

        .testTarget(name: "HakoUnitTests", dependencies: ["CHakoShim", "HakoSystem", "HakoRuntime", "HakoEngine"]),
        .testTarget(name: "HakoImageTests", dependencies: ["HakoSystem", "HakoImage"]),
        .testTarget(name: "HakoIntegrationTests", dependencies: ["HakoSystem"]),
        .testTarget(name: "HakoClusterTests", dependencies: ["HakoSystem", "HakoCluster", "COpenSSL"]),
    ]
)
