import Foundation

/// Owns every float buffer of a session: allocated while planning, zeroed, 64-byte aligned,
/// freed together when the session goes. Refuses to hold more than `limit` floats in all, so a
/// corrupt or hostile model fails to load instead of exhausting memory.
final class Arena {
    let limit: Int
    private var blocks: [UnsafeMutableRawPointer] = []
    private(set) var floatCount = 0

    init(limit: Int) { self.limit = limit }

    func floats(_ count: Int, _ location: String) throws(ModelError) -> UnsafeMutablePointer<Float> {
        guard count <= limit - floatCount else {
            throw ModelError(.invalidShape, location, "the session would need more than \(limit) floats of buffers (Options.maximumFloats)")
        }
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        blocks.append(raw)
        floatCount += count
        return raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// Integer working space for a kernel (index counters), freed with the session.
    func integers(_ count: Int) -> UnsafeMutablePointer<Int> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Int>.stride, alignment: 64)
        blocks.append(raw)
        return raw.bindMemory(to: Int.self, capacity: max(count, 1))
    }

    deinit { blocks.forEach { $0.deallocate() } }
}

/// Temporary space kernels share (e.g. Conv's padded input planes). Kernels capture the object and read
/// `pointer` when they run, so the space can grow after they are planned: sessions that never run
/// at the same time may share one (`InferenceSession.Workspace`).
final class ScratchSpace {
    private(set) var pointer: UnsafeMutablePointer<Float>?
    private(set) var required = 0
    private var allocated = 0

    func reserve(_ count: Int) { required = max(required, count) }

    /// Makes `pointer` hold at least `required` floats, checked against the session's `limit`.
    func allocate(limit: Int) throws(ModelError) {
        guard required > allocated || pointer == nil else { return }
        guard required <= limit else {
            throw ModelError(.invalidShape, "scratch space", "would need more than \(limit) floats (Options.maximumFloats)")
        }
        pointer?.deallocate()
        pointer = .allocate(capacity: max(required, 1))
        pointer!.initialize(repeating: 0, count: max(required, 1))
        allocated = required
    }

    deinit { pointer?.deallocate() }
}

/// Buffers for operators' outputs, handed out again once every reader of their value has been
/// planned. Shared by the sessions of one `Workspace`, it also gives one session's intermediate
/// buffers to the next: sessions that never run at the same time never need both at once. Graph
/// outputs are never released (they are read after the run), and graph inputs never come from here.
final class BufferPool {
    private let arena: Arena
    private var capacities: [UnsafeMutablePointer<Float>: Int] = [:]
    private var free: [(pointer: UnsafeMutablePointer<Float>, capacity: Int)] = []

    init(arena: Arena) { self.arena = arena }

    /// The smallest free buffer that holds `count` floats, else a new one.
    func take(_ count: Int, _ location: String) throws(ModelError) -> UnsafeMutablePointer<Float> {
        if let best = free.indices.filter({ free[$0].capacity >= count }).min(by: { free[$0].capacity < free[$1].capacity }) {
            return free.remove(at: best).pointer
        }
        let pointer = try arena.floats(count, location)
        capacities[pointer] = count
        return pointer
    }

    /// Whether `pointer` is one of this pool's buffers.
    func owns(_ pointer: UnsafeMutablePointer<Float>) -> Bool { capacities[pointer] != nil }

    /// Makes a buffer from `take` available again; other pointers (views, inputs) are ignored.
    func release(_ pointer: UnsafeMutablePointer<Float>) {
        if owns(pointer) { free.append((pointer, capacities[pointer]!)) }
    }
}

/// Float constants shared by sessions of one `Workspace`: a constant equal to one already held is
/// not copied again. Equality is checked in full, so models that merely share names never mix.
final class ConstantPool {
    private var held: [Int: [UnsafeMutablePointer<Float>]] = [:]  // by element count
    private var blocks: [UnsafeMutablePointer<Float>] = []

    func pointer(for floats: [Float]) -> UnsafeMutablePointer<Float> {
        let count = floats.count
        if let match = held[count]?.first(where: { p in floats.withUnsafeBufferPointer { memcmp(p, $0.baseAddress!, count * 4) == 0 } }) {
            return match
        }
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        p.initialize(from: floats, count: count)
        held[count, default: []].append(p)
        blocks.append(p)
        return p
    }

    deinit { blocks.forEach { $0.deallocate() } }
}

/// What a producing kernel applies to each output row while it is still in cache: a bias per row
/// and an activation that the planner may fuse in after the kernel was planned.
final class Epilogue {
    var activation: UnaryFunction?

    /// row[i] = activation(row[i] + bias).
    @inline(__always)
    func apply(_ row: UnsafeMutablePointer<Float>, count: Int, bias: Float) {
        switch activation {
        case .relu?: for i in 0..<count { row[i] = max(row[i] + bias, 0) }
        case nil: if bias != 0 { for i in 0..<count { row[i] += bias } }
        case let f?:
            if bias != 0 { for i in 0..<count { row[i] += bias } }
            f.apply(row, row, count: count)
        }
    }
}

/// A float32 tensor that exists at run time: a shape and the preallocated buffer that holds it.
struct FloatBuffer {
    let shape: [Int]
    let pointer: UnsafeMutablePointer<Float>
    var count: Int { shape.reduce(1, *) }
}

/// What planning knows about one value of the graph.
enum PlannedValue {
    /// Known at load: an initializer, a Constant, a Shape, or anything computed only from those.
    case constant(Tensor)
    /// Computed at run time into a buffer.
    case buffer(FloatBuffer)

    var shape: [Int] {
        switch self {
        case .constant(let t): t.shape
        case .buffer(let b): b.shape
        }
    }
}

/// Turns an operator's node into kernels (or, when every input is known at load, into constants).
typealias OperatorPlanner = @Sendable (NodeContext) throws(ModelError) -> [PlannedValue]

/// Walks the graph in order, resolving every shape for the given input shapes, folding what is
/// known at load, allocating every buffer once and binding each kernel to its buffers.
final class Planner {
    let opset: Int
    let arena: Arena
    var values: [String: PlannedValue] = [:]
    /// Kernels in execution order, each bound to its buffers; `location` names the node.
    var kernels: [(location: String, run: () -> Void)] = []
    /// How many nodes (and graph outputs) read each value: a value read once may be overwritten.
    var useCounts: [String: Int] = [:]
    /// Buffer reuse: readers still to be planned for each value, values alive in each buffer
    /// (views share their base's), and buffers of dead values, free for later outputs. Kernels
    /// run in planning order, so a buffer whose values have all been read can be written again.
    private var remainingReads: [String: Int] = [:]
    private var liveValues: [UnsafeMutablePointer<Float>: Int] = [:]
    private let buffers: BufferPool

    /// The value the last kernel wrote, when it was a fresh buffer: a following elementwise
    /// operator that is its only reader can run inside that kernel, in place.
    var lastProduced: (name: String, pointer: UnsafeMutablePointer<Float>)?

    /// Where float constants are copied for kernels: shared with other sessions, or the arena.
    private let constants: ConstantPool?

    init(
        opset: Int, arena: Arena, scratch: ScratchSpace = ScratchSpace(), constants: ConstantPool? = nil,
        buffers: BufferPool? = nil
    ) {
        self.opset = opset
        self.arena = arena
        self.scratch = scratch
        self.constants = constants
        self.buffers = buffers ?? BufferPool(arena: arena)
    }

    func plan(_ node: Onnx_NodeProto, index: Int) throws(ModelError) {
        let location = nodeLocation(name: node.name, opType: node.opType, index: index)
        guard node.domain.isEmpty || node.domain == "ai.onnx" else {
            throw ModelError(.unsupportedOperator, location, "operator domain '\(node.domain)' is not supported")
        }
        guard let planOperator = operatorPlanners[node.opType] else {
            throw ModelError(.unsupportedOperator, location, "operator \(node.opType) is not supported (docs/onnx-support.md)")
        }
        let inputs = try node.input.map { name throws(ModelError) -> PlannedValue? in
            if name.isEmpty { return nil }
            guard let value = values[name] else {
                throw ModelError(.invalidModel, location, "input '\(name)' is not defined")
            }
            return value
        }
        let kernelsBefore = kernels.count
        let outputs: [PlannedValue]
        if inputs.allSatisfy({ if case .buffer = $0 { false } else { true } }) {
            outputs = try fold(node, location: location, inputs: inputs, planOperator)
        } else {
            outputs = try planOperator(NodeContext(node: node, location: location, inputs: inputs, planner: self))
        }
        for (i, name) in node.output.enumerated() where !name.isEmpty {
            guard i < outputs.count else {
                throw ModelError(.unsupportedAttribute, location, "output \(i) ('\(name)') is not supported")
            }
            values[name] = outputs[i]
        }
        if kernels.count > kernelsBefore, case .buffer(let b)? = outputs.first, let name = node.output.first {
            lastProduced = (name, b.pointer)
        }
        for name in node.output where !name.isEmpty {
            if case .buffer(let b)? = values[name] { liveValues[b.pointer, default: 0] += 1 }
        }
        for name in node.input where !name.isEmpty {
            let left = (remainingReads[name] ?? useCounts[name] ?? 0) - 1
            remainingReads[name] = left
            guard left == 0, case .buffer(let b)? = values[name] else { continue }
            liveValues[b.pointer, default: 1] -= 1
            if liveValues[b.pointer] == 0 { buffers.release(b.pointer) }
        }
    }

    /// A buffer for a node's output: a free one that fits, else a new one.
    func outputBuffer(_ count: Int, _ location: String) throws(ModelError) -> UnsafeMutablePointer<Float> {
        try buffers.take(count, location)
    }

    /// Appends `apply` to the last kernel, run in place on what it wrote, if `input` is that
    /// kernel's fresh output and nothing else reads it. Returns the buffer, or nil if it cannot.
    func fuseInPlace(input name: String, _ apply: @escaping (FloatBuffer) -> Void) -> FloatBuffer? {
        guard let last = lastProduced, last.name == name, useCounts[name] == 1,
            case .buffer(let b)? = values[name], b.pointer == last.pointer, let previous = kernels.popLast()
        else { return nil }
        kernels.append((previous.location, {
            previous.run()
            apply(b)
        }))
        return b
    }

    /// Makes `function` the epilogue of the kernel that wrote `input`, if that kernel has one (Conv),
    /// has none yet, and nothing else reads `input`. Returns the buffer, or nil if it cannot.
    func fuseActivation(input name: String, _ function: UnaryFunction) -> FloatBuffer? {
        guard let last = lastProduced, last.name == name, useCounts[name] == 1, let slot = lastEpilogue,
            slot.name == name, slot.epilogue.activation == nil, case .buffer(let b)? = values[name], b.pointer == last.pointer
        else { return nil }
        slot.epilogue.activation = function
        return b
    }

    /// The epilogue of the last kernel, when it has one, and the value it writes.
    var lastEpilogue: (name: String, epilogue: Epilogue)?

    /// One scratch buffer shared by every kernel (they run one after another), sized to the
    /// largest request once planning is done.
    let scratch: ScratchSpace

    /// Runs a node whose inputs are all known at load once, in a scratch planner, and keeps its
    /// outputs as constants.
    private func fold(
        _ node: Onnx_NodeProto, location: String, inputs: [PlannedValue?], _ planOperator: OperatorPlanner
    ) throws(ModelError) -> [PlannedValue] {
        let folding = Planner(opset: opset, arena: Arena(limit: arena.limit))
        let outputs = try planOperator(NodeContext(node: node, location: location, inputs: inputs, planner: folding))
        try folding.scratch.allocate(limit: arena.limit)
        folding.kernels.forEach { $0.run() }
        return outputs.map { value in
            guard case .buffer(let b) = value else { return value }
            return .constant(Tensor(shape: b.shape, floats: Array(UnsafeBufferPointer(start: b.pointer, count: b.count))))
        }
    }

    /// The buffer of a value, copying a float constant into a buffer the first time it is needed.
    func buffer(for value: PlannedValue, location: String, role: String) throws(ModelError) -> FloatBuffer {
        switch value {
        case .buffer(let b): return b
        case .constant(let t):
            guard let floats = t.floats else {
                throw ModelError(.unsupportedType, location, "\(role) is int64; only float32 is computed at run time")
            }
            if let constants, !floats.isEmpty {
                return FloatBuffer(shape: t.shape, pointer: constants.pointer(for: floats))
            }
            let b = FloatBuffer(shape: t.shape, pointer: try arena.floats(floats.count, location))
            b.pointer.update(from: floats, count: floats.count)
            return b
        }
    }
}

/// Everything an operator planner sees of its node: attributes with typed errors, inputs as
/// constants or buffers, and the means to allocate outputs and add kernels.
struct NodeContext {
    let node: Onnx_NodeProto
    let location: String
    let inputs: [PlannedValue?]
    let planner: Planner

    var opset: Int { planner.opset }

    // MARK: Inputs

    var inputCount: Int { inputs.count }

    func has(_ i: Int) -> Bool { i < inputs.count && inputs[i] != nil }

    func input(_ i: Int) throws(ModelError) -> PlannedValue {
        guard i < inputs.count, let value = inputs[i] else {
            throw ModelError(.invalidModel, location, "required input \(i) is missing")
        }
        return value
    }

    func shape(_ i: Int) throws(ModelError) -> [Int] { try input(i).shape }

    /// The graph name of input `i` ("" when absent).
    func inputName(_ i: Int) -> String { i < node.input.count ? node.input[i] : "" }

    /// An input that must be known at load (shapes, axes, indices), or nil if omitted.
    func constant(_ i: Int, _ role: String) throws(ModelError) -> Tensor? {
        guard has(i) else { return nil }
        guard case .constant(let t) = try input(i) else {
            throw ModelError(.unsupportedAttribute, location, "\(role) (input \(i)) must be known at load, not computed at run time")
        }
        return t
    }

    /// A float input as a buffer (constants are copied into one).
    func floatInput(_ i: Int) throws(ModelError) -> FloatBuffer {
        try planner.buffer(for: try input(i), location: location, role: "input \(i)")
    }

    /// A float input's values when known at load.
    func constantFloats(_ i: Int) -> [Float]? {
        guard has(i), case .constant(let t)? = inputs[i] else { return nil }
        return t.floats
    }

    // MARK: Outputs and kernels

    func output(_ shape: [Int]) throws(ModelError) -> FloatBuffer {
        let count = try elementCount(shape, location)
        return FloatBuffer(shape: shape, pointer: try planner.outputBuffer(count, location))
    }

    func kernel(_ run: @escaping () -> Void) {
        planner.kernels.append((location, run))
    }

    // MARK: Attributes

    func attribute(_ name: String) -> Onnx_AttributeProto? {
        node.attribute.first { $0.name == name }
    }

    /// Refuses any attribute the operator's implementation does not handle.
    func allowAttributes(_ known: Set<String>) throws(ModelError) {
        for a in node.attribute where !known.contains(a.name) {
            throw ModelError(.unsupportedAttribute, location, "attribute '\(a.name)' is not supported")
        }
    }

    func int(_ name: String, default value: Int) throws(ModelError) -> Int {
        guard let a = attribute(name) else { return value }
        guard a.type == .int || (a.type == .undefined && a.hasI) else {
            throw ModelError(.invalidModel, location, "attribute '\(name)' must be an int")
        }
        guard let v = Int(exactly: a.i), (-maximumElementCount...maximumElementCount).contains(v) else {
            throw ModelError(.invalidModel, location, "attribute '\(name)' = \(a.i) is out of range")
        }
        return v
    }

    func ints(_ name: String) throws(ModelError) -> [Int]? {
        guard let a = attribute(name) else { return nil }
        guard a.type == .ints || (a.type == .undefined && !a.ints.isEmpty) else {
            throw ModelError(.invalidModel, location, "attribute '\(name)' must be a list of ints")
        }
        var result: [Int] = []
        for i in a.ints {
            guard let v = Int(exactly: i), (-maximumElementCount...maximumElementCount).contains(v) else {
                throw ModelError(.invalidModel, location, "attribute '\(name)' holds \(i), out of range")
            }
            result.append(v)
        }
        return result
    }

    func float(_ name: String, default value: Float) throws(ModelError) -> Float {
        guard let a = attribute(name) else { return value }
        guard a.type == .float || (a.type == .undefined && a.hasF) else {
            throw ModelError(.invalidModel, location, "attribute '\(name)' must be a float")
        }
        return a.f
    }

    func string(_ name: String, default value: String) throws(ModelError) -> String {
        guard let a = attribute(name) else { return value }
        guard a.type == .string || (a.type == .undefined && a.hasS) else {
            throw ModelError(.invalidModel, location, "attribute '\(name)' must be a string")
        }
        return String(decoding: a.s, as: UTF8.self)
    }

    /// An axis attribute or value in [-rank, rank), made non-negative.
    func axis(_ value: Int, rank: Int, _ what: String = "axis") throws(ModelError) -> Int {
        guard value >= -rank && value < max(rank, 1) else {
            throw ModelError(.invalidShape, location, "\(what) \(value) is out of range for rank \(rank)")
        }
        return value < 0 ? value + rank : value
    }

    func invalid(_ reason: String) -> ModelError { ModelError(.invalidShape, location, reason) }
    func unsupported(_ reason: String) -> ModelError { ModelError(.unsupportedAttribute, location, reason) }
}

/// Every operator equivd runs, by ONNX op_type. docs/onnx-support.md lists them with their limits.
let operatorPlanners: [String: OperatorPlanner] = {
    var table: [String: OperatorPlanner] = [:]
    registerElementwise(&table)
    registerLinear(&table)
    registerConvolution(&table)
    registerPooling(&table)
    registerReductions(&table)
    registerLayout(&table)
    return table
}()
