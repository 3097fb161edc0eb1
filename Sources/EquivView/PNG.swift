import CZlib

/// A zlib call that failed: which, and zlib's code.
public struct ZlibError: Error, CustomStringConvertible {
    public let call: String
    public let code: Int32
    public var description: String { "zlib \(call) failed with code \(code)" }
}

/// The one checked call path into zlib.
enum Zlib {
    static func check(_ code: Int32, _ call: String) throws(ZlibError) {
        guard code == Z_OK else { throw ZlibError(call: call, code: code) }
    }

    /// `bytes` as one zlib stream (what a PNG's IDAT chunks hold).
    static func compress(_ bytes: [UInt8]) throws(ZlibError) -> [UInt8] {
        var length = compressBound(uLong(bytes.count))
        var out = [UInt8](repeating: 0, count: Int(length))
        let code = out.withUnsafeMutableBufferPointer { o in
            bytes.withUnsafeBufferPointer { compress2(o.baseAddress, &length, $0.baseAddress, uLong($0.count), Z_BEST_COMPRESSION) }
        }
        try check(code, "compress2")
        out.removeLast(out.count - Int(length))
        return out
    }

    static func crc(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        bytes.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, uInt($0.count))) }
    }
}

/// An 8-bit RGB image, row 0 at the top.
public struct RGBImage: Sendable {
    public let width: Int, height: Int
    /// width × height × 3 bytes, row-major.
    public var pixels: [UInt8]

    public init(width: Int, height: Int) {
        precondition(width > 0 && height > 0)
        (self.width, self.height) = (width, height)
        pixels = [UInt8](repeating: 0, count: width * height * 3)
    }

    public subscript(x: Int, y: Int) -> UInt32 {
        get {
            let i = 3 * (y * width + x)
            return UInt32(pixels[i]) << 16 | UInt32(pixels[i + 1]) << 8 | UInt32(pixels[i + 2])
        }
        set {
            let i = 3 * (y * width + x)
            (pixels[i], pixels[i + 1], pixels[i + 2]) = (UInt8(newValue >> 16 & 0xff), UInt8(newValue >> 8 & 0xff), UInt8(newValue & 0xff))
        }
    }

    /// The image as a PNG file (ISO/IEC 15948): IHDR, one IDAT, IEND; filter 0 on every row.
    public func png() throws(ZlibError) -> [UInt8] {
        var raw = [UInt8]()
        raw.reserveCapacity(height * (1 + 3 * width))
        for y in 0..<height {
            raw.append(0)
            raw += pixels[(3 * y * width)..<(3 * (y + 1) * width)]
        }
        var file: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        func chunk(_ type: String, _ data: [UInt8]) {
            file += bigEndian(UInt32(data.count))
            let body = Array(type.utf8) + data
            file += body
            file += bigEndian(Zlib.crc(body[...]))
        }
        // width, height, bit depth 8, colour type 2 (RGB), deflate, filter method 0, no interlace
        chunk("IHDR", bigEndian(UInt32(width)) + bigEndian(UInt32(height)) + [8, 2, 0, 0, 0])
        chunk("IDAT", try Zlib.compress(raw))
        chunk("IEND", [])
        return file
    }

    private func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
}
