import BridgeCore
import CRdKafka

extension KafkaSinkConfig {
    /// librdkafka's security settings (protocol, SASL, TLS) for producers and consumers alike.
    var securityProperties: [(String, String)] {
        var properties: [(String, String)] = []
        switch sasl {
        case .none:
            properties.append(("security.protocol", tls.enabled ? "ssl" : "plaintext"))
        case .plain, .scramSHA256, .scramSHA512:
            properties.append(("security.protocol", tls.enabled ? "sasl_ssl" : "sasl_plaintext"))
            let mechanism = ["plain": "PLAIN", "scram-sha-256": "SCRAM-SHA-256", "scram-sha-512": "SCRAM-SHA-512"]
            properties.append(("sasl.mechanisms", mechanism[sasl.rawValue]!))
            properties.append(("sasl.username", username))
            properties.append(("sasl.password", password))
        }
        if tls.enabled {
            if tls.skipVerifyServer {
                properties.append(("enable.ssl.certificate.verification", "false"))
                properties.append(("ssl.endpoint.identification.algorithm", "none"))
            }
            if !tls.caFile.isEmpty { properties.append(("ssl.ca.location", tls.caFile)) }
            if !tls.certFile.isEmpty { properties.append(("ssl.certificate.location", tls.certFile)) }
            if !tls.keyFile.isEmpty { properties.append(("ssl.key.location", tls.keyFile)) }
        }
        return properties
    }

    /// A property librdkafka refused: its name and librdkafka's reason (never the value, which
    /// may be a password).
    struct RejectedProperty: Error {
        let name: String
        let reason: String
    }

    /// A librdkafka configuration of `base`, then the security settings, then the user's
    /// `properties` (which win).
    func librdkafkaConfiguration(_ base: [(String, String)]) throws(RejectedProperty) -> OpaquePointer {
        let conf = rd_kafka_conf_new()!
        var error = [CChar](repeating: 0, count: 512)
        for (name, value) in base + securityProperties + properties.sorted(by: { $0.key < $1.key })
        where rd_kafka_conf_set(conf, name, value, &error, error.count) != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            throw RejectedProperty(name: name, reason: cString(error))
        }
        return conf
    }
}
