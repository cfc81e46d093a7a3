import Foundation
@testable import HakoImage
import Testing

/// Image configurations are read without Foundation's decoder: the reader
/// must read what the `Decodable` conformance reads, and refuse what it refuses.
@Suite struct OCIImageJSONTests {
    /// As Docker writes one (a build with HEALTHCHECK, EXPOSE, VOLUME, LABEL,
    /// SHELL, ONBUILD), with the nulls and unknown members found in the wild.
    static let docker = #"""
    {"architecture":"amd64","author":"hako","config":{"Hostname":"","Domainname":"","User":"www:www","AttachStdin":false,
    "ExposedPorts":{"80/tcp":{},"53/udp":{}},"Tty":false,"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","A=\u00e9\"q\""],
    "Cmd":["nginx","-g","daemon off;"],"Healthcheck":{"Test":["CMD-SHELL","wget -q -O- http://localhost/ || exit 1"],"Interval":5000000000,"Timeout":1000000000,"StartPeriod":2000000000,"StartInterval":500000000,"Retries":3},
    "Image":"sha256:aaaa","Volumes":{"/data":{},"/cache":{}},"WorkingDir":"/srv","Entrypoint":null,"OnBuild":["RUN echo hi"],
    "Labels":{"org.opencontainers.image.title":"web","empty":""},"StopSignal":"SIGQUIT","Shell":["/bin/bash","-c"]},
    "created":"2026-12-06T19:18:26.999406723Z","docker_version":"24.0.7",
    "history":[{"created":"2026-12-01T00:00:00Z","created_by":"/bin/sh -c #(nop) ADD file:abc in / "},
    {"created":"2026-12-01T00:00:01Z","created_by":"/bin/sh -c #(nop)  CMD [\"sh\"]","empty_layer":true,"comment":"c","author":"a"}],
    "os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:1111111111111111111111111111111111111111111111111111111111111111",
    "sha256:2222222222222222222222222222222222222222222222222222222222222222"]},"variant":null}
    """#

    static let minimal = #"""
    {"architecture":"arm","os":"linux","variant":"v7","rootfs":{"type":"layers","diff_ids":[]}}
    """#

    static let noChecks = #"""
    {"architecture":"arm64","os":"linux","config":{"Healthcheck":{"Test":["NONE"]},"Env":null,"Labels":null,"ExposedPorts":null,"Volumes":{"/v":1}},
    "history":null,"rootfs":{"type":"layers","diff_ids":["sha256:1111111111111111111111111111111111111111111111111111111111111111"]}}
    """#

    @Test(arguments: [docker, minimal, noChecks])
    func readsWhatTheDecoderReads(_ text: String) throws {
        let bytes = Array(text.utf8)
        let mine = try OCIImage.decode(bytes, what: "config")
        let theirs = try JSONDecoder().decode(OCIImage.self, from: Data(bytes))
        #expect(mine == theirs)
        // And what the store writes, read back.
        #expect(try OCIImage.decode(try CanonicalJSON.encode(mine), what: "config") == mine)
    }

    @Test func readsEveryField() throws {
        let c = try OCIImage.decode(Array(Self.docker.utf8), what: "config")
        #expect(c.author == "hako" && c.architecture == "amd64" && c.variant == nil)
        #expect(c.config?.exposedPorts == ["53/udp", "80/tcp"] && c.config?.volumes == ["/cache", "/data"])
        #expect(c.config?.env?.last == "A=é\"q\"" && c.config?.entrypoint == nil && c.config?.user == "www:www")
        #expect(c.config?.healthcheck?.test == .shell("wget -q -O- http://localhost/ || exit 1"))
        #expect(c.config?.healthcheck?.retries == 3 && c.config?.healthcheck?.startInterval == .milliseconds(500))
        #expect(c.config?.shell == ["/bin/bash", "-c"] && c.config?.onBuild == ["RUN echo hi"] && c.config?.stopSignal == "SIGQUIT")
        #expect(c.config?.labels?["empty"] == "" && c.history?.count == 2 && c.history?[1].emptyLayer == true)
        #expect(c.rootfs.diffIDs.count == 2)
    }

    @Test func refusesWhatTheDecoderRefuses() {
        let layers = #""rootfs":{"type":"layers","diff_ids":[]}"#
        let bad = [
            "not json",
            "[]",
            #"{"os":"linux",\#(layers)}"#,
            #"{"architecture":"amd64",\#(layers)}"#,
            #"{"architecture":"amd64","os":"linux"}"#,
            #"{"architecture":null,"os":"linux",\#(layers)}"#,
            #"{"architecture":1,"os":"linux",\#(layers)}"#,
            #"{"architecture":"amd64","os":"linux","rootfs":{"diff_ids":[]}}"#,
            #"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:11"]}}"#,
            #"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[null]}}"#,
            #"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":"x"}}"#,
            #"{"architecture":"amd64","os":"linux",\#(layers),"config":[]}"#,
            #"{"architecture":"amd64","os":"linux",\#(layers),"config":{"Env":"A=1"}}"#,
            #"{"architecture":"amd64","os":"linux",\#(layers),"config":{"Env":["A=1",null]}}"#,
            #"{"architecture":"amd64","os":"linux",\#(layers),"config":{"ExposedPorts":["80/tcp"]}}"#,
            #"{"architecture":"amd64","os":"linux",\#(layers),"config":{"Labels":{"a":1}}}"#,
            #"{"architecture":"amd64","os":"linux",\#(layers),"config":{"Healthcheck":{"Test":["BOGUS"]}}}"#,
            #"{"architecture":"amd64","os":"linux",\#(layers),"config":{"Healthcheck":{"Test":["CMD-SHELL"]}}}"#,
            #"{"architecture":"amd64","os":"linux",\#(layers),"config":{"Healthcheck":{"Test":["NONE"],"Interval":"5s"}}}"#,
            #"{"architecture":"amd64","os":"linux",\#(layers),"config":{"Healthcheck":{"Test":["NONE"],"Retries":1.5}}}"#,
            #"{"architecture":"amd64","os":"linux",\#(layers),"history":[null]}"#,
            #"{"architecture":"amd64","os":"linux",\#(layers),"history":[{"empty_layer":"yes"}]}"#,
        ]
        for text in bad {
            let bytes = Array(text.utf8)
            #expect((try? JSONDecoder().decode(OCIImage.self, from: Data(bytes))) == nil, "the decoder refuses \(text)")
            #expect(throws: ImageError.self, "refused: \(text)") { try OCIImage.decode(bytes, what: "config") }
        }
    }

    @Test func anErrorNamesTheConfigAndTheField() {
        let text = #"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"Env":["A",2]}}"#
        #expect(throws: ImageError.invalidManifest("image config x is not valid: expected a string at config.Env[1]")) {
            try OCIImage.decode(Array(text.utf8), what: "image config x", as: ImageError.invalidManifest)
        }
    }
}
