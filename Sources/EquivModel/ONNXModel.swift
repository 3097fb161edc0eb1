import Foundation
import SwiftProtobuf

/// A decoded ONNX model file, checked enough to plan: it has a graph, imports a default-domain
/// opset equivd knows, keeps no data outside the file, and its nodes can be put in order.
public struct ONNXModel: Sendable {
    /// Where the model came from, for errors.
    public let source: String
    /// Version of the default ("ai.onnx") operator set.
    public let opset: Int
    let graph: Onnx_GraphProto
    /// `graph.node` in an order where every input is produced before it is used.
    let orderedNodes: [Onnx_NodeProto]

    public static let supportedOpsets = 7...18

    public init(contentsOf path: String) throws(ModelError) {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ModelError(.unreadable, path, "cannot read: \(error.localizedDescription)")
        }
        try self.init(serialized: data, source: path)
    }

    public init(serialized data: Data, source: String) throws(ModelError) {
        let proto: Onnx_ModelProto
        do {
            proto = try Onnx_ModelProto(serializedBytes: data)
        } catch {
            throw ModelError(.unreadable, source, "not an ONNX model (protobuf decoding failed: \(error))")
        }
        guard proto.hasGraph, !proto.graph.node.isEmpty || !proto.graph.output.isEmpty else {
            throw ModelError(.unreadable, source, "not an ONNX model (no graph)")
        }
        let defaultDomain = proto.opsetImport.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }
        guard let version = defaultDomain?.version else {
            throw ModelError(.invalidModel, source, "imports no default-domain operator set")
        }
        guard Self.supportedOpsets.contains(Int(clamping: version)) else {
            throw ModelError(.invalidModel, source, "operator set \(version) is not supported (\(Self.supportedOpsets))")
        }
        self.source = source
        self.opset = Int(version)
        self.graph = proto.graph
        self.orderedNodes = try Self.topologicalOrder(proto.graph, source: source)
    }

    /// Graph inputs that are not initializers: what a caller must provide.
    public var inputNames: [String] {
        let initializers = Set(graph.initializer.map(\.name))
        return graph.input.map(\.name).filter { !initializers.contains($0) }
    }

    public var outputNames: [String] { graph.output.map(\.name) }

    /// The shape a graph input declares, with nil for symbolic or missing dimensions.
    public func declaredShape(ofInput name: String) -> [Int?]? {
        guard let info = graph.input.first(where: { $0.name == name }),
            case .tensorType(let tensor)? = info.type.value, tensor.hasShape
        else { return nil }
        return tensor.shape.dim.map {
            if case .dimValue(let v)? = $0.value, v >= 0 { Int(v) } else { nil }
        }
    }

    /// The element type a graph input declares (an ONNX TensorProto.DataType value), if any.
    public func declaredElementType(ofInput name: String) -> Int32? {
        guard let info = graph.input.first(where: { $0.name == name }),
            case .tensorType(let tensor)? = info.type.value, tensor.hasElemType
        else { return nil }
        return tensor.elemType
    }

    /// Total parameters held in float initializers.
    public var parameterCount: Int {
        graph.initializer.filter { $0.dataType == ONNXDataType.float.rawValue }
            .reduce(0) { $0 + $1.dims.reduce(1) { $0 * Int(clamping: $1) } }
    }

    /// Operator types used, with how often.
    public var operatorCounts: [String: Int] {
        orderedNodes.reduce(into: [:]) { $0[$1.opType, default: 0] += 1 }
    }

    private static func topologicalOrder(_ graph: Onnx_GraphProto, source: String) throws(ModelError) -> [Onnx_NodeProto] {
        var available = Set(graph.input.map(\.name)).union(graph.initializer.map(\.name))
        available.insert("")  // an empty name marks an omitted optional input
        var pending = Array(graph.node.enumerated())
        var ordered: [Onnx_NodeProto] = []
        ordered.reserveCapacity(pending.count)
        while !pending.isEmpty {
            let before = pending.count
            pending.removeAll { index, node in
                guard node.input.allSatisfy(available.contains) else { return false }
                ordered.append(node)
                available.formUnion(node.output)
                return true
            }
            if pending.count == before {
                let (index, node) = pending[0]
                let missing = node.input.first { !available.contains($0) } ?? "?"
                throw ModelError(
                    .invalidModel, nodeLocation(name: node.name, opType: node.opType, index: index),
                    "input '\(missing)' is produced by no node, initializer or graph input (or the graph has a cycle)")
            }
        }
        for output in graph.output where !available.contains(output.name) {
            throw ModelError(.invalidModel, source, "graph output '\(output.name)' is produced by no node")
        }
        return ordered
    }
}
