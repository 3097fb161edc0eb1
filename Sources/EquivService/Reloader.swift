import CMalloc
import EquivDSP
import EquivProtocol
import Foundation
import Synchronization

/// SIGHUP and `{"cmd":"reload"}`: the owner of the running configuration. A reload validates the
/// new configuration and bundle completely before swapping anything; on failure the running
/// ones stay. One reload at a time. `[model]`, `[spool]` and `[log]` take effect at once; the
/// other sections are read at start only, and each reply says which of them wait for a restart.
final class Reloader: Sendable {
    private let loadConfiguration: Daemon.ConfigurationLoader
    private let frontEnd: FrontEndParameters
    private let pipeline: Pipeline
    private let recorder: ClipRecorder
    private let notifier: SystemdNotifier
    /// The configuration the process started with: what the parts a reload cannot change run on.
    private let started: ServiceConfiguration
    /// The configuration serving now; held for the whole of a reload, so reloads never overlap.
    private let running: Mutex<ServiceConfiguration>

    init(
        running: ServiceConfiguration, loadConfiguration: @escaping Daemon.ConfigurationLoader, frontEnd: FrontEndParameters,
        pipeline: Pipeline, recorder: ClipRecorder, notifier: SystemdNotifier
    ) {
        self.started = running
        self.running = Mutex(running)
        self.loadConfiguration = loadConfiguration
        self.frontEnd = frontEnd
        self.pipeline = pipeline
        self.recorder = recorder
        self.notifier = notifier
    }

    func reload() -> ReloadEvent {
        notifier.notify("RELOADING=1\nSTATUS=reloading")
        defer { notifier.notify("READY=1\nSTATUS=serving") }
        return running.withLock { running in
            do {
                let fresh = try loadConfiguration()
                let recognition = try Recognition(configuration: fresh.model, frontEnd: frontEnd)
                try recorder.replace(with: fresh.spool)
                pipeline.replaceRecognition(recognition)
                // The old bundle is freed once inference lets go of it (at most one window later):
                // hand its memory back too, so reloads leave the daemon at its steady size.
                pipeline.afterCurrentWindow { malloc_trim(0) }
                DaemonLog.setLevel(fresh.log.level)
                running = fresh
                let pending = sectionsNeedingRestart(fresh)
                return ReloadEvent(
                    ok: true,
                    message: "reloaded \(fresh.model.bundle) (\(recognition.describedModels))"
                        + (pending.isEmpty ? "" : "; changes to \(pending.joined(separator: ", ")) take effect after a restart"))
            } catch {
                return ReloadEvent(ok: false, message: "\(error)")
            }
        }
    }

    /// The sections whose keys differ from those the process started with and that only a
    /// restart applies; the notice stays on every reload until a restart.
    private func sectionsNeedingRestart(_ fresh: ServiceConfiguration) -> [String] {
        var sections: [String] = []
        if fresh.source != started.source { sections.append("[source]") }
        if fresh.pipeline != started.pipeline { sections.append("[pipeline]") }
        if fresh.socket != started.socket { sections.append("[socket]") }
        if fresh.http != started.http { sections.append("[http]") }
        if fresh.mqtt != started.mqtt { sections.append("[mqtt]") }
        return sections
    }
}
