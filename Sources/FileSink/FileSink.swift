import BridgeCore
import Dispatch
import Foundation
import Logging

/// Appends events as JSON lines to a file (or standard output for path `-`).
///
/// A delivery is acknowledged after the bytes are written and, for files, fsynced: one fsync
/// covers every transaction of the delivered batches. The descriptor is confined to the sink's
/// queue: writes never run on the cooperative pool.
public final class FileSink: EventSink {
    /// The open file, touched only on its queue.
    final class OpenFile {
        var descriptor: Int32 = -1
    }

    public let config: FileSinkConfig
    private let file = Confined(OpenFile(), label: "pgbridge.file-sink")
    private let logger: Logger

    public init(config: FileSinkConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    public var description: String { config.path == "-" ? "file:stdout" : "file:\(config.path)" }

    private var isStandardOutput: Bool { config.path == "-" }

    public func open() async throws {
        try await file.run { [self] file in
            if file.descriptor >= 0 { return }
            if isStandardOutput {
                file.descriptor = STDOUT_FILENO
                return
            }
            let fd = Foundation.open(config.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw SinkError(
                    sink: description,
                    message: "cannot open \(config.path) for appending: \(String(cString: strerror(errno))). "
                        + "Check the path and that its directory exists and is writable")
            }
            file.descriptor = fd
        }
    }

    /// Appends the batches; on any failure (a full disk, an I/O error) the file is cut back to
    /// where this delivery started, so no torn line stays in front of the retry. Failures are
    /// retried by the pipe without limit: it waits, logs, and goes on once there is space.
    public func deliver(_ batches: [EventBatch]) async throws -> DeliveryResult {
        try await file.run { [self] file in
            let descriptor = file.descriptor
            guard descriptor >= 0 else { throw SinkError(sink: description, message: "the sink is not open") }
            let start = isStandardOutput ? -1 : lseek(descriptor, 0, SEEK_END)
            do {
                for batch in batches where !batch.bytes.isEmpty {
                    // The pipe's output format when it is not native.
                    try writeAll(batch.bodies?.bytes ?? batch.bytes, to: descriptor)
                }
                if config.fsync && !isStandardOutput {
                    guard fsync(descriptor) == 0 else { throw failure("fsync failed") }
                }
            } catch {
                if start >= 0, ftruncate(descriptor, start) != 0 {
                    logger.error(
                        "cannot cut \(config.path) back to its last complete line (offset \(start)) after a failed write: \(String(cString: strerror(errno))); the file may hold a partial line"
                    )
                }
                throw error
            }
            return .delivered
        }
    }

    private func failure(_ what: String) -> SinkError {
        let code = errno
        let reason = String(cString: strerror(code))
        if code == ENOSPC || code == EDQUOT {
            return SinkError(
                sink: description,
                message:
                    "\(what): \(reason): the disk of \(config.path) is full; pgbridge retries until there is space again"
            )
        }
        return SinkError(sink: description, message: "\(what): \(reason)")
    }

    public func close() async {
        try? await file.run { [isStandardOutput] file in
            if file.descriptor >= 0 && !isStandardOutput {
                fsync(file.descriptor)
                Foundation.close(file.descriptor)
            }
            file.descriptor = -1
        }
    }

    private func writeAll(_ bytes: [UInt8], to descriptor: Int32) throws {
        try bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw failure("write failed")
                }
                offset += n
            }
        }
    }
}
