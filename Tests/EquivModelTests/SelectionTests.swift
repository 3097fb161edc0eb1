import Foundation
import Testing

@testable import EquivModel

/// Equal and Where computed at run time, as TensorFlow exports `div_no_nan` (basic-pitch's
/// normalisation): where the divisor is 0 the result is 0, elsewhere the quotient. ONNX's node
/// tests of Equal have bool outputs, which equivd does not return; here Equal's 1s and 0s feed
/// Where, broadcast three ways. Expected values computed directly.
@Suite struct SelectionTests {
    @Test("Where(Equal(d, 0), 0, x / d) with d broadcast over x's middle axis")
    func divNoNaN() throws {
        var b = ModelBuilder()
        b.input("x", [2, 3, 4])
        b.input("d", [2, 1, 4])
        b.initializer("zero", [], [0])
        b.node("Div", ["x", "d"], ["quotient"])
        b.node("Equal", ["d", "zero"], ["isZero"])
        b.node("Where", ["isZero", "zero", "quotient"], ["y"])
        b.output("y")
        let session = try InferenceSession(model: try ONNXModel(serialized: try b.serialized(), source: "div_no_nan.onnx"))
        let x = (0..<24).map { Float($0) - 7.5 }
        let d: [Float] = [2, 0, -4, 0, 0, 0.5, 3, 1]
        let y = try #require(try session.run(["x": Tensor(shape: [2, 3, 4], floats: x), "d": Tensor(shape: [2, 1, 4], floats: d)])["y"])
        #expect(y.shape == [2, 3, 4])
        for a in 0..<2 {
            for r in 0..<3 {
                for c in 0..<4 {
                    let divisor = d[a * 4 + c], want = divisor == 0 ? 0 : x[(a * 3 + r) * 4 + c] / divisor
                    #expect(y.floats![(a * 3 + r) * 4 + c] == want)
                }
            }
        }
    }
}
