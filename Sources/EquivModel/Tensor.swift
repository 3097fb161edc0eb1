import Foundation

/// A tensor held in Swift arrays: initializers, constants folded at load, and the convenience
/// input/output API. The runtime itself works on preallocated float32 buffers.
public struct Tensor: Equatable, Sendable {
    public enum Storage: Equatable, Sendable {
        case float([Float])
        /// Shapes, indices, axes: integer data the runtime only ever needs at load.
        case int64([Int64])
    }

    public var shape: [Int]
    public var storage: Storage

    public init(shape: [Int], floats: [Float]) {
        precondition(shape.reduce(1, *) == floats.count, "shape \(shape) does not hold \(floats.count) values")
        self.shape = shape
        self.storage = .float(floats)
    }

    public init(shape: [Int], int64s: [Int64]) {
        precondition(shape.reduce(1, *) == int64s.count, "shape \(shape) does not hold \(int64s.count) values")
        self.shape = shape
        self.storage = .int64(int64s)
    }

    public var count: Int {
        switch storage {
        case .float(let v): v.count
        case .int64(let v): v.count
        }
    }

    public var floats: [Float]? { if case .float(let v) = storage { v } else { nil } }
    public var int64s: [Int64]? { if case .int64(let v) = storage { v } else { nil } }

    /// The values as Int64 whichever the storage (floats truncated), for shape-like uses.
    var integers: [Int64] {
        switch storage {
        case .float(let v): v.map { Int64($0) }
        case .int64(let v): v
        }
    }

    /// The values as Float whichever the storage.
    var asFloats: [Float] {
        switch storage {
        case .float(let v): v
        case .int64(let v): v.map { Float($0) }
        }
    }
}

/// The most elements one tensor may hold: a guard against shapes in a corrupt or hostile file
/// that would otherwise overflow or exhaust memory.
let maximumElementCount = 1 << 31

/// Number of elements of `shape`, refusing negative dimensions and overflowing products.
func elementCount(_ shape: [Int], _ location: String) throws(ModelError) -> Int {
    var count = 1
    for d in shape {
        guard d >= 0 else { throw ModelError(.invalidShape, location, "negative dimension in shape \(shape)") }
        let (product, overflow) = count.multipliedReportingOverflow(by: d)
        guard !overflow, product <= maximumElementCount else {
            throw ModelError(.invalidShape, location, "shape \(shape) holds more than \(maximumElementCount) elements")
        }
        count = product
    }
    return count
}

/// Row-major strides of `shape`, in elements.
func strides(of shape: [Int]) -> [Int] {
    var result = [Int](repeating: 1, count: shape.count)
    var s = 1
    for i in shape.indices.reversed() {
        result[i] = s
        s *= shape[i]
    }
    return result
}

/// ONNX TensorProto.DataType values the loader understands.
enum ONNXDataType: Int32 {
    case float = 1, uint8 = 2, int8 = 3, int32 = 6, int64 = 7, bool = 9, double = 11

    var name: String { "\(self)" }
}

extension Tensor {
    /// Decodes a TensorProto: float32 and float64 become floats; int64, int32, int8, uint8 and
    /// bool become int64 (they can only be used where values are needed at load).
    init(proto: Onnx_TensorProto, location: String) throws(ModelError) {
        if proto.dataLocation == .external || !proto.externalData.isEmpty {
            throw ModelError(.externalData, location, "tensor data is stored in an external file, which equivd does not load")
        }
        var shape: [Int] = []
        for d in proto.dims {
            guard d >= 0, d <= Int64(maximumElementCount) else {
                throw ModelError(.invalidShape, location, "bad dimension \(d) in \(proto.dims)")
            }
            shape.append(Int(d))
        }
        let count = try elementCount(shape, location)
        guard let type = ONNXDataType(rawValue: proto.dataType) else {
            throw ModelError(.unsupportedType, location, "data type \(proto.dataType) is not supported (float32, int64 and a few integer types are)")
        }
        func raw<T>(_: T.Type) throws(ModelError) -> [T]? {
            guard proto.hasRawData else { return nil }
            let size = MemoryLayout<T>.size
            guard proto.rawData.count == count * size else {
                throw ModelError(.invalidModel, location, "raw_data holds \(proto.rawData.count) bytes, shape \(shape) of \(type.name) needs \(count * size)")
            }
            return proto.rawData.withUnsafeBytes { bytes in
                (0..<count).map { bytes.loadUnaligned(fromByteOffset: $0 * size, as: T.self) }
            }
        }
        func checked<T>(_ values: [T], _ field: String) throws(ModelError) -> [T] {
            guard values.count == count else {
                throw ModelError(.invalidModel, location, "\(field) holds \(values.count) values, shape \(shape) needs \(count)")
            }
            return values
        }
        self.shape = shape
        switch type {
        case .float:
            if let v = try raw(Float.self) { storage = .float(v) } else { storage = .float(try checked(proto.floatData, "float_data")) }
        case .double:
            if let v = try raw(Double.self) { storage = .float(v.map { Float($0) }) } else {
                storage = .float(try checked(proto.doubleData, "double_data").map { Float($0) })
            }
        case .int64:
            if let v = try raw(Int64.self) { storage = .int64(v) } else { storage = .int64(try checked(proto.int64Data, "int64_data")) }
        case .int32, .int8, .uint8, .bool:
            // Narrow integers are stored widened in int32_data, or packed in raw_data.
            let packed: [Int64]?
            switch type {
            case .int32: packed = try raw(Int32.self)?.map { Int64($0) }
            case .int8: packed = try raw(Int8.self)?.map { Int64($0) }
            default: packed = try raw(UInt8.self)?.map { Int64($0) }
            }
            if let packed { storage = .int64(packed) } else {
                storage = .int64(try checked(proto.int32Data, "int32_data").map { Int64($0) })
            }
        }
    }

    var isFloat: Bool { if case .float = storage { true } else { false } }
}

extension Tensor {
    /// Decodes a serialized TensorProto, as ONNX test data stores inputs and outputs, and returns
    /// it with its ONNX data type.
    public static func decodeProto(_ data: Data, source: String) throws(ModelError) -> (Tensor, dataType: Int32) {
        let proto: Onnx_TensorProto
        do {
            proto = try Onnx_TensorProto(serializedBytes: data)
        } catch {
            throw ModelError(.unreadable, source, "not a TensorProto: \(error)")
        }
        return (try Tensor(proto: proto, location: source), proto.dataType)
    }
}
