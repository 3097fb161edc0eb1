import EquivModel
import Foundation

// libFuzzer supplies main() and calls this per input; nothing else in this file runs.
// The ONNX loader on any bytes: decode, plan for the model's own input shapes (capped, so a
// mutated dimension cannot ask for gigabytes) and run; each step succeeds or throws a ModelError.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzONNX(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    guard let model = try? ONNXModel(serialized: Data(bytes: start, count: count), source: "fuzz.onnx") else { return 0 }
    var options = InferenceSession.Options()
    options.maximumFloats = 1 << 20
    guard let session = try? InferenceSession(model: model, options: options) else { return 0 }
    for port in session.inputs { port.buffer.update(repeating: 0.5) }
    session.run()
    return 0
}
