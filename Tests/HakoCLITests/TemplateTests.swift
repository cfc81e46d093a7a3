import HakoCLI
import Testing

@Suite struct TemplateTests {
    static let row = """
        {"ID":"abc","Names":"web","Labels":{"a":"1","b":"2"},"State":{"Pid":42,"Running":true},"List":["x","y"],"F":1.5,"Empty":""}
        """

    func render(_ t: String) throws -> String { try Template(t).render(try TemplateValue(json: TemplateTests.row)) }

    func failure(_ t: String) -> String? {
        do { _ = try render(t); return nil } catch { return "\(error)" }
    }

    @Test func fieldsAndFunctionsAsDockerUsesThem() throws {
        #expect(try render("{{.Names}}") == "web")
        #expect(try render("{{.State.Pid}}") == "42")
        #expect(try render("{{json .State}}") == #"{"Pid":42,"Running":true}"#)
        #expect(try render("{{json .}}").hasPrefix(#"{"ID":"abc","Names":"web","#))
        #expect(try render("{{index .Labels \"b\"}}") == "2")
        #expect(try render("{{index .List 1}}") == "y")
        #expect(try render("{{join .List \", \"}}") == "x, y")
        #expect(try render("{{lower \"ABC\"}} {{upper .Names}} {{.Names | upper}}") == "abc WEB WEB")
        #expect(try render("{{printf \"%-6s|%5d|%.2f|%q\" .Names .State.Pid .F .ID}}") == "web   |   42|1.50|\"abc\"")
        #expect(try render("{{len .List}} {{len .Names}}") == "2 3")
        #expect(try render("{{split \"a:b\" \":\"}}") == "[a b]")
        #expect(try render("{{title \"hello world\"}}") == "Hello World")
        #expect(try render("{{.Labels.missing}}") == "<no value>")
        #expect(try render("{{.State}}") == "map[Pid:42 Running:true]")
        #expect(try render("{{.F}} {{.List}}") == "1.5 [x y]")
        #expect(try render("{{(index .List 0)}}{{print 1 2}}{{print \"a\" \"b\"}}") == "x1 2ab")
    }

    @Test func controlStructuresAndVariables() throws {
        #expect(try render("{{range .List}}[{{.}}]{{end}}") == "[x][y]")
        #expect(try render("{{range $i, $e := .List}}{{$i}}={{$e}} {{end}}") == "0=x 1=y ")
        #expect(try render("{{range $k, $v := .Labels}}{{$k}}:{{$v}};{{end}}") == "a:1;b:2;")
        #expect(try render("{{range .Labels.none}}x{{else}}none{{end}}") == "none")
        #expect(try render("{{if .State.Running}}up{{else}}down{{end}}") == "up")
        #expect(try render("{{if .Empty}}a{{else if eq .Names \"x\" \"web\"}}b{{else}}c{{end}}") == "b")
        #expect(try render("{{if and .State.Running (gt .State.Pid 10)}}big{{end}}") == "big")
        #expect(try render("{{if not .Empty}}empty{{end}}{{if ne .ID \"abc\"}}!{{end}}") == "empty")
        #expect(try render("{{with .State}}{{.Pid}}{{end}}{{with .Empty}}no{{else}}yes{{end}}") == "42yes")
        #expect(try render("{{$n := .Names}}{{range .List}}{{$n}}-{{.}} {{end}}{{$}}") .hasPrefix("web-x web-y map["))
        #expect(try render("a  {{- .Names -}}  b{{/* a comment */}}") == "awebb")
        #expect(try render("{{range .List}}{{.}}{{end}}\t{{.ID}}") == "xy\tabc")
    }

    @Test func errorsNameThePosition() {
        #expect(failure("{{.Nope}}")?.hasPrefix("template: 1:3: can't evaluate field Nope") == true)
        #expect(failure("{{.Names") == "template: 1:1: unclosed action")
        #expect(failure("ok {{foo .}}") == "template: 1:6: function \"foo\" not defined")
        #expect(failure("{{if .ID}}x") == "template: 1:1: unexpected EOF: missing {{end}}")
        #expect(failure("{{end}}") == "template: 1:1: unexpected {{end}}")
        #expect(failure("{{.Names 1}}") == "template: 1:3: can't give argument to non-function .Names")
        #expect(failure("line1\n  {{ .State.Pid.X }}") == "template: 2:6: can't evaluate field X in type int")
        #expect(failure("{{index .List 5}}") == "template: 1:3: index: index out of range: 5")
        #expect(failure("{{\"open}}") == "template: 1:3: unterminated quoted string")
        #expect(failure("{{$x}}") == "template: 1:3: undefined variable \"$x\"")
    }

    @Test func jsonRoundTrip() throws {
        let text = #"{"a":[1,2.5,true,null,"q\"\n\u00e9\u003c"],"b":{}}"#
        let v = try TemplateValue(json: text)
        #expect(v.json == #"{"a":[1,2.5,true,null,"q\"\né\u003c"],"b":{}}"#)
        #expect(throws: TemplateError.self) { try TemplateValue(json: "{\"a\":") }
        #expect(throws: TemplateError.self) { try TemplateValue(json: "[1] x") }
    }
}
