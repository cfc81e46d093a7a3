import FoundationEssentials
@testable import HakoImage
import HakoSystem
import Testing

@Suite struct HealthCheckTests {
    @Test func goDurations() {
        #expect(GoDuration.parse("30s") == .seconds(30))
        #expect(GoDuration.parse("1m30s") == .seconds(90))
        #expect(GoDuration.parse("1.5s") == .milliseconds(1500))
        #expect(GoDuration.parse("500ms") == .milliseconds(500))
        #expect(GoDuration.parse("2h") == .seconds(7200))
        #expect(GoDuration.parse("10us") == .microseconds(10))
        #expect(GoDuration.parse("0") == .zero)
        #expect(GoDuration.parse("-1s") == .seconds(-1))
        for bad in ["", "30", "s", "1x", "1s2", "abc", "1.2.3s"] {
            #expect(GoDuration.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func dockerJSONRoundTrips() throws {
        let json = #"{"Test":["CMD-SHELL","curl -f http://localhost/ || exit 1"],"Interval":5000000000,"Timeout":3000000000,"StartPeriod":1000000000,"Retries":2}"#
        let h = try JSONDecoder().decode(HealthCheck.self, from: Data(json.utf8))
        #expect(h.test == .shell("curl -f http://localhost/ || exit 1"))
        #expect(h.interval == .seconds(5) && h.timeout == .seconds(3) && h.startPeriod == .seconds(1) && h.startInterval == .zero && h.retries == 2)
        #expect(h.command == ["/bin/sh", "-c", "curl -f http://localhost/ || exit 1"])
        let again = try JSONDecoder().decode(HealthCheck.self, from: JSONEncoder().encode(h))
        #expect(again == h)
        let none = try JSONDecoder().decode(HealthCheck.self, from: Data(#"{"Test":["NONE"]}"#.utf8))
        #expect(none.test == .none && none.command == nil)
        let exec = try JSONDecoder().decode(HealthCheck.self, from: Data(#"{"Test":["CMD","/bin/check","-q"]}"#.utf8))
        #expect(exec.command == ["/bin/check", "-q"])
        #expect(throws: (any Error).self) { try JSONDecoder().decode(HealthCheck.self, from: Data(#"{"Test":["BOGUS"]}"#.utf8)) }
        // An image config carries it under "Healthcheck".
        let config = try JSONDecoder().decode(ImageConfig.self, from: Data(#"{"Cmd":["sh"],"Healthcheck":{"Test":["CMD","true"]}}"#.utf8))
        #expect(config.healthcheck?.test == .exec(["true"]))
    }

    @Test func defaultsAndMerge() {
        let image = HealthCheck(test: .exec(["/ok"]), interval: .seconds(10), timeout: .seconds(2), retries: 5)
        let flags = HealthCheck(test: .inherit, interval: .seconds(1))
        let m = flags.merged(over: image)
        #expect(m.test == .exec(["/ok"]) && m.interval == .seconds(1) && m.timeout == .seconds(2) && m.retries == 5)
        let d = HealthCheck(test: .shell("true"))
        #expect(d.effectiveInterval == .seconds(30) && d.effectiveTimeout == .seconds(30))
        #expect(d.effectiveStartInterval == .seconds(5) && d.effectiveRetries == 3)
        #expect(HealthCheck(test: .none).merged(over: image).command == nil)
    }

    @Test func validation() {
        #expect(throws: HealthCheckError.self) { try HealthCheck(test: .shell("x"), interval: .seconds(-1)).validate() }
        #expect(throws: HealthCheckError.self) { try HealthCheck(test: .shell("x"), timeout: .microseconds(10)).validate() }
        #expect(throws: HealthCheckError.self) { try HealthCheck(test: .shell("x"), retries: -1).validate() }
        #expect(throws: HealthCheckError.self) { try HealthCheck(test: .exec([])).validate() }
        #expect(throws: Never.self) { try HealthCheck(test: .shell("x"), interval: .milliseconds(1)).validate() }
    }

    @Test func healthcheckInstruction() throws {
        var c = ImageConfig()
        try ConfigChange.apply(["HEALTHCHECK --interval=5s --timeout=2s --start-period=1m --start-interval=1s --retries=4 CMD wget -q -O- localhost"], to: &c)
        #expect(c.healthcheck == HealthCheck(test: .shell("wget -q -O- localhost"), interval: .seconds(5), timeout: .seconds(2),
                                             startPeriod: .seconds(60), startInterval: .seconds(1), retries: 4))
        try ConfigChange.apply([#"HEALTHCHECK CMD ["/bin/check", "a b"]"#], to: &c)
        #expect(c.healthcheck == HealthCheck(test: .exec(["/bin/check", "a b"])))
        try ConfigChange.apply(["HEALTHCHECK NONE"], to: &c)
        #expect(c.healthcheck?.test == HealthCheck.Test.none)
        for bad in ["HEALTHCHECK", "HEALTHCHECK CMD", "HEALTHCHECK --interval=5 CMD true", "HEALTHCHECK --bogus=1s CMD true",
                    "HEALTHCHECK --retries=x CMD true", "HEALTHCHECK RUN true", "HEALTHCHECK --interval CMD true",
                    "HEALTHCHECK --timeout=-1s CMD true"] {
            var x = ImageConfig()
            #expect(throws: ImageError.self, "\(bad)") { try ConfigChange.apply([bad], to: &x) }
        }
    }
}
