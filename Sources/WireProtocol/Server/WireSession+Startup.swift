import NIOCore

extension WireSession {
    /// Start-up and SCRAM-SHA-256 authentication (the answer to SSLRequest is written by the
    /// connection handler, which sees it first).
    func handleStartup(_ message: FrontendMessage, output: inout ByteBuffer) -> SessionAction {
        switch (phase, message) {
        case (.awaitingStartup, .startup(let parameters)):
            guard let user = parameters["user"], !user.isEmpty else {
                output.writeError(WireError("28000", "no PostgreSQL user name specified in startup packet"))
                return .close
            }
            if let encoding = parameters["client_encoding"],
                !["UTF8", "UTF-8", "UNICODE", "SQL_ASCII"].contains(encoding.uppercased())
            {
                output.writeError(
                    WireError(
                        "22023", "pgbridge speaks UTF8 only, not client_encoding \"\(encoding)\"",
                        hint: "connect with client_encoding=UTF8"))
                return .close
            }
            self.user = user
            let credentials = context.users[user]
            let exchange = SCRAMServerExchange(credentials: credentials ?? context.decoy(for: user))
            phase = .awaitingSASLInitial(user: user, exchange: exchange, known: credentials != nil)
            output.writeAuthentication(10, Array("SCRAM-SHA-256".utf8) + [0, 0])
            return .proceed
        case (.awaitingSASLInitial(let user, var exchange, let known), .authentication(var body)):
            guard let mechanism = try? FrontendDecoder.readCString(&body, "SASLInitialResponse"),
                let length: Int32 = body.readInteger()
            else {
                output.writeError(WireError("08P01", "malformed SASLInitialResponse message"))
                return .close
            }
            guard mechanism == "SCRAM-SHA-256" else {
                output.writeError(
                    WireError(
                        "28000", "SASL authentication mechanism \"\(mechanism)\" is not supported",
                        hint: "pgbridge offers SCRAM-SHA-256 only (channel binding is not supported)"))
                return .close
            }
            guard length >= 0, let data = body.readString(length: Int(length)) else {
                output.writeError(WireError("08P01", "malformed SASLInitialResponse message"))
                return .close
            }
            do throws(SCRAMServerExchange.Failure) {
                let serverFirst = try exchange.serverFirst(for: data)
                phase = .awaitingSASLFinal(user: user, exchange: exchange, known: known)
                output.writeAuthentication(11, Array(serverFirst.utf8))
                return .proceed
            } catch {
                output.writeError(WireError("08P01", error.description))
                return .close
            }
        case (.awaitingSASLFinal(let user, let exchange, let known), .authentication(var body)):
            let data = body.readString(length: body.readableBytes) ?? ""
            do throws(SCRAMServerExchange.Failure) {
                let serverFinal = try exchange.serverFinal(for: data)
                guard known else { throw SCRAMServerExchange.Failure.wrongPassword }
                output.writeAuthentication(12, Array(serverFinal.utf8))
                output.writeAuthentication(0)
                for (name, value) in WireSessionDefaults.parameters.sorted(by: { $0.key < $1.key }) {
                    output.writeParameterStatus(name, value)
                }
                output.writeParameterStatus("session_authorization", user)
                output.writeBackendKeyData(processID: key.processID, secretKey: key.secret)
                output.writeReadyForQuery(status.rawValue)
                phase = .ready
                catalog = context.catalog(for: user)
                logger.debug("wire: \(user) connected")
                return .proceed
            } catch .wrongPassword {
                logger.info("wire: password authentication failed for user \"\(user)\"")
                output.writeError(WireError("28P01", "password authentication failed for user \"\(user)\""))
                return .close
            } catch {
                output.writeError(WireError("08P01", error.description))
                return .close
            }
        case (_, .terminate):
            return .close
        default:
            output.writeError(WireError("08P01", "unexpected message during start-up"))
            return .close
        }
    }
}
