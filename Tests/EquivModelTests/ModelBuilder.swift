import Foundation

@testable import EquivModel

/// Builds small ONNX models in memory for tests of the loader's errors and the fuzz harness.
struct ModelBuilder {
    var graph = Onnx_GraphProto()
    var opset: Int64 = 13

    mutating func input(_ name: String, _ shape: [Int], type: Int32 = 1) {
        var info = Onnx_ValueInfoProto()
        info.name = name
        var tensor = Onnx_TypeProto.Tensor()
        tensor.elemType = type
        var s = Onnx_TensorShapeProto()
        s.dim = shape.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            dim.dimValue = Int64(d)
            return dim
        }
        tensor.shape = s
        info.type.tensorType = tensor
        graph.input.append(info)
    }

    mutating func output(_ name: String) {
        var info = Onnx_ValueInfoProto()
        info.name = name
        graph.output.append(info)
    }

    mutating func initializer(_ name: String, _ shape: [Int], _ values: [Float]) {
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = shape.map(Int64.init)
        t.dataType = 1
        t.rawData = values.withUnsafeBytes { Data($0) }
        graph.initializer.append(t)
    }

    mutating func node(
        _ op: String, _ inputs: [String], _ outputs: [String], name: String = "",
        ints: [String: [Int64]] = [:], int: [String: Int64] = [:], float: [String: Float] = [:]
    ) {
        var n = Onnx_NodeProto()
        n.opType = op
        n.name = name
        n.input = inputs
        n.output = outputs
        func add<Value>(_ values: [String: Value], _ type: Onnx_AttributeProto.AttributeType, _ set: (inout Onnx_AttributeProto, Value) -> Void) {
            for (key, value) in values.sorted(by: { $0.key < $1.key }) {
                var a = Onnx_AttributeProto()
                a.name = key
                a.type = type
                set(&a, value)
                n.attribute.append(a)
            }
        }
        add(ints, .ints) { $0.ints = $1 }
        add(int, .int) { $0.i = $1 }
        add(float, .float) { $0.f = $1 }
        graph.node.append(n)
    }

    func serialized() throws -> Data {
        var model = Onnx_ModelProto()
        model.irVersion = 8
        var set = Onnx_OperatorSetIdProto()
        set.version = opset
        model.opsetImport = [set]
        model.graph = graph
        return try model.serializedData()
    }

    /// A small CNN on a 1×1×12×10 input: Conv 3×3 (4 filters) + Relu, MaxPool 2×2, Flatten,
    /// Gemm to 3 classes, Softmax. Deterministic weights.
    static func smallCNN() -> ModelBuilder {
        var b = ModelBuilder()
        b.input("x", [1, 1, 12, 10])
        b.initializer("w", [4, 1, 3, 3], (0..<36).map { Float(($0 * 7) % 11) / 11 - 0.5 })
        b.initializer("b", [4], [0.1, -0.1, 0.2, 0])
        b.initializer("fc", [3, 4 * 6 * 5], (0..<360).map { Float(($0 * 13) % 17) / 17 - 0.5 })
        b.initializer("fcb", [3], [0, 0.5, -0.5])
        b.node("Conv", ["x", "w", "b"], ["c"], name: "conv", ints: ["kernel_shape": [3, 3], "pads": [1, 1, 1, 1]])
        b.node("Relu", ["c"], ["r"], name: "relu")
        b.node("MaxPool", ["r"], ["p"], name: "pool", ints: ["kernel_shape": [2, 2], "strides": [2, 2]])
        b.node("Flatten", ["p"], ["f"], name: "flatten")
        b.node("Gemm", ["f", "fc", "fcb"], ["logits"], name: "fc", int: ["transB": 1])
        b.node("Softmax", ["logits"], ["y"], name: "softmax")
        b.output("y")
        return b
    }
}
