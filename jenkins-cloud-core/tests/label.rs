//! Label expressions: the parser cases of Jenkins core's
//! `test/src/test/java/hudson/model/labels/LabelExpressionTest.java`, plus
//! precedence, canonical output, matching and error reporting.

use jenkins_cloud_core::label::{LabelExpr, LabelParseError, LabelSet};

fn parse(s: &str) -> LabelExpr {
    s.parse()
        .unwrap_or_else(|e: LabelParseError| panic!("{s:?} should parse: {e}"))
}

fn err(s: &str) -> LabelParseError {
    match s.parse::<LabelExpr>() {
        Ok(e) => panic!("{s:?} should fail to parse, got {e:?}"),
        Err(e) => e,
    }
}

fn a(name: &str) -> LabelExpr {
    LabelExpr::atom(name)
}

/// `parseAndVerify(expected, expr)`: `Label.parseExpression(expr).getName()`.
fn parse_and_verify(expected: &str, expr: &str) {
    assert_eq!(
        parse(expr).to_string(),
        expected,
        "canonical form of {expr:?}"
    );
}

#[test]
fn jenkins_parser1() {
    parse_and_verify("foo", "foo");
    parse_and_verify("32bit.dot", "32bit.dot");
    parse_and_verify("foo||bar", "foo || bar");
    // user-given parenthesis is preserved
    parse_and_verify("foo||bar&&zot", "foo||bar&&zot");
    parse_and_verify("foo||(bar&&zot)", "foo||(bar&&zot)");
    parse_and_verify("(foo||bar)&&zot", "(foo||bar)&&zot");
    parse_and_verify("(foo||bar)&&zot", "  ( foo || bar )  && zot");
    parse_and_verify("foo->bar", "foo ->\tbar");
    parse_and_verify("foo->bar", "foo -> bar");
    parse_and_verify("foo->bar", "   foo \t\t ->   bar \t ");
    parse_and_verify("!foo<->bar", "!foo <-> bar");
}

#[test]
fn jenkins_parser2_jenkins_8537() {
    parse_and_verify("aaa&&bbb&&ccc", "aaa&&bbb&&ccc");
    assert_eq!(parse("aaa&&bbb&&ccc"), a("aaa").and(a("bbb")).and(a("ccc")));
}

#[test]
fn jenkins_parser_error() {
    // (input, Jenkins' message, our position). Positions are Jenkins' column,
    // except for `a -< b`: ANTLR lexes two tokens ahead and reports the bad
    // `<` at 3, we report the first problem from the left: the stray `-` at 2.
    let cases = [
        (
            "foo bar",
            "line 1:4: extraneous input 'bar' expecting <EOF>",
            4,
        ),
        (
            "foo (bar)",
            "line 1:4: mismatched input '(' expecting {<EOF>, ...}",
            4,
        ),
        (
            "foo(bar)",
            "line 1:3: mismatched input '(' expecting {<EOF>, ...}",
            3,
        ),
        ("a <- b", "line 1:2: token recognition error at: '<- '", 2),
        ("a -< b", "line 1:3: token recognition error at: '< '", 2),
        (
            "a - b",
            "line 1:2: mismatched input '-' expecting {<EOF>, ...}",
            2,
        ),
        (
            "->",
            "line 1:0: mismatched input '->' expecting {'!', '(', ATOM, ...}",
            0,
        ),
        ("-<", "line 1:1: token recognition error at: '<'", 1),
        ("-!", "line 1:1: extraneous input '!' expecting <EOF>", 1),
    ];
    for (input, jenkins, position) in cases {
        let e = err(input);
        assert_eq!(
            e.position(),
            position,
            "{input:?} (Jenkins: {jenkins}): {e}"
        );
        assert_eq!(e.input(), input);
    }
    assert_eq!(
        err("foo bar").to_string(),
        "label expression `foo bar`: expected an operator (`&&`, `||`, `->` or `<->`) \
         or end of input at position 4, found `bar`"
    );
    assert_eq!(err("a <- b").expected(), "`<->`");
    assert_eq!(err("a <- b").found(), "`<-`");
    assert_eq!(err("->").expected(), "a label, `!` or `(`");
}

#[test]
fn jenkins_lax_parsing() {
    let input = "lucene.zones.apache.org (Solaris 10)";
    assert!(input.parse::<LabelExpr>().is_err());
    let l = LabelExpr::parse_lax(input);
    assert_eq!(l, a(input));
    assert_eq!(l.to_string(), "\"lucene.zones.apache.org (Solaris 10)\"");
}

#[test]
fn jenkins_data_compatibility_with_host_name_with_whitespace() {
    let l = LabelExpr::parse_lax("abc def");
    assert_eq!(l, a("abc def"));
    assert_eq!(l.to_string(), "\"abc def\"");
    // the persisted expression reads back to the same label
    assert_eq!(LabelExpr::parse_lax("\"abc def\""), l);
    assert_eq!(parse("\"abc def\""), l);
    assert_eq!(LabelExpr::parse_lax("a:b c"), a("a:b c"));
}

#[test]
fn jenkins_quote() {
    // Java literal "\"abc\\\\\\\"def\""
    let input = r#""abc\\\"def""#;
    assert_eq!(LabelExpr::parse_lax(input), a(r#"abc\"def"#));
    assert_eq!(parse(input), a(r#"abc\"def"#));
    assert_eq!(parse(input).to_string(), input);
    // getLabel unquotes first, so this is the expression label1||label2
    let l = LabelExpr::parse_lax("\"label1||label2\"");
    assert_eq!(l, a("label1").or(a("label2")));
    assert_eq!(l.to_string(), "label1||label2");
    // ... whereas the parser reads a quoted literal as one atom
    assert_eq!(parse("\"label1||label2\""), a("label1||label2"));
    assert_eq!(
        parse("\"label1||label2\"").to_string(),
        "\"label1||label2\""
    );
}

#[test]
fn jenkins_composite() {
    let x = || a("x");
    assert_eq!(x().or(x()).and(x()).to_string(), "(x||x)&&x");
    assert_eq!(x().and(x()).or(x()).to_string(), "x&&x||x");
    // Jenkins prints `!!x`, which its grammar rejects; we print a parsable form.
    assert_eq!(err("!!x").position(), 1);
    assert_eq!((!!x()).to_string(), "!(!x)");
    assert_eq!(parse("!(!x)"), !(!x()).paren());
}

#[test]
fn jenkins_dash_and_expression_shapes() {
    for atom in [
        "solaris-x86",
        "a",
        "abc123def",
        "a-b",
        "--a----b-c-",
        "--",
        "-",
        "-1",
        "-abc-",
    ] {
        assert_eq!(parse(atom), a(atom), "{atom:?} is one atom");
        assert_eq!(parse(atom).to_string(), atom);
    }
    assert_eq!(parse("a-->b"), a("a-").implies(a("b")));
    assert_eq!(parse("a->-b"), a("a").implies(a("-b")));
    assert!(matches!(parse("a -> b"), LabelExpr::Implies(..)));
    assert!(matches!(parse("a->b"), LabelExpr::Implies(..)));
    assert!(matches!(parse("a && b"), LabelExpr::And(..)));
    assert!(matches!(parse("a&&b"), LabelExpr::And(..)));
    assert_eq!(parse("a-->b").to_string(), "a-->b");
}

#[test]
fn jenkins_parse_label() {
    let result = LabelSet::parse("one two three");
    for e in ["one", "two", "three"] {
        assert!(result.contains(e));
    }
    assert_eq!(result.len(), 3);
}

#[test]
fn precedence_from_highest_not_and_or_implies_iff() {
    assert_eq!(parse("a || b && c"), a("a").or(a("b").and(a("c"))));
    assert_eq!(parse("a && b || c"), a("a").and(a("b")).or(a("c")));
    assert_eq!(parse("!a && b"), (!a("a")).and(a("b")));
    assert_eq!(parse("a -> b || c"), a("a").implies(a("b").or(a("c"))));
    assert_eq!(parse("a || b -> c"), a("a").or(a("b")).implies(a("c")));
    assert_eq!(parse("a <-> b -> c"), a("a").iff(a("b").implies(a("c"))));
    assert_eq!(
        parse("a -> b <-> c -> d"),
        a("a").implies(a("b")).iff(a("c").implies(a("d")))
    );
    // left-associative chains
    assert_eq!(parse("a <-> b <-> c"), a("a").iff(a("b")).iff(a("c")));
    assert_eq!(parse("a || b || c"), a("a").or(a("b")).or(a("c")));
    assert_eq!(parse("!(a || b)"), !a("a").or(a("b")).paren());
    assert_eq!(parse("((a))"), a("a").paren().paren());
    assert_eq!(parse("((a))").to_string(), "((a))");
}

#[test]
fn implication_does_not_chain() {
    let e = err("a -> b -> c");
    assert_eq!(e.position(), 7);
    assert_eq!(
        e.expected(),
        "an operator (`&&`, `||` or `<->`) or end of input"
    );
    assert!(e.found().contains("cannot be chained"), "{e}");
    assert_eq!(
        err("(a -> b -> c)").expected(),
        "an operator (`&&`, `||` or `<->`) or `)`"
    );
    assert_eq!(
        parse("(a -> b) -> c"),
        a("a").implies(a("b")).paren().implies(a("c"))
    );
    assert_eq!(
        parse("a -> (b -> c)"),
        a("a").implies(a("b").implies(a("c")).paren())
    );
    assert_eq!(parse("a->b<->c->d<->e").to_string(), "a->b<->c->d<->e");
}

#[test]
fn quoted_atoms() {
    assert_eq!(parse(r#""a b" && c"#), a("a b").and(a("c")));
    assert_eq!(parse(r#""""#), a(""));
    assert_eq!(parse(r#""""#).to_string(), r#""""#);
    assert_eq!(parse(r#""x\ty\n\"'\\""#), a("x\ty\n\"'\\"));
    assert_eq!(parse(r#""a'b""#).to_string(), r#""a'b""#);
    assert_eq!(parse(r#""a.""#).to_string(), r#""a.""#);
    assert_eq!(parse(r#""plain""#).to_string(), "plain");
    assert_eq!(parse(r#"!"a&&b""#), !a("a&&b"));
    let e = err(r#""a\qb""#);
    assert_eq!((e.position(), e.found()), (2, r"`\q`"));
    let e = err(r#"x && "abc"#);
    assert_eq!((e.position(), e.found()), (9, "end of input"));
    assert!(e.expected().contains("opened at position 5"), "{e}");
    assert_eq!(err("\"a\nb\"").found(), "a line break");
    // an atom directly followed by a literal is juxtaposition
    assert_eq!(err(r#"a"b""#).position(), 1);
}

#[test]
fn whitespace_is_space_and_tab_only() {
    // As in Jenkins' lexer: a newline is an atom character.
    assert_eq!(parse("a\nb"), a("a\nb"));
    assert_eq!(parse("a\nb").to_string(), "\"a\\nb\"");
    assert_eq!(parse("a\u{a0}b"), a("a\u{a0}b"));
    assert_eq!(parse("ünïcødé && 日本"), a("ünïcødé").and(a("日本")));
}

#[test]
fn empty_and_blank_input() {
    // Label.parseExpression("") throws: mismatched input '<EOF>'.
    let e = err("");
    assert_eq!((e.position(), e.found()), (0, "end of input"));
    assert_eq!(err(" \t ").position(), 3);
    // A job's blank label field means "any node".
    assert_eq!(LabelExpr::parse_optional(""), Ok(None));
    assert_eq!(LabelExpr::parse_optional(" \t\r\n "), Ok(None));
    assert_eq!(
        LabelExpr::parse_optional("\n linux && docker \n"),
        Ok(Some(parse("linux&&docker")))
    );
    // trimmed like Java's String.trim(), so a trailing newline is not an atom character here
    assert_eq!(LabelExpr::parse_optional("a\n"), Ok(Some(a("a"))));
    let e = LabelExpr::parse_optional("\n\n  a ||  \n").unwrap_err();
    assert_eq!(e.position(), 8);
    assert_eq!(e.input(), "\n\n  a ||  \n");
}

#[test]
fn error_messages_name_position_expected_and_found() {
    assert_eq!(
        err("a && ").to_string(),
        "label expression `a && `: expected a label, `!` or `(` at position 5, found end of input"
    );
    let e = err("(a || b");
    assert_eq!((e.position(), e.found()), (7, "end of input"));
    assert_eq!(
        e.expected(),
        "an operator (`&&`, `||`, `->` or `<->`) or `)`"
    );
    let e = err("a)");
    assert_eq!(e.position(), 1);
    assert_eq!(e.found(), "`)` without a matching `(`");
    assert_eq!((err("()").position(), err("()").found()), (1, "`)`"));
    assert_eq!(
        (err("a & b").position(), err("a & b").expected()),
        (2, "`&&`")
    );
    assert_eq!(
        (err("a | b").position(), err("a | b").expected()),
        (2, "`||`")
    );
    assert_eq!(err("a > b").position(), 2);
    assert!(err("'a'").found().contains("single quotes"));
    assert_eq!(err("!").expected(), "a label or `(`");
    assert_eq!(err("! && a").position(), 2);
    // positions count characters, not bytes
    assert_eq!(err("ünï && ").position(), 7);
    // control characters are escaped in the message
    assert_eq!(
        err("a\u{1} b").to_string(),
        "label expression `a\\u{1} b`: expected an operator (`&&`, `||`, `->` or `<->`) \
         or end of input at position 3, found `b`"
    );
}

fn set(s: &str) -> LabelSet {
    LabelSet::parse(s)
}

#[test]
fn truth_tables() {
    let sets = [set(""), set("a"), set("b"), set("a b")];
    let table = |expr: &str| -> Vec<bool> { sets.iter().map(|s| parse(expr).matches(s)).collect() };
    //                                  {}     {a}    {b}    {a,b}
    assert_eq!(table("a"), [false, true, false, true]);
    assert_eq!(table("!a"), [true, false, true, false]);
    assert_eq!(table("a && b"), [false, false, false, true]);
    assert_eq!(table("a || b"), [false, true, true, true]);
    assert_eq!(table("a -> b"), [true, false, true, true]);
    assert_eq!(table("a <-> b"), [true, false, false, true]);
    assert_eq!(table("(a)"), [false, true, false, true]);
    assert_eq!(table("!(a && b)"), [true, true, true, false]);
    assert_eq!(table("!a -> b"), [false, true, true, true]);
    // (a<->b)<->a == b
    assert_eq!(table("a <-> b <-> a"), table("b"));
    assert_eq!(table("(a -> b) -> a"), table("a"));
    assert_eq!(table("a -> (b -> a)"), [true; 4]);
}

#[test]
fn matching_is_exact_and_case_sensitive() {
    let agent = set("Linux docker x86_64");
    assert!(parse("Linux").matches(&agent));
    assert!(!parse("linux").matches(&agent));
    assert!(!parse("dock").matches(&agent));
    assert!(parse("Linux && docker && !arm64").matches(&agent));
    assert!(!parse("Linux && (arm64 || windows)").matches(&agent));
    assert!(!parse("Linux").matches(&LabelSet::new()));
    assert!(parse("!Linux").matches(&LabelSet::new()));
    let mut with_self = agent.clone();
    assert!(!parse("agent-7").matches(&agent));
    assert!(with_self.insert("agent-7"));
    assert!(!with_self.insert("agent-7"));
    assert!(parse("agent-7").matches(&with_self));
}

#[test]
fn atoms_are_listed_once_left_to_right() {
    assert_eq!(
        parse("b && (a || !b) -> \"c d\" <-> a").atoms(),
        ["b", "a", "c d"]
    );
    assert_eq!(parse("x").atoms(), ["x"]);
}

#[test]
fn label_set_parse_is_quoted_string_tokenizer() {
    let labels = |s: &str| set(s).iter().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(labels("  b\ta\r\nc  "), ["a", "b", "c"]);
    assert_eq!(labels("b a b"), ["a", "b"]);
    assert_eq!(labels(r#""big disk" 'it"s' x"#), ["big disk", "it\"s", "x"]);
    assert_eq!(labels(r#"ab"c d"e"#), ["abc de"]);
    assert_eq!(
        labels(r#"a\"b a\ b c\d \e"#),
        ["\\e", "a b", "a\"b", "c\\d"]
    );
    assert_eq!(labels(r#""" x"#), ["", "x"]);
    assert_eq!(labels("\"unterminated label"), ["unterminated label"]);
    assert_eq!(labels("trailing\\"), ["trailing"]);
    assert_eq!(labels("\""), Vec::<String>::new());
    assert!(set("").is_empty() && set(" \t\n").is_empty());
    // case-sensitive, so both stay
    assert_eq!(set("A a").len(), 2);
}

#[test]
fn label_set_display_and_collect() {
    let s: LabelSet = ["linux", "big disk", "", "it's", "a\\b", "linux"]
        .into_iter()
        .collect();
    assert_eq!(s.len(), 5);
    assert_eq!(s.to_string(), r#""" "a\\b" "big disk" "it's" linux"#);
    assert_eq!(LabelSet::parse(&s.to_string()), s);
    let owned: LabelSet = vec!["b".to_owned(), "a".to_owned()].into_iter().collect();
    assert_eq!(owned.iter().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!((&owned).into_iter().rev().collect::<Vec<_>>(), ["b", "a"]);
    let mut extended = owned.clone();
    extended.extend(["c".to_owned(), "a".to_owned()]);
    assert_eq!(extended.to_string(), "a b c");
    assert_eq!(LabelSet::default().to_string(), "");
}

#[test]
fn serde_round_trips() {
    let e = parse("linux && ( docker || \"big disk\" )");
    let json = serde_json::to_string(&e).unwrap();
    assert_eq!(json, r#""linux&&(docker||\"big disk\")""#);
    assert_eq!(serde_json::from_str::<LabelExpr>(&json).unwrap(), e);
    let bad = serde_json::from_str::<LabelExpr>(r#""a -> b -> c""#).unwrap_err();
    assert!(bad.to_string().contains("at position 7"), "{bad}");
    assert!(serde_json::from_str::<LabelExpr>(r#""""#).is_err());
    assert!(serde_json::from_str::<LabelExpr>("42").is_err());

    let s = set("x \"y z\"");
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<LabelSet>(&json).unwrap(), s);
    assert_eq!(
        serde_json::from_str::<LabelSet>(r#"["y z", "x"]"#).unwrap(),
        s
    );

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct T {
        #[serde(default, with = "jenkins_cloud_core::label::blank_as_none")]
        label: Option<LabelExpr>,
    }
    let t: T = serde_json::from_str(r#"{"label": null}"#).unwrap();
    assert_eq!(t.label, None);
    let t: T = serde_json::from_str(r#"{"label": " a||b "}"#).unwrap();
    assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"label":"a||b"}"#);
    let bad = serde_json::from_str::<T>(r#"{"label": "a ||"}"#).unwrap_err();
    assert!(bad.to_string().contains("at position 4"), "{bad}");
}
