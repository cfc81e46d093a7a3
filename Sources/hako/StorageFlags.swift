import HakoCLI
import HakoEngine

/// `run`/`create` flags for bind mounts, volumes and tmpfs.
struct StorageFlags: ParsableArguments {
    @Option(name: [.short("v"), .long("volume")], help: "Bind a host path or mount a volume: [SOURCE:]TARGET[:ro|rw].") var volume: [String] = []
    @Option(name: .long("mount"), help: "Attach a mount: type=bind|volume|tmpfs,source=…,target=…[,readonly][,tmpfs-size=…][,tmpfs-mode=…].") var mount: [String] = []
    @Option(name: .long("tmpfs"), help: "Mount a tmpfs: TARGET[:size=64m,mode=1777].") var tmpfs: [String] = []

    func apply(to o: inout RunFlags) {
        o.storage.volumes = volume
        o.storage.mounts = mount
        o.storage.tmpfs = tmpfs
    }
}
