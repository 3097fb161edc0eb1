import Foundation

/// SplitMix64: a small deterministic generator, so every fuzz run can be replayed from its seed.
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64
    public init(state: UInt64) { self.state = state }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Seeded mutation fuzzing shared by the suites: how many inputs and from which seed come from
/// EQUIVD_FUZZ_ITERATIONS and EQUIVD_FUZZ_SEED (CI runs a short pass; `make fuzz` runs 1M).
public enum Fuzz {
    public static func iterations(default value: Int) -> Int {
        ProcessInfo.processInfo.environment["EQUIVD_FUZZ_ITERATIONS"].flatMap(Int.init) ?? value
    }

    public static let seed = ProcessInfo.processInfo.environment["EQUIVD_FUZZ_SEED"].flatMap(UInt64.init) ?? 20_261_129

    /// One to four random edits: bit flips, random and boundary bytes, cuts, duplications, truncation.
    public static func mutate(_ input: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            guard !bytes.isEmpty else { break }
            let at = Int.random(in: 0..<bytes.count, using: &rng)
            switch Int.random(in: 0..<6, using: &rng) {
            case 0: bytes[at] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
            case 1: bytes[at] = UInt8.random(in: 0...255, using: &rng)
            case 2: bytes[at] = [0x00, 0x01, 0x7F, 0x80, 0xFF][Int.random(in: 0..<5, using: &rng)]
            case 3: bytes.removeSubrange(at..<min(bytes.count, at + Int.random(in: 1...16, using: &rng)))
            case 4: bytes.insert(contentsOf: bytes[at..<min(bytes.count, at + 8)], at: at)
            default: bytes = Array(bytes.prefix(at))
            }
        }
        return bytes
    }
}
