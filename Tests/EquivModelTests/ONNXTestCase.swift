@testable import EquivModel
import Foundation
import Testing

/// One ONNX backend test case laid out as ONNX's own node tests are: `model.onnx` and
/// `test_data_set_N/{input,output}_K.pb` (TensorProto). The whole-model fixtures use the same
/// layout, written from onnxruntime's outputs.
struct ONNXTestCase {
    enum Outcome: Equatable {
        case passed
        case failed(String)
        case skipped(String)
    }

    let directory: URL
    var name: String { directory.lastPathComponent }

    /// Loads the model, binds non-float inputs as load-time constants (shapes, indices, axes),
    /// runs every data set and compares each output with |got − want| ≤ atol + rtol·|want|.
    func run(rtol: Float = 1e-3, atol: Float = 1e-7) -> Outcome {
        let model: ONNXModel
        do {
            model = try ONNXModel(contentsOf: directory.appendingPathComponent("model.onnx").path)
        } catch {
            return .failed("\(error)")
        }
        let sets = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { $0.hasPrefix("test_data_set_") }.sorted()
        guard !sets.isEmpty else { return .failed("no test_data_set_* folders") }
        for set in sets {
            let folder = directory.appendingPathComponent(set)
            let inputs: [TensorFile], expected: [TensorFile]
            do {
                inputs = try model.inputNames.indices.map { try TensorFile.read(folder.appendingPathComponent("input_\($0).pb")) }
                expected = try model.outputNames.indices.map { try TensorFile.read(folder.appendingPathComponent("output_\($0).pb")) }
            } catch let error as ModelError where error.kind == .unsupportedType {
                return .skipped("test data of a type equivd does not load (\(error.reason))")
            } catch {
                return .failed("\(set): \(error)")
            }
            do {
                if let odd = expected.first(where: { !$0.isFloat32 }) {
                    return .skipped("output type \(odd.dataType) is not float32")
                }
                var shapes: [String: [Int]] = [:], constants: [String: Tensor] = [:], runtime: [String: Tensor] = [:]
                for (name, input) in zip(model.inputNames, inputs) {
                    if input.isFloat32 {
                        shapes[name] = input.tensor.shape
                        runtime[name] = input.tensor
                    } else {
                        constants[name] = input.tensor
                    }
                }
                let session = try InferenceSession(model: model, inputShapes: shapes, constants: constants)
                let outputs = try session.run(runtime)
                for (name, want) in zip(model.outputNames, expected) {
                    guard let got = outputs[name] else { return .failed("\(set): output '\(name)' missing") }
                    guard got.shape == want.tensor.shape else {
                        return .failed("\(set): output '\(name)' has shape \(got.shape), expected \(want.tensor.shape)")
                    }
                    let g = got.floats!, w = want.tensor.floats!
                    for i in w.indices {
                        let ok = (g[i].isNaN && w[i].isNaN) || g[i] == w[i] || abs(g[i] - w[i]) <= atol + rtol * abs(w[i])
                        if !ok { return .failed("\(set): output '\(name)'[\(i)] = \(g[i]), expected \(w[i])") }
                    }
                }
            } catch {
                return .failed("\(set): \(error)")
            }
        }
        return .passed
    }
}

/// A TensorProto .pb file as the ONNX test data stores inputs and outputs.
struct TensorFile {
    let tensor: Tensor
    let dataType: Int32
    var isFloat32: Bool { dataType == 1 }

    static func read(_ url: URL) throws -> TensorFile {
        let data = try Data(contentsOf: url)
        let (tensor, type) = try Tensor.decodeProto(data, source: url.path)
        return TensorFile(tensor: tensor, dataType: type)
    }
}
