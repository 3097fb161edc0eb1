@testable import EquivModel
import Foundation
import Testing

/// ONNX's own backend node tests (Debian's libonnx-testdata) for every operator equivd supports:
/// software nobody here wrote decides what is right.
@Suite struct NodeConformanceTests {
    static let root = URL(fileURLWithPath: "/usr/share/libonnx-testdata/data/node")

    /// Cases whose features docs/onnx-support.md lists as unsupported, with the reason.
    static let documentedSkips: [String: String] = [
        "test_averagepool_3d_default": "3-D pooling is not supported",
        "test_maxpool_3d_default": "3-D pooling is not supported",
        "test_batchnorm_epsilon_training_mode": "training_mode is not supported (inference only)",
        "test_batchnorm_example_training_mode": "training_mode is not supported (inference only)",
        "test_training_dropout": "training_mode is not supported (inference only)",
        "test_training_dropout_default": "training_mode is not supported (inference only)",
        "test_training_dropout_zero_ratio": "training_mode is not supported (inference only)",
        "test_identity_opt": "optional types are not supported",
        "test_identity_sequence": "sequence types are not supported",
    ]

    @Test("every node test of a supported operator passes")
    func nodeTests() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.root.path).sorted()
        var passed = 0, failures: [String] = [], skipped: [String] = []
        for name in names {
            let directory = Self.root.appendingPathComponent(name)
            guard let model = try? ONNXModel(contentsOf: directory.appendingPathComponent("model.onnx").path),
                Set(model.operatorCounts.keys).isSubset(of: InferenceSession.supportedOperators)
            else { continue }
            switch ONNXTestCase(directory: directory).run() {
            case .passed: passed += 1
            case .skipped(let why): skipped.append("\(name): \(why)")
            case .failed(let why):
                if let reason = Self.documentedSkips[name] {
                    skipped.append("\(name): \(reason)")
                } else {
                    failures.append("\(name): \(why)")
                }
            }
        }
        print("ONNX node tests: \(passed) passed, \(failures.count) failed, \(skipped.count) skipped")
        skipped.forEach { print("  skipped \($0)") }
        failures.forEach { print("  FAILED \($0)") }
        #expect(passed > 0)
        #expect(failures.isEmpty, "\(failures.count) node tests failed:\n\(failures.joined(separator: "\n"))")
    }
}
