import CLibPQ

extension PGConnection {
    /// Runs `COPY … FROM STDIN` (blocking connection): `sql` starts it, `data` is sent in
    /// chunks of at most `chunk` bytes, and the server's final answer (the rows it refused, a
    /// constraint, a malformed line) is thrown as a `PostgresError`.
    public func copyIn(_ sql: String, data: [UInt8], chunk: Int = 1 << 20) throws {
        try copyIn(sql) { send in
            var offset = 0
            while offset < data.count {
                let count = min(chunk, data.count - offset)
                try send(data[offset..<(offset + count)])
                offset += count
            }
        }
    }

    /// Runs `COPY … FROM STDIN` with the data `produce` hands to its `send` as it goes, so the
    /// server converts the first rows while the next are written. When `produce` throws, the
    /// COPY is cancelled (nothing of it is stored) and its error is thrown.
    public func copyIn(
        _ sql: String, produce: (_ send: (ArraySlice<UInt8>) throws -> Void) throws -> Void
    ) throws {
        try startCopyIn(sql, produce: produce)
        try finishCopyIn()
    }

    /// The first half of `copyIn`: starts the COPY, sends what `produce` makes and ends the
    /// data, without waiting for the server to store it. The caller may compute meanwhile, and
    /// must call `finishCopyIn()` before anything else runs on the connection.
    public func startCopyIn(
        _ sql: String, produce: (_ send: (ArraySlice<UInt8>) throws -> Void) throws -> Void
    ) throws {
        let started = try execute(sql)
        guard started.status == PGRES_COPY_IN else {
            throw PostgresError(.queryFailed, "\(sql.prefix(40))… did not start a COPY FROM STDIN")
        }
        func send(_ data: ArraySlice<UInt8>) throws {
            guard !data.isEmpty else { return }
            let sent = data.withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { PQputCopyData(handle, $0.baseAddress!, Int32($0.count)) }
            }
            guard sent == 1 else {
                throw PostgresError(
                    .connectionFailed, "lost the connection to PostgreSQL at \(target): \(errorMessage)")
            }
        }
        var producerError: (any Error)?
        do {
            try produce(send)
        } catch let error as PostgresError where error.code == .connectionFailed {
            throw error
        } catch {
            producerError = error
        }
        guard PQputCopyEnd(handle, producerError == nil ? nil : "cancelled by pgbridge") == 1 else {
            throw PostgresError(.connectionFailed, "lost the connection to PostgreSQL at \(target): \(errorMessage)")
        }
        if let producerError {
            _ = try? finishCopyIn()
            throw producerError
        }
    }

    /// Waits for the COPY started by `startCopyIn` to be stored; throws what the server refused.
    public func finishCopyIn() throws {
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
