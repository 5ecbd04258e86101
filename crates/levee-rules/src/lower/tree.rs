//! Reading evalexpr operator trees: what a node is (constant, rounding,
//! variable-free), its text as a rule author would write it, and where a
//! name stands in the source.

use evalexpr::{Node as ENode, Operator, Value};

use crate::graph::{Const, Ty};

/// Functions levee compiles, with their evalexpr names.
pub const FUNCTIONS: [&str; 14] = [
    "min",
    "max",
    "floor",
    "round",
    "ceil",
    "math::abs",
    "math::sqrt",
    "math::ln",
    "math::pow",
    "if",
    "contains",
    "len",
    "str::to_lowercase",
    "str::to_uppercase",
];
pub(super) const MORE_FUNCTIONS: [&str; 1] = ["str::trim"];

/// Parentheses make a root node in evalexpr's tree; see through them.
pub(super) fn strip_root(n: &ENode) -> &ENode {
    match (n.operator(), n.children()) {
        (Operator::RootNode, [one]) => strip_root(one),
        _ => n,
    }
}

/// Whether evalexpr may fold this constant subtree: only functions levee
/// compiles itself, and not `math::abs`, which panics in evalexpr on the
/// smallest integer (levee's own `abs` wraps instead).
pub(super) fn foldable(n: &ENode) -> bool {
    let ok = match n.operator() {
        Operator::FunctionIdentifier { identifier } => {
            identifier != "math::abs"
                && (FUNCTIONS.contains(&identifier.as_str())
                    || MORE_FUNCTIONS.contains(&identifier.as_str()))
        }
        _ => true,
    };
    ok && n.children().iter().all(foldable)
}

/// Whether a constant subtree does floating-point arithmetic (which may
/// round: `0.1 * 3` is not 0.3 in binary). Such a subtree is not folded, so
/// that the evaluator can redo it exactly where a comparison needs it
/// (`levee_engine::exact`); its literals still are.
pub(super) fn rounds(n: &ENode) -> bool {
    let arithmetic = match n.operator() {
        Operator::Add | Operator::Sub | Operator::Mul | Operator::Div | Operator::Mod => true,
        Operator::Exp => true,
        Operator::FunctionIdentifier { identifier } => identifier == "math::pow",
        _ => false,
    };
    let float = |c: &ENode| match c.eval() {
        Ok(Value::Float(_)) => true,
        Ok(Value::Tuple(t)) => t.iter().any(|v| matches!(v, Value::Float(_))),
        _ => false,
    };
    (arithmetic && n.children().iter().any(float)) || n.children().iter().any(rounds)
}

pub(super) fn reads_variables(n: &ENode) -> bool {
    matches!(
        n.operator(),
        Operator::VariableIdentifierRead { .. } | Operator::VariableIdentifierWrite { .. }
    ) || n.children().iter().any(reads_variables)
}

pub(super) fn numeric_join(a: Ty, b: Ty) -> Ty {
    match (a, b) {
        (Ty::Int, Ty::Int) => Ty::Int,
        (Ty::Float, _) | (_, Ty::Float) => Ty::Float,
        _ => Ty::Num,
    }
}

pub(super) fn article(t: Ty) -> String {
    match t {
        Ty::Int => "an integer".to_owned(),
        other => format!("a {}", other.name()),
    }
}

pub(super) fn is_atomic(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
        || (text.ends_with(')') && !text.starts_with('(') && !text.contains(' '))
}

pub(crate) fn value_to_const(v: &Value) -> Option<Const> {
    Some(match v {
        Value::Boolean(b) => Const::Bool(*b),
        Value::Int(i) => Const::Int(*i),
        Value::Float(f) => Const::Float(*f),
        Value::String(s) => Const::Str(s.as_str().into()),
        Value::Tuple(_) | Value::Empty => return None,
    })
}

pub(super) fn symbol(op: &Operator) -> &'static str {
    match op {
        Operator::Add => "+",
        Operator::Sub => "-",
        Operator::Mul => "*",
        Operator::Div => "/",
        Operator::Mod => "%",
        Operator::Exp => "^",
        Operator::Eq => "==",
        Operator::Neq => "!=",
        Operator::Gt => ">",
        Operator::Lt => "<",
        Operator::Geq => ">=",
        Operator::Leq => "<=",
        Operator::And => "&&",
        Operator::Or => "||",
        Operator::Not => "!",
        Operator::Assign => "=",
        Operator::AddAssign => "+=",
        Operator::SubAssign => "-=",
        Operator::MulAssign => "*=",
        Operator::DivAssign => "/=",
        Operator::ModAssign => "%=",
        Operator::ExpAssign => "^=",
        Operator::AndAssign => "&&=",
        Operator::OrAssign => "||=",
        Operator::Chain => ";",
        _ => "?",
    }
}

/// Prints an evalexpr tree back as infix text, for messages.
pub(crate) fn show(n: &ENode) -> String {
    let ch = n.children();
    let wrap = |c: &ENode| {
        let s = show(c);
        if c.children().len() >= 2
            && !matches!(
                c.operator(),
                Operator::FunctionIdentifier { .. } | Operator::Tuple
            )
        {
            format!("({s})")
        } else {
            s
        }
    };
    match n.operator() {
        Operator::RootNode => ch.first().map(show).unwrap_or_default(),
        Operator::Const { value } => match value {
            Value::String(s) => format!("{s:?}"),
            Value::Float(f) => format!("{f:?}"),
            v => v.to_string(),
        },
        Operator::VariableIdentifierRead { identifier }
        | Operator::VariableIdentifierWrite { identifier } => identifier.clone(),
        Operator::FunctionIdentifier { identifier } => match ch {
            [t] if matches!(strip_root(t).operator(), Operator::Tuple) => {
                format!("{identifier}{}", show(strip_root(t)))
            }
            [a] => format!("{identifier}({})", show(strip_root(a))),
            _ => format!("{identifier}()"),
        },
        Operator::Tuple => format!("({})", ch.iter().map(show).collect::<Vec<_>>().join(", ")),
        Operator::Neg | Operator::Not => {
            format!(
                "{}{}",
                symbol(n.operator()),
                ch.first().map(wrap).unwrap_or_default()
            )
        }
        op => match ch {
            [a, b] => format!("{} {} {}", wrap(a), symbol(op), wrap(b)),
            _ => format!("{op:?}"),
        },
    }
}

/// 1-based column of the first whole-word occurrence of `id` in `src`.
pub(super) fn column_of(src: &str, id: &str) -> Option<usize> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == ':' || c == '.';
    let mut from = 0;
    while let Some(pos) = src[from..].find(id) {
        let start = from + pos;
        let end = start + id.len();
        let before = src[..start].chars().next_back();
        let after = src[end..].chars().next();
        if !before.is_some_and(is_word) && !after.is_some_and(is_word) {
            return Some(src[..start].chars().count() + 1);
        }
        from = end;
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tree(src: &str) -> ENode {
        evalexpr::build_operator_tree(src).unwrap()
    }

    #[test]
    fn a_tree_reads_back_as_an_author_writes_it() {
        let n = tree("fuel_used_l > standard_fuel_l * 1.2");
        let shown = show(&n);
        assert!(shown.contains("fuel_used_l"), "{shown}");
        assert!(shown.contains('>'), "{shown}");
        assert!(reads_variables(&n));
        assert!(!reads_variables(&tree("1 + 2")));
    }

    #[test]
    fn names_are_found_in_the_source_as_whole_words() {
        assert_eq!(column_of("a + ab + b", "b"), Some(10));
        assert_eq!(column_of("a + b", "c"), None);
        assert!(is_atomic("x"));
        assert!(!is_atomic("x + 1"));
    }
}
