import EquivAudio
import Foundation
import TestSupport
import Testing

/// Real alsa-lib capture without a sound card: the `file` PCM plugin over a `null` slave replays a
/// raw file the test writes (`infile`) as if it came from a device. The PCM is defined in a
/// configuration file of the test's own, never `~/.asoundrc` or the system's.
struct FilePluginDevice {
    let folder: TemporaryFolder
    let configFile: String
    let name = "equivd_test_capture"

    init(raw: [UInt8]) throws {
        folder = TemporaryFolder()
        let infile = folder.file("capture.raw")
        FileManager.default.createFile(atPath: infile, contents: Data(raw))
        configFile = folder.file("asound.conf")
        let config = """
            pcm.\(name) {
                type file
                slave.pcm { type null }
                file "/dev/null"
                infile "\(infile)"
                format "raw"
            }
            """
        try config.write(toFile: configFile, atomically: true, encoding: .utf8)
    }

    func configuration(format: ALSASampleFormat, channels: Int, rate: Int = 16_000) -> ALSACaptureConfiguration {
        var c = ALSACaptureConfiguration()
        c.device = name
        c.configFile = configFile
        c.formats = [format]
        c.channels = channels
        c.sampleRate = rate
        c.periodFrames = 256
        c.bufferFrames = 1024
        c.ringSeconds = 30
        return c
    }
}

/// Reads exactly `count` samples from a live source, or fails after `timeout` seconds.
func readExactly(_ count: Int, from source: ALSACaptureSource, timeout: Double = 10) throws -> [Float] {
    var out: [Float] = []
    var block = [Float](repeating: 0, count: 4096)
    let deadline = Date(timeIntervalSinceNow: timeout)
    while out.count < count && Date() < deadline {
        let n = try block.withUnsafeMutableBufferPointer { try source.read(into: $0) }
        out += block[..<min(n, count - out.count)]
    }
    return out
}

/// Where two sample arrays first differ (index, got, expected), or nil if they are identical;
/// keeps a failure message short where comparing whole arrays would print all of them.
func firstDifference(_ got: [Float], _ expected: [Float]) -> String? {
    if got.count != expected.count { return "got \(got.count) samples, expected \(expected.count)" }
    guard let i = got.indices.first(where: { got[$0] != expected[$0] && !(got[$0].isNaN && expected[$0].isNaN) }) else { return nil }
    return "sample \(i): got \(got[i]), expected \(expected[i])"
}

func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    values.flatMap { withUnsafeBytes(of: $0.littleEndian, Array.init) }
}

@Suite(.serialized) struct ALSACaptureSourceTests {
    @Test("S16_LE stereo: the samples read are the samples written, downmixed to mono")
    func s16Stereo() throws {
        let frames = 20_000
        let left = (0..<frames).map { Int16(truncatingIfNeeded: ($0 * 37) % 65_536 - 32_768) }
        let right = (0..<frames).map { Int16(truncatingIfNeeded: 1000 - ($0 % 2000)) }
        let device = try FilePluginDevice(raw: littleEndianBytes(zip(left, right).flatMap { [$0, $1] }))
        let source = try ALSACaptureSource(configuration: device.configuration(format: .s16LE, channels: 2))
        defer { source.stop() }
        let negotiated = try #require(source.negotiated)
        #expect(negotiated.sampleRate == 16_000 && negotiated.channels == 2 && negotiated.format == .s16LE)
        #expect(negotiated.periodFrames == 256 && negotiated.bufferFrames == 1024)
        let got = try readExactly(frames, from: source)
        let expected = (0..<frames).map { (Float(left[$0]) / 32_768 + Float(right[$0]) / 32_768) * 0.5 }
        #expect(firstDifference(got, expected) == nil)
    }

    @Test("S32_LE mono reads back exactly")
    func s32Mono() throws {
        let values = (0..<12_000).map { Int32(truncatingIfNeeded: $0 &* 179_424_673) }
        let device = try FilePluginDevice(raw: littleEndianBytes(values))
        let source = try ALSACaptureSource(configuration: device.configuration(format: .s32LE, channels: 1))
        defer { source.stop() }
        #expect(firstDifference(try readExactly(values.count, from: source), values.map { Float($0) / 2_147_483_648 }) == nil)
    }

    @Test("FLOAT_LE mono reads back exactly, NaN/Inf zeroed and counted")
    func floatMono() throws {
        var values = (0..<9_000).map { Float($0 % 100) / 100 - 0.5 }
        values[3] = .nan
        values[4000] = -.infinity
        let device = try FilePluginDevice(raw: littleEndianBytes(values.map(\.bitPattern)))
        let source = try ALSACaptureSource(configuration: device.configuration(format: .floatLE, channels: 1))
        defer { source.stop() }
        var expected = values
        expected[3] = 0
        expected[4000] = 0
        #expect(firstDifference(try readExactly(values.count, from: source), expected) == nil)
        #expect(source.nonFiniteSamples >= 2)
    }

    @Test("a 48 kHz device is converted to the 16 kHz model rate")
    func resamplesToModelRate() throws {
        let rate = 48_000
        let values = (0..<(rate * 2)).map { Int16(10_000 * sin(2 * .pi * 440 * Double($0) / Double(rate))) }
        let device = try FilePluginDevice(raw: littleEndianBytes(values))
        let source = try ALSACaptureSource(configuration: device.configuration(format: .s16LE, channels: 1, rate: rate))
        defer { source.stop() }
        #expect(source.negotiated?.sampleRate == rate)
        let got = try readExactly(16_000, from: source)
        let middle = got[4000..<12_000]
        let rms = (middle.reduce(0) { $0 + Double($1 * $1) } / Double(middle.count)).squareRoot()
        #expect(abs(rms - 10_000 / 32_768 / 2.0.squareRoot()) < 0.003, "rms \(rms)")
    }

    @Test("stop() ends the stream promptly; read then drains and returns 0")
    func stopsPromptly() throws {
        let device = try FilePluginDevice(raw: littleEndianBytes([Int16](repeating: 7, count: 1000)))
        let source = try ALSACaptureSource(configuration: device.configuration(format: .s16LE, channels: 1))
        _ = try readExactly(500, from: source)
        let started = Date()
        source.stop()
        #expect(Date().timeIntervalSince(started) < 0.5)
        var block = [Float](repeating: 0, count: 1 << 20)
        while try block.withUnsafeMutableBufferPointer({ try source.read(into: $0) }) > 0 {}
    }

    @Test("an unknown device fails at start with an error naming the device and the call")
    func unknownDevice() throws {
        let device = try FilePluginDevice(raw: [0, 0])
        var configuration = device.configuration(format: .s16LE, channels: 1)
        configuration.device = "no_such_pcm"
        #expect {
            _ = try ALSACaptureSource(configuration: configuration)
        } throws: { error in
            guard let error = error as? ALSAError else { return false }
            return error.device == "no_such_pcm" && error.function == "snd_pcm_open_lconf" && error.code < 0
        }
    }

    @Test("read errors map to recover, retry or reopen")
    func errorActions() {
        #expect(CaptureErrorAction(code: -EPIPE) == .recover)
        #expect(CaptureErrorAction(code: -ESTRPIPE) == .recover)
        #expect(CaptureErrorAction(code: -EAGAIN) == .retry)
        #expect(CaptureErrorAction(code: -EINTR) == .retry)
        #expect(CaptureErrorAction(code: -ENODEV) == .reopen)
        #expect(CaptureErrorAction(code: -EBADFD) == .reopen)
        #expect(CaptureErrorAction(code: -EIO) == .reopen)
    }

    @Test("reconnect backoff doubles up to its cap and restarts after a success")
    func backoff() {
        var b = Backoff(initial: 0.1, maximum: 1)
        #expect((0..<6).map { _ in b.take() } == [0.1, 0.2, 0.4, 0.8, 1, 1])
        b.reset()
        #expect(b.take() == 0.1)
    }
}

@Suite struct SampleRingTests {
    @Test("a full ring drops its oldest samples, keeps the newest in order, and reports the hole")
    func dropsOldest() {
        let ring = SampleRing(capacity: 8)
        var out = [Float](repeating: 0, count: 16)
        func read() -> [Float] { Array(out[..<out.withUnsafeMutableBufferPointer { ring.read(into: $0) }]) }
        (1...5).map(Float.init).withUnsafeBufferPointer { ring.write($0) }
        #expect(read() == [1, 2, 3, 4, 5] && ring.samplesLost == 0)
        (6...8).map(Float.init).withUnsafeBufferPointer { ring.write($0) }
        (9...16).map(Float.init).withUnsafeBufferPointer { ring.write($0) }  // 6, 7, 8 overwritten
        #expect(read() == (9...16).map(Float.init))
        #expect(ring.samplesLost == 3)
        (0..<20).map(Float.init).withUnsafeBufferPointer { ring.write($0) }  // larger than the ring at once
        #expect(ring.availableSamples == 8)
        #expect(read() == (12..<20).map(Float.init))
        #expect(ring.samplesLost == 15)
    }

    @Test("a read stops at a gap the writer marked, and the count grows only past it")
    func markedGap() {
        let ring = SampleRing(capacity: 16)
        var out = [Float](repeating: 0, count: 16)
        func read() -> [Float] { Array(out[..<out.withUnsafeMutableBufferPointer { ring.read(into: $0) }]) }
        [1, 2, 3].withUnsafeBufferPointer { ring.write($0) }
        ring.markGap(samples: 100)
        [4, 5].withUnsafeBufferPointer { ring.write($0) }
        ring.markGap(samples: 7)
        [6].withUnsafeBufferPointer { ring.write($0) }
        #expect(read() == [1, 2, 3] && ring.samplesLost == 0)
        #expect(read() == [4, 5] && ring.samplesLost == 100)
        #expect(read() == [6] && ring.samplesLost == 107)
        // Overwriting across a marked gap merges both losses into one hole before the survivors.
        [7, 8].withUnsafeBufferPointer { ring.write($0) }
        ring.markGap(samples: 10)
        (9...24).map(Float.init).withUnsafeBufferPointer { ring.write($0) }
        #expect(read() == (9...24).map(Float.init))
        #expect(ring.samplesLost == 107 + 2 + 10)
    }

    @Test("read waits for a writer and returns 0 once closed and drained")
    func blockingRead() async {
        let ring = SampleRing(capacity: 100)
        let writer = Thread {
            Thread.sleep(forTimeInterval: 0.05)
            [Float](repeating: 1, count: 10).withUnsafeBufferPointer { ring.write($0) }
            ring.close()
        }
        writer.start()
        var out = [Float](repeating: 0, count: 64)
        let first = out.withUnsafeMutableBufferPointer { ring.read(into: $0) }
        #expect(first == 10)
        #expect(out.withUnsafeMutableBufferPointer { ring.read(into: $0) } == 0)
    }
}
