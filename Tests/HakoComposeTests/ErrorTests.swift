import Testing
@testable import HakoCompose

/// Every way a Compose file is refused, with the file, line and words the user sees.
@Suite struct ErrorTests {
    static func load(_ text: String, env: [String: String] = [:], files: [String: String] = [:]) throws(ComposeError) -> ComposeLoad {
        let loader = ComposeLoader(environment: env, projectDirectory: "/p") { files[$0] }
        return try loader.load([(name: "compose.yml", text: text)])
    }

    static func error(_ text: String, env: [String: String] = [:], files: [String: String] = [:]) -> String {
        do {
            _ = try load(text, env: env, files: files)
            return "no error"
        } catch {
            return error.description
        }
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var yaml: String
        var env: [String: String] = [:]
        var files: [String: String] = [:]
        var error: String
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "YAML syntax", yaml: """
            services:
              web:
                image: nginx
               ports: []
            """, error: "compose.yml:4: did not find expected key (while parsing a block mapping at line 2)"),
        Case(name: "tab indentation", yaml: "services:\n\tweb:\n", error: "compose.yml:2: found character that cannot start any token (while scanning for the next token at line 2)"),
        Case(name: "duplicate key", yaml: """
            services:
              web:
                image: nginx
                image: httpd
            """, error: "compose.yml:4: mapping key \"image\" already defined at line 3"),
        Case(name: "unknown anchor", yaml: """
            services:
              web: *nothing
            """, error: "compose.yml:2: unknown anchor \"nothing\" referenced"),
        Case(name: "merge of a scalar", yaml: """
            services:
              web:
                <<: nginx
            """, error: "compose.yml:3: a merge key (<<) takes a mapping or a list of mappings"),
        Case(name: "merge of a list with a scalar", yaml: "a: &a {x: 1}\nb:\n  <<: [*a, 2]\n",
             error: "compose.yml:3: a merge key (<<) takes a mapping or a list of mappings"),
        Case(name: "complex key", yaml: "services:\n  ? [a, b]\n  : x\n", error: "compose.yml:2: a mapping key must be a scalar"),
        Case(name: "two documents", yaml: "services: {}\n---\nservices: {}\n", error: "compose.yml:2: a Compose file holds one YAML document; found a second"),
        Case(name: "empty", yaml: "# nothing\n", error: "compose.yml: empty Compose file"),
        Case(name: "not a mapping", yaml: "- web\n", error: "compose.yml:1: expected a mapping, got a list"),
        Case(name: "version 2", yaml: "version: '2.4'\nservices: {}\n", error: "compose.yml:1: version: version \"2.4\" is not 3.x (stack deploy reads Compose file format 3)"),
        Case(name: "unknown top-level key", yaml: "version: '3'\nservice: {}\n", error: "compose.yml:2: service: unknown key (not a Compose 3.x key hako reads)"),
        Case(name: "unsupported service key", yaml: """
            services:
              web:
                image: nginx
                logging:
                  driver: syslog
            """, error: "compose.yml:4: services.web.logging: not supported by hako (see docs/compose.md)"),
        Case(name: "misspelt service key", yaml: """
            services:
              web:
                imag: nginx
            """, error: "compose.yml:3: services.web.imag: unknown key (not a Compose 3.x key hako reads)"),
        Case(name: "unsupported deploy key", yaml: """
            services:
              web:
                image: nginx
                deploy:
                  endpoint_mode: dnsrr
            """, error: "compose.yml:5: services.web.deploy.endpoint_mode: not supported by hako (see docs/compose.md)"),
        Case(name: "generic resources", yaml: """
            services:
              web:
                image: nginx
                deploy:
                  resources:
                    reservations:
                      generic_resources: []
            """, error: "compose.yml:7: services.web.deploy.resources.reservations.generic_resources: not supported by hako (see docs/compose.md)"),
        Case(name: "invalid service name", yaml: "services:\n  -web:\n    image: nginx\n", error: "compose.yml:2: services.-web: invalid service name (letters, digits, '-', '_', '.')"),
        Case(name: "no image", yaml: "services:\n  web:\n    build: .\n", error: "compose.yml:2: services.web: no image (stack deploy does not build images)"),
        Case(name: "replicas not a number", yaml: """
            services:
              web:
                image: nginx
                deploy:
                  replicas: two
            """, error: "compose.yml:5: services.web.deploy.replicas: expected an integer from 0 to 2147483647, got \"two\""),
        Case(name: "negative replicas", yaml: "services:\n  web:\n    image: nginx\n    deploy: {replicas: -1}\n",
             error: "compose.yml:4: services.web.deploy.replicas: expected an integer from 0 to 2147483647, got \"-1\""),
        Case(name: "mode", yaml: "services:\n  web:\n    image: nginx\n    deploy:\n      mode: everywhere\n",
             error: "compose.yml:5: services.web.deploy.mode: mode is replicated, global, replicated-job or global-job"),
        Case(name: "global with replicas", yaml: "services:\n  web:\n    image: nginx\n    deploy:\n      mode: global\n      replicas: 2\n",
             error: "compose.yml:4: services.web.deploy: replicas cannot be given with mode global"),
        Case(name: "image a list", yaml: "services:\n  web:\n    image: [nginx]\n", error: "compose.yml:3: services.web.image: expected a string, got a list"),
        Case(name: "image null", yaml: "services:\n  web:\n    image:\n", error: "compose.yml:3: services.web.image: expected a string, got null"),
        Case(name: "bad duration", yaml: "services:\n  web:\n    image: nginx\n    stop_grace_period: 10\n",
             error: "compose.yml:4: services.web.stop_grace_period: invalid duration \"10\" (e.g. 10s, 1m30s, 500ms)"),
        Case(name: "bad size", yaml: "services:\n  web:\n    image: nginx\n    deploy:\n      resources:\n        limits:\n          memory: lots\n",
             error: "compose.yml:7: services.web.deploy.resources.limits.memory: invalid size \"lots\" (e.g. 512m, 1g, 64MiB)"),
        Case(name: "bad cpus", yaml: "services:\n  web:\n    image: nginx\n    deploy:\n      resources:\n        limits:\n          cpus: half\n",
             error: "compose.yml:7: services.web.deploy.resources.limits.cpus: expected a non-negative number, got \"half\""),
        Case(name: "bad bool", yaml: "services:\n  web:\n    image: nginx\n    read_only: maybe\n",
             error: "compose.yml:4: services.web.read_only: expected true or false, got \"maybe\""),
        Case(name: "bad port", yaml: "services:\n  web:\n    image: nginx\n    ports:\n      - \"80:http\"\n",
             error: "compose.yml:5: services.web.ports[0]: invalid port \"80:http\": ports are 1–65535, ranges low-high"),
        Case(name: "port protocol", yaml: "services:\n  web:\n    image: nginx\n    ports: [\"80/sctp\"]\n",
             error: "compose.yml:4: services.web.ports[0]: invalid port \"80/sctp\": the protocol is tcp or udp"),
        Case(name: "port ranges", yaml: "services:\n  web:\n    image: nginx\n    ports: [\"8000-8002:80-81\"]\n",
             error: "compose.yml:4: services.web.ports[0]: invalid port \"8000-8002:80-81\": the published and target ranges differ in size"),
        Case(name: "long port without target", yaml: "services:\n  web:\n    image: nginx\n    ports:\n      - published: 80\n",
             error: "compose.yml:5: services.web.ports[0]: a port needs a target"),
        Case(name: "long port mode", yaml: "services:\n  web:\n    image: nginx\n    ports:\n      - target: 80\n        mode: mesh\n",
             error: "compose.yml:6: services.web.ports[0].mode: mode is ingress or host"),
        Case(name: "relative volume target", yaml: "services:\n  web:\n    image: nginx\n    volumes: [\"data:srv\"]\nvolumes: {data: }\n",
             error: "compose.yml:4: services.web.volumes[0]: invalid volume \"data:srv\": the target must be absolute"),
        Case(name: "volume mode", yaml: "services:\n  web:\n    image: nginx\n    volumes: [\"/a:/b:rx\"]\n",
             error: "compose.yml:4: services.web.volumes[0]: invalid volume \"/a:/b:rx\": unknown mode \"rx\""),
        Case(name: "undefined volume", yaml: "services:\n  web:\n    image: nginx\n    volumes:\n      - data:/srv\n",
             error: "compose.yml:5: services.web.volumes[0]: undefined volume \"data\" (declare it under the top-level volumes)"),
        Case(name: "undefined network", yaml: "services:\n  web:\n    image: nginx\n    networks: [front]\n",
             error: "compose.yml:4: services.web.networks[0]: undefined network \"front\" (declare it under the top-level networks)"),
        Case(name: "undefined secret", yaml: "services:\n  web:\n    image: nginx\n    secrets:\n      - source: pw\n        target: pw.txt\n",
             error: "compose.yml:5: services.web.secrets[0]: undefined secret \"pw\" (declare it under the top-level secrets)"),
        Case(name: "undefined config", yaml: "services:\n  web:\n    image: nginx\n    configs: [conf]\n",
             error: "compose.yml:4: services.web.configs[0]: undefined config \"conf\" (declare it under the top-level configs)"),
        Case(name: "volume with an empty part", yaml: "services:\n  web:\n    image: nginx\n    volumes: [\":/srv\"]\n",
             error: "compose.yml:4: services.web.volumes[0]: invalid volume \":/srv\": [SOURCE:]TARGET[:MODE]"),
        Case(name: "relative long mount target", yaml: "services:\n  web:\n    image: nginx\n    volumes:\n      - type: tmpfs\n        target: tmp\n",
             error: "compose.yml:5: services.web.volumes[0]: a mount needs an absolute target"),
        Case(name: "bind without a source", yaml: "services:\n  web:\n    image: nginx\n    volumes:\n      - type: bind\n        target: /t\n",
             error: "compose.yml:5: services.web.volumes[0]: a bind mount needs a source"),
        Case(name: "volume options on a bind", yaml: "services:\n  web:\n    image: nginx\n    volumes:\n      - {type: bind, source: /a, target: /t, volume: {nocopy: true}}\n",
             error: "compose.yml:5: services.web.volumes[0]: volume options on a bind mount"),
        Case(name: "tmpfs options on a volume", yaml: "services:\n  web:\n    image: nginx\n    volumes:\n      - {type: volume, target: /t, tmpfs: {size: 1m}}\n",
             error: "compose.yml:5: services.web.volumes[0]: tmpfs options on a volume mount"),
        Case(name: "tmpfs size", yaml: "services:\n  web:\n    image: nginx\n    volumes:\n      - type: tmpfs\n        target: /t\n        tmpfs:\n          size: big\n",
             error: "compose.yml:8: services.web.volumes[0].tmpfs.size: invalid size \"big\" (e.g. 512m, 1g, 64MiB)"),
        Case(name: "mount type", yaml: "services:\n  web:\n    image: nginx\n    volumes:\n      - type: npipe\n        target: /t\n",
             error: "compose.yml:5: services.web.volumes[0].type: type is volume, bind or tmpfs"),
        Case(name: "propagation", yaml: "services:\n  web:\n    image: nginx\n    volumes:\n      - type: bind\n        source: /a\n        target: /t\n        bind: {propagation: up}\n",
             error: "compose.yml:8: services.web.volumes[0].bind.propagation: invalid propagation \"up\""),
        Case(name: "long port out of range", yaml: "services:\n  web:\n    image: nginx\n    ports:\n      - target: 70000\n",
             error: "compose.yml:5: services.web.ports[0].target: expected an integer from 1 to 65535, got \"70000\""),
        Case(name: "long port protocol", yaml: "services:\n  web:\n    image: nginx\n    ports:\n      - {target: 80, protocol: sctp}\n",
             error: "compose.yml:5: services.web.ports[0].protocol: protocol is tcp or udp"),
        Case(name: "secret target path", yaml: "services:\n  web:\n    image: nginx\n    secrets:\n      - source: pw\n        target: /etc/pw\nsecrets:\n  pw: {file: pw}\n",
             error: "compose.yml:5: services.web.secrets[0]: a secret's target is a file name under /run/secrets"),
        Case(name: "secret without a source", yaml: "services:\n  web:\n    image: nginx\n    secrets:\n      - target: pw\n",
             error: "compose.yml:5: services.web.secrets[0]: a secret needs a source"),
        Case(name: "healthcheck disabled with a test", yaml: "services:\n  s:\n    image: x\n    healthcheck:\n      test: [CMD, true]\n      disable: true\n",
             error: "compose.yml:4: services.s.healthcheck: disable: true and a test"),
        Case(name: "network aliases", yaml: "services:\n  s:\n    image: x\n    networks:\n      front:\n        ipv4_address: 10.0.0.2\nnetworks: {front: }\n",
             error: "compose.yml:6: services.s.networks.front.ipv4_address: not supported by hako (see docs/compose.md)"),
        Case(name: "network driver", yaml: "services:\n  s: {image: x}\nnetworks:\n  front:\n    driver: bridge\n",
             error: "compose.yml:5: networks.front.driver: driver \"bridge\" is not supported: a stack's networks are cluster networks (driver overlay)"),
        Case(name: "network driver_opts", yaml: "networks:\n  front:\n    driver_opts:\n      encrypted: \"\"\n",
             error: "compose.yml:3: networks.front.driver_opts: not supported by hako (see docs/compose.md)"),
        Case(name: "internal network", yaml: "networks:\n  back:\n    internal: true\n",
             error: "compose.yml:3: networks.back.internal: internal networks are not supported by hako yet: a cluster network's containers always reach outside through their node"),
        Case(name: "two subnets", yaml: "networks:\n  back:\n    ipam:\n      config:\n        - subnet: 10.97.0.0/24\n        - subnet: 10.98.0.0/24\n",
             error: "compose.yml:6: networks.back.ipam.config[1]: a cluster network has one subnet (2 given)"),
        Case(name: "IPAM driver", yaml: "networks:\n  back:\n    ipam:\n      driver: dhcp\n",
             error: "compose.yml:4: networks.back.ipam.driver: IPAM driver \"dhcp\" is not supported (default)"),
        Case(name: "external network with settings", yaml: "networks:\n  shared:\n    external: true\n    attachable: true\n",
             error: "compose.yml:2: networks.shared: an external network takes no driver, attachable, labels or ipam: it exists already"),
        Case(name: "network aliases a string", yaml: "services:\n  s:\n    image: x\n    networks:\n      front:\n        aliases: www\nnetworks: {front: }\n",
             error: "compose.yml:6: services.s.networks.front.aliases: expected a list, got \"www\""),
        Case(name: "external with a bad key", yaml: "volumes:\n  v:\n    external:\n      id: x\n",
             error: "compose.yml:4: volumes.v.external.id: unknown key (not a Compose 3.x key hako reads)"),
        Case(name: "placement preference", yaml: "services:\n  s:\n    image: x\n    deploy:\n      placement:\n        preferences:\n          - pack: node.labels.rack\n",
             error: "compose.yml:7: services.s.deploy.placement.preferences[0].pack: unknown key (not a Compose 3.x key hako reads)"),
        Case(name: "services a list", yaml: "services:\n  - web\n", error: "compose.yml:1: services: expected a mapping, got a list"),
        Case(name: "mount without type", yaml: "services:\n  web:\n    image: nginx\n    volumes:\n      - target: /srv\n",
             error: "compose.yml:5: services.web.volumes[0]: a mount needs a type (volume, bind or tmpfs)"),
        Case(name: "tmpfs with a source", yaml: "services:\n  web:\n    image: nginx\n    volumes:\n      - type: tmpfs\n        source: x\n        target: /t\n",
             error: "compose.yml:5: services.web.volumes[0]: a tmpfs mount takes no source"),
        Case(name: "bind options on a volume", yaml: "services:\n  web:\n    image: nginx\n    volumes:\n      - type: volume\n        target: /t\n        bind:\n          propagation: shared\n",
             error: "compose.yml:5: services.web.volumes[0]: bind options on a volume mount"),
        Case(name: "secret mode", yaml: "services:\n  web:\n    image: nginx\n    secrets:\n      - source: pw\n        mode: rw\nsecrets:\n  pw: {file: pw}\n",
             error: "compose.yml:6: services.web.secrets[0].mode: invalid mode \"rw\" (e.g. 0440)"),
        Case(name: "secret with file and external", yaml: "services: {}\nsecrets:\n  pw:\n    file: ./pw\n    external: true\n",
             error: "compose.yml:3: secrets.pw: needs exactly one of file or external"),
        Case(name: "secret without either", yaml: "secrets:\n  pw: {}\n", error: "compose.yml:2: secrets.pw: needs exactly one of file or external"),
        Case(name: "secret driver", yaml: "secrets:\n  pw:\n    driver: vault\n", error: "compose.yml:3: secrets.pw.driver: not supported by hako (see docs/compose.md)"),
        Case(name: "external volume with a driver", yaml: "volumes:\n  data:\n    external: true\n    driver: local\n",
             error: "compose.yml:2: volumes.data: an external volume takes no driver, driver_opts or labels"),
        Case(name: "device", yaml: "services:\n  s:\n    image: x\n    devices: [\"i2c-1\"]\n",
             error: "compose.yml:4: services.s.devices[0]: invalid device \"i2c-1\": HOST[:CONTAINER[:PERMISSIONS]]"),
        Case(name: "device permissions", yaml: "services:\n  s:\n    image: x\n    devices: [\"/dev/i2c-1:/dev/i2c-1:rx\"]\n",
             error: "compose.yml:4: services.s.devices[0]: invalid device \"/dev/i2c-1:/dev/i2c-1:rx\": HOST[:CONTAINER[:PERMISSIONS]], permissions of r, w, m"),
        Case(name: "healthcheck test", yaml: "services:\n  s:\n    image: x\n    healthcheck:\n      test: [\"curl\", \"-f\"]\n",
             error: "compose.yml:5: services.s.healthcheck.test: a test list starts with CMD, CMD-SHELL or NONE"),
        Case(name: "restart condition", yaml: "services:\n  s:\n    image: x\n    deploy:\n      restart_policy:\n        condition: always\n",
             error: "compose.yml:6: services.s.deploy.restart_policy.condition: condition is none, on-failure or any"),
        Case(name: "update order", yaml: "services:\n  s:\n    image: x\n    deploy:\n      update_config:\n        order: random\n",
             error: "compose.yml:6: services.s.deploy.update_config.order: order is stop-first or start-first"),
        Case(name: "failure ratio", yaml: "services:\n  s:\n    image: x\n    deploy:\n      update_config:\n        max_failure_ratio: 2\n",
             error: "compose.yml:6: services.s.deploy.update_config.max_failure_ratio: max_failure_ratio is between 0 and 1"),
        Case(name: "unterminated quote in command", yaml: "services:\n  s:\n    image: x\n    command: sh -c \"echo\n",
             error: "compose.yml:4: services.s.command: unterminated double quote in \"sh -c \"echo\""),
        Case(name: "environment entry", yaml: "services:\n  s:\n    image: x\n    environment:\n      - =value\n",
             error: "compose.yml:5: services.s.environment[0]: expected KEY=VALUE, got \"=value\""),
        Case(name: "labels a string", yaml: "services:\n  s:\n    image: x\n    labels: a=b\n",
             error: "compose.yml:4: services.s.labels: expected a mapping or a list of KEY=VALUE, got \"a=b\""),
        Case(name: "required variable", yaml: "services:\n  s:\n    image: x:${TAG:?give TAG}\n",
             error: "compose.yml:3: required variable TAG is missing a value: give TAG"),
        Case(name: "required variable empty", yaml: "services:\n  s:\n    image: x:${TAG:?}\n", env: ["TAG": ""],
             error: "compose.yml:3: required variable TAG is missing a value"),
        Case(name: "invalid interpolation", yaml: "services:\n  s:\n    image: x\n    environment:\n      PRICE: 5$\n",
             error: "compose.yml:5: invalid interpolation format in \"5$\" (a literal $ is written $$)"),
        Case(name: "unclosed brace", yaml: "services:\n  s:\n    image: ${IMAGE\n",
             error: "compose.yml:3: invalid interpolation format in \"${IMAGE\" (a literal $ is written $$)"),
        Case(name: "missing env_file", yaml: "services:\n  s:\n    image: x\n    env_file: web.env\n",
             error: "compose.yml:2: services.s.env_file: /p/web.env does not exist"),
        Case(name: "bad env_file line", yaml: "services:\n  s:\n    image: x\n    env_file: web.env\n", files: ["/p/web.env": "A=1\n\nBAD KEY=2\n"],
             error: "/p/web.env:3: invalid variable name in \"BAD KEY=2\""),
        Case(name: "bad .env", yaml: "services: {}\n", files: ["/p/.env": "# vars\nJUSTANAME\n"],
             error: "/p/.env:2: \"JUSTANAME\" is not KEY=VALUE"),
    ]

    @Test(arguments: cases) func refused(_ c: Case) {
        #expect(ErrorTests.error(c.yaml, env: c.env, files: c.files) == c.error)
    }

    @Test func aliasBombIsBounded() {
        var text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1...9 { text += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n" }
        do {
            _ = try YAML.parse(text)
            Issue.record("a billion laughs parsed")
        } catch {
            #expect(error.message == "the document expands to more than 100000 nodes (aliases of aliases?)")
            #expect((4...10).contains(error.line))
        }
    }

    @Test func nestingIsBounded() {
        let text = String(repeating: "[", count: 150) + String(repeating: "]", count: 150)
        #expect(throws: YAMLError(line: 1, "nested deeper than 100 levels")) { try YAML.parse(text) }
    }

    @Test func errorsNameTheFileOfAMergedLoad() {
        let loader = ComposeLoader(environment: [:], projectDirectory: "/p") { _ in nil }
        #expect(throws: ComposeError(file: "override.yml", line: 3, "services.web.tty: not supported by hako (see docs/compose.md)")) {
            try loader.load([(name: "base.yml", text: "services:\n  web:\n    image: nginx\n"),
                             (name: "override.yml", text: "services:\n  web:\n    tty: true\n")])
        }
    }
}
