import EquivAudio
import Foundation
import TestSupport
import Testing

/// Seeded mutation fuzzing of the file reader (libsndfile behind AudioFileSource): every mutated
/// WAV or FLAC from FuzzSeeds/ must read to its end or fail with an AudioFileError naming it.
@Suite struct AudioFileFuzzTests {
    static let seeds = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("FuzzSeeds")

    @Test("mutated audio files read or fail with a typed error; none crash")
    func fuzzAudioFiles() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.seeds.path).sorted()
        let seeds = try files.map { try [UInt8](Data(contentsOf: Self.seeds.appendingPathComponent($0))) }
        let folder = NSTemporaryDirectory() + "equivd-audio-fuzz-\(getpid())"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var rng = SplitMix64(state: Fuzz.seed)
        let iterations = Fuzz.iterations(default: 3_000)
        var read = 0, refused = 0
        var block = [Float](repeating: 0, count: 4096)
        for i in 0..<iterations {
            let which = Int.random(in: 0..<seeds.count, using: &rng)
            let path = "\(folder)/\(i % 8)-\(files[which])"
            FileManager.default.createFile(atPath: path, contents: Data(Fuzz.mutate(seeds[which], &rng)))
            do {
                let source = try AudioFileSource(path: path)
                var total = 0
                while true {
                    let n = try block.withUnsafeMutableBufferPointer { try source.read(into: $0) }
                    if n == 0 { break }
                    total += n
                    #expect(total < 10_000_000, "a mutated header must not make a small file endless")
                    if total >= 10_000_000 { break }
                }
                let finite = block.allSatisfy(\.isFinite)
                #expect(finite)
                read += 1
            } catch let error as AudioFileError {
                #expect(error.path == path)
                refused += 1
            }
        }
        print("fuzz: \(iterations) mutated audio files from seed \(Fuzz.seed): \(read) read, \(refused) refused, 0 crashes")
        #expect(read > 0 && refused > 0)
    }
}
