import EquivDSP
import Foundation
import Testing

@Suite struct FrontEndTests {
    let parameters = FrontEndParameters()

    func sine(_ frequency: Double, amplitude: Double, count: Int) -> [Float] {
        (0..<count).map { Float(amplitude * sin(2 * .pi * frequency * Double($0) / Double(parameters.sampleRate))) }
    }

    func frames(_ samples: [Float], blockSize: Int) throws -> [[Float]] {
        let spectrogram = try LogFrequencySpectrogram(parameters: parameters)
        var frames: [[Float]] = []
        samples.withUnsafeBufferPointer { all in
            var start = 0
            while start < all.count {
                let end = min(all.count, start + blockSize)
                spectrogram.process(UnsafeBufferPointer(rebasing: all[start..<end])) { frames.append(Array($0)) }
                start = end
            }
        }
        return frames
    }

    @Test("a sinusoid at a band's centre reads its own amplitude there, at every band",
          arguments: [0, 1, 23, 70, 120, 167])
    func calibration(band: Int) throws {
        let frequency = parameters.centerFrequency(ofBin: Double(band))
        let out = try frames(sine(frequency, amplitude: 0.25, count: parameters.fftSize), blockSize: 4096)
        #expect(out.count == 1)
        #expect(abs(out[0][band] - log(0.25 + parameters.logFloor)) < 1e-3)
        #expect(out[0].indices.max { out[0][$0] < out[0][$1] } == band)
    }

    @Test("frame count and values do not depend on how the samples are split into blocks")
    func blockSizeIndependence() throws {
        let samples = sine(440, amplitude: 0.3, count: parameters.fftSize + 37 * parameters.hopLength + 11)
        let whole = try frames(samples, blockSize: samples.count)
        #expect(whole.count == 1 + (samples.count - parameters.fftSize) / parameters.hopLength)
        for blockSize in [1, 7, 160, 1000] {
            #expect(try frames(samples, blockSize: blockSize) == whole)
        }
    }

    @Test("silence reads the log floor")
    func silence() throws {
        let out = try frames([Float](repeating: 0, count: parameters.fftSize), blockSize: 512)
        #expect(out[0].allSatisfy { $0 == log(parameters.logFloor) })
    }

    @Test("windows: first after windowFrames frames, then every windowStepFrames, bins × frames layout")
    func windows() throws {
        let frontEnd = try FrontEnd(parameters: parameters)
        let frameCount = 260
        let samples = sine(1000, amplitude: 0.5, count: parameters.fftSize + (frameCount - 1) * parameters.hopLength)
        let reference = try frames(samples, blockSize: samples.count)
        var seen: [(index: Int, first: Int, start: Double, values: [Float])] = []
        samples.withUnsafeBufferPointer { s in
            frontEnd.process(s) { seen.append(($0.index, $0.firstFrame, $0.startTime, Array($0.values))) }
        }
        // Frames 0..<260 hold windows starting at 0, 50, 100, 150 (the next would need frame 299).
        #expect(seen.map(\.first) == [0, 50, 100, 150])
        #expect(seen.map(\.index) == [0, 1, 2, 3])
        #expect(abs(seen[1].start - (50 * 0.01 + 4096.0 / 16000)) < 1e-9)
        for window in seen {
            for (k, t) in [(0, 0), (37, 5), (167, 99), (69, 42)] {
                #expect(window.values[k * parameters.windowFrames + t] == reference[window.first + t][k])
            }
        }
    }

    @Test("bad parameters are refused naming the field")
    func validation() {
        var p = FrontEndParameters()
        p.binCount = 200  // top edge 60·2^(200/24) Hz is far above Nyquist
        #expect(throws: FrontEndError.invalidParameter(
            field: "bin_count", reason: "top band edge \(p.fmax) Hz must stay below Nyquist 8000 Hz")
        ) { try p.validate() }
        p = FrontEndParameters()
        p.hopLength = 0
        #expect { try p.validate() } throws: { error in
            (error as? FrontEndError).map { "\($0)".contains("'hop_length'") } ?? false
        }
    }
}
