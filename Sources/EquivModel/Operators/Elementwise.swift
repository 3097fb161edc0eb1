import Foundation

/// NumPy-style broadcasting of two shapes, planned once: the output shape, and the output split
/// into rows of `inner` elements, each row reading `a` and `b` from a start offset with a step of
/// 0 (broadcast) or 1.
struct BroadcastPlan {
    let shape: [Int]
    let inner: Int
    let aStep: Int
    let bStep: Int
    /// (a offset, b offset) of each row; row r writes output[r·inner ..< (r+1)·inner].
    let rowOffsets: [(Int, Int)]

    init(_ a: [Int], _ b: [Int], location: String) throws(ModelError) {
        let rank = max(a.count, b.count)
        let pa = [Int](repeating: 1, count: rank - a.count) + a
        let pb = [Int](repeating: 1, count: rank - b.count) + b
        var out: [Int] = []
        for i in 0..<rank {
            guard pa[i] == pb[i] || pa[i] == 1 || pb[i] == 1 else {
                throw ModelError(.invalidShape, location, "shapes \(a) and \(b) do not broadcast")
            }
            out.append(pa[i] == 1 ? pb[i] : pa[i])
        }
        _ = try elementCount(out, location)
        shape = out
        // Strides in each operand, 0 where it is broadcast along that output dimension.
        let sa0 = strides(of: pa), sb0 = strides(of: pb)
        var dims: [(n: Int, sa: Int, sb: Int)] = []
        for i in 0..<rank where out[i] != 1 {
            dims.append((out[i], pa[i] == 1 ? 0 : sa0[i], pb[i] == 1 ? 0 : sb0[i]))
        }
        // Merge neighbours that are contiguous in both operands: fewer, longer rows.
        var merged: [(n: Int, sa: Int, sb: Int)] = []
        for d in dims {
            if let last = merged.last, last.sa == d.sa * d.n, last.sb == d.sb * d.n {
                merged[merged.count - 1] = (last.n * d.n, d.sa, d.sb)
            } else {
                merged.append(d)
            }
        }
        guard let innermost = merged.last else {
            (inner, aStep, bStep, rowOffsets) = (1, 0, 0, [(0, 0)])
            return
        }
        inner = innermost.n
        aStep = innermost.sa
        bStep = innermost.sb
        let outer = Array(merged.dropLast())
        let rows = outer.reduce(1) { $0 * $1.n }
        var offsets: [(Int, Int)] = []
        offsets.reserveCapacity(rows)
        var index = [Int](repeating: 0, count: outer.count)
        for _ in 0..<rows {
            var oa = 0, ob = 0
            for (k, d) in outer.enumerated() {
                oa += index[k] * d.sa
                ob += index[k] * d.sb
            }
            offsets.append((oa, ob))
            var k = outer.count - 1
            while k >= 0 {
                index[k] += 1
                if index[k] < outer[k].n { break }
                index[k] = 0
                k -= 1
            }
        }
        rowOffsets = offsets
    }

    /// Applies `op` over arrays: used for values known at load (int64 shape arithmetic).
    func apply<T>(_ a: [T], _ b: [T], _ op: (T, T) -> T) -> [T] {
        var out: [T] = []
        out.reserveCapacity(rowOffsets.count * inner)
        for (oa, ob) in rowOffsets {
            for i in 0..<inner { out.append(op(a[oa + i * aStep], b[ob + i * bStep])) }
        }
        return out
    }
}

/// Elementwise functions of two floats. The switch happens once per kernel run; each case runs
/// its own specialized loops.
enum BinaryFunction: Sendable {
    case add, sub, mul, div, pow, equal

    func kernel(_ plan: BroadcastPlan, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>) -> () -> Void {
        { [self] in
            switch self {
            case .add: rows(plan, a, b, out, +)
            case .sub: rows(plan, a, b, out, -)
            case .mul: rows(plan, a, b, out, *)
            case .div: rows(plan, a, b, out, /)
            case .pow: rows(plan, a, b, out) { Foundation.pow($0, $1) }
            case .equal: rows(plan, a, b, out) { $0 == $1 ? 1 : 0 }
            }
        }
    }
}

/// Applies `op` over the planned rows of a broadcast; inlined into each caller with its `op`.
@inline(__always)
private func rows(
    _ plan: BroadcastPlan, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
    _ op: (Float, Float) -> Float
) {
    let inner = plan.inner, sa = plan.aStep, sb = plan.bStep
    var o = out
    for (oa, ob) in plan.rowOffsets {
        let pa = a + oa, pb = b + ob
        switch (sa, sb) {
        case (1, 1): for i in 0..<inner { o[i] = op(pa[i], pb[i]) }
        case (1, 0): let y = pb[0]; for i in 0..<inner { o[i] = op(pa[i], y) }
        case (0, 1): let x = pa[0]; for i in 0..<inner { o[i] = op(x, pb[i]) }
        default: for i in 0..<inner { o[i] = op(pa[i * sa], pb[i * sb]) }
        }
        o += inner
    }
}

private func binary(_ function: BinaryFunction, _ intOp: (@Sendable (Int64, Int64) -> Int64)?) -> OperatorPlanner {
    { (ctx: NodeContext) throws(ModelError) -> [PlannedValue] in
        try ctx.allowAttributes([])
        let plan = try BroadcastPlan(try ctx.shape(0), try ctx.shape(1), location: ctx.location)
        if case .constant(let a) = try ctx.input(0), case .constant(let b) = try ctx.input(1),
            let x = a.int64s, let y = b.int64s
        {
            guard let intOp else { throw ctx.unsupported("int64 operands are not supported") }
            return [.constant(Tensor(shape: plan.shape, int64s: plan.apply(x, y, intOp)))]
        }
        let a = try ctx.floatInput(0), b = try floatOperand(ctx, 1)
        let out = try ctx.output(plan.shape)
        ctx.kernel(function.kernel(plan, a.pointer, b.pointer, out.pointer))
        return [.buffer(out)]
    }
}

/// Where(condition, X, Y): X where the condition holds, else Y, the three broadcast together.
/// Known at load when all three are; otherwise a float kernel, with a condition computed at run
/// time held as 1 or 0 (Equal's output) and one known at load (bool, read as int64) converted.
private func planWhere(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes([])
    let shapes = try (0..<3).map { i throws(ModelError) in try ctx.shape(i) }
    let pair = try BroadcastPlan(shapes[0], shapes[1], location: ctx.location)
    let shape = try BroadcastPlan(pair.shape, shapes[2], location: ctx.location).shape
    // Each operand read in the output's order: (offset of each row, step within it).
    let reads = try shapes.map { s throws(ModelError) in try BroadcastPlan(s, shape, location: ctx.location) }
    func expanded<T>(_ values: [T], _ plan: BroadcastPlan) -> [T] {
        plan.rowOffsets.flatMap { row in (0..<plan.inner).map { values[row.0 + $0 * plan.aStep] } }
    }
    if case .constant(let c) = try ctx.input(0), case .constant(let x) = try ctx.input(1),
        case .constant(let y) = try ctx.input(2)
    {
        let holds = expanded(c.int64s ?? c.floats!.map { $0 != 0 ? 1 : 0 }, reads[0]).map { $0 != 0 }
        if let xi = x.int64s, let yi = y.int64s {
            let (a, b) = (expanded(xi, reads[1]), expanded(yi, reads[2]))
            return [.constant(Tensor(shape: shape, int64s: holds.indices.map { holds[$0] ? a[$0] : b[$0] }))]
        }
        let (a, b) = (expanded(x.asFloats, reads[1]), expanded(y.asFloats, reads[2]))
        return [.constant(Tensor(shape: shape, floats: holds.indices.map { holds[$0] ? a[$0] : b[$0] }))]
    }
    var operands: [FloatBuffer] = []
    for i in 0..<3 {
        var value = try ctx.input(i)
        if case .constant(let t) = value, !t.isFloat { value = .constant(Tensor(shape: t.shape, floats: t.asFloats)) }
        operands.append(try ctx.planner.buffer(for: value, location: ctx.location, role: "input \(i)"))
    }
    let out = try ctx.output(shape)
    let count = out.count
    // Operands not already of the output's shape are spread into it first.
    var sources: [UnsafePointer<Float>] = [], spreads: [(BroadcastPlan, UnsafePointer<Float>, UnsafeMutablePointer<Float>)] = []
    for (operand, plan) in zip(operands, reads) {
        if operand.shape == shape {
            sources.append(UnsafePointer(operand.pointer))
        } else {
            let spread = try ctx.planner.arena.floats(count, ctx.location)
            spreads.append((plan, UnsafePointer(operand.pointer), spread))
            sources.append(UnsafePointer(spread))
        }
    }
    let (c, x, y, z) = (sources[0], sources[1], sources[2], out.pointer)
    ctx.kernel {
        for (plan, from, to) in spreads {
            var o = to
            for row in plan.rowOffsets {
                for i in 0..<plan.inner { o[i] = from[row.0 + i * plan.aStep] }
                o += plan.inner
            }
        }
        for i in 0..<count { z[i] = c[i] != 0 ? x[i] : y[i] }
    }
    return [.buffer(out)]
}

/// The second operand as floats; an integer one known at load (Pow's exponent) is converted.
private func floatOperand(_ ctx: NodeContext, _ i: Int) throws(ModelError) -> FloatBuffer {
    if ctx.node.opType == "Pow", case .constant(let t) = try ctx.input(i), !t.isFloat {
        return try ctx.planner.buffer(for: .constant(Tensor(shape: t.shape, floats: t.asFloats)), location: ctx.location, role: "exponent")
    }
    return try ctx.floatInput(i)
}

/// Elementwise functions of one float, each applied by its own tight loop.
enum UnaryFunction: Sendable, Equatable {
    case relu, leakyRelu(Float), sigmoid, tanh, exp, log, sqrt, neg, abs, reciprocal

    /// y[i] = f(x[i]) for i < count; x and y may be the same buffer.
    func apply(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .relu: for i in 0..<count { y[i] = max(x[i], 0) }
        case .leakyRelu(let alpha): for i in 0..<count { y[i] = x[i] >= 0 ? x[i] : alpha * x[i] }
        case .sigmoid: for i in 0..<count { y[i] = 1 / (1 + Foundation.exp(-x[i])) }
        case .tanh: for i in 0..<count { y[i] = Foundation.tanh(x[i]) }
        case .exp: for i in 0..<count { y[i] = Foundation.exp(x[i]) }
        case .log: for i in 0..<count { y[i] = Foundation.log(x[i]) }
        case .sqrt: for i in 0..<count { y[i] = x[i].squareRoot() }
        case .neg: for i in 0..<count { y[i] = -x[i] }
        case .abs: for i in 0..<count { y[i] = Swift.abs(x[i]) }
        case .reciprocal: for i in 0..<count { y[i] = 1 / x[i] }
        }
    }
}

/// A unary operator. When it is the only reader of what the previous kernel wrote, it becomes
/// that kernel's epilogue (Conv) or runs in place right after it: no extra buffer, no copy.
private func unary(
    attributes: Set<String> = [], _ makeFunction: @escaping @Sendable (NodeContext) throws(ModelError) -> UnaryFunction
) -> OperatorPlanner {
    { (ctx: NodeContext) throws(ModelError) -> [PlannedValue] in
        try ctx.allowAttributes(attributes)
        let function = try makeFunction(ctx)
        _ = try ctx.input(0)
        if let fused = ctx.planner.fuseActivation(input: ctx.inputName(0), function) { return [.buffer(fused)] }
        if let fused = ctx.planner.fuseInPlace(input: ctx.inputName(0), { function.apply($0.pointer, $0.pointer, count: $0.count) }) {
            return [.buffer(fused)]
        }
        let x = try ctx.floatInput(0)
        let out = try ctx.output(x.shape)
        let count = x.count, input = x.pointer, output = out.pointer
        ctx.kernel { function.apply(input, output, count: count) }
        return [.buffer(out)]
    }
}

/// The output is the input (Identity, and Dropout in inference).
private func passThrough(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    [try ctx.input(0)]
}

func registerElementwise(_ table: inout [String: OperatorPlanner]) {
    table["Add"] = binary(.add, { $0 &+ $1 })
    table["Sub"] = binary(.sub, { $0 &- $1 })
    table["Mul"] = binary(.mul, { $0 &* $1 })
    table["Div"] = binary(.div, { $1 == 0 ? 0 : $0 / $1 })
    table["Pow"] = binary(.pow, nil)
    // A bool computed at run time is held as a float, 1 or 0 (the runtime computes float32 only).
    table["Equal"] = binary(.equal, { $0 == $1 ? 1 : 0 })
    table["Where"] = planWhere

    table["Relu"] = unary { _ in .relu }
    table["LeakyRelu"] = unary(attributes: ["alpha"]) { ctx throws(ModelError) in .leakyRelu(try ctx.float("alpha", default: 0.01)) }
    table["Sigmoid"] = unary { _ in .sigmoid }
    table["Tanh"] = unary { _ in .tanh }
    table["Exp"] = unary { _ in .exp }
    table["Log"] = unary { _ in .log }
    table["Sqrt"] = unary { _ in .sqrt }
    table["Neg"] = unary { _ in .neg }
    table["Abs"] = unary { _ in .abs }
    table["Reciprocal"] = unary { _ in .reciprocal }
    table["Clip"] = planClip

    table["Identity"] = passThrough
    table["Dropout"] = planDropout
}

private func planDropout(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes(["ratio", "seed", "is_test"])
    if let training = try ctx.constant(2, "training_mode"), training.integers.first ?? 0 != 0 {
        throw ctx.unsupported("training_mode = true is not supported (inference only)")
    }
    if ctx.node.output.count > 1 && !ctx.node.output[1].isEmpty {
        throw ctx.unsupported("the mask output is not supported (inference only)")
    }
    return try passThrough(ctx)
}

/// Clip to [min, max]: attributes before opset 11, optional inputs after (read when the kernel
/// runs, so they may be computed or given at run time).
private func planClip(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes(["min", "max"])
    let arena = ctx.planner.arena
    var low = try arena.floats(1, ctx.location), high = try arena.floats(1, ctx.location)
    low.pointee = -Float.greatestFiniteMagnitude
    high.pointee = Float.greatestFiniteMagnitude
    if ctx.opset < 11 {
        low.pointee = try ctx.float("min", default: low.pointee)
        high.pointee = try ctx.float("max", default: high.pointee)
    } else {
        for (i, bound) in [(1, "min"), (2, "max")] where ctx.has(i) {
            let b = try ctx.floatInput(i)
            guard b.count == 1 else { throw ctx.invalid("\(bound) must be a scalar, got shape \(b.shape)") }
            if i == 1 { low = b.pointer } else { high = b.pointer }
        }
    }
    let x = try ctx.floatInput(0)
    let out = try ctx.output(x.shape)
    let px = x.pointer, py = out.pointer, count = x.count
    ctx.kernel {
        let (l, h) = (low.pointee, high.pointee)
        for i in 0..<count { py[i] = min(max(px[i], l), h) }
    }
    return [.buffer(out)]
}
