//! Whatever rule files hold, the compiler answers with diagnostics, never a
//! panic.

use levee_rules::{compile, RuleSources};
use proptest::prelude::*;

const SCHEMA: &str = r#"
event_types:
  t:
    stream: s
    subject: k
    fields:
      k: { type: string, required: true }
      x: { type: number, required: true }
      n: { type: integer }
lists:
  l: [a, 1, 2.5]
"#;

fn expression() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "x",
        "n",
        "k",
        "l",
        "y",
        "1",
        "0",
        "2.5",
        "-",
        "+",
        "*",
        "/",
        "%",
        "^",
        "(",
        ")",
        ",",
        "==",
        "!=",
        "<",
        ">=",
        "&&",
        "||",
        "!",
        "=",
        ";",
        "true",
        "\"s\"",
        "min",
        "max",
        "if",
        "contains",
        "len",
        "math::abs",
        "math::ln",
        "floor",
        "str::trim",
        "typeof",
        "random",
        "shl",
        "9223372036854775807",
        " ",
    ]);
    prop::collection::vec(token, 0..24).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_expressions_never_panic(e in expression(), m in expression()) {
        let cp = format!(
            "control_points:\n  - id: X-1\n    domain: d\n    title: t\n    event_type: t\n    when: '{}'\n    tiers: [{{tier: 1, notify: r, when: '{}'}}]\n    message: '{{{}}}'\n",
            e.replace('\'', "''"),
            m.replace('\'', "''"),
            m.replace('\'', "''"),
        );
        let _ = compile(&RuleSources::from_texts([("a.yaml", SCHEMA), ("b.yaml", cp.as_str())]));
    }

    #[test]
    fn random_bytes_as_rule_files_never_panic(text in "\\PC{0,200}") {
        let _ = compile(&RuleSources::from_texts([("a.yaml", SCHEMA), ("b.yaml", text.as_str())]));
    }
}
