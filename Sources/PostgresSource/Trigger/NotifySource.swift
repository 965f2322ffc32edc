import BridgeCore
import Foundation
import Logging
import PostgresClient

/// Turns NOTIFYs on raw channels into `message` events (best effort: notifications sent while
/// pgbridge is not listening are lost, as NOTIFY itself guarantees nothing more).
public final class NotifySource: ThreadedChangeSource {
    let config: NotifySourceConfig
    let postgres: PostgresConfig
    let logger: Logger
    public let thread = SourceThread(name: "pgbridge-notify")

    public init(pipeName: String, config: NotifySourceConfig, postgres: PostgresConfig, logger: Logger) {
        self.config = config
        self.postgres = postgres
        self.logger = logger.forPipe(pipeName)
    }

    public func start() async throws {
        thread.start { [self] in run() }
    }

    private func run() {
        var sequence: UInt64 = 0
        // Ids are notify:<start time>.<sender pid>:<n>: unique across restarts of pgbridge.
        let started = Int64(Date().timeIntervalSince1970 * 1000)
        var counter = 0
        Reconnect.loop(
            thread, logger: logger, what: "notify listener", lostHint: "notifications sent meanwhile are lost"
        ) { connected in
            let connection = try PGConnection(url: postgres.url, mode: .normal)
            let database = try connection.execute("SELECT current_database()").string(0, 0) ?? ""
            for channel in config.channels { try connection.execute("LISTEN \(SQL.identifier(channel))") }
            connected()
            logger.info("listening for notifications", metadata: ["channels": "\(config.channels)"])
            while !thread.stopRequested {
                connection.waitReadable(timeout: .milliseconds(100))
                let notifications = try connection.notifications()
                guard !notifications.isEmpty else { continue }
                var batch = EventBatch()
                for notification in notifications {
                    counter += 1
                    Self.encode(
                        notification, database: database, session: started, ordinal: counter, into: &batch.bytes,
                        logger: logger)
                    batch.endEvent()
                }
                sequence += 1
                batch.sequence = sequence
                thread.put(batch)
            }
        }
    }

    /// `{"id":"notify:<start>.<pid>:<n>","op":"message","source":{"db","channel","pid","capture":"notify"},
    /// "key":null,"before":null,"after":<payload JSON object or {"payload": text}>}`
    static func encode(
        _ notification: PGConnection.Notification, database: String, session: Int64, ordinal: Int,
        into out: inout [UInt8],
        logger: Logger
    ) {
        JSONBytes.appendRaw("{\"id\":\"notify:", into: &out)
        JSONBytes.appendInt(session, into: &out)
        out.append(UInt8(ascii: "."))
        JSONBytes.appendInt(Int64(notification.backendPID), into: &out)
        out.append(UInt8(ascii: ":"))
        JSONBytes.appendInt(Int64(ordinal), into: &out)
        JSONBytes.appendRaw("\",\"op\":\"message\",\"source\":{\"db\":", into: &out)
        JSONBytes.appendString(database, into: &out)
        JSONBytes.appendRaw(",\"channel\":", into: &out)
        JSONBytes.appendString(notification.channel, into: &out)
        JSONBytes.appendRaw(",\"pid\":", into: &out)
        JSONBytes.appendInt(Int64(notification.backendPID), into: &out)
        JSONBytes.appendRaw(",\"capture\":\"notify\"},\"key\":null,\"before\":null,\"after\":", into: &out)
        let payload = notification.payload
        let isUTF8 = String(validating: payload, as: UTF8.self) != nil
        if isUTF8, let object = try? JSONSerialization.jsonObject(with: Data(payload), options: [.fragmentsAllowed]),
            object is [String: Any]
        {
            payload.withUnsafeBytes { JSONBytes.appendRawJSON($0, into: &out) }
        } else {
            if !isUTF8 {
                logger.warning(
                    "notification on channel \(notification.channel) is not valid UTF-8: delivered as text with U+FFFD replacements"
                )
            } else if let first = payload.first(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }),
                first == UInt8(ascii: "{") || first == UInt8(ascii: "[")
            {
                logger.warning(
                    "notification on channel \(notification.channel) looks like JSON but is not a JSON object: delivered as text in after.payload"
                )
            }
            JSONBytes.appendRaw("{\"payload\":", into: &out)
            payload.withUnsafeBytes { JSONBytes.appendString($0, into: &out) }
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "}"))
    }
}
