import EquivAudio
import Foundation

// libFuzzer supplies main() and calls this per input; nothing else in this file runs.
// The audio-file reader (libsndfile, then mono float at the model rate) on any bytes: it reads
// to the end or throws an AudioFileError, and never crashes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAudioFile(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    FileManager.default.createFile(atPath: Scratch.path, contents: Data(bytes: start, count: count))
    guard let source = try? AudioFileSource(path: Scratch.path) else { return 0 }
    var block = [Float](repeating: 0, count: 4096)
    while let n = try? block.withUnsafeMutableBufferPointer({ try source.read(into: $0) }), n > 0 {}
    return 0
}

enum Scratch {
    static let path = FileManager.default.temporaryDirectory.appendingPathComponent("equivd-fuzz-\(getpid()).audio").path
}
