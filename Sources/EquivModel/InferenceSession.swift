import CBLAS
import CDirectConv
import Foundation

/// A model planned for fixed input shapes: every shape resolved, everything known at load
/// folded, every buffer allocated and every kernel bound to its buffers. `run()` allocates
/// nothing. Not thread-safe: one session per thread.
public final class InferenceSession {
    public struct Options: Sendable {
        /// OpenBLAS threads (process-wide). The service shares two cores with capture and DSP.
        public var blasThreads = 1
        /// Most floats the session's buffers may hold together (default 2^28, 1 GiB).
        public var maximumFloats = 1 << 28
        /// Scratch space to share with other sessions that never run at the same time as this
        /// one; nil gives the session its own.
        public var workspace: Workspace? = nil
        public init() {}
    }

    /// Kernels' temporary space (Conv's padded input planes), shared by the sessions given it: a
    /// recognizer runs its canonicalizer and classifiers one after another on one thread, so
    /// one buffer the size of the largest request serves them all.
    ///
    /// They also share float constants that are equal (a classifier planned for two batch
    /// sizes keeps one copy of its weights; kernels only read them) and the buffers of
    /// intermediate values, which are dead between runs. Inputs and outputs stay each session's own.
    public final class Workspace: @unchecked Sendable {
        let scratch = ScratchSpace()
        let constants = ConstantPool()
        let buffers = BufferPool(arena: Arena(limit: 1 << 28))
        public init() {}
    }

    public struct Port {
        public let name: String
        public let shape: [Int]
        public let buffer: UnsafeMutableBufferPointer<Float>
    }

    /// Inputs to fill before `run()`, in the graph's order (those bound as constants excluded).
    public let inputs: [Port]
    /// Outputs valid after `run()`, in the graph's order.
    public let outputs: [Port]
    private let arena: Arena
    private let scratch: ScratchSpace
    /// Kept alive for the shared constants the kernels point into.
    private let workspace: Workspace?
    private let kernels: [(location: String, run: () -> Void)]

    /// Plans `model` for `inputShapes` (by input name; an input whose declared shape is fully
    /// fixed may be omitted). `constants` binds inputs at load instead, e.g. int64 shapes.
    public init(
        model: ONNXModel, inputShapes: [String: [Int]] = [:], constants: [String: Tensor] = [:],
        options: Options = Options()
    ) throws(ModelError) {
        openblas_set_num_threads(Int32(options.blasThreads))
        let arena = Arena(limit: options.maximumFloats)
        let planner = Planner(
            opset: model.opset, arena: arena, scratch: options.workspace?.scratch ?? ScratchSpace(),
            constants: options.workspace?.constants, buffers: options.workspace?.buffers)
        for node in model.orderedNodes {
            for name in node.input where !name.isEmpty { planner.useCounts[name, default: 0] += 1 }
        }
        for name in model.outputNames { planner.useCounts[name, default: 0] += 1 }
        for initializer in model.graph.initializer {
            planner.values[initializer.name] = .constant(try Tensor(proto: initializer, location: "initializer '\(initializer.name)'"))
        }
        var inputs: [Port] = []
        for name in model.inputNames {
            let location = "input '\(name)'"
            if let bound = constants[name] {
                planner.values[name] = .constant(bound)
                continue
            }
            if let type = model.declaredElementType(ofInput: name), type != ONNXDataType.float.rawValue {
                throw ModelError(.unsupportedType, location, "element type \(type) is not float32; bind it with `constants`")
            }
            let declared = model.declaredShape(ofInput: name)
            guard let shape = inputShapes[name] ?? declared.flatMap({ $0.allSatisfy { $0 != nil } ? $0.map { $0! } : nil }) else {
                throw ModelError(.inputShape, location, "shape \(declared.map { "\($0)" } ?? "unknown") is not fixed: give it in inputShapes")
            }
            if let declared {
                let fits = declared.count == shape.count && zip(declared, shape).allSatisfy { $0.0 == nil || $0.0 == $0.1 }
                guard fits else {
                    throw ModelError(.inputShape, location, "shape \(shape) does not match the declared \(declared.map { $0.map(String.init) ?? "?" })")
                }
            }
            let count = try elementCount(shape, location)
            let pointer = try arena.floats(count, location)
            planner.values[name] = .buffer(FloatBuffer(shape: shape, pointer: pointer))
            inputs.append(Port(name: name, shape: shape, buffer: UnsafeMutableBufferPointer(start: pointer, count: count)))
        }
        for (index, node) in model.orderedNodes.enumerated() {
            try planner.plan(node, index: index)
        }
        var outputs: [Port] = []
        for name in model.outputNames {
            let location = "output '\(name)'"
            guard let value = planner.values[name] else { throw ModelError(.invalidModel, location, "is never computed") }
            var b = try planner.buffer(for: value, location: location, role: "output")
            if let shared = options.workspace?.buffers, shared.owns(b.pointer) {
                // Other sessions of the workspace write this buffer when they run: the result is
                // copied out to a buffer of this session's own, so it outlives their runs.
                let source = b.pointer, count = b.count
                b = FloatBuffer(shape: b.shape, pointer: try arena.floats(count, location))
                let target = b.pointer
                planner.kernels.append((location, { target.update(from: source, count: count) }))
            }
            outputs.append(Port(name: name, shape: b.shape, buffer: UnsafeMutableBufferPointer(start: b.pointer, count: b.count)))
        }
        try planner.scratch.allocate(limit: options.maximumFloats - arena.floatCount)
        self.arena = arena
        self.scratch = planner.scratch
        self.workspace = options.workspace
        self.kernels = planner.kernels
        self.inputs = inputs
        self.outputs = outputs
    }

    /// Runs every kernel on what is in the input buffers; results land in the output buffers.
    public func run() {
        for kernel in kernels { kernel.run() }
    }

    /// Runs `runs` times timing each kernel; returns the total seconds per node, in execution order.
    public func profile(runs: Int) -> [(node: String, seconds: Double)] {
        var totals = [Double](repeating: 0, count: kernels.count)
        for _ in 0..<runs {
            for (i, kernel) in kernels.enumerated() {
                let start = ContinuousClock.now
                kernel.run()
                let d = start.duration(to: .now)
                totals[i] += d / .seconds(1)
            }
        }
        return zip(kernels, totals).map { ($0.0.location, $0.1) }
    }

    /// Convenience: copies `values` (by input name) in, runs, and returns copies of the outputs.
    public func run(_ values: [String: Tensor]) throws(ModelError) -> [String: Tensor] {
        for port in inputs {
            let location = "input '\(port.name)'"
            guard let t = values[port.name] else { throw ModelError(.inputShape, location, "is missing") }
            guard t.shape == port.shape, let floats = t.floats else {
                throw ModelError(.inputShape, location, "got \(t.isFloat ? "" : "non-float ")shape \(t.shape), the session was planned for \(port.shape)")
            }
            _ = port.buffer.update(fromContentsOf: floats)
        }
        run()
        return Dictionary(uniqueKeysWithValues: outputs.map { ($0.name, Tensor(shape: $0.shape, floats: Array($0.buffer))) })
    }

    /// Floats held in the session's buffers (activations, constants copied for kernels, scratch).
    public var bufferFloats: Int { arena.floatCount + scratch.required }

    /// The kernel family OpenBLAS chose for this CPU (e.g. "Haswell"; OPENBLAS_CORETYPE overrides it).
    public static var blasCore: String { String(cString: openblas_get_corename()) }
    /// The direct convolution kernel this CPU runs: avx512, avx2 or portable.
    public static var convolutionKernel: String { String(cString: equivd_conv_isa()) }

    /// ONNX operator types the runtime plans (docs/onnx-support.md has their limits).
    public static var supportedOperators: Set<String> { Set(operatorPlanners.keys) }

    /// Number of kernels `run()` executes after folding and fusion.
    public var kernelCount: Int { kernels.count }
}
