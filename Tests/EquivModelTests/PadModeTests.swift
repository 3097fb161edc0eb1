import Foundation
import Testing

@testable import EquivModel

/// Edge and reflect padding on float data. ONNX's node tests for these modes use int32 data,
/// which equivd does not run, so the expected values here come from numpy.pad (numpy 2.4):
///     np.pad(np.arange(12.).reshape(3, 4), ((1, 2), (2, 1)), mode=MODE)
@Suite struct PadModeTests {
    static let expected: [String: [Float]] = [
        "edge": [0, 0, 0, 1, 2, 3, 3, 0, 0, 0, 1, 2, 3, 3, 4, 4, 4, 5, 6, 7, 7, 8, 8, 8, 9, 10, 11, 11,
                 8, 8, 8, 9, 10, 11, 11, 8, 8, 8, 9, 10, 11, 11],
        "reflect": [6, 5, 4, 5, 6, 7, 6, 2, 1, 0, 1, 2, 3, 2, 6, 5, 4, 5, 6, 7, 6, 10, 9, 8, 9, 10, 11, 10,
                    6, 5, 4, 5, 6, 7, 6, 2, 1, 0, 1, 2, 3, 2],
    ]

    @Test("Pad matches numpy.pad", arguments: ["edge", "reflect"])
    func padMode(mode: String) throws {
        var b = ModelBuilder()
        b.input("x", [3, 4])
        var pads = Onnx_TensorProto()
        pads.name = "pads"
        pads.dims = [4]
        pads.dataType = 7
        pads.int64Data = [1, 2, 2, 1]  // ONNX order: all begins, then all ends
        b.graph.initializer.append(pads)
        b.node("Pad", ["x", "pads"], ["y"], name: "pad")
        var attribute = Onnx_AttributeProto()
        attribute.name = "mode"
        attribute.type = .string
        attribute.s = Data(mode.utf8)
        b.graph.node[0].attribute.append(attribute)
        b.output("y")
        let session = try InferenceSession(model: try ONNXModel(serialized: try b.serialized(), source: "pad.onnx"))
        let y = try session.run(["x": Tensor(shape: [3, 4], floats: (0..<12).map(Float.init))])["y"]
        #expect(y == Tensor(shape: [6, 7], floats: Self.expected[mode]!))
    }
}
