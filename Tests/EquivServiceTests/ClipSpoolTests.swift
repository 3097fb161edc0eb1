import EquivAudio
import Foundation
import TestSupport
import Testing

@testable import EquivService

@Suite struct ClipSpoolTests {
    @Test func keepsTheNewestClipsAndTheirPagesWithinTheQuota() throws {
        let folder = TemporaryFolder()
        let clip = [Float](repeating: 0.25, count: 1000)  // 2044 bytes as 16-bit WAV
        let page = String(repeating: "x", count: 500)  // with its page, 2544 bytes a clip
        let spool = try ClipSpool(directory: folder.file("clips"), quotaBytes: 5500)
        var paths: [String] = []
        for seq in 0..<5 {
            paths.append(try spool.write(clip, sampleRate: 16000, seq: seq, wallTime: 1_700_000_000 + Double(seq), page: page))
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: folder.file("clips")).sorted()
        let names = paths.suffix(2).map { (($0 as NSString).lastPathComponent as NSString).deletingPathExtension }
        #expect(left == names.flatMap { [$0 + ".html", $0 + ".wav"] })
        #expect(try String(contentsOfFile: folder.file("clips/\(names[1]).html"), encoding: .utf8) == page)
        #expect(spool.written == 5)
        let back = try AudioFileSource(path: paths[4])
        #expect(back.frameCount == 1000 && back.fileSampleRate == 16000)
    }

    @Test func aClipLargerThanTheQuotaIsRefusedAndLeavesNothing() throws {
        let folder = TemporaryFolder()
        let spool = try ClipSpool(directory: folder.file("clips"), quotaBytes: 1000)
        #expect(throws: AudioFileError.self) {
            try spool.write([Float](repeating: 0, count: 1000), sampleRate: 16000, seq: 0, wallTime: 0, page: "<p>page</p>")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.file("clips")).isEmpty)
    }

    @Test func anUnwritableFolderIsAConfigurationErrorNamingTheKey() {
        #expect {
            _ = try ClipSpool(directory: "/proc/equivd-clips", quotaBytes: 1000)
        } throws: { error in
            (error as? ConfigurationError)?.key == "spool.directory"
        }
    }
}
