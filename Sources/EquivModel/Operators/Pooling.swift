func registerPooling(_ table: inout [String: OperatorPlanner]) {
    table["MaxPool"] = planMaxPool
    table["AveragePool"] = planAveragePool
    table["GlobalMaxPool"] = planGlobalMaxPool
    table["GlobalAveragePool"] = planGlobalAveragePool
}

private func planMaxPool(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] { try planPool(ctx, max: true) }
private func planAveragePool(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] { try planPool(ctx, max: false) }
private func planGlobalMaxPool(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] { try planGlobalPool(ctx, max: true) }
private func planGlobalAveragePool(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    try planGlobalPool(ctx, max: false)
}

/// MaxPool and AveragePool over 1-D or 2-D windows. Padding never wins a max; an average counts
/// padded cells only with count_include_pad (and never cells past the right/bottom padding).
private func planPool(_ ctx: NodeContext, max isMax: Bool) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes(
        isMax
            ? ["auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"]
            : ["auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides"])
    if ctx.node.output.count > 1 && !ctx.node.output[1].isEmpty {
        throw ctx.unsupported("the Indices output is not supported")
    }
    let xs = try ctx.shape(0)
    guard xs.count >= 3 else { throw ctx.invalid("pooling needs X [N, C, …], got \(xs)") }
    guard let kernel = try ctx.ints("kernel_shape") else { throw ctx.invalid("kernel_shape is required") }
    let ceilMode = try ctx.int("ceil_mode", default: 0) != 0
    let includePad = try ctx.int("count_include_pad", default: 0) != 0
    let w = try Window2D(ctx, spatial: Array(xs.dropFirst(2)), kernel: kernel, ceilMode: ceilMode, allowDilations: isMax)
    let outShape = Array(xs.prefix(2)) + (xs.count == 3 ? [w.outputWidth] : [w.outputHeight, w.outputWidth])
    let x = try ctx.floatInput(0)
    let out = try ctx.output(outShape)
    let planes = xs[0] * xs[1]
    let px = x.pointer, py = out.pointer
    // Every window inside the input (no padding in use): no bounds checks, no cell counting.
    let inside = w.dilationX == 1 && w.dilationY == 1 && w.padTop == 0 && w.padLeft == 0
        && (w.outputHeight - 1) * w.strideY + w.kernelHeight <= w.inputHeight
        && (w.outputWidth - 1) * w.strideX + w.kernelWidth <= w.inputWidth
    if inside {
        ctx.kernel { poolInside(px, py, planes: planes, w, max: isMax) }
        return [.buffer(out)]
    }
    ctx.kernel {
        for p in 0..<planes {
            let image = px + p * w.inputPlane
            var o = py + p * w.outputPlane
            for oy in 0..<w.outputHeight {
                let y0 = oy * w.strideY - w.padTop
                for ox in 0..<w.outputWidth {
                    let x0 = ox * w.strideX - w.padLeft
                    var best = -Float.infinity, sum: Float = 0, cells = 0
                    for ky in 0..<w.kernelHeight {
                        let iy = y0 + ky * w.dilationY
                        guard iy >= 0 && iy < w.inputHeight else { continue }
                        for kx in 0..<w.kernelWidth {
                            let ix = x0 + kx * w.dilationX
                            guard ix >= 0 && ix < w.inputWidth else { continue }
                            let v = image[iy * w.inputWidth + ix]
                            best = max(best, v)
                            sum += v
                            cells += 1
                        }
                    }
                    if isMax {
                        o.pointee = best
                    } else {
                        if includePad {
                            // Cells of the window that lie inside input + declared padding.
                            let yEnd = min(y0 + w.kernelHeight, w.inputHeight + w.padBottom)
                            let xEnd = min(x0 + w.kernelWidth, w.inputWidth + w.padRight)
                            cells = (yEnd - max(y0, -w.padTop)) * (xEnd - max(x0, -w.padLeft))
                        }
                        o.pointee = cells > 0 ? sum / Float(cells) : 0
                    }
                    o += 1
                }
            }
        }
    }
    return [.buffer(out)]
}

/// Max or mean over all spatial positions of each channel; output [N, C, 1, …].
private func planGlobalPool(_ ctx: NodeContext, max isMax: Bool) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes([])
    let xs = try ctx.shape(0)
    guard xs.count >= 3 else { throw ctx.invalid("global pooling needs X [N, C, …], got \(xs)") }
    let plane = xs.dropFirst(2).reduce(1, *), planes = xs[0] * xs[1]
    let x = try ctx.floatInput(0)
    let out = try ctx.output(Array(xs.prefix(2)) + Array(repeating: 1, count: xs.count - 2))
    let px = x.pointer, py = out.pointer
    ctx.kernel {
        for p in 0..<planes {
            let v = px + p * plane
            if isMax {
                var best = -Float.infinity
                for i in 0..<plane { best = max(best, v[i]) }
                py[p] = best
            } else {
                var sum: Float = 0
                for i in 0..<plane { sum += v[i] }
                py[p] = sum / Float(plane)
            }
        }
    }
    return [.buffer(out)]
}

/// Pooling when every window lies inside the input; 2×2 max pooling with stride 2 and windows that
/// tile each row exactly (`poolGroups`) have their own loops.
private func poolInside(_ px: UnsafePointer<Float>, _ py: UnsafeMutablePointer<Float>, planes: Int, _ w: Window2D, max isMax: Bool) {
    let width = w.inputWidth
    var o = py
    if isMax && w.kernelHeight == 2 && w.kernelWidth == 2 && w.strideY == 2 && w.strideX == 2 {
        for p in 0..<planes {
            let image = px + p * w.inputPlane
            for oy in 0..<w.outputHeight {
                let top = image + 2 * oy * width, bottom = top + width
                // Comparisons written out (Swift.max orders NaN, which keeps the loop from vectorizing).
                for ox in 0..<w.outputWidth {
                    let (t0, t1, b0, b1) = (top[2 * ox], top[2 * ox + 1], bottom[2 * ox], bottom[2 * ox + 1])
                    let t = t0 > t1 ? t0 : t1, b = b0 > b1 ? b0 : b1
                    o[ox] = t > b ? t : b
                }
                o += w.outputWidth
            }
        }
        return
    }
    let scale = 1 / Float(w.kernelSize), ow = w.outputWidth
    if w.kernelHeight == 1 && w.strideY == 1 && w.strideX == w.kernelWidth && ow * w.kernelWidth == width {
        poolGroups(px, py, groups: planes * w.outputHeight * ow, size: w.kernelWidth, scale: scale, max: isMax)
        return
    }
    // Row by row: each output row gathers its window's input rows, one kernel column at a time,
    // in loops with nothing but a load and an add (or max) per output.
    for p in 0..<planes {
        let image = px + p * w.inputPlane
        for oy in 0..<w.outputHeight {
            o.update(repeating: isMax ? -Float.infinity : 0, count: ow)
            for ky in 0..<w.kernelHeight {
                let line = image + (oy * w.strideY + ky) * width
                for kx in 0..<w.kernelWidth {
                    let source = line + kx
                    if isMax {
                        for ox in 0..<ow { o[ox] = Swift.max(o[ox], source[ox * w.strideX]) }
                    } else {
                        for ox in 0..<ow { o[ox] += source[ox * w.strideX] }
                    }
                }
            }
            if !isMax { for ox in 0..<ow { o[ox] *= scale } }
            o += ow
        }
    }
}

/// Windows along rows that tile every row exactly (kernel = stride = width / outputs, as in
/// AveragePool(1×5) over time): the tensor is one run of `groups` groups of `size` consecutive
/// values, one output each. Small sizes get a constant size so that the compiler vectorizes the
/// strided loads.
private func poolGroups(_ px: UnsafePointer<Float>, _ py: UnsafeMutablePointer<Float>, groups: Int, size: Int, scale: Float, max isMax: Bool) {
    switch (size, isMax) {
    case (2, false): reduceGroups(px, py, groups, 2, scale, +)
    case (3, false): reduceGroups(px, py, groups, 3, scale, +)
    case (4, false): reduceGroups(px, py, groups, 4, scale, +)
    case (5, false): reduceGroups(px, py, groups, 5, scale, +)
    case (2, true): reduceGroups(px, py, groups, 2, 1, Swift.max)
    case (3, true): reduceGroups(px, py, groups, 3, 1, Swift.max)
    case (4, true): reduceGroups(px, py, groups, 4, 1, Swift.max)
    case (5, true): reduceGroups(px, py, groups, 5, 1, Swift.max)
    default: reduceGroups(px, py, groups, size, isMax ? 1 : scale, isMax ? Swift.max : (+))
    }
}

@inline(__always)
private func reduceGroups(
    _ px: UnsafePointer<Float>, _ py: UnsafeMutablePointer<Float>, _ groups: Int, _ size: Int, _ scale: Float,
    _ combine: (Float, Float) -> Float
) {
    for g in 0..<groups {
        let group = px + g * size
        var value = group[0]
        for i in 1..<size { value = combine(value, group[i]) }
        py[g] = value * scale
    }
}
