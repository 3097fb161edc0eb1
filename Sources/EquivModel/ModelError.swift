/// Why a model could not be loaded or run, and where: every error names the file, the graph
/// input, the initializer or the node (with its operator) it is about.
public struct ModelError: Error, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The file could not be read or is not an ONNX ModelProto.
        case unreadable
        /// The model refers to something it does not hold, or contradicts itself.
        case invalidModel
        /// Tensor data lives in a separate file (external data), which equivd does not load.
        case externalData
        case unsupportedOperator
        case unsupportedAttribute
        /// A data type other than float32 where the runtime computes (int64 is accepted for
        /// shapes, indices and other values known at load).
        case unsupportedType
        /// An input given at load or at run has the wrong shape.
        case inputShape
        /// Shapes or attributes that make no sense for the operator.
        case invalidShape
    }

    public let kind: Kind
    /// "node 'conv1' (Conv)", "input 'x'", "initializer 'w'" or a file path.
    public let location: String
    public let reason: String

    public init(_ kind: Kind, _ location: String, _ reason: String) {
        self.kind = kind
        self.location = location
        self.reason = reason
    }

    public var description: String { "\(location): \(reason)" }
}

/// Names a node the way every error does: `node 'name' (OpType)`; unnamed nodes by index.
func nodeLocation(name: String, opType: String, index: Int) -> String {
    name.isEmpty ? "node #\(index) (\(opType))" : "node '\(name)' (\(opType))"
}
