import EquivDSP
import EquivProtocol
import Foundation
import Synchronization

/// SIGHUP and `{"cmd":"reload"}`: the owner of the running configuration. A reload validates the
/// new configuration and bundle completely before swapping anything; on failure the running
/// ones stay. One reload at a time.
final class Reloader: Sendable {
    private let loadConfiguration: Daemon.ConfigurationLoader
    private let frontEnd: FrontEndParameters
    private let pipeline: Pipeline
    private let recorder: ClipRecorder
    private let notifier: SystemdNotifier
    /// The configuration serving now; held for the whole of a reload, so reloads never overlap.
    private let running: Mutex<ServiceConfiguration>

    init(
        running: ServiceConfiguration, loadConfiguration: @escaping Daemon.ConfigurationLoader, frontEnd: FrontEndParameters,
        pipeline: Pipeline, recorder: ClipRecorder, notifier: SystemdNotifier
    ) {
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
                let restartNeeded = running.source != fresh.source || running.socket != fresh.socket
                    || running.pipeline != fresh.pipeline
                running = fresh
                let models = recognition.modelIDs.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                return ReloadEvent(
                    ok: true,
                    message: "reloaded \(fresh.model.bundle) (\(models))"
                        + (restartNeeded ? "; changes to [source], [socket] or [pipeline] take effect after a restart" : ""))
            } catch {
                return ReloadEvent(ok: false, message: "\(error)")
            }
        }
    }
}
