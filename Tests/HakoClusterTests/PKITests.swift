import Foundation
@testable import HakoCluster
import HakoSystem
import Testing

@Suite struct PKITests {
    let now = Timestamp.now().secondsSince1970

    @Test func issuesAndVerifies() throws {
        let ca = try CertificateAuthority.create(clusterID: "c1", now: now)
        let key = try PrivateKey.generate()
        let cert = try ca.issue(request: try CertificateRequest(key: key), commonName: "node-1", role: .node, notBefore: now - 60, notAfter: now + 3600)
        try cert.verify(against: ca.certificate)
        #expect(cert.commonName == "node-1" && cert.role == "node" && cert.organization == "hako-cluster-c1")
        #expect(cert.publicKeyMatches(key))
        #expect(abs(cert.notAfter - (now + 3600)) < 2)
        #expect(cert.serial.count >= 30 && cert.serial != ca.certificate.serial)
        // PEM round trips.
        let again = try Certificate(pem: try cert.pem())
        #expect(again.fingerprint == cert.fingerprint && again.fingerprint.count == 64)
        #expect(try PrivateKey(pem: try key.pem()).pem() == (try key.pem()))
    }

    @Test func refusesOtherCAAndExpired() throws {
        let ca = try CertificateAuthority.create(clusterID: "c1", now: now)
        let other = try CertificateAuthority.create(clusterID: "c2", now: now)
        let key = try PrivateKey.generate()
        let foreign = try other.issue(key: key, commonName: "n", role: .node, notBefore: now - 60, notAfter: now + 60)
        #expect(throws: ClusterError.self) { try foreign.verify(against: ca.certificate) }
        let expired = try ca.issue(key: key, commonName: "n", role: .node, notBefore: now - 7200, notAfter: now - 3600)
        #expect(throws: ClusterError.self) { try expired.verify(against: ca.certificate) }
    }

    @Test func aRequestMustBeSignedByItsKey() throws {
        #expect(throws: ClusterError.self) { try CertificateRequest(pem: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n") }
        let good = try CertificateRequest(key: try PrivateKey.generate())
        #expect(throws: Never.self) { try good.verifiedPublicKey() }
        // The same request with one bit of its signature flipped: it parses, but proves nothing.
        let pem = try good.pem()
        let body = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        var der = [UInt8](try #require(Data(base64Encoded: body)))
        der[der.count - 3] ^= 0x01
        let forged = "-----BEGIN CERTIFICATE REQUEST-----\n" + Data(der).base64EncodedString(options: .lineLength64Characters)
            + "\n-----END CERTIFICATE REQUEST-----\n"
        let ca = try CertificateAuthority.create(clusterID: "c1", now: now)
        #expect(throws: ClusterError.self) {
            _ = try ca.issue(request: try CertificateRequest(pem: forged), commonName: "n", role: .node, notBefore: now, notAfter: now + 60)
        }
    }

    @Test func joinTokens() throws {
        let t = JoinToken.make(caFingerprint: String(repeating: "ab", count: 32))
        let parsed = try JoinToken(parsing: t.description)
        #expect(parsed == t)
        #expect(t.description.hasPrefix("HKT1-abab"))
        #expect(throws: ClusterError.self) { try JoinToken(parsing: "HKT1-xyz") }
        #expect(throws: ClusterError.self) { try JoinToken(parsing: t.description.replacingLast("0", "z")) }
        #expect(PKI.constantTimeEqual("abc", "abc") && !PKI.constantTimeEqual("abc", "abd") && !PKI.constantTimeEqual("ab", "abc"))
    }
}

extension String {
    func replacingLast(_ a: Character, _ b: Character) -> String {
        var c = Array(self)
        if let i = c.lastIndex(where: { $0 != b }) { c[i] = b }
        return String(c)
    }
}
