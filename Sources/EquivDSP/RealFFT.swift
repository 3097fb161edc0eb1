import CFFTW
import Foundation

/// FFTW's planner keeps global state and is not thread-safe; executing a plan is. Every plan in the
/// process is made under this lock.
private let plannerLock = NSLock()

/// A forward real-to-complex FFT of one size, planned once and reused for every frame.
///
/// Owns its FFTW plan and its SIMD-aligned input and output buffers and frees them in `deinit`.
/// Not thread-safe: each stage owns its own instance.
public final class RealFFT {
    public let size: Int
    /// `size` real samples, filled by the caller before `execute()`.
    public let input: UnsafeMutableBufferPointer<Float>
    /// `size/2 + 1` complex bins as interleaved (re, im) pairs, valid after `execute()`.
    public let output: UnsafeMutableBufferPointer<Float>
    private let plan: fftwf_plan

    public init(size: Int) throws(FrontEndError) {
        guard size >= 2, size % 2 == 0,
            let inPtr = fftwf_alloc_real(size),
            let outPtr = fftwf_alloc_complex(size / 2 + 1)
        else { throw .fftPlanFailed(size: size) }
        let planned: fftwf_plan? = plannerLock.withLock {
            // FFTW_ESTIMATE: for this size FFTW_MEASURE spent 0.2 s at every start (most of
            // `equivd replay`'s start-up) and found no faster plan (docs/benchmarks.md).
            // The input is refilled before every execute, so FFTW may use it as scratch.
            fftwf_plan_dft_r2c_1d(Int32(size), inPtr, outPtr, UInt32(FFTW_ESTIMATE | FFTW_DESTROY_INPUT))
        }
        guard let planned else {
            fftwf_free(inPtr)
            fftwf_free(outPtr)
            throw .fftPlanFailed(size: size)
        }
        self.size = size
        self.plan = planned
        self.input = UnsafeMutableBufferPointer(start: inPtr, count: size)
        let interleaved = UnsafeMutableRawPointer(outPtr).bindMemory(to: Float.self, capacity: size + 2)
        self.output = UnsafeMutableBufferPointer(start: interleaved, count: size + 2)
        input.initialize(repeating: 0)
    }

    deinit {
        plannerLock.withLock { fftwf_destroy_plan(plan) }
        fftwf_free(input.baseAddress)
        fftwf_free(output.baseAddress)
    }

    /// Transforms `input` into `output`.
    public func execute() {
        fftwf_execute(plan)
    }

    /// |output[j]| for each bin j in `bins`, written to `magnitudes[j]`; eight bins at a time.
    public func magnitudes(bins: Range<Int>, into magnitudes: UnsafeMutableBufferPointer<Float>) {
        let complex = UnsafeRawPointer(output.baseAddress!)
        let out = UnsafeMutableRawPointer(magnitudes.baseAddress!)
        let stride = MemoryLayout<Float>.stride
        var j = bins.lowerBound
        while j + 8 <= bins.upperBound {
            let pairs = complex.loadUnaligned(fromByteOffset: 2 * j * stride, as: SIMD16<Float>.self)
            let (re, im) = (pairs.evenHalf, pairs.oddHalf)
            out.storeBytes(of: (re * re + im * im).squareRoot(), toByteOffset: j * stride, as: SIMD8<Float>.self)
            j += 8
        }
        while j < bins.upperBound {
            let re = output[2 * j]
            let im = output[2 * j + 1]
            magnitudes[j] = (re * re + im * im).squareRoot()
            j += 1
        }
    }
}
