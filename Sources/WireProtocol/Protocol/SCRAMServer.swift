import BridgeCore
import Crypto
import Foundation

/// What the server keeps of a SCRAM-SHA-256 password (RFC 5802 / RFC 7677), as PostgreSQL
/// stores it: never the password itself.
public struct SCRAMCredentials: Sendable {
    public let salt: [UInt8]
    public let iterations: Int
    public let storedKey: [UInt8]
    public let serverKey: [UInt8]

    public init(salt: [UInt8], iterations: Int, storedKey: [UInt8], serverKey: [UInt8]) {
        self.salt = salt
        self.iterations = iterations
        self.storedKey = storedKey
        self.serverKey = serverKey
    }

    /// Derives the keys from a password (done once per configured user at start-up).
    public init(password: String, salt: [UInt8], iterations: Int = 4096) {
        let salted = Self.pbkdf2(password: Array(password.utf8), salt: salt, iterations: iterations)
        let key = SymmetricKey(data: salted)
        let clientKey = Array(HMAC<SHA256>.authenticationCode(for: Array("Client Key".utf8), using: key))
        self.salt = salt
        self.iterations = iterations
        self.storedKey = Array(SHA256.hash(data: clientKey))
        self.serverKey = Array(HMAC<SHA256>.authenticationCode(for: Array("Server Key".utf8), using: key))
    }

    /// Hi() of RFC 5802: PBKDF2 with HMAC-SHA-256, one 32-byte block.
    static func pbkdf2(password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8] {
        let key = SymmetricKey(data: password)
        var block = Array(HMAC<SHA256>.authenticationCode(for: salt + [0, 0, 0, 1], using: key))
        var result = block
        for _ in 1..<max(iterations, 1) {
            block = Array(HMAC<SHA256>.authenticationCode(for: block, using: key))
            for index in result.indices { result[index] ^= block[index] }
        }
        return result
    }
}

/// The server side of one SCRAM-SHA-256 exchange (no channel binding, as PostgreSQL offers
/// `SCRAM-SHA-256` to clients on plain connections).
public struct SCRAMServerExchange: Sendable {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case malformed(String)
        case wrongPassword

        public var description: String {
            switch self {
            case .malformed(let what): return "malformed SCRAM message: \(what)"
            case .wrongPassword: return "password authentication failed"
            }
        }
    }

    let credentials: SCRAMCredentials
    let serverNonce: String
    var clientFirstBare = ""
    var serverFirst = ""
    var nonce = ""

    /// `serverNonce`: random printable characters (tests pass a fixed one).
    public init(credentials: SCRAMCredentials, serverNonce: String = SCRAMServerExchange.randomNonce()) {
        self.credentials = credentials
        self.serverNonce = serverNonce
    }

    public static func randomNonce() -> String {
        var generator = SystemRandomNumberGenerator()
        return Data((0..<18).map { _ in UInt8.random(in: 0...255, using: &generator) }).base64EncodedString()
    }

    /// client-first-message (`n,,n=…,r=…`) → server-first-message (`r=…,s=…,i=…`).
    public mutating func serverFirst(for clientFirst: String) throws(Failure) -> String {
        let parts = clientFirst.split(separator: ",", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "n" || parts[0] == "y", parts[1].isEmpty else {
            throw .malformed("expected a gs2 header without channel binding (n,,)")
        }
        clientFirstBare = String(parts[2])
        guard let clientNonce = Self.attribute("r", in: clientFirstBare), !clientNonce.isEmpty else {
            throw .malformed("client-first-message has no nonce")
        }
        nonce = clientNonce + serverNonce
        serverFirst = "r=\(nonce),s=\(Data(credentials.salt).base64EncodedString()),i=\(credentials.iterations)"
        return serverFirst
    }

    /// client-final-message (`c=biws,r=…,p=…`) → server-final-message (`v=…`), or
    /// `wrongPassword` when the proof does not match.
    public func serverFinal(for clientFinal: String) throws(Failure) -> String {
        guard let proofRange = clientFinal.range(of: ",p=") else {
            throw .malformed("client-final-message has no proof")
        }
        let withoutProof = String(clientFinal[..<proofRange.lowerBound])
        guard Self.attribute("c", in: withoutProof) == "biws" else {
            throw .malformed("channel binding is not supported (expected c=biws)")
        }
        guard Self.attribute("r", in: withoutProof) == nonce, !nonce.isEmpty else {
            throw .malformed("the nonce does not match")
        }
        guard let proof = Data(base64Encoded: String(clientFinal[proofRange.upperBound...])), proof.count == 32 else {
            throw .malformed("the proof is not 32 bytes of base64")
        }
        let authMessage = Array("\(clientFirstBare),\(serverFirst),\(withoutProof)".utf8)
        let clientSignature = Array(
            HMAC<SHA256>.authenticationCode(for: authMessage, using: SymmetricKey(data: credentials.storedKey)))
        let clientKey = zip(proof, clientSignature).map { $0 ^ $1 }
        let candidate = Array(SHA256.hash(data: clientKey))
        guard ConstantTime.equals(candidate, credentials.storedKey) else { throw .wrongPassword }
        let serverSignature = HMAC<SHA256>.authenticationCode(
            for: authMessage, using: SymmetricKey(data: credentials.serverKey))
        return "v=\(Data(serverSignature).base64EncodedString())"
    }

    static func attribute(_ name: Character, in message: String) -> String? {
        for part in message.split(separator: ",") where part.count >= 2 && part.first == name {
            let index = part.index(after: part.startIndex)
            if part[index] == "=" { return String(part[part.index(after: index)...]) }
        }
        return nil
    }
}
