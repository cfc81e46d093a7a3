import HakoSystem
import Testing
@testable import HakoNetwork

@Suite struct DNSMessageTests {
    let records: [String: [IPv4Address]] = ["web": [IPv4Address("10.77.1.2")!, IPv4Address("10.77.2.2")!], "db.1": [IPv4Address("10.77.3.9")!]]

    @Test func queryAndAnswerBytes() throws {
        let q = try #require(DNSMessage.query(id: 0x1234, name: "Web."))
        #expect(hex(q) == Golden.dnsQuery)
        let parsed = try DNSMessage.parseQuery(q)
        #expect(parsed.question == DNSQuestion(name: "web", type: 1, qclass: 1) && parsed.id == 0x1234 && parsed.recursionDesired)
        guard case .reply(let a) = DNSResponder.decide(q, records: records, turn: 0, ttl: 0, forwarding: false) else {
            Issue.record("no reply"); return
        }
        #expect(hex(a) == Golden.dnsAnswer)
        let answer = try #require(DNSMessage.parseAnswer(a))
        #expect(answer.id == 0x1234 && answer.rcode == 0 && answer.addresses.map(\.description) == ["10.77.1.2", "10.77.2.2"])
    }

    @Test func roundRobinNXDomainAndNoData() throws {
        func ask(_ name: String, type: UInt16 = DNSMessage.typeA, turn: Int = 0, forwarding: Bool = false) -> DNSResponder.Decision {
            DNSResponder.decide(DNSMessage.query(id: 7, name: name, type: type)!, records: records, turn: turn, ttl: 0, forwarding: forwarding)
        }
        func answer(_ d: DNSResponder.Decision) -> (rcode: UInt16, addresses: [String])? {
            guard case .reply(let b) = d, let a = DNSMessage.parseAnswer(b) else { return nil }
            return (a.rcode, a.addresses.map(\.description))
        }
        #expect(answer(ask("web", turn: 1))?.addresses == ["10.77.2.2", "10.77.1.2"], "rotated on every query")
        #expect(answer(ask("web", turn: 2))?.addresses == ["10.77.1.2", "10.77.2.2"])
        #expect(answer(ask("DB.1"))?.addresses == ["10.77.3.9"])
        #expect(answer(ask("nothing.here"))?.rcode == 3, "NXDOMAIN")
        let aaaa = answer(ask("web", type: 28))
        #expect(aaaa?.rcode == 0 && aaaa?.addresses == [], "a known name of another type: NOERROR, no data")
        guard case .forward(let q) = ask("example.org", forwarding: true) else { Issue.record("not forwarded"); return }
        #expect(q.question.name == "example.org")
        #expect(answer(ask("web", forwarding: true))?.addresses.count == 2, "own names are never forwarded")
    }

    @Test func answersFitIn512Bytes() throws {
        let many = (0..<100).map { IPv4Address(0x0a4d_0000 | UInt32($0)) }
        let q = try DNSMessage.parseQuery(DNSMessage.query(id: 1, name: "big")!)
        let a = DNSMessage.answer(q, rcode: .noError, addresses: many, ttl: 0, recursionAvailable: false)
        #expect(a.count <= 512)
        #expect(DNSMessage.parseAnswer(a)?.addresses.count == (512 - 12 - q.questionBytes.count) / 16)
    }

    @Test func hostileInput() {
        let valid = DNSMessage.query(id: 9, name: "web")!
        // every truncation: FORMERR (a header) or nothing, never a crash
        for n in 0..<valid.count {
            switch DNSResponder.decide(Array(valid.prefix(n)), records: records, turn: 0, ttl: 0, forwarding: false) {
            case .drop: #expect(n < 12)
            case .reply(let b): #expect(n >= 12 && b.count == 12 && b[3] & 0xf == 1, "FORMERR")
            case .forward: Issue.record("forwarded a truncated query")
            }
        }
        let header: [UInt8] = [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        // a pointer to itself, a forward pointer, two pointers to each other
        #expect(throws: DNSMessage.ParseError.badName) { try DNSMessage.parseQuery(header + [0xc0, 12, 0, 1, 0, 1]) }
        #expect(throws: DNSMessage.ParseError.badName) { try DNSMessage.parseQuery(header + [0xc0, 14, 0, 0, 1, 0, 1]) }
        #expect(throws: DNSMessage.ParseError.badName) { try DNSMessage.parseQuery(header + [1, 0x61, 0xc0, 14, 0xc0, 12, 0, 1, 0, 1]) }
        // labels over 63 bytes (0x40 / 0x80 prefixes), names over 255 bytes
        #expect(throws: DNSMessage.ParseError.badName) { try DNSMessage.parseQuery(header + [0x40] + [UInt8](repeating: 0x61, count: 64) + [0, 0, 1, 0, 1]) }
        let long = (0..<5).flatMap { _ in [63] + [UInt8](repeating: 0x61, count: 63) }
        #expect(throws: DNSMessage.ParseError.badName) { try DNSMessage.parseQuery(header + long + [0, 0, 1, 0, 1]) }
        // answers and multi-question messages
        var answer = valid; answer[2] |= 0x80
        #expect(DNSResponder.decide(answer, records: records, turn: 0, ttl: 0, forwarding: true) == .drop, "answers are never answered")
        var two = valid; two[5] = 2
        if case .reply(let b) = DNSResponder.decide(two, records: records, turn: 0, ttl: 0, forwarding: false) { #expect(b[3] & 0xf == 1) }
        #expect(DNSMessage.encodeName(String(repeating: "a", count: 64)) == nil)
        // random bytes, bounded: any outcome but a crash or a forward of garbage with a bad name
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<5_000 {
            var b = (0..<Int.random(in: 0..<80, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if b.count > 5, Bool.random(using: &rng) { b[2] = 0; b[4] = 0; b[5] = 1 }
            if case .reply(let r) = DNSResponder.decide(b, records: records, turn: 0, ttl: 0, forwarding: false) { #expect(r.count <= 512) }
        }
    }
}
