import Foundation

func registerReductions(_ table: inout [String: OperatorPlanner]) {
    table["ReduceMean"] = reduction(.mean)
    table["ReduceMax"] = reduction(.max)
    table["ReduceMin"] = reduction(.min)
    table["ReduceSum"] = reduction(.sum)
    table["Softmax"] = planSoftmax
    table["LogSoftmax"] = planLogSoftmax
}

private func planSoftmax(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] { try planSoftmax(ctx, log: false) }
private func planLogSoftmax(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] { try planSoftmax(ctx, log: true) }

private enum ReductionKind {
    case mean, max, min, sum

    /// What a reduction starts from: nothing compared yet, or nothing added yet.
    var start: Float {
        switch self {
        case .max: -Float.infinity
        case .min: Float.infinity
        case .mean, .sum: 0
        }
    }
}

/// The input seen as [outer, reduced, inner] around a run of dimensions.
private struct Split {
    let outer: Int, reduced: Int, inner: Int
    init(_ shape: [Int], from first: Int, to last: Int) {
        outer = shape[..<first].reduce(1, *)
        reduced = shape[first...last].reduce(1, *)
        inner = shape[(last + 1)...].reduce(1, *)
    }
}

/// Reduces over any set of axes by walking the input once: each element is added into (or
/// compared with) its output cell, whose index is kept with strides that are 0 on reduced axes.
private func reduction(_ kind: ReductionKind) -> OperatorPlanner {
    { (ctx: NodeContext) throws(ModelError) -> [PlannedValue] in
        try ctx.allowAttributes(["axes", "keepdims", "noop_with_empty_axes"])
        let xs = try ctx.shape(0)
        // Axes moved from an attribute to an input: ReduceSum at opset 13, the others at 18.
        let axesFromInput = kind == .sum ? ctx.opset >= 13 : ctx.opset >= 18
        var axes = axesFromInput ? try ctx.constant(1, "axes").map { $0.integers.map { Int($0) } } : try ctx.ints("axes")
        if axes?.isEmpty ?? true {
            if try ctx.int("noop_with_empty_axes", default: 0) != 0 { return [try ctx.input(0)] }
            axes = Array(0..<xs.count)
        }
        var reduced = Set<Int>()
        for a in axes! { reduced.insert(try ctx.axis(a, rank: xs.count)) }
        let keep = try ctx.int("keepdims", default: 1) != 0
        let keptShape = xs.indices.map { reduced.contains($0) ? 1 : xs[$0] }
        let outShape = keep ? keptShape : xs.indices.filter { !reduced.contains($0) }.map { xs[$0] }
        let x = try ctx.floatInput(0)
        let out = try ctx.output(outShape)
        let sortedAxes = reduced.sorted()
        if let first = sortedAxes.first, sortedAxes.last! - first + 1 == sortedAxes.count {
            // The reduced axes are one contiguous run: [outer, reduced, inner] loops, no index bookkeeping.
            let split = Split(xs, from: first, to: sortedAxes.last!)
            let px = x.pointer, py = out.pointer
            ctx.kernel { reduceRun(px, py, split, kind) }
            return [.buffer(out)]
        }
        let outStrides = strides(of: keptShape).enumerated().map { reduced.contains($0.offset) ? 0 : $0.element }
        let total = x.count, rank = xs.count, count = max(1, total / max(1, out.count))
        let px = x.pointer, py = out.pointer, outCount = out.count
        let index = ctx.planner.arena.integers(rank)  // the odometer, allocated once
        ctx.kernel {
            py.update(repeating: kind.start, count: outCount)
            index.update(repeating: 0, count: rank)
            var o = 0
            for i in 0..<total {
                switch kind {
                case .max: py[o] = Swift.max(py[o], px[i])
                case .min: py[o] = Swift.min(py[o], px[i])
                case .mean, .sum: py[o] += px[i]
                }
                var d = rank - 1
                while d >= 0 {
                    index[d] += 1
                    o += outStrides[d]
                    if index[d] < xs[d] { break }
                    o -= outStrides[d] * xs[d]
                    index[d] = 0
                    d -= 1
                }
            }
            if kind == .mean {
                let scale = 1 / Float(count)
                for j in 0..<outCount { py[j] *= scale }
            }
        }
        return [.buffer(out)]
    }
}

/// Softmax along one axis (opset ≥ 13), or over the input coerced to 2-D at `axis` (before 13).
private func planSoftmax(_ ctx: NodeContext, log: Bool) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes(["axis"])
    let xs = try ctx.shape(0)
    let axis = try ctx.axis(try ctx.int("axis", default: ctx.opset >= 13 ? -1 : 1), rank: xs.count)
    let split = ctx.opset >= 13 ? Split(xs, from: axis, to: axis) : Split(xs, from: axis, to: xs.count - 1)
    let x = try ctx.floatInput(0)
    let out = try ctx.output(xs)
    let px = x.pointer, py = out.pointer
    let (outer, n, inner) = (split.outer, split.reduced, split.inner)
    ctx.kernel {
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * n * inner + i
                var peak = -Float.infinity
                for k in 0..<n { peak = max(peak, px[base + k * inner]) }
                var sum: Float = 0
                for k in 0..<n {
                    let e = Foundation.exp(px[base + k * inner] - peak)
                    py[base + k * inner] = e
                    sum += e
                }
                if log {
                    let logSum = Foundation.log(sum)
                    for k in 0..<n { py[base + k * inner] = px[base + k * inner] - peak - logSum }
                } else {
                    let scale = 1 / sum
                    for k in 0..<n { py[base + k * inner] *= scale }
                }
            }
        }
    }
    return [.buffer(out)]
}

/// Reduces x seen as [outer, reduced, inner] over its middle axis into y [outer, inner].
private func reduceRun(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ split: Split, _ kind: ReductionKind) {
    let (outer, n, inner) = (split.outer, split.reduced, split.inner)
    guard n > 0 else {  // an empty axis reduces to the identity (NaN for a mean of nothing)
        y.update(repeating: kind == .mean ? .nan : kind.start, count: outer * inner)
        return
    }
    for o in 0..<outer {
        let source = x + o * n * inner, target = y + o * inner
        if inner == 1 {
            var acc = kind.start
            switch kind {
            case .max: for r in 0..<n { acc = Swift.max(acc, source[r]) }
            case .min: for r in 0..<n { acc = Swift.min(acc, source[r]) }
            case .mean, .sum: for r in 0..<n { acc += source[r] }
            }
            target.pointee = kind == .mean ? acc / Float(n) : acc
            continue
        }
        target.update(from: source, count: inner)
        for r in 1..<n {
            let row = source + r * inner
            switch kind {
            case .max: for i in 0..<inner { target[i] = Swift.max(target[i], row[i]) }
            case .min: for i in 0..<inner { target[i] = Swift.min(target[i], row[i]) }
            case .mean, .sum: for i in 0..<inner { target[i] += row[i] }
            }
        }
        if kind == .mean {
            let scale = 1 / Float(n)
            for i in 0..<inner { target[i] *= scale }
        }
    }
}
