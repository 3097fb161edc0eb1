import Foundation
import Testing

@testable import EquivModel

/// Reductions over axes that are not one contiguous run take the general path (an odometer over
/// the input); the node tests only reduce contiguous runs. Expected values by direct summation.
@Suite struct ReductionTests {
    @Test("ReduceMean, ReduceMax and ReduceMin over axes 1 and 3 of a [2, 3, 4, 5] tensor",
          arguments: ["ReduceMean", "ReduceMax", "ReduceMin"])
    func nonContiguousAxes(op: String) throws {
        var b = ModelBuilder()
        b.opset = 13
        b.input("x", [2, 3, 4, 5])
        b.node(op, ["x"], ["y"], name: "reduce", ints: ["axes": [1, 3]], int: ["keepdims": 0])
        b.output("y")
        let session = try InferenceSession(model: try ONNXModel(serialized: try b.serialized(), source: "reduce.onnx"))
        let x = (0..<120).map { Float(($0 * 37) % 23) - 11 }
        for _ in 0..<2 {  // twice: the kernel's working state must reset between runs
            let y = try #require(try session.run(["x": Tensor(shape: [2, 3, 4, 5], floats: x)])["y"])
            #expect(y.shape == [2, 4])
            for a in 0..<2 {
                for c in 0..<4 {
                    let cells = (0..<3).flatMap { bb in (0..<5).map { d in x[((a * 3 + bb) * 4 + c) * 5 + d] } }
                    let want = switch op {
                    case "ReduceMax": cells.max()!
                    case "ReduceMin": cells.min()!
                    default: cells.reduce(0, +) / Float(cells.count)
                    }
                    #expect(abs(y.floats![a * 4 + c] - want) < 1e-5)
                }
            }
        }
    }
}
