import EquivCore
import Foundation

// libFuzzer supplies main() and calls this per input; nothing else in this file runs.
// bundle.json on any bytes: a manifest, or a BundleError naming the file and field.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBundleManifest(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    _ = try? BundleManifest(json: Data(bytes: start, count: count), path: "fuzz/bundle.json")
    return 0
}
