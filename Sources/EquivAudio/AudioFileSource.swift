import CSndFile
import EquivDSP
import Foundation
import Synchronization

/// Why an audio file could not be read; always names the file.
public struct AudioFileError: Error, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case notFound, empty, notAudio, unsupportedEncoding, malformed, truncated, readFailed, resampleFailed, writeFailed
    }
    public let path: String
    public let kind: Kind
    /// What went wrong, in words (libsndfile's own where it has them).
    public let reason: String

    public var description: String { "\(path): \(reason)" }

    public init(path: String, kind: Kind, reason: String) {
        self.path = path
        self.kind = kind
        self.reason = reason
    }
}

/// Replays a WAV, FLAC or OGG file (anything libsndfile reads) as mono samples at `sampleRate`.
///
/// Reads `blockFrames` frames at a time, so memory does not depend on the file's length. NaN and
/// ±Inf samples are replaced with 0 and counted in `nonFiniteSamples`.
public final class AudioFileSource: AudioSource {
    public let path: String
    public let sampleRate: Int
    /// The file's own rate and channel count.
    public let fileSampleRate: Int
    public let channels: Int
    /// Frames the header declares.
    public let frameCount: Int
    /// libsndfile's name for the container and encoding, e.g. "WAV (Microsoft)" / "Signed 16 bit PCM".
    public let formatName: String
    public let encodingName: String
    public private(set) var nonFiniteSamples = 0
    public private(set) var framesRead = 0
    /// Silence appended after the file's own samples so that at least `minimumSamples` come out
    /// (a clip shorter than one window still gives one).
    public let minimumSamples: Int
    public private(set) var paddedSamples = 0
    private var delivered = 0

    private let file: OpaquePointer
    private let resampler: Resampler
    private let blockFrames: Int
    /// Interleaved block as read; its first `pendingCount` samples from `pendingStart` are mono
    /// samples at the file's rate not yet resampled.
    private let block: UnsafeMutableBufferPointer<Float>
    private var pendingStart = 0
    private var pendingCount = 0
    private var endOfFile = false
    private var drained = false

    /// `minimumSamples`: pad a shorter file with trailing silence to that many output samples.
    public init(path: String, sampleRate: Int = 16_000, blockFrames: Int = 4096, minimumSamples: Int = 0) throws(AudioFileError) {
        func fail(_ kind: AudioFileError.Kind, _ reason: String) -> AudioFileError {
            AudioFileError(path: path, kind: kind, reason: reason)
        }
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw fail(.notFound, "cannot open: \(String(cString: strerror(errno)))")
        }
        guard status.st_size > 0 else { throw fail(.empty, "file is empty (0 bytes)") }

        var info = SF_INFO()
        let file: OpaquePointer
        do { file = try openSoundFile(path, mode: Int32(SFM_READ), &info) } catch {
            let message = error.message
            switch error.code {
            case Int32(SF_ERR_UNRECOGNISED_FORMAT): throw fail(.notAudio, "not an audio file libsndfile recognises")
            case Int32(SF_ERR_UNSUPPORTED_ENCODING), 18:  // 18: libsndfile's SFE_UNIMPLEMENTED
                throw fail(.unsupportedEncoding, "unsupported encoding: \(message)")
            case Int32(SF_ERR_SYSTEM): throw fail(.readFailed, message)
            default: throw fail(.malformed, "malformed audio file: \(message)")
            }
        }
        self.file = file
        self.path = path
        self.sampleRate = sampleRate
        self.fileSampleRate = Int(info.samplerate)
        self.channels = Int(info.channels)
        self.frameCount = Int(info.frames)
        self.blockFrames = blockFrames
        self.minimumSamples = minimumSamples
        self.formatName = Self.formatName(Int32(SFC_GET_FORMAT_MAJOR), info.format & Int32(SF_FORMAT_TYPEMASK))
        self.encodingName = Self.formatName(Int32(SFC_GET_FORMAT_SUBTYPE), info.format & Int32(SF_FORMAT_SUBMASK))
        self.block = .allocate(capacity: blockFrames * max(channels, 1))
        do {
            self.resampler = try Resampler(inputRate: fileSampleRate, outputRate: sampleRate)
        } catch {
            block.deallocate()
            sf_close(file)
            throw fail(.resampleFailed, "cannot convert \(info.samplerate) Hz to \(sampleRate) Hz: \(error)")
        }
        if frameCount == 0 {
            throw fail(.empty, "contains no samples")
        }
        if let declared = declaredDataShortfall() {
            throw fail(.truncated, "truncated: \(declared)")
        }
    }

    deinit {
        sf_close(file)
        block.deallocate()
    }

    /// Duration of the file in seconds, from its header.
    public var duration: Double { Double(frameCount) / Double(fileSampleRate) }

    public func read(into buffer: UnsafeMutableBufferPointer<Float>) throws -> Int {
        var produced = 0
        while produced < buffer.count && !drained {
            if pendingCount == 0 && !endOfFile { try readBlock() }
            let input = UnsafeBufferPointer(rebasing: UnsafeBufferPointer(block)[pendingStart..<pendingStart + pendingCount])
            let output = UnsafeMutableBufferPointer(rebasing: buffer[produced...])
            let step: (consumed: Int, produced: Int)
            do {
                step = try resampler.process(input, endOfInput: endOfFile, into: output)
            } catch {
                throw AudioFileError(path: path, kind: .resampleFailed, reason: "\(error)")
            }
            pendingStart += step.consumed
            pendingCount -= step.consumed
            produced += step.produced
            if endOfFile && pendingCount == 0 && step.produced == 0 { drained = true }
        }
        if drained && produced < buffer.count && delivered + produced < minimumSamples {
            let pad = min(buffer.count - produced, minimumSamples - delivered - produced)
            (buffer.baseAddress! + produced).update(repeating: 0, count: pad)
            produced += pad
            paddedSamples += pad
        }
        delivered += produced
        return produced
    }

    /// Reads the next block, sanitizes it and downmixes it to mono at the front of `block`.
    private func readBlock() throws {
        let got = Int(sf_readf_float(file, block.baseAddress, sf_count_t(blockFrames)))
        if got <= 0 {
            endOfFile = true
            if framesRead < frameCount {
                let why = sf_error(file) != 0 ? String(cString: sf_strerror(file)) : "no more data"
                throw AudioFileError(
                    path: path, kind: .truncated,
                    reason: "truncated: stream ended after \(framesRead) of \(frameCount) frames (\(why))")
            }
            return
        }
        framesRead += got
        nonFiniteSamples += zeroNonFinite(block, count: got * channels)
        pendingStart = 0
        pendingCount = downmixInPlace(block, frames: got, channels: channels)
    }

    /// libsndfile logs "data : 32000 (should be 9956)" when a chunk claims more bytes than the file
    /// holds; it then reads what is there. We refuse such a file rather than replay part of it.
    private func declaredDataShortfall() -> String? {
        var log = [CChar](repeating: 0, count: 16_384)
        _ = sf_command(file, Int32(SFC_GET_LOG_INFO), &log, Int32(log.count))
        let text = String(decoding: log.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix("data") && line.contains("(should be") {
            let numbers = line.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
            if numbers.count >= 2, numbers[0] > numbers[1] {
                return "data chunk declares \(numbers[0]) bytes but the file holds \(numbers[1])"
            }
        }
        return nil
    }

    private static func formatName(_ command: Int32, _ format: Int32) -> String {
        var info = SF_FORMAT_INFO(format: format, name: nil, extension: nil)
        guard sf_command(nil, command, &info, Int32(MemoryLayout<SF_FORMAT_INFO>.size)) == 0,
            let name = info.name
        else { return String(format: "0x%06x", format) }
        return String(cString: name)
    }
}

/// Writes mono float samples as a 16-bit PCM WAV file through libsndfile. The file appears under
/// its name only once complete (written to `path.partial`, then renamed), so a reader never sees
/// half a clip, and a full disk leaves nothing behind.
public func writeWAV(_ samples: [Float], sampleRate: Int, to path: String) throws(AudioFileError) {
    let partial = path + ".partial"
    var info = SF_INFO()
    info.samplerate = Int32(sampleRate)
    info.channels = 1
    info.format = Int32(SF_FORMAT_WAV | SF_FORMAT_PCM_16)
    let file: OpaquePointer
    do { file = try openSoundFile(partial, mode: Int32(SFM_WRITE), &info) } catch {
        throw AudioFileError(path: path, kind: .writeFailed, reason: "cannot create: \(error.message)")
    }
    // Clip rather than wrap samples outside [-1, 1].
    sf_command(file, Int32(SFC_SET_CLIPPING), nil, Int32(SF_TRUE))
    let written = samples.withUnsafeBufferPointer { sf_writef_float(file, $0.baseAddress, sf_count_t($0.count)) }
    let why = String(cString: sf_strerror(file))
    let closed = sf_close(file)
    guard written == samples.count, closed == 0, rename(partial, path) == 0 else {
        unlink(partial)
        throw AudioFileError(path: path, kind: .writeFailed, reason: "write failed after \(written) of \(samples.count) frames: \(why)")
    }
}

/// Why `sf_open` failed: libsndfile's error number and its words.
public struct SoundFileOpenError: Error {
    public let code: Int32
    public let message: String
}

/// libsndfile keeps why `sf_open` failed in one process-wide slot, which an `sf_open` on any other
/// thread overwrites (a parallel test run saw "No Error."), so opening and reading that slot happen
/// under one lock.
private let soundFileOpenLock = Mutex(())

/// The one way this process opens a file with libsndfile; any bare `sf_open` elsewhere could
/// overwrite the reason another thread is about to read.
public func openSoundFile(_ path: String, mode: Int32, _ info: inout SF_INFO) throws(SoundFileOpenError) -> OpaquePointer {
    let opened = soundFileOpenLock.withLock { _ -> Result<OpaquePointer, SoundFileOpenError> in
        if let file = sf_open(path, mode, &info) { return .success(file) }
        return .failure(SoundFileOpenError(code: sf_error(nil), message: String(cString: sf_strerror(nil))))
    }
    return try opened.get()
}
