import EquivDSP
import EquivModel
import Foundation

/// Why a model bundle was refused: the file, and the field where there is one.
public struct BundleError: Error, Equatable, CustomStringConvertible {
    public let path: String
    /// The bundle.json key path, e.g. "front_end.fft_size", when the problem is one field.
    public let field: String?
    public let reason: String

    public var description: String { "\(path): " + (field.map { "\($0): " } ?? "") + reason }

    /// A bad field found by a check that does not know the file it came from.
    struct Field: Error {
        let name: String
        let reason: String
    }

    init(path: String, _ field: Field) {
        self.init(path: path, field: field.name, reason: field.reason)
    }

    init(path: String, field: String?, reason: String) {
        self.path = path
        self.field = field
        self.reason = reason
    }
}

/// bundle.json (docs/architecture.md §4), as `equivtrain` writes it.
public struct BundleManifest: Codable, Sendable {
    public struct Shift: Codable, Sendable {
        public let rangeBins: Int
        public let referenceBin: Int
        public let binsPerSemitone: Int
        public let edgeFill: String
        enum CodingKeys: String, CodingKey {
            case rangeBins = "range_bins", referenceBin = "reference_bin"
            case binsPerSemitone = "bins_per_semitone", edgeFill = "edge_fill"
        }
    }

    public struct Model: Codable, Sendable {
        public let file: String
        public let sha256: String
        /// The classifier's own input and output map; absent for a model made for equivd.
        public let input: ClassifierInput?
        public let output: OutputMap?

        enum CodingKeys: String, CodingKey { case file, sha256, input, output }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            file = try c.decode(String.self, forKey: .file)
            sha256 = try c.decode(String.self, forKey: .sha256)
            // Bundles written before 2026-11-30 name the ONNX input and output tensors here as
            // strings ("x", "logits"): a model made for equivd, so nothing to declare.
            input = (try? c.decode(String.self, forKey: .input)) != nil ? nil : try c.decodeIfPresent(ClassifierInput.self, forKey: .input)
            output = (try? c.decode(String.self, forKey: .output)) != nil ? nil : try c.decodeIfPresent(OutputMap.self, forKey: .output)
        }
    }

    public struct Thresholds: Codable, Sendable {
        /// Below this canonicalizer max-p, the top-K shifts are averaged.
        public let canonicalizerMinP: Float
        public let topK: Int
        /// Below this classifier max-p, the window is published as uncertain.
        public let classifierMinP: Float
        enum CodingKeys: String, CodingKey {
            case canonicalizerMinP = "canonicalizer_min_p", topK = "top_k", classifierMinP = "classifier_min_p"
        }
    }

    public let format: Int
    public let classes: [String]
    public let frontEnd: FrontEndParameters
    public let shift: Shift
    public let models: [String: Model]
    public let thresholds: Thresholds

    enum CodingKeys: String, CodingKey {
        case format, classes, frontEnd = "front_end", shift, models, thresholds
    }
}

/// A model bundle checked against the daemon it will run in: bundle.json parses, its front-end
/// parameters are this front end's, the ONNX files are the ones it hashed, and both models load
/// and produce the shapes the bundle promises.
public struct ModelBundle: Sendable {
    public static let supportedFormat = 1

    public let directory: String
    public let manifest: BundleManifest
    public let classifier: ONNXModel
    public let canonicalizer: ONNXModel
    /// The readers of the part of a window that stays at its frequency (mode `partial`,
    /// docs/architecture.md §9): the share of each bin that is fixed, and how far that part moved.
    /// A bundle has both or neither.
    public let fixedPart: (separator: ONNXModel, pose: ONNXModel)?

    public init(directory: String, frontEnd: FrontEndParameters) throws(BundleError) {
        let manifestPath = (directory as NSString).appendingPathComponent("bundle.json")
        func fail(_ field: String?, _ reason: String, path: String = manifestPath) -> BundleError {
            BundleError(path: path, field: field, reason: reason)
        }
        guard let data = FileManager.default.contents(atPath: manifestPath) else {
            throw fail(nil, "cannot read (is \(directory) a model bundle?)")
        }
        let manifest = try BundleManifest(json: data, path: manifestPath)
        if let field = Self.firstDifference(manifest.frontEnd, frontEnd) {
            throw fail("front_end.\(field.name)", "is \(field.bundle) but this equivd's front end uses \(field.ours)")
        }
        func model(_ role: String) throws(BundleError) -> ONNXModel {
            guard let entry = manifest.models[role] else { throw fail("models.\(role)", "missing") }
            let path = (directory as NSString).appendingPathComponent(entry.file)
            guard let bytes = FileManager.default.contents(atPath: path) else {
                throw fail("models.\(role).file", "\(path) cannot be read")
            }
            let digest: String
            do {
                digest = try SHA256.hex(bytes)
            } catch {
                throw fail("models.\(role).sha256", "\(entry.file): \(error)")
            }
            guard digest == entry.sha256.lowercased() else {
                throw fail("models.\(role).sha256", "\(entry.file) hashes to \(digest), not the recorded \(entry.sha256)")
            }
            do {
                return try ONNXModel(serialized: bytes, source: path)
            } catch {
                throw BundleError(path: path, field: nil, reason: "\(error)")
            }
        }
        if let input = manifest.models["classifier"]?.input {
            do {
                try input.validate(field: "models.classifier.input")
            } catch {
                throw BundleError(path: manifestPath, error)
            }
        }
        let classifier = try model("classifier")
        let canonicalizer = try model("canonicalizer")
        var roles = [("classifier", classifier), ("canonicalizer", canonicalizer)]
        switch (manifest.models["separator"], manifest.models["fixed_pose"]) {
        case (nil, nil): fixedPart = nil
        case (_?, nil): throw fail("models.fixed_pose", "missing (a bundle with models.separator needs it)")
        case (nil, _?): throw fail("models.separator", "missing (a bundle with models.fixed_pose needs it)")
        case (_?, _?):
            let part = (separator: try model("separator"), pose: try model("fixed_pose"))
            roles += [("separator", part.separator), ("fixed_pose", part.pose)]
            fixedPart = part
        }
        for (role, m) in roles where m.inputNames.count != 1 {
            throw fail("models.\(role)", "must have exactly one input, has \(m.inputNames)")
        }
        self.directory = directory
        self.manifest = manifest
        self.classifier = classifier
        self.canonicalizer = canonicalizer
    }

    /// The first front-end parameter that differs, by its bundle.json name.
    static func firstDifference(_ bundle: FrontEndParameters, _ ours: FrontEndParameters) -> (name: String, bundle: String, ours: String)? {
        let encoder = JSONEncoder()
        guard let a = try? encoder.encode(bundle), let b = try? encoder.encode(ours),
            let x = try? JSONSerialization.jsonObject(with: a) as? [String: Any],
            let y = try? JSONSerialization.jsonObject(with: b) as? [String: Any]
        else { return ("front_end", "unreadable", "") }
        for key in y.keys.sorted() where "\(x[key] ?? "missing")" != "\(y[key]!)" {
            return (key, "\(x[key] ?? "missing")", "\(y[key]!)")
        }
        return nil
    }
}

extension String {
    fileprivate var nilIfEmpty: String? { isEmpty ? nil : self }
}

extension BundleManifest {
    /// Decodes and checks bundle.json's text; an error names the field. Reads no other file.
    public init(json data: Data, path: String) throws(BundleError) {
        func fail(_ field: String?, _ reason: String) -> BundleError {
            BundleError(path: path, field: field, reason: reason)
        }
        let manifest: BundleManifest
        do {
            manifest = try JSONDecoder().decode(BundleManifest.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw fail((context.codingPath + [key]).map(\.stringValue).joined(separator: "."), "missing")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw fail(context.codingPath.map(\.stringValue).joined(separator: "."), context.debugDescription)
        } catch let DecodingError.dataCorrupted(context) {
            throw fail(context.codingPath.map(\.stringValue).joined(separator: ".").nilIfEmpty, context.debugDescription)
        } catch {
            throw fail(nil, "not valid JSON: \(error)")
        }
        guard manifest.format == ModelBundle.supportedFormat else {
            throw fail("format", "is \(manifest.format); this equivd reads format \(ModelBundle.supportedFormat)")
        }
        guard !manifest.classes.isEmpty else { throw fail("classes", "is empty") }
        self = manifest
    }
}
