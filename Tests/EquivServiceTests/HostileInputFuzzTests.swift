import EquivCore
import EquivProtocol
import Foundation
import TestSupport
import Testing

@testable import EquivService

/// Seeded mutation fuzzing of what clients and bundle authors control: socket request bytes
/// and bundle.json. Seeds are in FuzzSeeds/; `make fuzz` runs 1M inputs of each.
@Suite struct HostileInputFuzzTests {
    static let seeds = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("FuzzSeeds")

    @Test("request bytes, split anywhere: every line gives at most one reply, and a valid line after any garbage still works")
    func fuzzRequestReader() throws {
        let corpus = try String(contentsOf: Self.seeds.appendingPathComponent("requests.txt"), encoding: .utf8)
        let seeds = corpus.split(separator: "\n").map { Array($0.utf8) + [UInt8(ascii: "\n")] }
        var rng = SplitMix64(state: Fuzz.seed)
        let iterations = Fuzz.iterations(default: 20_000)
        var requests = 0, errors = 0
        for _ in 0..<iterations {
            var reader = RequestReader(limit: 64)
            let input = Fuzz.mutate(seeds.randomElement(using: &rng)! + seeds.randomElement(using: &rng)!, &rng)
            let cut = Int.random(in: 0...input.count, using: &rng)
            let items = reader.feed(input[..<cut]) + reader.feed(input[cut...])
            let newlines = input.filter { $0 == UInt8(ascii: "\n") }.count
            #expect(items.count <= newlines + input.count / 65 + 1)
            for item in items {
                if case .request = item { requests += 1 } else { errors += 1 }
            }
            let after = reader.feed(Array("\n{\"cmd\":\"status\"}\n".utf8))
            #expect(after.last == .request(Request(cmd: .status)))
        }
        print("fuzz: \(iterations) mutated request streams from seed \(Fuzz.seed): \(requests) requests, \(errors) error replies, 0 crashes")
        #expect(requests > 0 && errors > 0)
    }

    @Test("mutated bundle.json parses or fails with a BundleError naming the file")
    func fuzzBundleManifest() throws {
        let seed = try [UInt8](Data(contentsOf: Self.seeds.appendingPathComponent("bundle.json")))
        var rng = SplitMix64(state: Fuzz.seed)
        let iterations = Fuzz.iterations(default: 20_000)
        var parsed = 0
        for _ in 0..<iterations {
            do {
                _ = try BundleManifest(json: Data(Fuzz.mutate(seed, &rng)), path: "fuzz/bundle.json")
                parsed += 1
            } catch {
                #expect(error.path == "fuzz/bundle.json")
            }
        }
        print("fuzz: \(iterations) mutated bundle.json from seed \(Fuzz.seed): \(parsed) parsed, the rest refused, 0 crashes")
        #expect(parsed > 0)
    }
}
