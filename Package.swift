// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "hako",
    products: [
        .executable(name: "hako", targets: ["hako"]),
        .executable(name: "hako-monitor", targets: ["hako-monitor"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C: syscalls glibc does not wrap, the clone → exec path, the monitor's loop.
        .target(name: "CHakoShim", path: "Sources/CHakoShim",
                cSettings: [.define("_GNU_SOURCE")]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL"),

        // system: thin typed Swift over syscalls.
        .target(name: "HakoSystem", dependencies: ["CHakoShim"]),

        // facilities
        .target(name: "HakoRuntime", dependencies: ["HakoSystem", "CHakoShim"]),
        .target(name: "HakoImage", dependencies: ["HakoSystem", "CZlib", "COpenSSL"]),

        // engine
        .target(name: "HakoEngine", dependencies: ["HakoSystem", "HakoRuntime", "HakoImage"]),

        // apps
        .executableTarget(name: "hako", dependencies: [
            "HakoEngine", "HakoRuntime", "HakoSystem",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // The monitor is C: one per container, its memory is the density budget (docs/architecture.md).
        .executableTarget(name: "hako-monitor", dependencies: ["CHakoShim"], path: "Sources/hako-monitor",
                          cSettings: [.define("_GNU_SOURCE")]),

        .testTarget(name: "HakoUnitTests", dependencies: ["CHakoShim", "HakoSystem", "HakoRuntime", "HakoEngine"]),
        .testTarget(name: "HakoImageTests", dependencies: ["HakoSystem", "HakoImage"]),
        .testTarget(name: "HakoIntegrationTests", dependencies: ["HakoSystem"]),
    ]
)
