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

    @Test("a batch of K windows gives what K single runs give")
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

    @Test("sessions sharing a workspace give what separate sessions give, run in any order")
    func sharedWorkspaceEqualsSeparateSessions() throws {
        let classifier = try ONNXModel(contentsOf: Self.fixtures.appendingPathComponent("small_classifier/model.onnx").path)
        let canonicalizer = try ONNXModel(contentsOf: Self.fixtures.appendingPathComponent("small_canonicalizer/model.onnx").path)
        func plan(_ workspace: InferenceSession.Workspace?) throws -> [(InferenceSession, [Int])] {
            var options = InferenceSession.Options()
            options.workspace = workspace
            let c = try #require(canonicalizer.inputNames.first), x = try #require(classifier.inputNames.first)
            let shape = canonicalizer.declaredShape(ofInput: c)!.map { $0 ?? 1 }
            return [
                (try InferenceSession(model: canonicalizer, inputShapes: [c: shape], options: options), shape),
                (try InferenceSession(model: classifier, inputShapes: [x: [1, 1, 40, 24]], options: options), [1, 1, 40, 24]),
                (try InferenceSession(model: classifier, inputShapes: [x: [3, 1, 40, 24]], options: options), [3, 1, 40, 24]),
            ]
        }
        let shared = try plan(InferenceSession.Workspace())
        let separate = try plan(nil)
        for round in 0..<3 {
            for i in [2, 0, 1, 0, 2] {
                let (session, shape) = shared[i]
                let values = (0..<shape.reduce(1, *)).map { Float(sin(Double($0 + 7 * round + i) * 0.31)) }
                _ = session.inputs[0].buffer.update(fromContentsOf: values)
                _ = separate[i].0.inputs[0].buffer.update(fromContentsOf: values)
                session.run()
                separate[i].0.run()
                #expect(Array(session.outputs[0].buffer) == Array(separate[i].0.outputs[0].buffer), "session \(i), round \(round)")
            }
            // Each session's inputs and outputs are its own: running the others left them intact.
            for i in shared.indices {
                #expect(Array(shared[i].0.outputs[0].buffer) == Array(separate[i].0.outputs[0].buffer), "session \(i) output kept")
                #expect(Array(shared[i].0.inputs[0].buffer) == Array(separate[i].0.inputs[0].buffer), "session \(i) input kept")
            }
        }
    }
}
