func registerLayout(_ table: inout [String: OperatorPlanner]) {
    table["Reshape"] = planReshape
    table["Flatten"] = planFlatten
    table["Squeeze"] = planSqueeze
    table["Unsqueeze"] = planUnsqueeze
    table["Transpose"] = planTranspose
    table["Slice"] = planSlice
    table["Pad"] = planPad
    table["Gather"] = planGather
    table["Concat"] = planConcat
    table["Shape"] = planShape
    table["Constant"] = planConstant
    table["ConstantOfShape"] = planConstantOfShape
    table["Cast"] = planCast
}

// MARK: Views: same elements, new shape

/// The input under a new shape; a buffer is shared, not copied.
private func view(_ value: PlannedValue, _ shape: [Int], _ ctx: NodeContext) throws(ModelError) -> PlannedValue {
    guard try elementCount(shape, ctx.location) == value.shape.reduce(1, *) else {
        throw ctx.invalid("cannot view \(value.shape) as \(shape)")
    }
    switch value {
    case .constant(var t):
        t.shape = shape
        return .constant(t)
    case .buffer(let b):
        return .buffer(FloatBuffer(shape: shape, pointer: b.pointer))
    }
}

private func planReshape(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes(["allowzero", "shape"])
    let xs = try ctx.shape(0)
    let requested: [Int]
    if ctx.opset < 5 {
        guard let s = try ctx.ints("shape") else { throw ctx.invalid("shape attribute is required") }
        requested = s
    } else {
        guard let t = try ctx.constant(1, "shape") else { throw ctx.invalid("shape input is required") }
        requested = t.integers.map { Int(clamping: $0) }
    }
    let allowZero = try ctx.int("allowzero", default: 0) != 0
    var shape = requested.enumerated().map { i, d in d == 0 && !allowZero && i < xs.count ? xs[i] : d }
    let unknown = shape.indices.filter { shape[$0] == -1 }
    guard unknown.count <= 1, shape.allSatisfy({ $0 >= -1 }) else { throw ctx.invalid("bad target shape \(requested)") }
    let total = try elementCount(xs, ctx.location)
    if let u = unknown.first {
        let known = shape.enumerated().filter { $0.offset != u }.reduce(1) { $0 * $1.element }
        guard known > 0, total % known == 0 else { throw ctx.invalid("cannot reshape \(xs) to \(requested)") }
        shape[u] = total / known
    }
    return [try view(try ctx.input(0), shape, ctx)]
}

private func planFlatten(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes(["axis"])
    let xs = try ctx.shape(0)
    let a = try ctx.int("axis", default: 1)
    guard a >= -xs.count && a <= xs.count else { throw ctx.invalid("axis \(a) is out of range for rank \(xs.count)") }
    let axis = a < 0 ? a + xs.count : a
    return [try view(try ctx.input(0), [xs[..<axis].reduce(1, *), xs[axis...].reduce(1, *)], ctx)]
}

/// Axes from the attribute (before opset 13) or the input (from 13).
private func axesOperand(_ ctx: NodeContext) throws(ModelError) -> [Int]? {
    ctx.opset >= 13 ? try ctx.constant(1, "axes").map { $0.integers.map { Int(clamping: $0) } } : try ctx.ints("axes")
}

private func planSqueeze(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes(["axes"])
    let xs = try ctx.shape(0)
    var drop = Set<Int>()
    if let axes = try axesOperand(ctx), !axes.isEmpty {
        for a in axes {
            let axis = try ctx.axis(a, rank: xs.count)
            guard xs[axis] == 1 else { throw ctx.invalid("cannot squeeze axis \(a) of size \(xs[axis])") }
            drop.insert(axis)
        }
    } else {
        drop = Set(xs.indices.filter { xs[$0] == 1 })
    }
    return [try view(try ctx.input(0), xs.indices.filter { !drop.contains($0) }.map { xs[$0] }, ctx)]
}

private func planUnsqueeze(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes(["axes"])
    let xs = try ctx.shape(0)
    guard let axes = try axesOperand(ctx), !axes.isEmpty else { throw ctx.invalid("axes are required") }
    let rank = xs.count + axes.count
    var inserted = Set<Int>()
    for a in axes { inserted.insert(try ctx.axis(a, rank: rank)) }
    guard inserted.count == axes.count else { throw ctx.invalid("repeated axes \(axes)") }
    var rest = xs.makeIterator()
    let shape = (0..<rank).map { inserted.contains($0) ? 1 : rest.next()! }
    return [try view(try ctx.input(0), shape, ctx)]
}

// MARK: Index maps: each output element copies one input element (or a fill value)

/// Output element i copies input element `sources[i]`, or is `fill` where that is negative.
/// Built once at load by walking the output's indices.
private struct IndexMap {
    let shape: [Int]
    var sources: [Int]
    var fill: Float = 0

    init(shape: [Int], location: String, limit: Int, source: ([Int]) -> Int) throws(ModelError) {
        self.shape = shape
        let count = try elementCount(shape, location)
        guard count <= limit else { throw ModelError(.invalidShape, location, "output of \(count) elements exceeds the session's limit") }
        var sources: [Int] = []
        sources.reserveCapacity(count)
        var index = [Int](repeating: 0, count: shape.count)
        for _ in 0..<count {
            sources.append(source(index))
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < shape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        self.sources = sources
    }

    func apply(to value: PlannedValue, _ ctx: NodeContext) throws(ModelError) -> PlannedValue {
        switch value {
        case .constant(let t):
            switch t.storage {
            case .float(let v): return .constant(Tensor(shape: shape, floats: sources.map { $0 >= 0 ? v[$0] : fill }))
            case .int64(let v): return .constant(Tensor(shape: shape, int64s: sources.map { $0 >= 0 ? v[$0] : Int64(fill) }))
            }
        case .buffer(let b):
            let out = try ctx.output(shape)
            let px = b.pointer, py = out.pointer, sources = sources, fill = fill
            ctx.kernel {
                for (i, s) in sources.enumerated() { py[i] = s >= 0 ? px[s] : fill }
            }
            return .buffer(out)
        }
    }
}

private func planTranspose(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes(["perm"])
    let xs = try ctx.shape(0)
    let perm = try ctx.ints("perm") ?? Array(xs.indices.reversed())
    guard perm.count == xs.count, Set(perm) == Set(xs.indices) else { throw ctx.invalid("perm \(perm) is not a permutation of rank \(xs.count)") }
    let inStrides = strides(of: xs)
    let map = try IndexMap(shape: perm.map { xs[$0] }, location: ctx.location, limit: ctx.planner.arena.limit) { index in
        zip(index, perm).reduce(0) { $0 + $1.0 * inStrides[$1.1] }
    }
    return [try map.apply(to: try ctx.input(0), ctx)]
}

private func planSlice(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes(["starts", "ends", "axes"])
    let xs = try ctx.shape(0)
    var starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?
    if ctx.opset < 10 {
        guard let s = try ctx.ints("starts"), let e = try ctx.ints("ends") else { throw ctx.invalid("starts and ends are required") }
        (starts, ends, axes, steps) = (s, e, try ctx.ints("axes"), nil)
    } else {
        func ints(_ i: Int, _ name: String) throws(ModelError) -> [Int]? {
            try ctx.constant(i, name).map { $0.integers.map { Int(clamping: $0) } }
        }
        guard let s = try ints(1, "starts"), let e = try ints(2, "ends") else { throw ctx.invalid("starts and ends are required") }
        (starts, ends, axes, steps) = (s, e, try ints(3, "axes"), try ints(4, "steps"))
    }
    let axisList = axes ?? Array(0..<starts.count)
    let stepList = steps ?? Array(repeating: 1, count: starts.count)
    guard ends.count == starts.count, axisList.count == starts.count, stepList.count == starts.count else {
        throw ctx.invalid("starts, ends, axes and steps differ in length")
    }
    var first = [Int](repeating: 0, count: xs.count), step = [Int](repeating: 1, count: xs.count), shape = xs
    for (k, a) in axisList.enumerated() {
        let axis = try ctx.axis(a, rank: xs.count)
        let dim = xs[axis], s = stepList[k]
        guard s != 0 else { throw ctx.invalid("step 0 on axis \(a)") }
        var start = starts[k] < 0 ? starts[k] &+ dim : starts[k]
        var end = ends[k] < 0 ? ends[k] &+ dim : ends[k]
        if s > 0 {
            start = min(max(start, 0), dim)
            end = min(max(end, 0), dim)
            shape[axis] = max(0, (end - start + s - 1) / s)
        } else {
            start = min(max(start, 0), dim - 1)
            end = min(max(end, -1), dim - 1)
            shape[axis] = max(0, (start - end + (-s) - 1) / (-s))
        }
        (first[axis], step[axis]) = (start, s)
    }
    let inStrides = strides(of: xs)
    let map = try IndexMap(shape: shape, location: ctx.location, limit: ctx.planner.arena.limit) { index in
        index.indices.reduce(0) { $0 + (first[$1] + index[$1] * step[$1]) * inStrides[$1] }
    }
    return [try map.apply(to: try ctx.input(0), ctx)]
}

private func planPad(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes(["mode", "pads", "value"])
    let xs = try ctx.shape(0)
    let mode = try ctx.string("mode", default: "constant")
    let pads: [Int]
    var fill: Float = 0
    if ctx.opset < 11 {
        guard let p = try ctx.ints("pads") else { throw ctx.invalid("pads are required") }
        pads = p
        fill = try ctx.float("value", default: 0)
    } else {
        guard let p = try ctx.constant(1, "pads") else { throw ctx.invalid("pads are required") }
        pads = p.integers.map { Int(clamping: $0) }
        if ctx.has(2) {
            guard case .constant(let v) = try ctx.input(2) else { return try padWithRuntimeValue(ctx, xs, pads) }
            fill = v.asFloats.first ?? 0
        }
        if ctx.has(3) { throw ctx.unsupported("the axes input is not supported") }
    }
    let rank = xs.count
    guard pads.count == 2 * rank else { throw ctx.invalid("pads \(pads) do not fit rank \(rank)") }
    let shape = (0..<rank).map { xs[$0] + pads[$0] + pads[$0 + rank] }
    guard shape.allSatisfy({ $0 >= 0 }) else { throw ctx.invalid("pads \(pads) crop \(xs) below zero") }
    guard ["constant", "reflect", "edge"].contains(mode) else { throw ctx.unsupported("mode '\(mode)' is not supported") }
    // torch.onnx.export puts a Pad of zeros before some pooling: the input as it is.
    if pads.allSatisfy({ $0 == 0 }) { return [try ctx.input(0)] }
    if mode != "constant", (0..<rank).contains(where: { xs[$0] == 0 && shape[$0] > 0 }) {
        throw ctx.invalid("\(mode) padding of an empty axis")
    }
    let inStrides = strides(of: xs)
    var map = try IndexMap(shape: shape, location: ctx.location, limit: ctx.planner.arena.limit) { index in
        var offset = 0
        for d in 0..<rank {
            var i = index[d] - pads[d]
            let n = xs[d]
            if i < 0 || i >= n {
                switch mode {
                case "edge": i = min(max(i, 0), n - 1)
                case "reflect":
                    if n == 1 { i = 0; break }
                    let period = 2 * (n - 1)
                    i = ((i % period) + period) % period
                    if i >= n { i = period - i }
                default: return -1
                }
            }
            offset += i * inStrides[d]
        }
        return offset
    }
    map.fill = fill
    return [try map.apply(to: try ctx.input(0), ctx)]
}

/// Constant padding whose value is only known at run time: one index map, filled from the
/// value's buffer each run.
private func padWithRuntimeValue(_ ctx: NodeContext, _ xs: [Int], _ pads: [Int]) throws(ModelError) -> [PlannedValue] {
    guard try ctx.string("mode", default: "constant") == "constant" else { throw ctx.unsupported("mode with a runtime value") }
    let rank = xs.count
    guard pads.count == 2 * rank else { throw ctx.invalid("pads \(pads) do not fit rank \(rank)") }
    let shape = (0..<rank).map { xs[$0] + pads[$0] + pads[$0 + rank] }
    guard shape.allSatisfy({ $0 >= 0 }) else { throw ctx.invalid("pads \(pads) crop \(xs) below zero") }
    let inStrides = strides(of: xs)
    let map = try IndexMap(shape: shape, location: ctx.location, limit: ctx.planner.arena.limit) { index in
        var offset = 0
        for d in 0..<rank {
            let i = index[d] - pads[d]
            if i < 0 || i >= xs[d] { return -1 }
            offset += i * inStrides[d]
        }
        return offset
    }
    let x = try ctx.floatInput(0), value = try ctx.floatInput(2)
    let out = try ctx.output(shape)
    let px = x.pointer, pv = value.pointer, py = out.pointer, sources = map.sources
    ctx.kernel {
        let fill = pv.pointee
        for (i, s) in sources.enumerated() { py[i] = s >= 0 ? px[s] : fill }
    }
    return [.buffer(out)]
}

private func planGather(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes(["axis"])
    let xs = try ctx.shape(0)
    let axis = try ctx.axis(try ctx.int("axis", default: 0), rank: xs.count)
    guard let indices = try ctx.constant(1, "indices") else { throw ctx.invalid("indices are required") }
    let dim = xs[axis]
    var picks: [Int] = []
    for v in indices.integers {
        let i = Int(clamping: v)
        guard i >= -dim && i < dim else { throw ctx.invalid("index \(v) is out of range for axis \(axis) of size \(dim)") }
        picks.append(i < 0 ? i + dim : i)
    }
    let shape = Array(xs[..<axis]) + indices.shape + Array(xs[(axis + 1)...])
    let inStrides = strides(of: xs), indexStrides = strides(of: indices.shape), q = indices.shape.count
    let map = try IndexMap(shape: shape, location: ctx.location, limit: ctx.planner.arena.limit) { index in
        var offset = 0
        for d in 0..<axis { offset += index[d] * inStrides[d] }
        var flat = 0
        for k in 0..<q { flat += index[axis + k] * indexStrides[k] }
        offset += picks[flat] * inStrides[axis]
        for d in (axis + 1)..<xs.count { offset += index[d - 1 + q] * inStrides[d] }
        return offset
    }
    return [try map.apply(to: try ctx.input(0), ctx)]
}

// MARK: Concat

private func planConcat(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes(["axis"])
    let shapes = try (0..<ctx.inputCount).map { i throws(ModelError) in try ctx.shape(i) }
    guard let first = shapes.first else { throw ctx.invalid("Concat needs inputs") }
    let axis = try ctx.axis(try ctx.int("axis", default: 0), rank: first.count)
    for s in shapes where s.count != first.count || s.indices.contains(where: { $0 != axis && s[$0] != first[$0] }) {
        throw ctx.invalid("cannot concatenate \(shapes) along axis \(axis)")
    }
    var shape = first
    shape[axis] = shapes.reduce(0) { $0 + $1[axis] }
    let outer = first[..<axis].reduce(1, *), inner = first[(axis + 1)...].reduce(1, *)
    let chunks = shapes.map { $0[axis] * inner }
    let values = try (0..<ctx.inputCount).map { i throws(ModelError) in try ctx.input(i) }
    if values.allSatisfy({ if case .constant(let t) = $0 { !t.isFloat } else { false } }) {
        let arrays: [[Int64]] = values.map { if case .constant(let t) = $0 { t.integers } else { [] } }
        var out: [Int64] = []
        for o in 0..<outer {
            for (k, a) in arrays.enumerated() { out += a[(o * chunks[k])..<((o + 1) * chunks[k])] }
        }
        return [.constant(Tensor(shape: shape, int64s: out))]
    }
    let inputs = try (0..<ctx.inputCount).map { i throws(ModelError) in try ctx.floatInput(i).pointer }
    let out = try ctx.output(shape)
    let py = out.pointer
    ctx.kernel {
        var target = py
        for o in 0..<outer {
            for (k, source) in inputs.enumerated() {
                target.update(from: source + o * chunks[k], count: chunks[k])
                target += chunks[k]
            }
        }
    }
    return [.buffer(out)]
}

// MARK: Values known at load

private func planShape(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes(["start", "end"])
    let xs = try ctx.shape(0)
    let rank = xs.count
    func clampAxis(_ a: Int) -> Int { min(max(a < 0 ? a + rank : a, 0), rank) }
    let start = clampAxis(try ctx.int("start", default: 0)), end = clampAxis(try ctx.int("end", default: rank))
    let dims = start < end ? xs[start..<end].map { Int64($0) } : []
    return [.constant(Tensor(shape: [dims.count], int64s: dims))]
}

private func planConstant(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    guard ctx.node.attribute.count == 1, let a = ctx.node.attribute.first else {
        throw ctx.invalid("Constant needs exactly one value attribute")
    }
    switch a.name {
    case "value": return [.constant(try Tensor(proto: a.t, location: ctx.location))]
    case "value_float": return [.constant(Tensor(shape: [], floats: [a.f]))]
    case "value_floats": return [.constant(Tensor(shape: [a.floats.count], floats: a.floats))]
    case "value_int": return [.constant(Tensor(shape: [], int64s: [a.i]))]
    case "value_ints": return [.constant(Tensor(shape: [a.ints.count], int64s: a.ints))]
    default: throw ctx.unsupported("attribute '\(a.name)' is not supported")
    }
}

private func planConstantOfShape(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes(["value"])
    guard let s = try ctx.constant(0, "shape") else { throw ctx.invalid("shape is required") }
    let shape = s.integers.map { Int(clamping: $0) }
    let count = try elementCount(shape, ctx.location)
    guard count <= ctx.planner.arena.limit else { throw ctx.invalid("shape \(shape) exceeds the session's limit") }
    guard let a = ctx.attribute("value") else { return [.constant(Tensor(shape: shape, floats: .init(repeating: 0, count: count)))] }
    let v = try Tensor(proto: a.t, location: ctx.location)
    switch v.storage {
    case .float(let x): return [.constant(Tensor(shape: shape, floats: .init(repeating: x.first ?? 0, count: count)))]
    case .int64(let x): return [.constant(Tensor(shape: shape, int64s: .init(repeating: x.first ?? 0, count: count)))]
    }
}

/// Casts between float and int64 values known at load; at run time only float → float.
private func planCast(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes(["to", "saturate"])
    let to = try ctx.int("to", default: 0)
    let value = try ctx.input(0)
    switch (value, ONNXDataType(rawValue: Int32(clamping: to))) {
    case (.constant(let t), .float?), (.constant(let t), .double?):
        return [.constant(Tensor(shape: t.shape, floats: t.asFloats))]
    case (.constant(let t), .int64?), (.constant(let t), .int32?):
        return [.constant(Tensor(shape: t.shape, int64s: t.integers))]
    case (.buffer, .float?):
        return [value]
    default:
        throw ModelError(.unsupportedType, ctx.location, "Cast to type \(to) is not supported at run time (float32 only)")
    }
}
