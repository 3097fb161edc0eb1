import ArgumentParser
import EquivModel
import Foundation

/// `equivd model`: check that an ONNX file loads in equivd's runtime, and time it.
struct Model: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect and time ONNX models in equivd's runtime.",
        subcommands: [Info.self, Run.self, Bench.self]
    )

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Load and plan a model; print its inputs, outputs and operators.")

        @OptionGroup var model: ModelFile

        func run() throws {
            let onnx = try ONNXModel(contentsOf: model.file)
            let session = try model.plan(onnx)
            print("\(model.file): opset \(onnx.opset), \(onnx.parameterCount) parameters")
            for p in session.inputs { print("  input  \(p.name) \(p.shape)") }
            for p in session.outputs { print("  output \(p.name) \(p.shape)") }
            let ops = onnx.operatorCounts.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }
            print("  operators: \(ops.joined(separator: ", "))")
            print("  planned: \(session.kernelCount) kernels, \(session.bufferFloats * 4 / 1024) KiB of buffers")
        }
    }

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a model once on inputs from raw float32 files; write each output the same way.",
            discussion: "Raw files hold little-endian float32 values in row-major order, nothing else (numpy's tofile/fromfile).")

        @OptionGroup var model: ModelFile
        @Option(name: .long, help: "Folder for the outputs, one OUTPUT-NAME.f32 each.") var out: String

        func run() throws {
            let session = try model.plan(try ONNXModel(contentsOf: model.file))
            try model.fillInputs(session) { port in throw ValidationError("no --input for \(port.name) \(port.shape)") }
            session.run()
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            for port in session.outputs {
                let path = (out as NSString).appendingPathComponent(port.name.replacingOccurrences(of: "/", with: "_") + ".f32")
                guard FileManager.default.createFile(atPath: path, contents: Data(buffer: port.buffer)) else {
                    throw ValidationError("\(path): cannot write")
                }
            }
        }
    }

    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time run() on random inputs; prints one JSON line of latencies in milliseconds.")

        @OptionGroup var model: ModelFile
        @Option(name: .long, help: "Timed runs.") var runs = 200
        @Option(name: .long, help: "Untimed runs first.") var warmup = 20
        @Option(name: .long, help: "OpenBLAS threads.") var threads = 1
        @Flag(name: .long, help: "Also print the time spent in each node, slowest first.") var profile = false

        func run() throws {
            var options = InferenceSession.Options()
            options.blasThreads = threads
            let session = try model.plan(try ONNXModel(contentsOf: model.file), options: options)
            var rng = SystemRandomNumberGenerator()
            try model.fillInputs(session) { port in
                for i in port.buffer.indices { port.buffer[i] = Float.random(in: -1...1, using: &rng) }
            }
            for _ in 0..<warmup { session.run() }
            var times: [Double] = []
            times.reserveCapacity(runs)
            for _ in 0..<runs {
                let start = ContinuousClock.now
                session.run()
                let d = start.duration(to: .now)
                times.append(d / .milliseconds(1))
            }
            times.sort()
            let median = times[times.count / 2], p90 = times[min(times.count - 1, times.count * 9 / 10)]
            print(String(format: #"{"file":"%@","runs":%d,"median_ms":%.4f,"p90_ms":%.4f,"min_ms":%.4f,"blas_core":"%@","conv_kernel":"%@"}"#,
                         model.file, runs, median, p90, times[0], InferenceSession.blasCore, InferenceSession.convolutionKernel))
            if profile {
                let nodes = session.profile(runs: runs)
                let total = nodes.reduce(0) { $0 + $1.seconds }
                for (node, seconds) in nodes.sorted(by: { $0.seconds > $1.seconds }) {
                    print(String(format: "%8.4f ms %5.1f%%  %@", seconds * 1e3 / Double(runs), 100 * seconds / total, node))
                }
            }
        }
    }
}

/// `name=d0,d1,…` on the command line.
struct InputShape: ExpressibleByArgument {
    let name: String
    let dims: [Int]

    init?(argument: String) {
        let parts = argument.split(separator: "=", maxSplits: 1)
        guard parts.count == 2 else { return nil }
        let dims = parts[1].split(separator: ",").compactMap { Int($0) }
        guard !dims.isEmpty, dims.count == parts[1].split(separator: ",").count else { return nil }
        (name, self.dims) = (String(parts[0]), dims)
    }

    static func dictionary(_ shapes: [InputShape]) -> [String: [Int]] {
        Dictionary(shapes.map { ($0.name, $0.dims) }, uniquingKeysWith: { $1 })
    }
}

/// The model file and what it runs on, shared by the `model` commands.
struct ModelFile: ParsableArguments {
    @Argument(help: "The .onnx file.") var file: String
    @Option(name: .long, parsing: .upToNextOption, help: "Input shapes, e.g. --shape x=1,1,168,100.")
    var shape: [InputShape] = []
    @Option(name: .long, parsing: .upToNextOption, help: "Raw float32 input files, one per input: --input x=window.f32.")
    var input: [NamedFile] = []

    func plan(_ model: ONNXModel, options: InferenceSession.Options = .init()) throws -> InferenceSession {
        try InferenceSession(model: model, inputShapes: InputShape.dictionary(shape), options: options)
    }

    /// Fills each input from its `--input` file, which must hold exactly its values; an input
    /// without one goes to `otherwise`.
    func fillInputs(_ session: InferenceSession, otherwise: (InferenceSession.Port) throws -> Void) throws {
        let files = Dictionary(input.map { ($0.name, $0.path) }, uniquingKeysWith: { $1 })
        for port in session.inputs {
            guard let path = files[port.name] else {
                try otherwise(port)
                continue
            }
            guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("\(path): cannot read") }
            guard data.count == port.buffer.count * 4 else {
                throw ValidationError("\(path): \(data.count) bytes, but \(port.name) \(port.shape) takes \(port.buffer.count) float32 values")
            }
            _ = data.withUnsafeBytes { port.buffer.initialize(from: $0.bindMemory(to: Float.self)) }
        }
    }
}

/// `name=path` on the command line.
struct NamedFile: ExpressibleByArgument {
    let name: String
    let path: String

    init?(argument: String) {
        let parts = argument.split(separator: "=", maxSplits: 1)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
        (name, path) = (String(parts[0]), String(parts[1]))
    }
}
