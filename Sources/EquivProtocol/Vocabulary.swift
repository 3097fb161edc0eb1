/// The words the recognizer, the configuration, replay, equivctl and the events share: each is
/// defined here once, and its raw value is what the JSON, the TOML and the command line say.

/// How a window was decided (docs/protocol.md, `prediction.fallback`).
public enum Fallback: String, Codable, Sendable, CaseIterable {
    /// Confident canonicalizer: one classifier call on the canonical window.
    case none
    /// Unsure canonicalizer: the top-K shifts averaged, weighted by p.
    case topk
    /// Still unsure: published as "uncertain" (the clip is worth a human's ear).
    case abstain
    /// Below the energy gate: silence, no inference.
    case idle
}

/// How windows are classified: the service uses `topk`; the others reproduce the rows of the
/// results table (`model.mode`, `equivd replay --mode`, `hello.mode`).
public enum RecognitionMode: String, Codable, Sendable, CaseIterable {
    /// The frozen classifier on the window as heard.
    case vanilla
    /// The canonical pose only.
    case canon
    /// The canonical pose, the top-K shifts when the canonicalizer is unsure, abstain when the
    /// classifier still is.
    case topk
    /// The classifier averaged over every shift (the group-averaging baseline).
    case groupavg
    /// The canonical pose for what turns with the machine only: the part of the window that stays
    /// at its frequency is left in place, unless it moved too (a resampled recording); abstain when
    /// the classifier is unsure. Needs a bundle with a separator and FixedPose.
    case partial
}
