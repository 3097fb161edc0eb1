import Foundation
import TestSupport
import Testing

@testable import EquivModel

/// MaxPool and AveragePool along rows against a nested-loop reference written here: windows
/// that tile each row exactly (kernel = stride, width a multiple of it; the canonicalizer's
/// AveragePool(1×5) over time), for every size that has its own loop and one that has not, and
/// next to them windows that overlap or leave a remainder (the general row loop).
@Suite struct PoolingTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var op: String, channels: Int, height: Int, width: Int, kernel: Int, stride: Int
        var testDescription: String { "\(op) C\(channels) \(height)×\(width) k1×\(kernel) s1×\(stride)" }
    }

    static let cases: [Case] = ["AveragePool", "MaxPool"].flatMap { op in
        [2, 3, 4, 5, 7].map { k in Case(op: op, channels: 3, height: 4, width: 4 * k, kernel: k, stride: k) }
            + [Case(op: op, channels: 2, height: 3, width: 23, kernel: 5, stride: 5),  // a remainder of 3
               Case(op: op, channels: 2, height: 3, width: 20, kernel: 5, stride: 3)]  // overlapping windows
    }

    @Test("Pooling along rows equals a nested-loop reference", arguments: cases)
    func pooling(_ c: Case) throws {
        var rng = SplitMix64(state: 11)
        let x = (0..<c.channels * c.height * c.width).map { _ in Float.random(in: -1...1, using: &rng) }
        var b = ModelBuilder()
        b.input("x", [1, c.channels, c.height, c.width])
        b.node(c.op, ["x"], ["y"], name: "pool",
               ints: ["kernel_shape": [1, Int64(c.kernel)], "strides": [1, Int64(c.stride)]])
        b.output("y")
        let session = try InferenceSession(model: try ONNXModel(serialized: try b.serialized(), source: "pool.onnx"))
        let got = try session.run(["x": Tensor(shape: [1, c.channels, c.height, c.width], floats: x)])["y"]!

        let ow = (c.width - c.kernel) / c.stride + 1
        var expected: [Float] = []
        for row in 0..<c.channels * c.height {
            for ox in 0..<ow {
                let window = (0..<c.kernel).map { x[row * c.width + ox * c.stride + $0] }
                expected.append(c.op == "MaxPool" ? window.max()! : window.reduce(0, +) / Float(c.kernel))
            }
        }
        #expect(got.shape == [1, c.channels, c.height, ow])
        let worst = zip(got.asFloats, expected).map { abs($0 - $1) }.max() ?? .infinity
        #expect(got.asFloats.count == expected.count && worst < 1e-6, "worst difference \(worst)")
    }
}
