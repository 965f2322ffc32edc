import Foundation

/// Replaces a small state file so that a crash leaves either the old or the new contents:
/// write a temporary file, fsync it, rename it over the old one, fsync the directory.
public enum DurableFile {
    public static func replace(_ path: String, with bytes: some Collection<UInt8>) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw CheckpointError(path: temporary, operation: "create") }
        let contents = Array(bytes)
        var offset = 0
        var failed = false
        while offset < contents.count {
            let written = contents.withUnsafeBytes { write(fd, $0.baseAddress! + offset, contents.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                failed = true
                break
            }
            offset += written
        }
        let saveErrno = errno
        let synced = failed ? -1 : fsync(fd)
        close(fd)
        guard !failed, synced == 0 else {
            errno = saveErrno
            let error = CheckpointError(path: temporary, operation: "write")
            unlink(temporary)
            throw error
        }
        guard rename(temporary, path) == 0 else { throw CheckpointError(path: path, operation: "rename") }
        let directory = open((path as NSString).deletingLastPathComponent, O_RDONLY)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }
}
