import Foundation

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

    /// The git commit the running binary was built from: the package writes it beside the data
    /// (`/usr/share/equivd/commit`); a build in a checkout finds the checkout's HEAD.
    public static var commit: String {
        let exe = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        let packaged = exe.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("share/equivd/commit")
        if let text = try? String(contentsOf: packaged, encoding: .utf8) { return text.trimmingCharacters(in: .whitespacesAndNewlines) }
        var folder = exe.deletingLastPathComponent()
        while folder.path != "/" {
            let git = folder.appendingPathComponent(".git")
            if let head = try? String(contentsOf: git.appendingPathComponent("HEAD"), encoding: .utf8) {
                let ref = head.trimmingCharacters(in: .whitespacesAndNewlines)
                guard ref.hasPrefix("ref: ") else { return String(ref.prefix(12)) }
                let name = String(ref.dropFirst(5))
                if let hash = try? String(contentsOf: git.appendingPathComponent(name), encoding: .utf8) {
                    return String(hash.prefix(12))
                }
                let packed = (try? String(contentsOf: git.appendingPathComponent("packed-refs"), encoding: .utf8)) ?? ""
                let line = packed.split(separator: "\n").first { $0.hasSuffix(" " + name) }
                return line.map { String($0.prefix(12)) } ?? "unknown"
            }
            folder = folder.deletingLastPathComponent()
        }
        return "unknown"
    }

    /// `<tool> <version> (commit <hash>, <arch>)`.
    public static func line(tool: String) -> String { "\(tool) \(string) (commit \(commit), \(architecture))" }
}
