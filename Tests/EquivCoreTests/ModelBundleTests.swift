import EquivDSP
import Foundation
import Testing

@testable import EquivCore

/// The default bundle (Models/) loads; a bundle made for other features, with a tampered model
/// file, or with missing fields is refused with the field named.
@Suite struct ModelBundleTests {
    static let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Models").standardized.path

    /// A scratch copy of the default bundle whose bundle.json `edit` may change.
    func copy(editing edit: (inout [String: Any]) -> Void = { _ in }) throws -> String {
        let folder = NSTemporaryDirectory() + "equivd-bundle-" + UUID().uuidString
        try FileManager.default.copyItem(atPath: Self.models, toPath: folder)
        let path = folder + "/bundle.json"
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
        return folder
    }

    func refusal(_ folder: String) -> BundleError? {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        do {
            _ = try ModelBundle(directory: folder, frontEnd: FrontEndParameters())
            return nil
        } catch {
            return error
        }
    }

    @Test("the default bundle loads against the default front end")
    func defaultBundle() throws {
        let bundle = try ModelBundle(directory: Self.models, frontEnd: FrontEndParameters())
        #expect(bundle.manifest.classes.contains("normal"))
        #expect(bundle.manifest.shift.rangeBins == 24)
    }

    @Test("front-end parameters that differ are refused naming the field")
    func frontEndMismatch() throws {
        let folder = try copy { json in
            var fe = json["front_end"] as! [String: Any]
            fe["fft_size"] = 4096
            json["front_end"] = fe
        }
        let error = try #require(refusal(folder))
        #expect(error.field == "front_end.fft_size")
        #expect("\(error)".contains("4096") && "\(error)".contains("8192"))
    }

    @Test("a model file that does not match its recorded hash is refused")
    func tamperedModel() throws {
        let folder = try copy()
        let handle = try #require(FileHandle(forUpdatingAtPath: folder + "/canonicalizer.onnx"))
        handle.seekToEndOfFile()
        handle.write(Data([0]))
        handle.closeFile()
        let error = try #require(refusal(folder))
        #expect(error.field == "models.canonicalizer.sha256")
    }

    @Test("a missing field is named with its path")
    func missingField() throws {
        let folder = try copy { json in
            var t = json["thresholds"] as! [String: Any]
            t.removeValue(forKey: "top_k")
            json["thresholds"] = t
        }
        #expect(try #require(refusal(folder)).field == "thresholds.top_k")
    }

    @Test("a folder without bundle.json is refused naming the file")
    func notABundle() throws {
        let folder = NSTemporaryDirectory() + "equivd-empty-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let error = try #require(refusal(folder))
        #expect(error.path.hasSuffix("/bundle.json") && error.reason.contains("cannot read"))
    }
}
