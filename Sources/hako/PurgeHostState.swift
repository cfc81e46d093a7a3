import HakoCLI
import HakoEngine

/// Run by `deploy/uninstall.sh --purge`: hako's kernel state on this host.
struct PurgeHostState: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "purge-host-state",
        abstract: "Remove hako's nftables tables, links and cgroup parent from this host once no container runs (uninstall.sh --purge runs it).",
        shouldDisplay: false)
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let removed = try global.engine().purgeHostState()
        if removed.isEmpty { print("nothing of hako's to remove") }
        for r in removed { print("removed \(r)") }
    }
}
