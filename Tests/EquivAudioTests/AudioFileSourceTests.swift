import CSndFile
import EquivAudio
import Foundation
import TestSupport
import Testing

/// Writes interleaved `samples` with libsndfile in the given container and encoding.
func writeAudio(_ path: String, _ samples: [Float], rate: Int, channels: Int, format: Int) throws {
    var info = SF_INFO(frames: 0, samplerate: Int32(rate), channels: Int32(channels), format: Int32(format), sections: 0, seekable: 0)
    let file: OpaquePointer
    do { file = try openSoundFile(path, mode: Int32(SFM_WRITE), &info) } catch {
        throw AudioTestError("cannot write \(path): \(error.message)")
    }
    defer { sf_close(file) }
    let frames = samples.count / channels
    guard sf_writef_float(file, samples, sf_count_t(frames)) == frames else {
        throw AudioTestError("short write to \(path)")
    }
}

struct AudioTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Reads a source to the end in blocks of `blockSize`.
func readAll(_ source: AudioSource, blockSize: Int = 1000) throws -> [Float] {
    var all: [Float] = []
    var block = [Float](repeating: 0, count: blockSize)
    while true {
        let n = try block.withUnsafeMutableBufferPointer { try source.read(into: $0) }
        if n == 0 { return all }
        all += block[..<n]
    }
}

/// Bytes of a RIFF/WAVE file with one 'fmt ' chunk and a 'data' chunk whose declared size may lie.
func wavBytes(formatTag: UInt16, bits: UInt16, blockAlign: UInt16, data: [UInt8], declaredDataSize: UInt32? = nil) -> [UInt8] {
    func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
    func le16(_ v: UInt16) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
    let fmt = le16(formatTag) + le16(1) + le32(16_000) + le32(16_000 * UInt32(blockAlign)) + le16(blockAlign) + le16(bits)
    let body = Array("WAVE".utf8) + Array("fmt ".utf8) + le32(UInt32(fmt.count)) + fmt
        + Array("data".utf8) + le32(declaredDataSize ?? UInt32(data.count)) + data
    return Array("RIFF".utf8) + le32(UInt32(body.count)) + body
}

@Suite struct AudioFileSourceTests {
    @Test("WAV, FLAC and OGG at 44.1 kHz stereo come out as 16 kHz mono with the same tone",
          arguments: [("wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16), ("flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16),
                      ("ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS)])
    func decodesResamplesAndDownmixes(container: String, format: Int) throws {
        let folder = TemporaryFolder()
        let path = folder.file("tone.\(container)")
        let rate = 44_100, seconds = 2.0, frequency = 1000.0
        // Left and right differ; their mean is a 0.4-amplitude sine.
        let stereo: [Float] = (0..<Int(seconds * Double(rate))).flatMap { n -> [Float] in
            let s = Float(sin(2 * .pi * frequency * Double(n) / Double(rate)))
            return [0.6 * s, 0.2 * s]
        }
        try writeAudio(path, stereo, rate: rate, channels: 2, format: format)
        let source = try AudioFileSource(path: path, sampleRate: 16_000)
        #expect(source.fileSampleRate == rate && source.channels == 2)
        let mono = try readAll(source)
        #expect(abs(mono.count - 32_000) <= 2, "got \(mono.count) samples")
        // Compare the steady middle with an ideal 16 kHz sine of the same amplitude by projection.
        let middle = mono[4000..<28_000]
        var c = 0.0, s = 0.0, energy = 0.0
        for (i, x) in zip(middle.indices, middle) {
            let phase = 2 * .pi * frequency * Double(i) / 16_000
            c += Double(x) * cos(phase)
            s += Double(x) * sin(phase)
            energy += Double(x * x)
        }
        let amplitude = 2 * (c * c + s * s).squareRoot() / Double(middle.count)
        let toneShare = 0.5 * amplitude * amplitude / (energy / Double(middle.count))
        #expect(abs(amplitude - 0.4) < (container == "ogg" ? 0.02 : 0.002), "amplitude \(amplitude)")
        #expect(toneShare > (container == "ogg" ? 0.99 : 0.9999), "1 kHz holds \(toneShare) of the energy")
    }

    @Test("16 kHz mono PCM passes through sample-exact, whatever the read size")
    func passThrough() throws {
        let folder = TemporaryFolder()
        let path = folder.file("ramp.wav")
        let samples = (0..<50_000).map { Float(($0 % 2000) - 1000) / 1024 }
        try writeAudio(path, samples, rate: 16_000, channels: 1, format: SF_FORMAT_WAV | SF_FORMAT_FLOAT)
        for blockSize in [1, 333, 4096, 100_000] {
            let source = try AudioFileSource(path: path, blockFrames: 1024)
            #expect(firstDifference(try readAll(source, blockSize: blockSize), samples) == nil, "block size \(blockSize)")
        }
    }

    @Test("NaN and ±Inf samples are zeroed and counted")
    func nonFinite() throws {
        let folder = TemporaryFolder()
        let path = folder.file("nan.wav")
        var samples = [Float](repeating: 0.25, count: 1000)
        samples[10] = .nan
        samples[500] = .infinity
        samples[999] = -.infinity
        try writeAudio(path, samples, rate: 16_000, channels: 1, format: SF_FORMAT_WAV | SF_FORMAT_FLOAT)
        let source = try AudioFileSource(path: path)
        let out = try readAll(source)
        #expect(source.nonFiniteSamples == 3)
        #expect(out[10] == 0 && out[500] == 0 && out[999] == 0 && out[11] == 0.25)
    }

    struct BrokenFile: Sendable, CustomTestStringConvertible {
        let name: String
        let bytes: [UInt8]?
        let kind: AudioFileError.Kind
        let says: String
        var testDescription: String { name }
        init(_ name: String, _ bytes: [UInt8]?, _ kind: AudioFileError.Kind, _ says: String) {
            (self.name, self.bytes, self.kind, self.says) = (name, bytes, kind, says)
        }
    }

    static let brokenFiles: [BrokenFile] = [
        BrokenFile("missing.wav", nil, .notFound, "No such file"),
        BrokenFile("empty.wav", [], .empty, "empty"),
        BrokenFile("notes.wav", Array("these are not samples\n".utf8), .notAudio, "not an audio file"),
        BrokenFile("zero-frames.wav", wavBytes(formatTag: 1, bits: 16, blockAlign: 2, data: []), .empty, "no samples"),
        BrokenFile("cut.wav", wavBytes(formatTag: 1, bits: 16, blockAlign: 2, data: [UInt8](repeating: 1, count: 1000),
                             declaredDataSize: 32_000), .truncated, "declares 32000 bytes"),
        BrokenFile("pcm40.wav", wavBytes(formatTag: 1, bits: 40, blockAlign: 5, data: [UInt8](repeating: 0, count: 500)),
         .unsupportedEncoding, "unsupported encoding"),
    ]

    @Test("broken files give a typed error naming the file and the reason", arguments: brokenFiles)
    func brokenFile(_ broken: BrokenFile) throws {
        let folder = TemporaryFolder()
        let path = folder.file(broken.name)
        if let bytes = broken.bytes { FileManager.default.createFile(atPath: path, contents: Data(bytes)) }
        do throws(AudioFileError) {
            _ = try AudioFileSource(path: path)
            Issue.record("\(broken.name) opened")
        } catch {
            #expect(error.kind == broken.kind)
            #expect(error.path == path)
            #expect("\(error)".hasPrefix(path + ": ") && "\(error)".contains(broken.says), "\(error)")
        }
    }

    /// libsndfile keeps the reason an open failed in one process-wide slot; CI once reported a
    /// 40-bit WAV as "malformed: No Error." because a parallel test's open had cleared it.
    @Test("the reason a file failed to open survives other threads opening files at the same time")
    func reasonSurvivesConcurrentOpens() async throws {
        let folder = TemporaryFolder()
        let good = folder.file("good.wav"), bad = folder.file("pcm40.wav")
        try writeAudio(good, [Float](repeating: 0.1, count: 1600), rate: 16_000, channels: 1, format: SF_FORMAT_WAV | SF_FORMAT_PCM_16)
        #expect(FileManager.default.createFile(
            atPath: bad, contents: Data(wavBytes(formatTag: 1, bits: 40, blockAlign: 5, data: [UInt8](repeating: 0, count: 500)))))
        let kinds = await withTaskGroup(of: [AudioFileError.Kind].self) { group in
            for worker in 0..<8 {
                group.addTask {
                    (0..<2000).compactMap { _ in
                        do throws(AudioFileError) {
                            _ = try AudioFileSource(path: worker.isMultiple(of: 2) ? bad : good)
                            return nil
                        } catch { return error.kind }
                    }
                }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
        #expect(kinds.count == 4 * 2000)
        #expect(kinds.allSatisfy { $0 == .unsupportedEncoding }, "\(Set(kinds.map { "\($0)" }))")
    }

    @Test("a FLAC cut short fails while reading, naming the file and how far it got")
    func truncatedFLAC() throws {
        let folder = TemporaryFolder()
        let whole = folder.file("whole.flac")
        let noise = (0..<32_000).map { _ in Float.random(in: -0.5...0.5) }
        try writeAudio(whole, noise, rate: 16_000, channels: 1, format: SF_FORMAT_FLAC | SF_FORMAT_PCM_16)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: whole))
        let cut = folder.file("cut.flac")
        FileManager.default.createFile(atPath: cut, contents: bytes.prefix(bytes.count / 2))
        let source = try AudioFileSource(path: cut)
        #expect {
            _ = try readAll(source)
        } throws: { error in
            guard let error = error as? AudioFileError else { return false }
            return error.kind == .truncated && error.path == cut && "\(error)".contains("of 32000 frames")
        }
    }
}
