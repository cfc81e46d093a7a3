import HakoSystem
import Testing
@testable import HakoNetwork

@Suite struct PortSpecTests {
    @Test func dockerForms() throws {
        #expect(try PortBinding.parse("80") == [PortBinding(proto: .tcp, hostIP: nil, hostPort: 0, containerPort: 80)])
        #expect(try PortBinding.parse("8080:80") == [PortBinding(proto: .tcp, hostIP: nil, hostPort: 8080, containerPort: 80)])
        #expect(try PortBinding.parse("127.0.0.1:8080:80/udp") == [PortBinding(proto: .udp, hostIP: IPv4Address("127.0.0.1"), hostPort: 8080, containerPort: 80)])
        #expect(try PortBinding.parse("127.0.0.1::80") == [PortBinding(proto: .tcp, hostIP: IPv4Address("127.0.0.1"), hostPort: 0, containerPort: 80)])
        let range = try PortBinding.parse("8000-8002:80-82/tcp")
        #expect(range.map(\.hostPort) == [8000, 8001, 8002] && range.map(\.containerPort) == [80, 81, 82])
        #expect(try PortBinding.parse("8080:80").first?.description == "0.0.0.0:8080->80/tcp")
    }

    @Test func badFormsSayWhy() {
        for (bad, why) in [("99999:80", "not a port"), ("abc", "not a port"), ("0:80", "not a port"), ("80/sctp", "unknown protocol"),
                           ("1.2.3:80:80", "not an IPv4 address"), ("8000-8002:80-81", "the host range has 3 ports"),
                           ("90-80", "empty range"), ("1:2:3:4", "expected"), ("", "not a port")] {
            do {
                _ = try PortBinding.parse(bad)
                Issue.record("accepted \(bad)")
            } catch let e as HakoError {
                #expect(e.message.hasPrefix("invalid -p \"\(bad)\""), "\(e.message)")
                #expect(e.message.contains(why), "\(bad): \(e.message)")
            } catch { Issue.record("\(error)") }
        }
    }

    @Test func clashes() {
        let any = PortBinding(proto: .tcp, hostIP: nil, hostPort: 80, containerPort: 1)
        let lo = PortBinding(proto: .tcp, hostIP: IPv4Address("127.0.0.1"), hostPort: 80, containerPort: 2)
        let other = PortBinding(proto: .tcp, hostIP: IPv4Address("10.0.0.1"), hostPort: 80, containerPort: 3)
        let udp = PortBinding(proto: .udp, hostIP: nil, hostPort: 80, containerPort: 4)
        #expect(any.clashes(with: lo) && lo.clashes(with: any))
        #expect(!lo.clashes(with: other))
        #expect(!any.clashes(with: udp))
        #expect(PortBinding.exposed("53/udp")! == (53, .udp))
        #expect(PortBinding.exposed("8080")! == (8080, .tcp))
        #expect(PortBinding.exposed("x/tcp") == nil)
    }
}

@Suite struct IPAMTests {
    let net = IPv4Network("10.88.0.0/29")!  // hosts .1 … .6
    var gw: IPv4Address { net.defaultGateway }

    @Test func firstFreeSkipsTheGatewayAndLeases() throws {
        #expect(try IPAM.allocate(in: net, gateway: gw, leased: [], requested: nil, networkName: "n").description == "10.88.0.2")
        let leased: Set<IPv4Address> = [IPv4Address("10.88.0.2")!, IPv4Address("10.88.0.3")!]
        #expect(try IPAM.allocate(in: net, gateway: gw, leased: leased, requested: nil, networkName: "n").description == "10.88.0.4")
        #expect(try IPAM.allocate(in: net, gateway: gw, leased: leased, requested: IPv4Address("10.88.0.6"), networkName: "n").description == "10.88.0.6")
    }

    @Test func exhaustionAndBadRequestsAreClearErrors() {
        let all = Set((2...6).map { IPv4Address(0x0a58_0000 | UInt32($0)) })
        #expect(throws: HakoError.self) { try IPAM.allocate(in: net, gateway: gw, leased: all, requested: nil, networkName: "n") }
        do { _ = try IPAM.allocate(in: net, gateway: gw, leased: all, requested: nil, networkName: "n") } catch let e as HakoError {
            #expect(e.message == "no address left on network n (10.88.0.0/29): every one of its 6 addresses is in use")
        } catch {}
        for (r, why) in [("10.88.0.7", "not a host address"), ("10.88.0.0", "not a host address"), ("10.89.0.2", "not a host address"),
                         ("10.88.0.1", "gateway"), ("10.88.0.3", "already in use")] {
            do {
                _ = try IPAM.allocate(in: net, gateway: gw, leased: [IPv4Address("10.88.0.3")!], requested: IPv4Address(r), networkName: "n")
                Issue.record("accepted \(r)")
            } catch let e as HakoError { #expect(e.message.contains(why), "\(r): \(e.message)") } catch {}
        }
    }

    @Test func linkNamesFitTheKernelsLimit() {
        let id = String(repeating: "ab", count: 32)
        #expect(RouteRequest.isValidLinkName(LinkNames.bridge(networkID: id)))
        #expect(RouteRequest.isValidLinkName(LinkNames.hostVeth(containerID: id, index: 9)))
        #expect(LinkNames.hostVeth(containerID: id, index: 0) != LinkNames.hostVeth(containerID: id, index: 1))
    }
}
