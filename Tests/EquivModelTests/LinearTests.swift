import Foundation
import Testing

@testable import EquivModel

/// Gemm and MatMul whose B is a constant, against direct summation: up to 32 rows of A they run
/// CDirectConv's pointwise kernel on B packed at load, beyond that OpenBLAS. The node tests feed B
/// as an input, so only these reach the packed path. `make test` runs this suite once per kernel.
@Suite struct LinearTests {
    struct GemmCase: CustomTestStringConvertible, Sendable {
        var m: Int, k: Int, n: Int, transA = false, transB = false, alpha: Float = 1, beta: Float = 1
        var c: [Int]? = nil  // C's shape, broadcast to [m, n]
        var testDescription: String { "M\(m) K\(k) N\(n) tA\(transA) tB\(transB) α\(alpha) β\(beta) C\(c.map { "\($0)" } ?? "-")" }
    }

    static let gemmCases: [GemmCase] = [
        GemmCase(m: 1, k: 70, n: 37, transB: true, c: [37]),  // a batch-1 dense layer, as PyTorch exports it
        GemmCase(m: 1, k: 33, n: 5),
        GemmCase(m: 7, k: 19, n: 40, transA: true, alpha: 0.5, beta: 2, c: [7, 1]),
        GemmCase(m: 13, k: 8, n: 3, transA: true, transB: true, c: [1, 3]),
        GemmCase(m: 32, k: 17, n: 33, alpha: -1, beta: 0, c: [32, 33]),
        GemmCase(m: 40, k: 9, n: 6, transB: true, beta: 0.25, c: [40, 6]),  // past 32 rows: OpenBLAS
    ]

    /// Deterministic values in [−1, 1).
    static func values(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { Float(($0 * 7919 + seed * 104_729) % 2000) / 1000 - 1 }
    }

    @Test("Gemm with a constant B equals direct summation", arguments: gemmCases)
    func gemm(_ g: GemmCase) throws {
        var b = ModelBuilder()
        b.input("a", g.transA ? [g.k, g.m] : [g.m, g.k])
        let bv = Self.values(g.k * g.n, seed: 1)
        b.initializer("b", g.transB ? [g.n, g.k] : [g.k, g.n], bv)
        let cv = g.c.map { Self.values($0.reduce(1, *), seed: 2) } ?? []
        if let c = g.c { b.initializer("c", c, cv) }
        b.node("Gemm", g.c == nil ? ["a", "b"] : ["a", "b", "c"], ["y"], name: "gemm",
               int: ["transA": g.transA ? 1 : 0, "transB": g.transB ? 1 : 0], float: ["alpha": g.alpha, "beta": g.beta])
        b.output("y")
        let session = try InferenceSession(model: try ONNXModel(serialized: try b.serialized(), source: "gemm.onnx"))
        let av = Self.values(g.m * g.k, seed: 3)
        for _ in 0..<2 {  // twice: packed weights and outputs must not carry over between runs
            let y = try #require(try session.run(["a": Tensor(shape: g.transA ? [g.k, g.m] : [g.m, g.k], floats: av)])["y"])
            #expect(y.shape == [g.m, g.n])
            for r in 0..<g.m {
                for j in 0..<g.n {
                    var sum: Double = 0
                    for i in 0..<g.k {
                        let a = av[g.transA ? i * g.m + r : r * g.k + i], w = bv[g.transB ? j * g.k + i : i * g.n + j]
                        sum += Double(a) * Double(w)
                    }
                    var want = Double(g.alpha) * sum
                    if let c = g.c {
                        let row = c.count == 2 && c[0] != 1 ? r : 0, column = c.last! == 1 ? 0 : j
                        want += Double(g.beta) * Double(cv[c.count == 2 ? row * c[1] + column : column])
                    }
                    #expect(abs(Double(y.floats![r * g.n + j]) - want) < 1e-4, "y[\(r), \(j)]")
                }
            }
        }
    }

    @Test("MatMul with a constant B equals direct summation, batched A and a vector A", arguments: [[2, 3, 11], [11]])
    func matMul(_ aShape: [Int]) throws {
        let (k, n) = (11, 21)
        var b = ModelBuilder()
        b.input("a", aShape)
        let bv = Self.values(k * n, seed: 4)
        b.initializer("b", [k, n], bv)
        b.node("MatMul", ["a", "b"], ["y"], name: "matmul")
        b.output("y")
        let session = try InferenceSession(model: try ONNXModel(serialized: try b.serialized(), source: "matmul.onnx"))
        let rows = aShape.dropLast().reduce(1, *)
        let av = Self.values(rows * k, seed: 5)
        let y = try #require(try session.run(["a": Tensor(shape: aShape, floats: av)])["y"])
        #expect(y.shape == Array(aShape.dropLast()) + [n])
        for r in 0..<rows {
            for j in 0..<n {
                let want = (0..<k).reduce(0.0) { $0 + Double(av[r * k + $1]) * Double(bv[$1 * n + j]) }
                #expect(abs(Double(y.floats![r * n + j]) - want) < 1e-4, "y[\(r), \(j)]")
            }
        }
    }
}
