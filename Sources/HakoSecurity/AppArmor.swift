import HakoSystem

/// Whether the kernel enforces AppArmor: its module says so in sysfs.
/// Profiles are applied by the init path (CHakoShim) before the program's exec.
public enum AppArmor {
    public static func isEnabled(sys: String = "/sys") -> Bool {
        (try? FS.readString(sys + "/module/apparmor/parameters/enabled"))?.hasPrefix("Y") == true
    }
}
