#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import HakoSystem

/// A TLS failure the clock caused, said in words. A Raspberry Pi has no
/// real-time clock: booted without a network (or before NTP answered) it
/// believes it is the time it was shut down, or 1970, and every certificate
/// looks expired or not valid yet. OpenSSL says only "certificate has
/// expired"; these say which clock to look at.
public enum TLSClock {
    /// Words for a verification result caused by the time, with the
    /// certificate's validity when known; nil for any other result.
    public static func explain(verifyResult v: Int, notBefore: Double?, notAfter: Double?, now: Timestamp = .now()) -> String? {
        let here = "this machine's clock says \(day(Double(now.seconds)))"
        switch Int32(v) {
        case X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CRL_NOT_YET_VALID:
            let from = notBefore.map { " until \(day($0))" } ?? ""
            return "the certificate is not valid yet\(from) and \(here): this clock is probably behind (a Raspberry Pi has no real-time clock; see hako doctor, timedatectl)"
        case X509_V_ERR_CERT_HAS_EXPIRED, X509_V_ERR_CRL_HAS_EXPIRED:
            let to = notAfter.map { " on \(day($0))" } ?? ""
            return "the certificate expired\(to) and \(here): if the clock is right, the certificate needs renewing; if not, set the clock (hako doctor, timedatectl)"
        default:
            return nil
        }
    }

    /// Words for this machine's own certificate when the clock puts it outside
    /// its validity (the peer would refuse it, and say so only in its own log);
    /// nil while it is valid. `rejoin` says how to get a new one.
    public static func ownCertificate(notBefore: Double, notAfter: Double, now: Timestamp = .now(), rejoin: String) -> String? {
        let t = Double(now.seconds)
        let here = "this machine's clock says \(day(t))"
        if t < notBefore {
            return "this node's certificate is not valid until \(day(notBefore)) and \(here): the clock is probably behind (a Raspberry Pi has no real-time clock; see hako doctor)"
        }
        if t > notAfter {
            return "this node's certificate expired on \(day(notAfter)) and \(here): if the clock is wrong, set it (hako doctor); if it is right, \(rejoin)"
        }
        return nil
    }

    /// The validity of the peer's certificate on a session, when it is known:
    /// a client keeps the chain the server sent even when it failed
    /// verification; a server keeps nothing of a client certificate it refused.
    static func peerValidity(_ ssl: OpaquePointer?) -> (notBefore: Double?, notAfter: Double?) {
        guard let ssl else { return (nil, nil) }
        var leaf = SSL_get0_peer_certificate(ssl)
        if leaf == nil, let chain = SSL_get_peer_cert_chain(ssl), hako_x509_stack_count(chain) > 0 { leaf = hako_x509_stack_at(chain, 0) }
        guard let x = leaf else { return (nil, nil) }
        return (Certificate.seconds(X509_get0_notBefore(x)), Certificate.seconds(X509_get0_notAfter(x)))
    }

    /// 2026-12-06 01:04:06 UTC
    static func day(_ seconds: Double) -> String {
        let t = Timestamp(seconds: Int64(seconds)).rfc3339
        return t.prefix(10) + " " + t.dropFirst(11).prefix(8) + " UTC"
    }
}
