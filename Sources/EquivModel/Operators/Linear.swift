import CBLAS
import CDirectConv

/// C = alpha · op(A) · op(B) + beta · C on row-major matrices, through OpenBLAS.
@inline(__always)
func sgemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
    _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int, beta: Float,
    _ c: UnsafeMutablePointer<Float>, ldc: Int
) {
    cblas_sgemm(
        CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
        blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
}

/// y = alpha · op(B)ᵀ-free matrix–vector product for a single row: y[n] = alpha · Σ a[k]·B'[k, n] + beta · y[n],
/// with B' = B (K × N) or Bᵀ (B stored N × K). sgemm with one row wastes its packing.
@inline(__always)
func sgemv(transposeB: Bool, n: Int, k: Int, alpha: Float = 1, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, ldb: Int,
           beta: Float, _ y: UnsafeMutablePointer<Float>) {
    if transposeB {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, blasint(n), blasint(k), alpha, b, blasint(ldb), a, 1, beta, y, 1)
    } else {
        cblas_sgemv(CblasRowMajor, CblasTrans, blasint(k), blasint(n), alpha, b, blasint(ldb), a, 1, beta, y, 1)
    }
}

func registerLinear(_ table: inout [String: OperatorPlanner]) {
    table["MatMul"] = planMatMul
    table["Gemm"] = planGemm
}

/// Up to this many rows of A, a Gemm or MatMul whose B is a constant runs CDirectConv's pointwise
/// kernel on B packed at load: batch-1 dense layers, where sgemv streams B through whichever kernel
/// OpenBLAS picked (its generic one on CPUs it does not know: docs/benchmarks.md).
let thinProductMaximumRows = 32

/// B packed for CDirectConv's pointwise kernel, `filters` × `channels` read at
/// b[f · filterStride + c · channelStride]: once, at load.
private func packedWeights(
    _ ctx: NodeContext, _ b: UnsafePointer<Float>, filters: Int, channels: Int, filterStride: Int, channelStride: Int
) throws(ModelError) -> UnsafeMutablePointer<Float> {
    let packed = try ctx.planner.arena.floats(equivd_pointwise_packed_count(filters, channels), ctx.location)
    equivd_pointwise_pack(b, filters, channels, filterStride, channelStride, packed)
    return packed
}

/// NumPy matmul: 1-D operands are promoted, leading (batch) dimensions broadcast.
private func planMatMul(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes([])
    var sa = try ctx.shape(0), sb = try ctx.shape(1)
    guard !sa.isEmpty, !sb.isEmpty else { throw ctx.invalid("MatMul of a scalar") }
    let vectorA = sa.count == 1, vectorB = sb.count == 1
    if vectorA { sa = [1] + sa }
    if vectorB { sb = sb + [1] }
    let (m, k) = (sa[sa.count - 2], sa[sa.count - 1])
    let (k2, n) = (sb[sb.count - 2], sb[sb.count - 1])
    guard k == k2 else { throw ctx.invalid("MatMul inner dimensions differ: \(try ctx.shape(0)) × \(try ctx.shape(1))") }
    // Broadcast the batch dimensions; each batch is one sgemm.
    let batch = try BroadcastPlan(Array(sa.dropLast(2)), Array(sb.dropLast(2)), location: ctx.location)
    var outShape = batch.shape + [m, n]
    if vectorA { outShape.remove(at: outShape.count - 2) }
    if vectorB { outShape.removeLast() }
    let a = try ctx.floatInput(0), b = try ctx.floatInput(1)
    let out = try ctx.output(outShape)
    var pairs: [(Int, Int)] = []
    for (oa, ob) in batch.rowOffsets {
        for i in 0..<batch.inner { pairs.append(((oa + i * batch.aStep) * m * k, (ob + i * batch.bStep) * k * n)) }
    }
    let pa = a.pointer, pb = b.pointer, pc = out.pointer
    if sb.count == 2, ctx.constantFloats(1) != nil, m <= thinProductMaximumRows {
        let packed = try packedWeights(ctx, pb, filters: n, channels: k, filterStride: 1, channelStride: n)
        ctx.kernel {
            for (index, (oa, _)) in pairs.enumerated() {
                var job = equivd_pointwise_job(
                    packed: packed, filters: n, channels: k, positions: m, input: pa + oa, input_channel_stride: 1,
                    input_position_stride: k, output: pc + index * m * n, output_filter_stride: 1, output_position_stride: n)
                equivd_pointwise(&job)
            }
        }
        return [.buffer(out)]
    }
    ctx.kernel {
        for (index, (oa, ob)) in pairs.enumerated() {
            if m == 1 {
                sgemv(transposeB: false, n: n, k: k, pa + oa, pb + ob, ldb: n, beta: 0, pc + index * n)
            } else {
                sgemm(transposeA: false, transposeB: false, m: m, n: n, k: k, pa + oa, lda: k, pb + ob, ldb: n,
                      beta: 0, pc + index * m * n, ldc: n)
            }
        }
    }
    return [.buffer(out)]
}

/// Y = alpha · A' · B' + beta · C, with C broadcast to (M, N).
private func planGemm(_ ctx: NodeContext) throws(ModelError) -> [PlannedValue] {
    try ctx.allowAttributes(["alpha", "beta", "transA", "transB", "broadcast"])
    let alpha = try ctx.float("alpha", default: 1), beta = try ctx.float("beta", default: 1)
    let transA = try ctx.int("transA", default: 0) != 0, transB = try ctx.int("transB", default: 0) != 0
    let sa = try ctx.shape(0), sb = try ctx.shape(1)
    guard sa.count == 2, sb.count == 2 else { throw ctx.invalid("Gemm needs 2-D A and B, got \(sa) and \(sb)") }
    let (m, k) = transA ? (sa[1], sa[0]) : (sa[0], sa[1])
    let (k2, n) = transB ? (sb[1], sb[0]) : (sb[0], sb[1])
    guard k == k2 else { throw ctx.invalid("Gemm inner dimensions differ: A \(sa) (transA \(transA)), B \(sb) (transB \(transB))") }
    let a = try ctx.floatInput(0), b = try ctx.floatInput(1)
    let out = try ctx.output([m, n])
    let pa = a.pointer, pb = b.pointer, py = out.pointer
    let lda = sa[1], ldb = sb[1]
    let c = ctx.has(2) && beta != 0 ? try ctx.floatInput(2) : nil
    var cs = [Int]()
    if let c {
        cs = [Int](repeating: 1, count: max(0, 2 - c.shape.count)) + c.shape
        guard cs.count == 2, cs[0] == 1 || cs[0] == m, cs[1] == 1 || cs[1] == n else {
            throw ctx.invalid("Gemm C \(c.shape) does not broadcast to [\(m), \(n)]")
        }
    }
    // C's strides as broadcast to (M, N); unused without C.
    let rowStride = cs.count == 2 && cs[0] != 1 ? cs[1] : 0, columnStride = cs.count == 2 && cs[1] != 1 ? 1 : 0
    let pc = c?.pointer
    if ctx.constantFloats(1) != nil, m <= thinProductMaximumRows {
        // Y = op(A) · op(B) by the pointwise kernel, then alpha and beta · C element by element.
        let packed = try packedWeights(ctx, pb, filters: n, channels: k, filterStride: transB ? ldb : 1,
                                       channelStride: transB ? 1 : ldb)
        ctx.kernel {
            var job = equivd_pointwise_job(
                packed: packed, filters: n, channels: k, positions: m, input: pa, input_channel_stride: transA ? lda : 1,
                input_position_stride: transA ? 1 : lda, output: py, output_filter_stride: 1, output_position_stride: n)
            equivd_pointwise(&job)
            if let pc {
                for r in 0..<m {
                    for j in 0..<n { py[r * n + j] = alpha * py[r * n + j] + beta * pc[r * rowStride + j * columnStride] }
                }
            } else if alpha != 1 {
                for i in 0..<m * n { py[i] *= alpha }
            }
        }
        return [.buffer(out)]
    }
    // One row (batch-1 linear layers): a matrix–vector product. A is then contiguous either way.
    let product: (Float) -> Void = { beta in
        if m == 1 {
            sgemv(transposeB: transB, n: n, k: k, alpha: alpha, pa, pb, ldb: ldb, beta: beta, py)
        } else {
            sgemm(transposeA: transA, transposeB: transB, m: m, n: n, k: k, alpha: alpha, pa, lda: lda, pb, ldb: ldb,
                  beta: beta, py, ldc: n)
        }
    }
    guard let pc else {
        ctx.kernel { product(0) }
        return [.buffer(out)]
    }
    // Copy C, broadcast to (M, N), into Y; then accumulate the product on top with beta.
    ctx.kernel {
        for r in 0..<m {
            for j in 0..<n { py[r * n + j] = pc[r * rowStride + j * columnStride] }
        }
        product(beta)
    }
    return [.buffer(out)]
}
