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

    @Test func namedTemplatesAsGoDefinesThem() throws {
        // define + template, with and without an argument; $ is the argument inside.
        #expect(try render(#"{{define "row"}}<{{.}}>{{end}}{{range .List}}{{template "row" .}}{{end}}"#) == "<x><y>")
        #expect(try render(#"{{template "id" .}}{{define "id"}}{{$.ID}}/{{.Names}}{{end}}"#) == "abc/web")
        #expect(try render(#"{{define "none"}}[{{.}}]{{end}}{{template "none"}}"#) == "[<no value>]")
        // The caller's variables are not the named template's.
        #expect(failure(#"{{$v := 1}}{{define "t"}}{{$v}}{{end}}{{template "t"}}"#) == "template: 1:28: undefined variable \"$v\"")
        // block: defined and run in place; an empty define of the same name keeps it, a second body is an error.
        #expect(try render(#"{{block "state" .State}}pid {{.Pid}}{{end}}!"#) == "pid 42!")
        #expect(try render(#"{{block "b" .}}{{.ID}}{{end}}{{define "b"}} {{end}}"#) == "abc")
        #expect(failure(#"{{block "b" .}}x{{end}}{{define "b"}}y{{end}}"#) == "template: 1:24: template: multiple definition of template \"b\"")
        // A template may call itself, within a bound.
        #expect(try render(#"{{define "each"}}{{if .}}{{index . 0}};{{template "each" (slice . 1)}}{{end}}{{end}}{{template "each" .List}}"#) == "x;y;")
        #expect(failure(#"{{define "loop"}}{{template "loop" .}}{{end}}{{template "loop" .}}"#)?.contains("exceeded maximum template depth") == true)
        #expect(failure(#"{{template "missing"}}"#) == "template: 1:1: template \"missing\" not defined")
        #expect(failure(#"{{if .ID}}{{define "x"}}{{end}}{{end}}"#)?.contains("{{define}} inside another action") == true)
        #expect(failure(#"{{template .ID}}"#) == "template: 1:1: {{template}} needs a template name in quotes")
        #expect(failure(#"{{define "x"}}a"#) == "template: 1:1: unexpected EOF: missing {{end}}")
    }

    @Test func loopsStopAndSkip() throws {
        #expect(try render("{{range .List}}{{if eq . \"y\"}}{{break}}{{end}}{{.}}{{end}}|") == "x|")
        #expect(try render("{{range $i, $e := .List}}{{if eq $i 0}}{{continue}}{{end}}{{$e}}{{end}}") == "y")
        #expect(try render("{{range .List}}{{range $.List}}{{break}}{{end}}{{.}}{{end}}") == "xy")
        #expect(failure("{{break}}") == "template: 1:1: {{break}} outside {{range}}")
        #expect(failure(#"{{range .List}}{{define "d"}}{{continue}}{{end}}{{end}}"#) != nil)
    }

    @Test func andOrStopAtTheDecidingOperand() throws {
        // index on the empty list would fail: and never evaluates it.
        #expect(try render("{{if and .Labels.none (index .Labels.none 0)}}x{{else}}skipped{{end}}") == "skipped")
        #expect(try render("{{or .Empty .Names (index .List 9)}}") == "web")
        #expect(try render("{{and 1 0 2}} {{or 0 \"\"}} {{.Names | and 1}}") == "0  web")
    }

    @Test func goEscapers() throws {
        #expect(try render(#"{{html "<a href='x'>&\"</a>"}}"#) == "&lt;a href=&#39;x&#39;&gt;&amp;&#34;&lt;/a&gt;")
        #expect(try render(#"{{js "it's <b>\"x\"</b>=1\n"}}"#) == #"it\'s \u003Cb\u003E\"x\"\u003C/b\u003E\u003D1\u000A"#)
        #expect(try render(#"{{urlquery "a b&c=d/é"}} {{.Names | urlquery}}"#) == "a+b%26c%3Dd%2F%C3%A9 web")
    }

    @Test func goLiteralsIndexesAndVerbs() throws {
        #expect(try render("{{0x1F}} {{0o17}} {{017}} {{0b101}} {{1_000}} {{-0x10}} {{1e3}} {{'a'}}") == "31 15 15 5 1000 -16 1000 97")
        #expect(failure("{{1__0}}") == "template: 1:3: bad number syntax: \"1__0\"")
        #expect(failure("{{0x}}") == "template: 1:3: bad number syntax: \"0x\"")
        #expect(try render("{{index .Names 0}} {{index \"é\" 1}}") == "119 169", "a string's bytes")
        #expect(failure("{{index .Names 3}}") == "template: 1:3: index: index out of range: 3")
        #expect(try render("{{printf \"%c|%o|%b|%T|%T|%T\" 65 8 5 .Names .State.Pid .List}}") == "A|10|101|string|int|[]interface {}")
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
