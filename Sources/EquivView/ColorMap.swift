/// A colour table for values on a scale: value v on [lo, hi] takes entry
/// round(255 · (v − lo) / (hi − lo)), clamped to the table (a non-finite value takes entry 0).
public struct ColorMap: Sendable {
    /// 0xRRGGBB entries, lowest first.
    public let table: [UInt32]

    public init(table: [UInt32]) {
        precondition(table.count == 256)
        self.table = table
    }

    public func index(_ v: Float, lo: Float, hi: Float) -> Int {
        guard v.isFinite, hi > lo else { return 0 }
        return Int(min(max((255 * (v - lo) / (hi - lo)).rounded(), 0), 255))
    }

    public func color(_ v: Float, lo: Float, hi: Float) -> UInt32 { table[index(v, lo: lo, hi: hi)] }

    /// A rows × columns grid of values (row-major, row 0 lowest) as an image with row 0 at the
    /// bottom, as a spectrogram is read.
    public func image(_ values: [Float], rows: Int, columns: Int, lo: Float, hi: Float) -> RGBImage {
        precondition(values.count == rows * columns)
        var image = RGBImage(width: columns, height: rows)
        for r in 0..<rows {
            for c in 0..<columns { image[c, rows - 1 - r] = color(values[r * columns + c], lo: lo, hi: hi) }
        }
        return image
    }
}
