import CALSA
import Foundation

/// A failed alsa-lib call: which device, which function, and the negative errno it returned.
public struct ALSAError: Error, Equatable, CustomStringConvertible {
    public let device: String
    public let function: String
    /// The negative errno alsa-lib returned (e.g. -EPIPE for an overrun).
    public let code: Int32

    public var description: String {
        "ALSA device '\(device)': \(function) failed: \(String(cString: snd_strerror(code))) (\(code))"
    }
}

/// Sample formats the capture source accepts, in alsa-lib's naming.
public enum ALSASampleFormat: String, Sendable, CaseIterable {
    case s16LE = "S16_LE"
    case s32LE = "S32_LE"
    case floatLE = "FLOAT_LE"

    var alsaFormat: snd_pcm_format_t {
        switch self {
        case .s16LE: SND_PCM_FORMAT_S16_LE
        case .s32LE: SND_PCM_FORMAT_S32_LE
        case .floatLE: SND_PCM_FORMAT_FLOAT_LE
        }
    }

    var bytesPerSample: Int { self == .s16LE ? 2 : 4 }
}

/// The hardware parameters a device agreed to.
public struct ALSANegotiated: Sendable, Equatable {
    public let sampleRate: Int
    public let channels: Int
    public let format: ALSASampleFormat
    public let periodFrames: Int
    public let bufferFrames: Int
}

/// An open capture PCM. Owns the handle (and the private configuration it was resolved in) and
/// closes it in `deinit`. Every alsa-lib call goes through `check`, which turns a negative return
/// into an `ALSAError`. Used by one thread at a time (it is opened on one and handed to the
/// capture thread), hence `@unchecked Sendable`.
final class ALSAPCM: @unchecked Sendable {
    let device: String
    let negotiated: ALSANegotiated
    private let handle: OpaquePointer
    private let configuration: OpaquePointer?

    /// Opens `device` for capture, resolving its name in `configFile` when given instead of the
    /// system configuration, and negotiates the first of `formats` the device takes.
    init(
        device: String, configFile: String?, sampleRate: Int, channels: Int,
        formats: [ALSASampleFormat], periodFrames: Int, bufferFrames: Int
    ) throws(ALSAError) {
        let check = Checker(device: device)
        var configuration: OpaquePointer? = nil
        var handle: OpaquePointer? = nil
        do throws(ALSAError) {
            if let configFile {
                try check("snd_config_top", snd_config_top(&configuration))
                var input: OpaquePointer? = nil
                try check("snd_input_stdio_open(\(configFile))", snd_input_stdio_open(&input, configFile, "r"))
                let loaded = snd_config_load(configuration, input)
                snd_input_close(input)
                try check("snd_config_load(\(configFile))", loaded)
                try check(
                    "snd_pcm_open_lconf",
                    snd_pcm_open_lconf(&handle, device, SND_PCM_STREAM_CAPTURE, 0, configuration))
            } else {
                try check("snd_pcm_open", snd_pcm_open(&handle, device, SND_PCM_STREAM_CAPTURE, 0))
            }
            self.negotiated = try Self.negotiate(
                handle!, check: check, sampleRate: sampleRate, channels: channels, formats: formats,
                periodFrames: periodFrames, bufferFrames: bufferFrames)
        } catch {
            if let handle { snd_pcm_close(handle) }
            if let configuration { snd_config_delete(configuration) }
            throw error
        }
        self.device = device
        self.handle = handle!
        self.configuration = configuration
        try startIfPrepared()  // a throw from here on closes the device in deinit
    }

    /// Turns a negative alsa-lib return code into an `ALSAError` naming the device and function.
    struct Checker {
        let device: String
        func callAsFunction(_ function: String, _ rc: Int32) throws(ALSAError) {
            if rc < 0 { throw ALSAError(device: device, function: function, code: rc) }
        }
    }

    private static func negotiate(
        _ pcm: OpaquePointer, check: Checker, sampleRate: Int, channels: Int,
        formats: [ALSASampleFormat], periodFrames: Int, bufferFrames: Int
    ) throws(ALSAError) -> ALSANegotiated {
        var params: OpaquePointer? = nil
        try check("snd_pcm_hw_params_malloc", snd_pcm_hw_params_malloc(&params))
        defer { snd_pcm_hw_params_free(params) }
        try check("snd_pcm_hw_params_any", snd_pcm_hw_params_any(pcm, params))
        try check(
            "snd_pcm_hw_params_set_access",
            snd_pcm_hw_params_set_access(pcm, params, SND_PCM_ACCESS_RW_INTERLEAVED))
        guard let format = formats.first(where: { snd_pcm_hw_params_test_format(pcm, params, $0.alsaFormat) == 0 })
        else {
            let names = formats.map(\.rawValue).joined(separator: ", ")
            throw ALSAError(device: check.device, function: "snd_pcm_hw_params_test_format(\(names))", code: -EINVAL)
        }
        try check("snd_pcm_hw_params_set_format", snd_pcm_hw_params_set_format(pcm, params, format.alsaFormat))
        var channelCount = UInt32(channels)
        try check(
            "snd_pcm_hw_params_set_channels_near",
            snd_pcm_hw_params_set_channels_near(pcm, params, &channelCount))
        var rate = UInt32(sampleRate)
        try check("snd_pcm_hw_params_set_rate_near", snd_pcm_hw_params_set_rate_near(pcm, params, &rate, nil))
        var period = snd_pcm_uframes_t(periodFrames)
        try check(
            "snd_pcm_hw_params_set_period_size_near",
            snd_pcm_hw_params_set_period_size_near(pcm, params, &period, nil))
        var buffer = snd_pcm_uframes_t(max(bufferFrames, periodFrames * 2))
        try check(
            "snd_pcm_hw_params_set_buffer_size_near",
            snd_pcm_hw_params_set_buffer_size_near(pcm, params, &buffer))
        try check("snd_pcm_hw_params", snd_pcm_hw_params(pcm, params))
        try check("snd_pcm_prepare", snd_pcm_prepare(pcm))
        return ALSANegotiated(
            sampleRate: Int(rate), channels: Int(channelCount), format: format,
            periodFrames: Int(period), bufferFrames: Int(buffer))
    }

    deinit {
        snd_pcm_close(handle)
        if let configuration { snd_config_delete(configuration) }
    }

    /// Waits up to `timeoutMilliseconds` for a period to be readable. Returns false on timeout.
    func wait(timeoutMilliseconds: Int32) throws(ALSAError) -> Bool {
        let rc = snd_pcm_wait(handle, timeoutMilliseconds)
        try Checker(device: device)("snd_pcm_wait", rc)
        return rc > 0
    }

    /// Reads up to `frames` interleaved frames into `buffer`; returns the frame count.
    func read(into buffer: UnsafeMutableRawPointer, frames: Int) throws(ALSAError) -> Int {
        let got = snd_pcm_readi(handle, buffer, snd_pcm_uframes_t(frames))
        try Checker(device: device)("snd_pcm_readi", Int32(clamping: got))
        return got
    }

    /// Restarts the stream after an overrun or a suspend.
    func recover(from error: ALSAError) throws(ALSAError) {
        try Checker(device: device)("snd_pcm_recover", snd_pcm_recover(handle, error.code, 1))
        try startIfPrepared()
    }

    /// Starts a prepared stream. A sound card raises no period interrupt before it runs, so a
    /// prepared capture stream never becomes readable and `wait` would time out for ever; a
    /// resumed one is running already.
    private func startIfPrepared() throws(ALSAError) {
        guard snd_pcm_state(handle) == SND_PCM_STATE_PREPARED else { return }
        try Checker(device: device)("snd_pcm_start", snd_pcm_start(handle))
    }
}
