import Foundation
import TestSupport
import Testing

@testable import EquivModel

/// Seeded mutation fuzzing of the whole load path: decode, plan, run. Every mutated model must
/// either run or fail with a ModelError; a crash fails the suite. Iterations come from
/// EQUIVD_FUZZ_ITERATIONS (CI runs a short pass; `make fuzz` runs 100k in release).
@Suite struct LoaderFuzzTests {
    static let iterations = Fuzz.iterations(default: 2000)
    static let seed = Fuzz.seed

    static func mutate(_ data: Data, _ rng: inout SplitMix64) -> Data { Data(Fuzz.mutate([UInt8](data), &rng)) }

    @Test("mutated models load, plan and run or fail with a typed error; none crash")
    func fuzzLoader() throws {
        let seedModel = try ModelBuilder.smallCNN().serialized()
        var rng = SplitMix64(state: Self.seed)
        var options = InferenceSession.Options()
        options.maximumFloats = 1 << 20
        var decoded = 0, planned = 0
        for _ in 0..<Self.iterations {
            let data = Self.mutate(seedModel, &rng)
            guard let model = try? ONNXModel(serialized: data, source: "fuzz.onnx") else { continue }
            decoded += 1
            guard let session = try? InferenceSession(model: model, options: options) else { continue }
            planned += 1
            for port in session.inputs { port.buffer.update(repeating: 0.5) }
            session.run()
        }
        print("fuzz: \(Self.iterations) mutated models from seed \(Self.seed): \(decoded) decoded, \(planned) planned and ran, 0 crashes")
        #expect(decoded > 0 && planned > 0)
    }

    /// Structure-aware mutations: operator types, attribute values, dimensions and wiring of a
    /// valid graph, so that most cases reach the operator planners rather than the decoder.
    static func mutateGraph(_ builder: ModelBuilder, _ rng: inout SplitMix64) -> ModelBuilder {
        var b = builder
        let ops = InferenceSession.supportedOperators.sorted()
        let names = ["x", "w", "b", "fc", "fcb", "c", "r", "p", "f", "logits", "y", ""]
        let values: [Int64] = [-3, -1, 0, 1, 2, 3, 7, 1 << 20, Int64.max, Int64.min]
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            let n = Int.random(in: 0..<b.graph.node.count, using: &rng)
            switch Int.random(in: 0..<6, using: &rng) {
            case 0: b.graph.node[n].opType = ops.randomElement(using: &rng)!
            case 1:
                if !b.graph.node[n].attribute.isEmpty {
                    let a = Int.random(in: 0..<b.graph.node[n].attribute.count, using: &rng)
                    b.graph.node[n].attribute[a].i = values.randomElement(using: &rng)!
                    b.graph.node[n].attribute[a].ints = b.graph.node[n].attribute[a].ints.map { _ in values.randomElement(using: &rng)! }
                }
            case 2:
                let t = Int.random(in: 0..<b.graph.initializer.count, using: &rng)
                b.graph.initializer[t].dims = b.graph.initializer[t].dims.map { _ in Int64.random(in: -1...40, using: &rng) }
            case 3:
                if !b.graph.node[n].input.isEmpty {
                    let i = Int.random(in: 0..<b.graph.node[n].input.count, using: &rng)
                    b.graph.node[n].input[i] = names.randomElement(using: &rng)!
                }
            case 4:
                b.graph.node[n].input.append(names.randomElement(using: &rng)!)
            default:
                var a = Onnx_AttributeProto()
                a.name = ["axis", "axes", "perm", "pads", "strides", "group", "dilations", "keepdims", "mode"].randomElement(using: &rng)!
                a.type = Bool.random(using: &rng) ? .int : .ints
                a.i = values.randomElement(using: &rng)!
                a.ints = (0..<Int.random(in: 0...5, using: &rng)).map { _ in values.randomElement(using: &rng)! }
                b.graph.node[n].attribute.append(a)
            }
        }
        return b
    }

    @Test("structurally mutated graphs plan and run or fail with a typed error; none crash")
    func fuzzPlanner() throws {
        var rng = SplitMix64(state: Self.seed)
        var options = InferenceSession.Options()
        options.maximumFloats = 1 << 20
        var planned = 0
        for _ in 0..<Self.iterations {
            let builder = Self.mutateGraph(ModelBuilder.smallCNN(), &rng)
            guard let model = try? ONNXModel(serialized: try builder.serialized(), source: "fuzz.onnx"),
                let session = try? InferenceSession(model: model, options: options)
            else { continue }
            planned += 1
            for port in session.inputs { port.buffer.update(repeating: 0.5) }
            session.run()
        }
        print("fuzz: \(Self.iterations) mutated graphs from seed \(Self.seed): \(planned) planned and ran, 0 crashes")
        #expect(planned > 0)
    }
}
