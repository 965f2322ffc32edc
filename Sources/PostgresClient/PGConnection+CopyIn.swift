import CLibPQ

extension PGConnection {
    /// Runs `COPY … FROM STDIN` (blocking connection): `sql` starts it, `data` is sent in
    /// chunks of at most `chunk` bytes, and the server's final answer (the rows it refused, a
    /// constraint, a malformed line) is thrown as a `PostgresError`.
    public func copyIn(_ sql: String, data: [UInt8], chunk: Int = 1 << 20) throws {
        let started = try execute(sql)
        guard started.status == PGRES_COPY_IN else {
            throw PostgresError(.queryFailed, "\(sql.prefix(40))… did not start a COPY FROM STDIN")
        }
        var offset = 0
        var failure: String?
        data.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { bytes in
                while offset < bytes.count {
                    let count = min(chunk, bytes.count - offset)
                    guard PQputCopyData(handle, bytes.baseAddress! + offset, Int32(count)) == 1 else {
                        failure = errorMessage
                        return
                    }
                    offset += count
                }
            }
        }
        if let failure {
            throw PostgresError(.connectionFailed, "lost the connection to PostgreSQL at \(target): \(failure)")
        }
        guard PQputCopyEnd(handle, nil) == 1 else {
            throw PostgresError(.connectionFailed, "lost the connection to PostgreSQL at \(target): \(errorMessage)")
        }
        // The COPY's own result, then nil.
        var firstError: (any Error)?
        while let raw = PQgetResult(handle) {
            do {
                _ = try check(PGResult(raw))
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        if let firstError { throw firstError }
    }
}
