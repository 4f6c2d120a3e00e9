//! Property-style and robustness tests for label expressions and sets.

use super::*;

/// Atom names that exercise quoting and lexing corner cases.
const NAMES: &[&str] = &[
    "a",
    "b",
    "linux",
    "x86_64",
    "32bit.dot",
    "a-b",
    "a-",
    "-",
    "--",
    "-1",
    "a.b",
    "ünï",
    "日本",
    "",
    "a b",
    "a\tb",
    "nl\n",
    "cr\r",
    "ctl\u{1}",
    "del\u{7f}",
    "\u{85}",
    "a\"b",
    "it's",
    "a\\b",
    "semi;colon",
    "dot.",
    ".",
    "..",
    "->",
    "<->",
    "&&",
    "||",
    "!",
    "(x)",
    "a>b",
    "a<b",
    "f\u{c}b\u{8}",
    "nbsp\u{a0}",
    "q?",
    "*",
    "/",
    "%",
    "@",
    "#",
    "$",
    "^",
    "[",
    "]",
    ":",
];

fn gen_atom(rng: &mut fastrand::Rng) -> LabelExpr {
    LabelExpr::atom(NAMES[rng.usize(..NAMES.len())])
}

/// Generates trees exactly in the shape the grammar produces (see parse.rs):
/// `level` 1 = term1 (iff chain) … 6 = term6 (atom or parenthesis).
fn gen_grammar(rng: &mut fastrand::Rng, level: u8, budget: &mut u32) -> LabelExpr {
    if *budget == 0 {
        return gen_atom(rng);
    }
    *budget -= 1;
    let chain = |rng: &mut fastrand::Rng,
                 budget: &mut u32,
                 next: u8,
                 op: fn(LabelExpr, LabelExpr) -> LabelExpr| {
        let mut e = gen_grammar(rng, next, budget);
        for _ in 0..rng.usize(0..3) {
            e = op(e, gen_grammar(rng, next, budget));
        }
        e
    };
    match level {
        1 => chain(rng, budget, 2, LabelExpr::iff),
        2 => {
            let l = gen_grammar(rng, 3, budget);
            if rng.bool() {
                l.implies(gen_grammar(rng, 3, budget))
            } else {
                l
            }
        }
        3 => chain(rng, budget, 4, LabelExpr::or),
        4 => chain(rng, budget, 5, LabelExpr::and),
        5 => {
            let base = gen_grammar(rng, 6, budget);
            if rng.u8(0..4) == 0 {
                !base
            } else {
                base
            }
        }
        _ => {
            if rng.u8(0..3) == 0 {
                gen_grammar(rng, 1, budget).paren()
            } else {
                gen_atom(rng)
            }
        }
    }
}

/// Generates arbitrary trees, including shapes the grammar cannot produce.
fn gen_any(rng: &mut fastrand::Rng, depth: u32) -> LabelExpr {
    if depth == 0 || rng.u8(0..4) == 0 {
        return gen_atom(rng);
    }
    let op = rng.u8(0..6);
    let mut sub = || gen_any(rng, depth - 1);
    match op {
        0 => !sub(),
        1 => sub().paren(),
        2 => sub().and(sub()),
        3 => sub().or(sub()),
        4 => sub().implies(sub()),
        _ => sub().iff(sub()),
    }
}

/// Reference semantics: plain recursive evaluation.
fn eval(e: &LabelExpr, labels: &LabelSet) -> bool {
    match e {
        LabelExpr::Atom(n) => labels.contains(n),
        LabelExpr::Not(x) => !eval(x, labels),
        LabelExpr::Paren(x) => eval(x, labels),
        LabelExpr::And(l, r) => eval(l, labels) && eval(r, labels),
        LabelExpr::Or(l, r) => eval(l, labels) || eval(r, labels),
        LabelExpr::Implies(l, r) => !eval(l, labels) || eval(r, labels),
        LabelExpr::Iff(l, r) => eval(l, labels) == eval(r, labels),
    }
}

fn random_set(rng: &mut fastrand::Rng) -> LabelSet {
    (0..rng.usize(0..6))
        .map(|_| NAMES[rng.usize(..NAMES.len())])
        .collect()
}

#[test]
fn display_parses_back_to_the_same_tree() {
    let mut rng = fastrand::Rng::with_seed(0x01ab_31e5);
    for _ in 0..5000 {
        let mut budget = rng.u32(0..25);
        let e = gen_grammar(&mut rng, 1, &mut budget);
        let text = e.to_string();
        let back: LabelExpr = text
            .parse()
            .unwrap_or_else(|err| panic!("{e:?} printed as {text:?} does not parse: {err}"));
        assert_eq!(back, e, "{text:?}");
        assert!(!text.contains(' ') || text.contains('"'), "{text:?}");
    }
}

#[test]
fn display_of_hand_built_trees_parses_to_an_equivalent_expression() {
    let mut rng = fastrand::Rng::with_seed(42);
    for _ in 0..3000 {
        let e = gen_any(&mut rng, 6);
        let text = e.to_string();
        let back: LabelExpr = text
            .parse()
            .unwrap_or_else(|err| panic!("{e:?} printed as {text:?} does not parse: {err}"));
        // stable from then on, and the same meaning
        assert_eq!(back.to_string(), text);
        for _ in 0..8 {
            let s = random_set(&mut rng);
            assert_eq!(back.matches(&s), eval(&e, &s), "{text:?} on {s}");
        }
    }
}

#[test]
fn matches_agrees_with_the_reference_semantics() {
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..3000 {
        let e = gen_any(&mut rng, 7);
        for _ in 0..8 {
            let s = random_set(&mut rng);
            assert_eq!(e.matches(&s), eval(&e, &s), "{e} on {s}");
        }
    }
}

#[test]
fn label_set_display_parses_back() {
    let mut rng = fastrand::Rng::with_seed(99);
    for _ in 0..2000 {
        let s = random_set(&mut rng);
        assert_eq!(LabelSet::parse(&s.to_string()), s, "{s}");
    }
}

/// Runs every entry point on `input`; panics only on a broken invariant.
fn exercise(input: &str) {
    let n = input.chars().count();
    match input.parse::<LabelExpr>() {
        Ok(e) => {
            let text = e.to_string();
            assert_eq!(
                text.parse::<LabelExpr>().as_ref(),
                Ok(&e),
                "{input:?} -> {text:?}"
            );
            let _ = e.matches(&LabelSet::parse(input));
            assert!(e.atoms().len() <= n);
        }
        Err(err) => {
            assert!(err.position() <= n, "{input:?}: {err}");
            assert!(err
                .to_string()
                .contains(&format!("at position {}", err.position())));
        }
    }
    if let Err(err) = LabelExpr::parse_optional(input) {
        assert!(err.position() <= n);
    }
    let lax = LabelExpr::parse_lax(input);
    assert_eq!(
        lax.to_string().parse::<LabelExpr>().as_ref(),
        Ok(&lax),
        "lax {input:?}"
    );
    let set = LabelSet::parse(input);
    assert_eq!(LabelSet::parse(&set.to_string()), set, "set {input:?}");
}

#[test]
fn odd_inputs_never_panic() {
    let fixed = [
        "",
        " ",
        "\t",
        "\n",
        "&&",
        "||",
        "!",
        "->",
        "<->",
        "<",
        ">",
        "-",
        "&",
        "|",
        "(",
        ")",
        "((",
        "))",
        "()",
        ")(",
        "(a",
        "a)",
        "a &&",
        "&& a",
        "a || || b",
        "!!",
        "!!!a",
        "a!",
        "a -> -> b",
        "\"",
        "\"\\",
        "\"\\u0041\"",
        "'",
        "'a'",
        "\"a",
        "a\"",
        "\0",
        "\u{1}\u{2}",
        "a\u{0}b",
        "\u{feff}",
        "😀 && 🦀",
        "\u{202e}rtl",
        "a<-",
        "a<-b",
        "a<>b",
        "a=>b",
        "a-->-->b",
        "---",
        "->-",
        "-->",
        "\\",
        "\\\\\"",
        "a b c",
        "\"\"\"",
        "(((((((((a)))))))))",
        "!(",
        "!)",
        "a\r\nb",
    ];
    for input in fixed {
        exercise(input);
    }
    let alphabet: Vec<char> = "ab -<>&|!()\"'\\\t\n\u{0}é日😀.:".chars().collect();
    let mut rng = fastrand::Rng::with_seed(1234);
    for _ in 0..20_000 {
        let len = rng.usize(0..16);
        let s: String = (0..len)
            .map(|_| alphabet[rng.usize(..alphabet.len())])
            .collect();
        exercise(&s);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000));
    let e = deep.parse::<LabelExpr>().unwrap_err();
    assert_eq!(e.position(), MAX_PAREN_DEPTH);
    assert!(e.expected().contains("256 nested parentheses"), "{e}");
    assert!(e.to_string().len() < 400, "the message shortens the input");

    let nots = "!(".repeat(100_000);
    assert_eq!(
        nots.parse::<LabelExpr>().unwrap_err().position(),
        2 * MAX_PAREN_DEPTH + 1
    );

    let chain = vec!["a"; 100_000].join("||");
    let e = chain.parse::<LabelExpr>().unwrap_err();
    assert!(e.expected().contains("1024 operators deep"), "{e}");
    assert_eq!(e.position(), 3 * (MAX_TREE_DEPTH - 1) + 1);

    let unclosed = "(".repeat(100_000);
    assert!(unclosed.parse::<LabelExpr>().is_err());
}

#[test]
fn the_deepest_accepted_trees_are_safe_to_use() {
    // Run with a deliberately small stack to leave a wide margin.
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(|| {
            let nested = format!(
                "{}a{}",
                "(".repeat(MAX_PAREN_DEPTH),
                ")".repeat(MAX_PAREN_DEPTH)
            );
            let chain = (0..MAX_TREE_DEPTH)
                .map(|i| format!("n{i}"))
                .collect::<Vec<_>>()
                .join(" || ");
            let mixed = format!("{}x{}", "!(a && ".repeat(120), ")".repeat(120));
            for input in [nested, chain, mixed] {
                let e: LabelExpr = input.parse().unwrap();
                let text = e.to_string();
                let back: LabelExpr = text.parse().unwrap();
                assert_eq!(back, e);
                assert_eq!(
                    serde_json::from_str::<LabelExpr>(&serde_json::to_string(&e).unwrap()).unwrap(),
                    e
                );
                let labels = LabelSet::parse("a n1023 x");
                let _ = e.matches(&labels);
                let _ = format!("{e:?}");
                let _ = e.atoms();
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::hash::Hash::hash(&e.clone(), &mut h);
            }
            let chain: LabelExpr = (0..MAX_TREE_DEPTH)
                .map(|i| format!("n{i}"))
                .collect::<Vec<_>>()
                .join("||")
                .parse()
                .unwrap();
            assert!(chain.matches(&LabelSet::parse("n1023")));
            assert!(chain.matches(&LabelSet::parse("n0")));
            assert!(!chain.matches(&LabelSet::parse("n1024")));
            let one_more = format!("{}||n", chain);
            assert!(one_more.parse::<LabelExpr>().is_err());
        })
        .unwrap()
        .join()
        .unwrap();
}
