import Foundation

public struct NPYWriteError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}

/// Streams a float32 array of shape (count, rows, columns) to a NumPy .npy file (format 1.0),
/// appending one (rows × columns) item at a time. The header is written with room to spare and
/// rewritten by `finish()` once the count is known, so nothing is held in memory.
public final class NPYWriter {
    public let path: String
    public let rows: Int
    public let columns: Int
    public private(set) var count = 0
    private var file: UnsafeMutablePointer<FILE>?
    /// Header length including magic and padding; a multiple of 64 as NumPy recommends.
    private static let headerLength = 128

    public init(path: String, rows: Int, columns: Int) throws {
        guard let file = fopen(path, "wb") else {
            throw NPYWriteError(path: path, reason: "cannot create: \(String(cString: strerror(errno)))")
        }
        self.path = path
        self.rows = rows
        self.columns = columns
        self.file = file
        try writeHeader()
    }

    deinit {
        if let file { fclose(file) }
    }

    /// Appends one item of `rows × columns` values in row-major order.
    public func append(_ values: UnsafeBufferPointer<Float>) throws {
        precondition(values.count == rows * columns, "item has \(values.count) values, expected \(rows * columns)")
        // .npy stores '<f4': little-endian, which every platform we build for is.
        guard fwrite(values.baseAddress, MemoryLayout<Float>.size, values.count, file) == values.count else {
            throw writeError()
        }
        count += 1
    }

    /// Rewrites the header with the final count and closes the file.
    public func finish() throws {
        guard file != nil else { return }
        guard fseek(file, 0, SEEK_SET) == 0 else { throw writeError() }
        try writeHeader()
        let rc = fclose(file)
        file = nil
        if rc != 0 { throw writeError() }
    }

    private func writeHeader() throws {
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(count), \(rows), \(columns)), }"
        let prefix = 10  // magic (6) + version (2) + header length (2)
        header += String(repeating: " ", count: Self.headerLength - prefix - header.utf8.count - 1) + "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        let length = UInt16(header.utf8.count)
        bytes += [UInt8(length & 0xff), UInt8(length >> 8)]
        bytes += Array(header.utf8)
        guard fwrite(bytes, 1, bytes.count, file) == bytes.count else { throw writeError() }
    }

    private func writeError() -> NPYWriteError {
        NPYWriteError(path: path, reason: "write failed: \(String(cString: strerror(errno)))")
    }
}
