import Foundation
import Testing

@testable import EquivModel

/// Networks exported by torch.onnx.export give the outputs onnxruntime gave on the same inputs
/// (Fixtures/make_fixtures.py wrote both; Tests/python re-checks them against onnxruntime).
@Suite struct WholeModelTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    @Test("matches onnxruntime to 1e-4 relative", arguments: ["small_classifier", "small_canonicalizer"])
    func matchesOnnxRuntime(fixture: String) {
        let outcome = ONNXTestCase(directory: Self.fixtures.appendingPathComponent(fixture)).run(rtol: 1e-4, atol: 1e-6)
        #expect(outcome == .passed)
    }

    @Test("a batch of K windows gives what K single runs give (the top-K fallback path)")
    func batchEqualsSingles() throws {
        let model = try ONNXModel(contentsOf: Self.fixtures.appendingPathComponent("small_classifier/model.onnx").path)
        let batched = try InferenceSession(model: model, inputShapes: ["x": [4, 1, 40, 24]])
        let single = try InferenceSession(model: model, inputShapes: ["x": [1, 1, 40, 24]])
        let values = (0..<(4 * 960)).map { Float(sin(Double($0) * 0.37)) }
        let all = try #require(try batched.run(["x": Tensor(shape: [4, 1, 40, 24], floats: values)])["y"]?.floats)
        for k in 0..<4 {
            let one = try #require(try single.run(["x": Tensor(shape: [1, 1, 40, 24], floats: Array(values[(k * 960)..<((k + 1) * 960)]))])["y"]?.floats)
            for (a, b) in zip(one, all[(k * 5)..<((k + 1) * 5)]) { #expect(abs(a - b) <= 1e-6 + 1e-5 * abs(b)) }
        }
    }
}
