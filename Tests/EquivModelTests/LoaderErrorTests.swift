import Foundation
import Testing

@testable import EquivModel

/// Bad models fail with a typed error that names the node and operator (or the input, the
/// initializer, the file); they never crash.
@Suite struct LoaderErrorTests {
    func plan(_ builder: ModelBuilder, shapes: [String: [Int]] = [:]) throws -> InferenceSession {
        let model = try ONNXModel(serialized: try builder.serialized(), source: "test.onnx")
        return try InferenceSession(model: model, inputShapes: shapes)
    }

    func expectError(_ kind: ModelError.Kind, mentioning words: [String], _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("no error")
        } catch let error as ModelError {
            #expect(error.kind == kind, "\(error)")
            for w in words { #expect("\(error)".contains(w), "\(error) does not mention \(w)") }
        } catch {
            Issue.record("untyped error \(error)")
        }
    }

    @Test("the small CNN plans and runs; its softmax sums to 1")
    func smallCNNRuns() throws {
        let session = try plan(ModelBuilder.smallCNN())
        #expect(session.outputs[0].shape == [1, 3])
        let out = try session.run(["x": Tensor(shape: [1, 1, 12, 10], floats: (0..<120).map { Float($0 % 9) / 9 })])
        let y = try #require(out["y"]?.floats)
        #expect(abs(y.reduce(0, +) - 1) < 1e-5)
    }

    @Test("an unknown operator is named with its node")
    func unknownOperator() {
        var b = ModelBuilder.smallCNN()
        b.graph.node[1].opType = "FancyRelu"
        expectError(.unsupportedOperator, mentioning: ["node 'relu' (FancyRelu)", "not supported"]) { _ = try plan(b) }
    }

    @Test("an operator from another domain is refused")
    func foreignDomain() {
        var b = ModelBuilder.smallCNN()
        b.graph.node[1].domain = "com.microsoft"
        expectError(.unsupportedOperator, mentioning: ["node 'relu' (Relu)", "com.microsoft"]) { _ = try plan(b) }
    }

    @Test("an unsupported attribute is named with its node")
    func unsupportedAttribute() {
        var b = ModelBuilder.smallCNN()
        var a = Onnx_AttributeProto()
        a.name = "winograd"
        a.type = .int
        a.i = 1
        b.graph.node[0].attribute.append(a)
        expectError(.unsupportedAttribute, mentioning: ["node 'conv' (Conv)", "'winograd'"]) { _ = try plan(b) }
    }

    @Test("a shape that contradicts the declared input is refused naming the input")
    func wrongPlannedShape() {
        expectError(.inputShape, mentioning: ["input 'x'", "[1, 1, 13, 10]"]) {
            _ = try plan(ModelBuilder.smallCNN(), shapes: ["x": [1, 1, 13, 10]])
        }
    }

    @Test("a tensor of the wrong shape at run time is refused naming the input")
    func wrongRunShape() throws {
        let session = try plan(ModelBuilder.smallCNN())
        expectError(.inputShape, mentioning: ["input 'x'", "[1, 1, 10, 12]"]) {
            _ = try session.run(["x": Tensor(shape: [1, 1, 10, 12], floats: .init(repeating: 0, count: 120))])
        }
    }

    @Test("weights that do not fit the input are refused naming the node")
    func shapeMismatch() {
        var b = ModelBuilder.smallCNN()
        b.graph.initializer[2].dims = [3, 100]
        b.graph.initializer[2].rawData = Data(count: 1200)
        expectError(.invalidShape, mentioning: ["node 'fc' (Gemm)", "inner dimensions"]) { _ = try plan(b) }
    }

    @Test("a truncated file is refused naming the file", arguments: [0.1, 0.5, 0.9])
    func truncated(fraction: Double) throws {
        let data = try ModelBuilder.smallCNN().serialized()
        let folder = NSTemporaryDirectory() + "equivd-model-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/cut.onnx"
        try data.prefix(Int(Double(data.count) * fraction)).write(to: URL(fileURLWithPath: path))
        expectError(.unreadable, mentioning: [path]) { _ = try ONNXModel(contentsOf: path) }
    }

    @Test("a file that is not a model, and a missing one, are refused naming the file")
    func notAModel() throws {
        expectError(.unreadable, mentioning: ["/no/such/model.onnx", "cannot read"]) {
            _ = try ONNXModel(contentsOf: "/no/such/model.onnx")
        }
        expectError(.unreadable, mentioning: ["junk.onnx"]) {
            _ = try ONNXModel(serialized: Data("this is plain text, not protobuf".utf8), source: "junk.onnx")
        }
    }

    @Test("tensor data in an external file is refused naming the initializer")
    func externalData() {
        var b = ModelBuilder.smallCNN()
        b.graph.initializer[0].dataLocation = .external
        var entry = Onnx_StringStringEntryProto()
        entry.key = "location"
        entry.value = "weights.bin"
        b.graph.initializer[0].externalData = [entry]
        b.graph.initializer[0].clearRawData()
        expectError(.externalData, mentioning: ["initializer 'w'", "external"]) { _ = try plan(b) }
    }

    @Test("a node reading a value nothing produces is refused naming the node")
    func danglingInput() {
        var b = ModelBuilder.smallCNN()
        b.graph.node[3].input = ["nowhere"]
        expectError(.invalidModel, mentioning: ["node 'flatten' (Flatten)", "'nowhere'"]) { _ = try plan(b) }
    }

    @Test("a model needing more memory than allowed is refused, not allocated")
    func memoryLimit() throws {
        let model = try ONNXModel(serialized: try ModelBuilder.smallCNN().serialized(), source: "test.onnx")
        var options = InferenceSession.Options()
        options.maximumFloats = 500
        expectError(.invalidShape, mentioning: ["maximumFloats"]) {
            _ = try InferenceSession(model: model, options: options)
        }
    }
}
