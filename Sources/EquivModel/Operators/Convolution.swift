import CDirectConv
import Foundation

/// Spatial geometry shared by Conv and the pooling operators, for 1-D and 2-D inputs. A 1-D
/// operator is planned as 2-D with a height of 1.
struct Window2D {
    var inputHeight = 1, inputWidth = 1
    var kernelHeight = 1, kernelWidth = 1
    var strideY = 1, strideX = 1
    var dilationY = 1, dilationX = 1
    var padTop = 0, padLeft = 0, padBottom = 0, padRight = 0
    var outputHeight = 1, outputWidth = 1

    /// Reads kernel, strides, dilations, pads and auto_pad for `spatial` (the input's spatial
    /// dimensions) and computes the output size; `ceilMode` rounds the output size up (pooling).
    init(
        _ ctx: NodeContext, spatial: [Int], kernel: [Int], ceilMode: Bool = false, allowDilations: Bool = true
    ) throws(ModelError) {
        let rank = spatial.count
        guard rank == 1 || rank == 2 else {
            throw ctx.unsupported("\(rank)-D spatial input is not supported (1-D and 2-D are)")
        }
        guard kernel.count == rank, kernel.allSatisfy({ $0 >= 1 }) else {
            throw ctx.invalid("kernel shape \(kernel) does not fit \(rank)-D input")
        }
        let strides = try ctx.ints("strides") ?? Array(repeating: 1, count: rank)
        let dilations = try ctx.ints("dilations") ?? Array(repeating: 1, count: rank)
        guard strides.count == rank, strides.allSatisfy({ $0 >= 1 }) else { throw ctx.invalid("bad strides \(strides)") }
        guard dilations.count == rank, dilations.allSatisfy({ $0 >= 1 }) else {
            throw ctx.invalid("bad dilations \(dilations)")
        }
        if !allowDilations && dilations.contains(where: { $0 != 1 }) { throw ctx.unsupported("dilations are not supported here") }
        var pads = try ctx.ints("pads") ?? Array(repeating: 0, count: 2 * rank)
        guard pads.count == 2 * rank, pads.allSatisfy({ $0 >= 0 }) else { throw ctx.invalid("bad pads \(pads)") }
        var output = [Int](repeating: 0, count: rank)
        let autoPad = try ctx.string("auto_pad", default: "NOTSET")
        for d in 0..<rank {
            let extent = dilations[d] * (kernel[d] - 1) + 1
            switch autoPad {
            case "NOTSET", "":
                let span = spatial[d] + pads[d] + pads[d + rank] - extent
                guard span >= 0 else {
                    throw ctx.invalid("kernel extent \(extent) exceeds padded input \(spatial[d] + pads[d] + pads[d + rank])")
                }
                output[d] = (ceilMode ? (span + strides[d] - 1) / strides[d] : span / strides[d]) + 1
                // With ceil_mode the last window must start inside the input or the left padding.
                if ceilMode && (output[d] - 1) * strides[d] >= spatial[d] + pads[d] { output[d] -= 1 }
            case "VALID":
                guard spatial[d] >= extent else { throw ctx.invalid("kernel extent \(extent) exceeds input \(spatial[d])") }
                output[d] = (spatial[d] - extent) / strides[d] + 1
                pads[d] = 0
                pads[d + rank] = 0
            case "SAME_UPPER", "SAME_LOWER":
                output[d] = (spatial[d] + strides[d] - 1) / strides[d]
                let total = max(0, (output[d] - 1) * strides[d] + extent - spatial[d])
                let small = total / 2
                pads[d] = autoPad == "SAME_UPPER" ? small : total - small
                pads[d + rank] = total - pads[d]
            default:
                throw ctx.invalid("auto_pad '\(autoPad)' is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER")
            }
        }
        if rank == 1 {
            (inputWidth, kernelWidth, strideX, dilationX) = (spatial[0], kernel[0], strides[0], dilations[0])
            (padLeft, padRight, outputWidth) = (pads[0], pads[1], output[0])
        } else {
            (inputHeight, inputWidth) = (spatial[0], spatial[1])
            (kernelHeight, kernelWidth) = (kernel[0], kernel[1])
            (strideY, strideX, dilationY, dilationX) = (strides[0], strides[1], dilations[0], dilations[1])
            (padTop, padLeft, padBottom, padRight) = (pads[0], pads[1], pads[2], pads[3])
            (outputHeight, outputWidth) = (output[0], output[1])
        }
    }

    var inputPlane: Int { inputHeight * inputWidth }
    var outputPlane: Int { outputHeight * outputWidth }
    var kernelSize: Int { kernelHeight * kernelWidth }
}

@inline(__always)
func ceilDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? (a + b - 1) / b : -((-a) / b) }

func registerConvolution(_ table: inout [String: OperatorPlanner]) {
    table["Conv"] = planConv
    table["BatchNormalization"] = planBatchNormalization
}

/// Depthwise Conv (one filter per channel) runs CDirectConv's depthwise kernel; a 1×1 Conv over
/// few positions its pointwise kernel; every other Conv the direct kernel on zero-padded planes
/// (`planPaddedConv`), strided ones split into their stride phases first. No Conv goes through
/// sgemm: OpenBLAS's kernel choice depends on knowing the CPU (docs/benchmarks.md). Bias and a fused activation are applied to each output row while it
/// is in cache.
private func planConv(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes(["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"])
    let xs = try ctx.shape(0), ws = try ctx.shape(1)
    guard xs.count >= 3, ws.count == xs.count else { throw ctx.invalid("Conv needs X [N, C, …] and W of the same rank, got \(xs) and \(ws)") }
    let group = try ctx.int("group", default: 1)
    let (batch, channels, filters) = (xs[0], xs[1], ws[0])
    guard group >= 1, channels % group == 0, filters % group == 0, ws[1] == channels / group else {
        throw ctx.invalid("X has \(channels) channels, W \(ws) and group \(group) do not match")
    }
    let kernel = Array(ws.dropFirst(2))
    if let declared = try ctx.ints("kernel_shape"), declared != kernel {
        throw ctx.invalid("kernel_shape \(declared) differs from W's \(kernel)")
    }
    let w = try Window2D(ctx, spatial: Array(xs.dropFirst(2)), kernel: kernel)
    let outShape = [batch, filters] + (xs.count == 3 ? [w.outputWidth] : [w.outputHeight, w.outputWidth])
    let x = try ctx.floatInput(0), weights = try ctx.floatInput(1)
    let bias = ctx.has(2) ? try ctx.floatInput(2) : nil
    if let bias, bias.count != filters { throw ctx.invalid("bias has \(bias.count) values for \(filters) filters") }
    let out = try ctx.output(outShape)

    if group > 1 && channels == group && filters == group {
        return planDepthwiseConv(ctx, x: x, weights: weights, bias: bias, out: out, w, batch: batch, channels: channels)
    }
    let plain = w.kernelSize == 1 && w.strideX == 1 && w.strideY == 1 && w.padTop + w.padLeft + w.padBottom + w.padRight == 0
    if plain && group == 1 && w.outputPlane <= pointwiseMaximumPositions {
        return try planPointwiseConv(ctx, x: x, weights: weights, bias: bias, out: out, w, batch: batch)
    }
    return try planPaddedConv(ctx, x: x, weights: weights, bias: bias, out: out, w, batch: batch, group: group)
}

/// Up to this many output positions a 1×1 Conv runs CDirectConv's pointwise kernel rather than the
/// direct kernel, which computes whole steps of up to 48 positions (docs/benchmarks.md; YAMNet
/// layers 7–14).
let pointwiseMaximumPositions = 32

/// 1×1 Conv over few positions by CDirectConv's pointwise kernel, one image at a time. Weights are
/// packed for it at load when they are constants (at every run otherwise).
private func planPointwiseConv(
    _ ctx: NodeContext, x: FloatBuffer, weights: FloatBuffer, bias: FloatBuffer?, out: FloatBuffer, _ w: Window2D, batch: Int
) throws(ModelError) -> [PlannedValue] {
    let (filters, channels, plane) = (weights.shape[0], weights.shape[1], w.outputPlane)
    let packed = try ctx.planner.arena.floats(equivd_pointwise_packed_count(filters, channels), ctx.location)
    let px = x.pointer, pw = weights.pointer, py = out.pointer, pb = bias?.pointer
    let pack = { equivd_pointwise_pack(pw, filters, channels, channels, 1, packed) }
    let constantWeights = ctx.constantFloats(1) != nil
    if constantWeights { pack() }
    let epilogue = Epilogue()
    ctx.kernel {
        if !constantWeights { pack() }
        for n in 0..<batch {
            let output = py + n * filters * plane
            var job = equivd_pointwise_job(
                packed: packed, filters: filters, channels: channels, positions: plane, input: px + n * channels * plane,
                input_channel_stride: plane, input_position_stride: 1, output: output, output_filter_stride: plane,
                output_position_stride: 1)
            equivd_pointwise(&job)
            for m in 0..<filters { epilogue.apply(output + m * plane, count: plane, bias: pb?[m] ?? 0) }
        }
    }
    ctx.planner.lastEpilogue = (ctx.node.output.first ?? "", epilogue)
    return [.buffer(out)]
}

/// Depthwise Conv (group = channels, one filter each) by CDirectConv's depthwise kernel: any
/// kernel, stride, dilation and padding, no unfolding; bias and a following ReLU are applied by
/// the kernel as it stores.
private func planDepthwiseConv(
    _ ctx: NodeContext, x: FloatBuffer, weights: FloatBuffer, bias: FloatBuffer?, out: FloatBuffer, _ w: Window2D, batch: Int,
    channels: Int
) -> [PlannedValue] {
    let px = x.pointer, pw = weights.pointer, py = out.pointer, pb = bias?.pointer
    let plane = w.outputPlane
    func job(_ n: Int, relu: Bool) -> equivd_depthwise_job {
        equivd_depthwise_job(
            input: px + n * channels * w.inputPlane, channels: channels, input_height: w.inputHeight,
            input_width: w.inputWidth, weights: pw, kernel_height: w.kernelHeight, kernel_width: w.kernelWidth,
            stride_y: w.strideY, stride_x: w.strideX, dilation_y: w.dilationY, dilation_x: w.dilationX,
            pad_top: w.padTop, pad_left: w.padLeft, bias: pb.map { UnsafePointer($0) }, relu: relu ? 1 : 0,
            output: py + n * channels * plane, output_height: w.outputHeight, output_width: w.outputWidth)
    }
    var first = job(0, relu: false)
    let scratch = ctx.planner.scratch
    scratch.reserve(equivd_depthwise_scratch(&first))
    let epilogue = Epilogue()
    ctx.kernel {
        let relu = epilogue.activation == .relu
        for n in 0..<batch {
            var job = job(n, relu: relu)
            equivd_depthwise(&job, scratch.pointer!)
            if let f = epilogue.activation, !relu { f.apply(job.output, job.output, count: channels * plane) }
        }
    }
    ctx.planner.lastEpilogue = (ctx.node.output.first ?? "", epilogue)
    return [.buffer(out)]
}

/// Conv by the direct kernel of CDirectConv: each image's channels are copied into zero-padded
/// planes, split into their stride phases when strided (`equivd_phases_fill`: every tap then reads
/// one phase at a fixed offset, so the kernel moves one position at a time); the kernel computes
/// every filter on the phase grid and stores the valid positions, with bias and ReLU, straight into
/// the output. Weights are packed for the kernel at load when they are constants (at every run
/// otherwise); which grid positions are outputs is worked out once, at load.
private func planPaddedConv(
    _ ctx: NodeContext, x: FloatBuffer, weights: FloatBuffer, bias: FloatBuffer?, out: FloatBuffer, _ w: Window2D,
    batch: Int, group: Int
) throws(ModelError) -> [PlannedValue] {
    let channels = x.shape[1], filters = out.shape[1]
    let cg = channels / group, mg = filters / group
    var phases = equivd_phases(
        channels: channels, input_height: w.inputHeight, input_width: w.inputWidth, stride_y: w.strideY,
        stride_x: w.strideX, pad_top: w.padTop, pad_left: w.padLeft,
        phase_height: ceilDiv(w.padTop + w.inputHeight + w.padBottom, w.strideY),
        phase_width: ceilDiv(w.padLeft + w.inputWidth + w.padRight, w.strideX))
    let phasePlane = try elementCount([phases.phase_height, phases.phase_width], ctx.location)
    let channelFloats = w.strideY * w.strideX * phasePlane
    var offsets = [Int](repeating: 0, count: w.kernelSize)
    offsets.withUnsafeMutableBufferPointer {
        equivd_phases_offsets(&phases, w.kernelHeight, w.kernelWidth, w.dilationY, w.dilationX, $0.baseAddress)
    }
    // The kernel computes whole steps of positions and reads up to the largest offset past each.
    let step = equivd_conv_step()
    let positions = w.outputHeight * phases.phase_width
    let computed = (positions + step - 1) / step * step
    let filled = try elementCount([channels, channelFloats], ctx.location)
    let inputFloats = filled + computed + offsets.max()!
    ctx.planner.scratch.reserve(inputFloats)
    let lanes = stride(from: 0, to: computed, by: 16).map { start in
        let width = phases.phase_width
        var lanes = equivd_conv_lanes(mask: 0, first: UInt32(start / width * w.outputWidth + min(start % width, w.outputWidth)))
        for i in 0..<16 where start + i < positions && (start + i) % width < w.outputWidth { lanes.mask |= 1 << i }
        return lanes
    }
    let packedCount = equivd_conv_packed_count(mg, cg, w.kernelSize)
    let packed = try ctx.planner.arena.floats(group * packedCount, ctx.location)
    let pw = weights.pointer
    let pack = {
        for g in 0..<group { equivd_conv_pack(pw + g * mg * cg * w.kernelSize, mg, cg, w.kernelSize, packed + g * packedCount) }
    }
    let constantWeights = ctx.constantFloats(1) != nil
    if constantWeights { pack() }

    let scratch = ctx.planner.scratch
    let px = x.pointer, py = out.pointer, pb = bias?.pointer
    let plane = w.outputPlane
    let epilogue = Epilogue()
    ctx.kernel {
        if !constantWeights { pack() }
        let padded = scratch.pointer!
        let relu = epilogue.activation == .relu
        for n in 0..<batch {
            equivd_phases_fill(&phases, px + n * channels * w.inputPlane, padded)
            (padded + filled).update(repeating: 0, count: inputFloats - filled)
            for g in 0..<group {
                offsets.withUnsafeBufferPointer { offsets in
                    lanes.withUnsafeBufferPointer { lanes in
                        var job = equivd_conv_job(
                            input: padded + g * cg * channelFloats, channels: cg, plane: channelFloats,
                            offsets: offsets.baseAddress, taps: w.kernelSize, packed: packed + g * packedCount,
                            filters: mg, bias: pb.map { UnsafePointer($0 + g * mg) }, relu: relu ? 1 : 0,
                            output: py + (n * filters + g * mg) * plane, output_plane: plane,
                            lanes: lanes.baseAddress, positions: positions)
                        equivd_conv(&job)
                    }
                }
            }
            if let f = epilogue.activation, !relu {
                let image = py + n * filters * plane
                f.apply(image, image, count: filters * plane)
            }
        }
    }
    ctx.planner.lastEpilogue = (ctx.node.output.first ?? "", epilogue)
    return [.buffer(out)]
}

/// Inference-mode batch normalization, y = a[c]·x + b[c], with a and b computed at load when the
/// statistics are constants; runs in place inside the kernel that produced x when it is x's only
/// reader.
private func planBatchNormalization(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes(["epsilon", "momentum", "training_mode", "spatial", "is_test"])
    if try ctx.int("training_mode", default: 0) != 0 { throw ctx.unsupported("training_mode = 1 is not supported (inference only)") }
    if try ctx.int("spatial", default: 1) != 1 { throw ctx.unsupported("spatial = 0 is not supported") }
    let epsilon = try ctx.float("epsilon", default: 1e-5)
    let xs = try ctx.shape(0)
    guard xs.count >= 2 else { throw ctx.invalid("X must have at least 2 dimensions, got \(xs)") }
    let channels = xs[1]
    for i in 1...4 where try ctx.shape(i) != [channels] {
        throw ctx.invalid("input \(i) has shape \(try ctx.shape(i)), expected [\(channels)]")
    }
    // y = a·x + b per channel, with a = scale/√(var + ε) and b = B − mean·a.
    let a = try ctx.planner.arena.floats(channels, ctx.location), b = try ctx.planner.arena.floats(channels, ctx.location)
    let parameters = try (1...4).map { i throws(ModelError) in try ctx.floatInput(i).pointer }
    let computeCoefficients = {
        for c in 0..<channels {
            let ac = parameters[0][c] / (parameters[3][c] + epsilon).squareRoot()
            a[c] = ac
            b[c] = parameters[1][c] - parameters[2][c] * ac
        }
    }
    let known = (1...4).allSatisfy { ctx.constantFloats($0) != nil }
    if known { computeCoefficients() }
    let plane = xs.dropFirst(2).reduce(1, *), images = xs[0]
    func apply(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>) {
        if !known { computeCoefficients() }
        var i = 0
        for _ in 0..<images {
            for c in 0..<channels {
                let (ac, bc) = (a[c], b[c])
                for j in 0..<plane { output[i + j] = ac * input[i + j] + bc }
                i += plane
            }
        }
    }
    if let fused = ctx.planner.fuseInPlace(input: ctx.inputName(0), { apply($0.pointer, $0.pointer) }) {
        return [.buffer(fused)]
    }
    let x = try ctx.floatInput(0)
    let out = try ctx.output(xs)
    let px = x.pointer, py = out.pointer
    ctx.kernel { apply(px, py) }
    return [.buffer(out)]
}
