// swift-tools-version:6.1
import PackageDescription

// Concrete generic types' metadata (KeyedEncodingContainer<X.CodingKeys>, Set<Y>, …) through
// their metadata accessors, with the conformances passed as the compiler knows them, rather
// than by mangled name: a mangled name makes the runtime look each requirement's conformance
// up, and its first look-up of a type scans every conformance record of the binary (~5,600 in
// hako, ~160 k instructions a scan). A `hako run` did ~30 such scans decoding the image and
// encoding the container's record (docs/benchmarks.md).
//
// Every function in a section of its own, so that the linker can lay hako's out in the order
// tools/hako.order gives (textOrder below).
let startUp: [SwiftSetting] = [.unsafeFlags(["-Xfrontend", "-disable-concrete-type-metadata-mangled-name-accessors",
                                             "-Xfrontend", "-function-sections"])]
// libstdc++, which the static Swift runtime needs, from its archive: `make build` links
// .build/static-libstdc++/libstdc++.a to the C compiler's, and the linker, finding only an
// archive in the first directory that has the library, takes it. Shared, its ~3,300 symbol
// relocations were resolved by the dynamic loader at every start of hako and hako-runtime
// (~1.5 M instructions). Without the directory (a plain `swift build`) the shared one is used.
let staticCxx: [LinkerSetting] = [.unsafeFlags(["-L", Context.packageDirectory + "/.build/static-libstdc++"])]
// No symbol of the executables in their dynamic symbol table (tools/executable-symbols.map):
// the Swift runtime's start-up asks dladdr(3) which object holds one of its own functions,
// and glibc's answer walks the whole table — ~18,000 exported symbols in hako, 16 % of
// `hako --version`'s CPU time. Nothing looks a symbol of theirs up by name.
let exportNothing: [LinkerSetting] = [.unsafeFlags(["-Xlinker", "--version-script=" + Context.packageDirectory + "/tools/executable-symbols.map"])]
// hako's text laid out with what its common commands run first (tools/hako.order, made by
// tools/gen-text-order.sh): an exec faults the text in 16 pages at a time and maps every page
// of each 4 KiB folio one by one, so a `run` that touched ~135 scattered 64 KiB windows of the
// 21 MB mapped ~2,200 pages; clustered, 73 windows and a `run --rm` 0.6–1.0 ms faster
// (docs/benchmarks.md). Names the file lists that a build lacks are skipped by the linker.
let textOrder: [LinkerSetting] = [.unsafeFlags(["-Xlinker", "--section-ordering-file=" + Context.packageDirectory + "/tools/hako.order"])]

let package = Package(
    name: "hako",
    products: [
        .executable(name: "hako", targets: ["hako"]),
        .executable(name: "hako-runtime", targets: ["hako-runtime"]),
    ],
    dependencies: [],
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
        .systemLibrary(name: "CCap", path: "Sources/CCap"),
        .systemLibrary(name: "CSeccomp", path: "Sources/CSeccomp"),
        .systemLibrary(name: "CMnl", path: "Sources/CMnl"),
        .systemLibrary(name: "CNftnl", path: "Sources/CNftnl"),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd"),
        .systemLibrary(name: "CYAML", path: "Sources/CYAML"),
        // Raft (libraft, with libuv as its I/O): the coordinators' replicated store.
        .systemLibrary(name: "CRaft", path: "Sources/CRaft"),
        // The Raft node's C side: libuv loop thread, FSM trampolines, the TLS-pumped transport.
        .target(name: "CHakoRaft", dependencies: ["CRaft"], path: "Sources/CHakoRaft",
                cSettings: [.define("_GNU_SOURCE")]),

        // system: thin typed Swift over syscalls.
        .target(name: "HakoSystem", dependencies: ["CHakoShim"], swiftSettings: startUp),

        // facilities
        .target(name: "HakoRuntime", dependencies: ["HakoSystem", "CHakoShim"], swiftSettings: startUp),
        // HTTP/1.1 over TCP and OpenSSL TLS
        .target(name: "HakoTransport", dependencies: ["HakoSystem", "CHakoShim", "COpenSSL"], swiftSettings: startUp),
        .target(name: "HakoImage", dependencies: ["HakoSystem", "HakoTransport", "CHakoShim", "CZlib", "CZstd", "COpenSSL"], swiftSettings: startUp),
        // capabilities (libcap) and seccomp (libseccomp, filters cached by hash)
        .target(name: "HakoSecurity", dependencies: ["HakoSystem", "CHakoShim", "CCap", "CSeccomp"], swiftSettings: startUp),
        // netlink (libmnl) and nftables (libnftnl)
        .target(name: "HakoNetwork", dependencies: ["HakoSystem", "CHakoShim", "CMnl", "CNftnl"], swiftSettings: startUp),

        // Compose files (YAML through libyaml) loaded into a stack and its diff against existing services
        .target(name: "HakoCompose", dependencies: ["HakoSystem", "CYAML"], swiftSettings: startUp),

        // engine
        .target(name: "HakoEngine", dependencies: ["HakoSystem", "HakoRuntime", "HakoImage", "HakoSecurity", "HakoNetwork"], swiftSettings: startUp),
        // the OCI runtime's operations (runc's contract) over the same runtime core; a peer of the engine
        .target(name: "HakoOCIRuntime", dependencies: ["HakoSystem", "HakoRuntime", "HakoSecurity", "CHakoShim"], swiftSettings: startUp),

        // the Docker Engine API over the engine (hako system service): HTTP/1.1 on a unix socket, Docker's JSON
        .target(name: "HakoDockerAPI", dependencies: ["CHakoShim", "HakoSystem", "HakoRuntime", "HakoImage", "HakoNetwork", "HakoTransport", "HakoEngine", "HakoCLI"], swiftSettings: startUp),

        // builds: the Dockerfile parser, .dockerignore, the stage planner and the executor over the engine
        .target(name: "HakoBuild", dependencies: ["HakoEngine", "HakoImage", "HakoRuntime", "HakoTransport", "HakoSystem", "CHakoShim"], swiftSettings: startUp),

        // cluster: coordinator, agent, protocol, PKI, store, scheduler (the engine never imports it)
        .target(name: "HakoCluster", dependencies: ["CHakoShim", "HakoSystem", "HakoTransport", "HakoImage", "HakoRuntime", "HakoEngine", "HakoNetwork", "HakoCompose", "COpenSSL", "CSQLite", "CRaft", "CHakoRaft"], swiftSettings: startUp),

        // command-line parsing, help and completions for hako, without reflection (start-up is a container's start)
        // and the flags of run/create parsed into the engine's typed ContainerSpec (ContainerFlags/)
        .target(name: "HakoCLI", dependencies: ["HakoSystem", "HakoRuntime", "HakoNetwork", "HakoImage", "HakoEngine"], swiftSettings: startUp),

        // apps
        // Position-dependent for the same reason as hako-runtime below: ~48,000 fewer
        // relocations, ~160 fewer page faults at every start.
        .executableTarget(name: "hako", dependencies: [
            "HakoEngine", "HakoRuntime", "HakoSystem", "HakoNetwork", "HakoTransport", "HakoCluster", "HakoCompose", "HakoCLI", "HakoDockerAPI", "HakoBuild",
        ], swiftSettings: startUp, linkerSettings: [.unsafeFlags(["-Xlinker", "-no-pie"])] + staticCxx + exportNothing + textOrder),
        // No Foundation and no swift-argument-parser: an OCI runtime's start-up is its speed.
        // Linked position-dependent: a PIE static-stdlib binary applies ~38,000 relative
        // relocations at every start, writing (and so keeping resident) megabytes of pages.
        .executableTarget(name: "hako-runtime", dependencies: ["HakoOCIRuntime", "HakoRuntime", "HakoSystem"],
                          swiftSettings: startUp, linkerSettings: [.unsafeFlags(["-Xlinker", "-no-pie"])] + staticCxx + exportNothing),
        // make bench only: the scheduler's throughput in-process, simulated agents.
        .executableTarget(name: "hako-cluster-bench", dependencies: ["HakoCluster", "HakoImage", "HakoRuntime", "HakoSystem"]),
        // make bench only: hako's VXLAN overlay set up in the bench's namespaces, and its convergence.
        .executableTarget(name: "hako-overlay-bench", dependencies: ["HakoNetwork", "HakoSystem"]),

        // Fixtures the test targets share (temporary directories, a tar writer, the root trait).
        .target(name: "HakoTestSupport", dependencies: ["CHakoShim", "HakoSystem", "HakoImage"], path: "Tests/HakoTestSupport"),
        .testTarget(name: "HakoUnitTests", dependencies: ["CHakoShim", "HakoSystem", "HakoRuntime", "HakoEngine", "HakoSecurity", "HakoNetwork", "HakoOCIRuntime", "HakoDockerAPI"]),
        .testTarget(name: "HakoComposeTests", dependencies: ["HakoCompose", "HakoSystem"], exclude: ["Golden"]),
        .testTarget(name: "HakoBuildTests", dependencies: ["HakoBuild", "HakoSystem"]),
        .testTarget(name: "HakoCLITests", dependencies: ["HakoCLI", "HakoEngine", "HakoRuntime", "HakoNetwork", "HakoSystem"]),
        .testTarget(name: "HakoImageTests", dependencies: ["HakoSystem", "HakoImage", "HakoTransport", "HakoTestSupport"]),
        .testTarget(name: "HakoNetworkTests", dependencies: ["HakoSystem", "HakoNetwork", "CMnl", "CNftnl"]),
        .testTarget(name: "HakoTransportTests", dependencies: ["HakoSystem", "HakoTransport"]),
        // The integration tier: the kernel's own parts (overlay mounts, netlink,
        // nftables, namespaces) and whole containers. Root; under CI=true a
        // missing privilege fails instead of skipping (docs/architecture.md, "Tests").
        .testTarget(name: "HakoKernelTests", dependencies: ["CHakoShim", "HakoSystem", "HakoImage", "HakoNetwork", "HakoTestSupport"]),
        .testTarget(name: "HakoIntegrationTests", dependencies: ["HakoSystem", "HakoRuntime", "HakoTestSupport"]),
        .testTarget(name: "HakoClusterTests", dependencies: ["HakoSystem", "HakoRuntime", "HakoCluster", "HakoCompose", "HakoImage", "HakoNetwork", "HakoTransport", "COpenSSL"]),
    ]
)
