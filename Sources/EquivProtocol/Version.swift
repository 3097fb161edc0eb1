/// What `--version` prints and `equivd_build_info` reports.
public enum EquivdVersion {
    public static let string = "0.5.0"

    public static var architecture: String {
        #if arch(x86_64)
            "x86_64"
        #elseif arch(arm64)
            "aarch64"
        #else
            "other"
        #endif
    }
}
