import Foundation
import TestSupport
import Testing

@testable import EquivModel

/// Conv against a plain nested-loop reference written here, over the shapes that stress the
/// direct kernel: filter counts that leave a block part-empty, one input channel, dilations,
/// uneven padding, groups, a batch, strides (split into stride phases: kernels that are and are
/// not multiples of the stride, strides with dilations) and the activations the planner fuses
/// into Conv. `make test`
/// runs this suite once per kernel (EQUIVD_CONV_ISA = the CPU's own, avx2, portable).
@Suite struct ConvolutionTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var batch = 1, channels: Int, filters: Int, height: Int, width: Int
        var kernel: [Int], pads: [Int], dilations = [1, 1], strides = [1, 1], group = 1
        var activation: String? = nil
        var testDescription: String {
            "N\(batch) C\(channels) M\(filters) \(height)×\(width) k\(kernel) pads\(pads) d\(dilations) s\(strides) g\(group) \(activation ?? "-")"
        }
    }

    static let cases: [Case] = [
        Case(channels: 1, filters: 16, height: 20, width: 13, kernel: [3, 3], pads: [1, 1, 1, 1], activation: "Relu"),
        Case(channels: 5, filters: 3, height: 9, width: 30, kernel: [3, 3], pads: [1, 1, 1, 1]),
        Case(channels: 7, filters: 19, height: 11, width: 17, kernel: [5, 3], pads: [2, 0, 1, 2], activation: "Sigmoid"),
        Case(batch: 2, channels: 8, filters: 9, height: 1, width: 40, kernel: [1, 3], pads: [0, 4, 0, 4], dilations: [1, 4],
             activation: "Relu"),
        Case(channels: 6, filters: 10, height: 12, width: 12, kernel: [3, 3], pads: [0, 0, 0, 0], dilations: [2, 2], group: 2),
        Case(channels: 4, filters: 8, height: 10, width: 9, kernel: [3, 3], pads: [1, 1, 1, 1], strides: [2, 2], activation: "Tanh"),
        // Strided, by stride phases: a CREPE-like first layer (a kernel that is a multiple of its
        // stride, 1-D), a kernel that is not, with a dilation that meets the stride, over two
        // groups; a strided 1×1; a few outputs only; a 1×1 over many positions.
        Case(batch: 2, channels: 1, filters: 12, height: 1, width: 70, kernel: [1, 16], pads: [0, 6, 0, 7], strides: [1, 4],
             activation: "Relu"),
        Case(channels: 6, filters: 10, height: 13, width: 17, kernel: [3, 5], pads: [1, 2, 2, 1], dilations: [2, 1],
             strides: [2, 3], group: 2),
        Case(channels: 5, filters: 9, height: 15, width: 16, kernel: [1, 1], pads: [0, 0, 0, 0], strides: [2, 2]),
        Case(channels: 3, filters: 20, height: 7, width: 6, kernel: [3, 3], pads: [0, 0, 0, 0], strides: [2, 2], activation: "Relu"),
        Case(channels: 3, filters: 10, height: 8, width: 9, kernel: [1, 1], pads: [0, 0, 0, 0]),
        // Depthwise (CDirectConv's depthwise kernel): stride 1 with ReLU (in the kernel), rows of 20
        // with a Sigmoid after it, stride 2 with TensorFlow's bottom/right padding over a batch.
        Case(channels: 12, filters: 12, height: 9, width: 14, kernel: [3, 3], pads: [1, 1, 1, 1], group: 12, activation: "Relu"),
        Case(channels: 6, filters: 6, height: 5, width: 20, kernel: [3, 3], pads: [1, 1, 1, 1], group: 6, activation: "Sigmoid"),
        Case(batch: 2, channels: 5, filters: 5, height: 11, width: 8, kernel: [3, 3], pads: [0, 0, 1, 1], strides: [2, 2],
             group: 5),
        // 1×1 over few positions (CDirectConv's pointwise kernel): channels and filters that fill
        // no whole vector or block.
        Case(batch: 2, channels: 33, filters: 7, height: 5, width: 5, kernel: [1, 1], pads: [0, 0, 0, 0], activation: "Relu"),
    ]

    @Test("Conv (+ fused activation) equals a nested-loop reference", arguments: cases)
    func convolution(_ c: Case) throws {
        var rng = SplitMix64(state: 7)
        let cg = c.channels / c.group
        let x = (0..<c.batch * c.channels * c.height * c.width).map { _ in Float.random(in: -1...1, using: &rng) }
        let w = (0..<c.filters * cg * c.kernel[0] * c.kernel[1]).map { _ in Float.random(in: -1...1, using: &rng) }
        let bias = (0..<c.filters).map { _ in Float.random(in: -0.5...0.5, using: &rng) }

        var b = ModelBuilder()
        b.input("x", [c.batch, c.channels, c.height, c.width])
        b.initializer("w", [c.filters, cg] + c.kernel, w)
        b.initializer("b", [c.filters], bias)
        b.node("Conv", ["x", "w", "b"], ["y"], name: "conv",
               ints: ["kernel_shape": c.kernel.map(Int64.init), "pads": c.pads.map(Int64.init),
                      "dilations": c.dilations.map(Int64.init), "strides": c.strides.map(Int64.init)],
               int: ["group": Int64(c.group)])
        if let activation = c.activation { b.node(activation, ["y"], ["z"], name: "activation") }
        b.output(c.activation == nil ? "y" : "z")
        let session = try InferenceSession(model: try ONNXModel(serialized: try b.serialized(), source: "conv.onnx"))
        let shape = [c.batch, c.channels, c.height, c.width]
        let got = try session.run(["x": Tensor(shape: shape, floats: x)])[c.activation == nil ? "y" : "z"]!

        let (expected, outShape) = reference(c, x, w, bias)
        #expect(got.shape == outShape)
        let values = got.asFloats
        var worst: Float = 0
        for (a, e) in zip(values, expected) { worst = max(worst, abs(a - e) / max(1, abs(e))) }
        #expect(values.count == expected.count && worst < 1e-5, "worst relative difference \(worst)")
    }

    /// Conv by definition: every output sums its window, skipping positions in the padding.
    func reference(_ c: Case, _ x: [Float], _ w: [Float], _ bias: [Float]) -> ([Float], [Int]) {
        let (kh, kw) = (c.kernel[0], c.kernel[1])
        let oh = (c.height + c.pads[0] + c.pads[2] - c.dilations[0] * (kh - 1) - 1) / c.strides[0] + 1
        let ow = (c.width + c.pads[1] + c.pads[3] - c.dilations[1] * (kw - 1) - 1) / c.strides[1] + 1
        let cg = c.channels / c.group, mg = c.filters / c.group
        var y = [Float](repeating: 0, count: c.batch * c.filters * oh * ow)
        for n in 0..<c.batch {
            for f in 0..<c.filters {
                let g = f / mg
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var sum = Double(bias[f])
                        for ci in 0..<cg {
                            for ky in 0..<kh {
                                for kx in 0..<kw {
                                    let iy = oy * c.strides[0] - c.pads[0] + ky * c.dilations[0]
                                    let ix = ox * c.strides[1] - c.pads[1] + kx * c.dilations[1]
                                    guard iy >= 0, iy < c.height, ix >= 0, ix < c.width else { continue }
                                    let xv = x[((n * c.channels + g * cg + ci) * c.height + iy) * c.width + ix]
                                    sum += Double(xv) * Double(w[((f * cg + ci) * kh + ky) * kw + kx])
                                }
                            }
                        }
                        let v = Float(sum)
                        let activated: Float = switch c.activation {
                        case "Relu": max(v, 0)
                        case "Sigmoid": 1 / (1 + exp(-v))
                        case "Tanh": tanh(v)
                        default: v
                        }
                        y[((n * c.filters + f) * oh + oy) * ow + ox] = activated
                    }
                }
            }
        }
        return (y, [c.batch, c.filters, oh, ow])
    }
}
