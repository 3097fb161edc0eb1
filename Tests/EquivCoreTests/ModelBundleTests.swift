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

    /// The default bundle with its classifier entry given `input` and/or `output`.
    func classifierEntry(input: [String: Any]? = nil, output: [String: Any]? = nil) throws -> String {
        try copy { json in
            var models = json["models"] as! [String: Any]
            var classifier = models["classifier"] as! [String: Any]
            if let input { classifier["input"] = input }
            if let output { classifier["output"] = output }
            models["classifier"] = classifier
            json["models"] = models
        }
    }

    nonisolated(unsafe) static let yamnetInput: [String: Any] = [
        "kind": "log_mel", "sample_rate": 16000, "n_fft": 512, "win_length": 400, "hop_length": 160, "n_mels": 64,
        "f_min": 125.0, "f_max": 7500.0, "mel_scale": "htk", "norm": "none", "power": 1.0, "center": false,
        "log_offset": 0.001, "log": "ln", "frames": 96, "layout": "frames_mels", "shape": [1, 1, 96, 64],
    ]

    @Test("a classifier input with a bad, missing or inconsistent field is refused naming it")
    func classifierInputFields() throws {
        var edited = Self.yamnetInput
        edited["f_max"] = 9000.0
        #expect(try #require(refusal(classifierEntry(input: edited))).field == "models.classifier.input.f_max")
        edited = Self.yamnetInput
        edited.removeValue(forKey: "n_mels")
        #expect(try #require(refusal(classifierEntry(input: edited))).field == "models.classifier.input.n_mels")
        edited = Self.yamnetInput
        edited["shape"] = [1, 1, 96, 63]
        #expect(try #require(refusal(classifierEntry(input: edited))).field == "models.classifier.input.shape")
        edited = Self.yamnetInput
        edited["kind"] = "spectrogram"
        #expect(try #require(refusal(classifierEntry(input: edited))).field == "models.classifier.input.kind")
        edited = ["kind": "waveform", "sample_rate": 16000, "samples": 15600, "shape": [1, 15601]]
        #expect(try #require(refusal(classifierEntry(input: edited))).field == "models.classifier.input.shape")
    }

    /// The Recognizer's refusal of `folder` (it plans the models and checks the output map).
    func recognizerRefusal(_ folder: String) throws -> BundleError? {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let bundle = try ModelBundle(directory: folder, frontEnd: FrontEndParameters())
        do {
            _ = try Recognizer(bundle: bundle)
            return nil
        } catch {
            return error
        }
    }

    /// models of a bundle.json, as a dictionary to edit.
    func models(_ json: inout [String: Any], _ edit: (inout [String: Any]) -> Void) {
        var models = json["models"] as! [String: Any]
        edit(&models)
        json["models"] = models
    }

    @Test("mode partial needs the separator and FixedPose, both or neither, each named when missing")
    func fixedPartPair() throws {
        let bundle = try ModelBundle(directory: Self.models, frontEnd: FrontEndParameters())
        #expect(bundle.fixedPart != nil)
        _ = try Recognizer(bundle: bundle, mode: .partial)
        let lone = try #require(refusal(copy { json in models(&json) { $0["fixed_pose"] = nil } }))
        #expect(lone.field == "models.fixed_pose" && "\(lone)".contains("models.separator needs it"), "\(lone)")
        let neither = try copy { json in models(&json) { $0["fixed_pose"] = nil; $0["separator"] = nil } }
        defer { try? FileManager.default.removeItem(atPath: neither) }
        let plain = try ModelBundle(directory: neither, frontEnd: FrontEndParameters())
        #expect(plain.fixedPart == nil)
        _ = try Recognizer(bundle: plain, mode: .topk)
        do {
            _ = try Recognizer(bundle: plain, mode: .partial)
            Issue.record("mode partial planned without a separator")
        } catch {
            #expect(error.field == "models.separator" && "\(error)".contains("mode partial"), "\(error)")
        }
    }

    @Test("an output map naming an output the model lacks, or leaving a class out, is refused naming it")
    func outputMapFields() throws {
        let classes = try ModelBundle(directory: Self.models, frontEnd: FrontEndParameters()).manifest.classes
        var map = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, [$0]) })
        map[classes[0]] = [99]
        var error = try #require(try recognizerRefusal(classifierEntry(output: ["activation": "softmax", "classes": map])))
        #expect(error.field == "models.classifier.output.classes.\(classes[0])")
        #expect(error.reason.contains("output 99 is not in 0..<\(classes.count)"))
        map[classes[0]] = nil
        error = try #require(try recognizerRefusal(classifierEntry(output: ["activation": "softmax", "classes": map])))
        #expect(error.field == "models.classifier.output.classes.\(classes[0])")
        map[classes[0]] = [0]
        map["bogus"] = [1]
        error = try #require(try recognizerRefusal(classifierEntry(output: ["activation": "softmax", "classes": map])))
        #expect(error.field == "models.classifier.output.classes.bogus")
    }
}
