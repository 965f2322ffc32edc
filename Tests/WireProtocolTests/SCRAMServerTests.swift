import Foundation
import Testing

@testable import WireProtocol

@Suite("SCRAM-SHA-256 server")
struct SCRAMServerTests {
    /// RFC 7677, section 3: user "user", password "pencil".
    @Test func rfc7677Exchange() throws {
        let credentials = SCRAMCredentials(
            password: "pencil", salt: Array(Data(base64Encoded: "W22ZaJ0SNY7soEsUEjb6gQ==")!), iterations: 4096)
        var exchange = SCRAMServerExchange(credentials: credentials, serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
        let first = try exchange.serverFirst(for: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
        #expect(first == "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
        let final = try exchange.serverFinal(
            for:
                "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        )
        #expect(final == "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    }

    @Test func wrongProofsAndMalformedMessagesAreRefused() throws {
        let credentials = SCRAMCredentials(
            password: "other", salt: Array(Data(base64Encoded: "W22ZaJ0SNY7soEsUEjb6gQ==")!), iterations: 4096)
        var exchange = SCRAMServerExchange(credentials: credentials, serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
        _ = try exchange.serverFirst(for: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
        #expect(throws: SCRAMServerExchange.Failure.wrongPassword) {
            try exchange.serverFinal(
                for:
                    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
            )
        }
        for bad in ["", "p=tls-server-end-point,,n=,r=x", "n,,n=user", "garbage"] {
            var fresh = SCRAMServerExchange(credentials: credentials)
            #expect(throws: SCRAMServerExchange.Failure.self, "\(bad)") { try fresh.serverFirst(for: bad) }
        }
        #expect(throws: SCRAMServerExchange.Failure.self) {
            try exchange.serverFinal(for: "c=biws,r=someone-elses-nonce,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        }
        #expect(throws: SCRAMServerExchange.Failure.self) { try exchange.serverFinal(for: "c=biws,r=x") }
    }
}
