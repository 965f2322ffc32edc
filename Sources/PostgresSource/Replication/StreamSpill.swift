import Foundation
import PostgresClient

/// Disk spill for transactions the server streams before they commit (pgoutput `streaming`).
///
/// Each top-level transaction gets one file of length-prefixed raw pgoutput messages. Nothing is
/// emitted before Stream Commit, so an aborted transaction never reaches a sink, and memory stays
/// bounded whatever the transaction's size. A subtransaction abort truncates the file back to the
/// subtransaction's first message (as PostgreSQL's own apply worker does).
package final class StreamSpill {
    private final class SpillFile {
        let path: String
        let fd: Int32
        var buffer: [UInt8] = []
        var size: Int = 0
        /// (subtransaction xid, offset of its first message), in arrival order.
        var subtransactions: [(xid: UInt32, offset: Int)] = []

        init(path: String) throws {
            self.path = path
            fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
            guard fd >= 0 else {
                throw PostgresError(
                    .protocolViolation,
                    "cannot create spill file \(path): \(String(cString: strerror(errno))). Check that state_dir is writable",
                    retriable: false)
            }
            buffer.reserveCapacity(1 << 20)
        }

        deinit {
            close(fd)
            unlink(path)
        }

        func flush() throws {
            guard !buffer.isEmpty else { return }
            let written = buffer.withUnsafeBytes { raw in
                var done = 0
                while done < raw.count {
                    let n = pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(size - buffer.count + done))
                    if n <= 0 { return -1 }
                    done += n
                }
                return done
            }
            guard written == buffer.count else {
                let code = errno
                if code == ENOSPC || code == EDQUOT {
                    // The server sends the transaction again after a reconnect: wait for space.
                    throw PostgresError(
                        .connectionFailed,
                        "the disk of state_dir is full: cannot write spill file \(path) (\(String(cString: strerror(code)))). "
                            + "Free space there; pgbridge retries and receives the transaction again", retriable: true)
                }
                throw PostgresError(
                    .protocolViolation, "cannot write spill file \(path): \(String(cString: strerror(code)))",
                    retriable: false)
            }
            buffer.removeAll(keepingCapacity: true)
        }
    }

    private let directory: String
    private var files: [UInt32: SpillFile] = [:]

    package init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // Leftovers of a previous run belong to transactions the server will stream again.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        where name.hasSuffix(".spill") {
            unlink((directory as NSString).appendingPathComponent(name))
        }
    }

    var openTransactionCount: Int { files.count }

    /// Appends one message of top-level transaction `xid`; `messageXid` is the (sub)transaction
    /// xid carried by the message itself.
    func append(xid: UInt32, messageXid: UInt32?, lsn: UInt64, message: UnsafeRawBufferPointer) throws {
        let file: SpillFile
        if let existing = files[xid] {
            file = existing
        } else {
            file = try SpillFile(path: (directory as NSString).appendingPathComponent("\(xid).spill"))
            files[xid] = file
        }
        if let messageXid, messageXid != xid, !file.subtransactions.contains(where: { $0.xid == messageXid }) {
            file.subtransactions.append((messageXid, file.size))
        }
        var length = UInt32(message.count + 8).bigEndian
        withUnsafeBytes(of: &length) { file.buffer.append(contentsOf: $0) }
        var position = lsn.bigEndian
        withUnsafeBytes(of: &position) { file.buffer.append(contentsOf: $0) }
        file.buffer.append(contentsOf: message)
        file.size += 12 + message.count
        if file.buffer.count >= 1 << 20 { try file.flush() }
    }

    /// Stream Abort: drops the whole transaction, or one subtransaction and everything after it.
    func abort(xid: UInt32, subtransaction: UInt32) throws {
        guard let file = files[xid] else { return }
        if subtransaction == xid {
            files[xid] = nil
            return
        }
        guard let index = file.subtransactions.firstIndex(where: { $0.xid == subtransaction }) else { return }
        try file.flush()
        let offset = file.subtransactions[index].offset
        file.subtransactions.removeSubrange(index...)
        ftruncate(file.fd, off_t(offset))
        file.size = offset
    }

    /// Stream Commit: hands every spilled message (with its WAL position) to `body` in order,
    /// then deletes the file.
    func replay(xid: UInt32, _ body: (UInt64, UnsafeRawBufferPointer) throws -> Void) throws {
        guard let file = files.removeValue(forKey: xid) else { return }
        try file.flush()
        var position = 0
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while position < file.size {
            var header = [UInt8](repeating: 0, count: 4)
            guard pread(file.fd, &header, 4, off_t(position)) == 4 else {
                throw PostgresError(.protocolViolation, "spill file \(file.path) is truncated", retriable: true)
            }
            let length = Int(
                UInt32(header[0]) << 24 | UInt32(header[1]) << 16 | UInt32(header[2]) << 8 | UInt32(header[3]))
            position += 4
            if length > chunk.count { chunk = [UInt8](repeating: 0, count: length) }
            var read = 0
            while read < length {
                let n = chunk.withUnsafeMutableBytes {
                    pread(file.fd, $0.baseAddress! + read, length - read, off_t(position + read))
                }
                guard n > 0 else {
                    throw PostgresError(.protocolViolation, "spill file \(file.path) is truncated", retriable: true)
                }
                read += n
            }
            position += length
            guard length >= 8 else {
                throw PostgresError(.protocolViolation, "spill file \(file.path) is corrupt", retriable: true)
            }
            try chunk.withUnsafeBytes { raw in
                let lsn = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
                try body(lsn, UnsafeRawBufferPointer(rebasing: raw[8..<length]))
            }
        }
    }

    /// Forgets every open transaction (after a reconnect the server streams them again).
    func discardAll() { files.removeAll() }
}
