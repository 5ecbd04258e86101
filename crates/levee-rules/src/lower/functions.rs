//! The functions a rule may call (`min`, `round`, `if`, `contains`, …):
//! arity, argument types, and the node each lowers to.

use evalexpr::{Node as ENode, Operator, Value};

use super::tree::{
    article, reads_variables, show, strip_root, value_to_const, FUNCTIONS, MORE_FUNCTIONS,
};
use super::Builder;
use crate::diag::did_you_mean;
use crate::graph::{ConstList, FloatFn, Op, Slot, StrFn, Ty};

impl Builder<'_> {
    pub(super) fn function(
        &mut self,
        name: &str,
        args: &[&ENode],
        src: &str,
    ) -> Result<(Slot, Ty), String> {
        let arity = |want: usize| -> Result<(), String> {
            if args.len() == want {
                Ok(())
            } else {
                Err(format!(
                    "{name}() takes {want} argument{}, got {}",
                    if want == 1 { "" } else { "s" },
                    args.len()
                ))
            }
        };
        match name {
            "min" | "max" => {
                if args.len() < 2 {
                    return Err(format!("{name}() needs at least two arguments"));
                }
                let mut slots = Vec::new();
                let mut all_int = true;
                for a in args {
                    let (s, t) = self.lower(a, src)?;
                    if !t.is_numeric() {
                        return Err(format!(
                            "{name}() takes numbers, but `{}` is {}",
                            show(a),
                            article(t)
                        ));
                    }
                    all_int &= t == Ty::Int;
                    slots.push(s);
                }
                let ty = if all_int { Ty::Int } else { Ty::Num };
                let op = if name == "min" {
                    Op::Min(slots.into())
                } else {
                    Op::Max(slots.into())
                };
                let text = |s: &Self, op: &Op| {
                    let (Op::Min(slots) | Op::Max(slots)) = op else {
                        return String::new();
                    };
                    format!(
                        "{name}({})",
                        slots
                            .iter()
                            .map(|a| s.text(*a))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                Ok((self.push(op, ty, text), ty))
            }
            "floor" | "round" | "ceil" | "math::sqrt" | "math::ln" | "math::abs" => {
                arity(1)?;
                let (a, t) = self.lower(args[0], src)?;
                if !t.is_numeric() {
                    return Err(format!(
                        "{name}() takes a number, but `{}` is {}",
                        show(args[0]),
                        article(t)
                    ));
                }
                let text =
                    |s: &Self, _: &Op| format!("{name}({})", s.text(a).trim_matches(['(', ')']));
                let f = match name {
                    "floor" => FloatFn::Floor,
                    "round" => FloatFn::Round,
                    "ceil" => FloatFn::Ceil,
                    "math::sqrt" => FloatFn::Sqrt,
                    "math::ln" => FloatFn::Ln,
                    _ => return Ok((self.push(Op::Abs(a), t, text), t)),
                };
                Ok((self.push(Op::FloatFn(f, a), Ty::Float, text), Ty::Float))
            }
            "math::pow" => {
                arity(2)?;
                let (a, ta) = self.lower(args[0], src)?;
                let (b, tb) = self.lower(args[1], src)?;
                if !ta.is_numeric() || !tb.is_numeric() {
                    return Err("math::pow() takes two numbers".to_owned());
                }
                let text = |s: &Self, _: &Op| format!("math::pow({}, {})", s.text(a), s.text(b));
                Ok((self.push(Op::Pow(a, b), Ty::Float, text), Ty::Float))
            }
            "if" => {
                arity(3)?;
                let (c, tc) = self.lower(args[0], src)?;
                if tc != Ty::Bool {
                    return Err(format!(
                        "if() needs a condition first, but `{}` is {}",
                        show(args[0]),
                        article(tc)
                    ));
                }
                let (a, ta) = self.lower(args[1], src)?;
                let (b, tb) = self.lower(args[2], src)?;
                let ty = if ta == tb {
                    ta
                } else if ta.is_numeric() && tb.is_numeric() {
                    Ty::Num
                } else {
                    return Err(format!(
                        "if() must give the same kind of value either way, but `{}` is {} and `{}` is {}",
                        show(args[1]),
                        article(ta),
                        show(args[2]),
                        article(tb)
                    ));
                };
                let text =
                    |s: &Self, _: &Op| format!("if({}, {}, {})", s.text(c), s.text(a), s.text(b));
                Ok((self.push(Op::If(c, a, b), ty, text), ty))
            }
            "contains" => {
                arity(2)?;
                let list = self.list_argument(args[0])?;
                let (x, tx) = self.lower(args[1], src)?;
                if tx == Ty::Bool {
                    return Err("contains() tests a number or a string".to_owned());
                }
                let def = &self.list_defs[list as usize];
                let clash = def.items.iter().any(|c| {
                    let ct = c.ty();
                    !(ct == tx || tx == Ty::Num && ct.is_numeric())
                });
                if clash {
                    self.warnings.push(format!(
                        "contains({}, {}): the list holds values of another kind than {}, which never match",
                        def.name,
                        show(args[1]),
                        article(tx)
                    ));
                }
                let text = |s: &Self, _: &Op| {
                    let name = &s.list_defs[list as usize].name;
                    format!("contains({name}, {})", s.text(x))
                };
                Ok((self.push(Op::Contains(list, x), Ty::Bool, text), Ty::Bool))
            }
            "len" => {
                arity(1)?;
                let (a, t) = self.lower(args[0], src)?;
                if t != Ty::Str {
                    return Err(format!(
                        "len() takes a string, but `{}` is {}",
                        show(args[0]),
                        article(t)
                    ));
                }
                let text = |s: &Self, _: &Op| format!("len({})", s.text(a));
                Ok((self.push(Op::Len(a), Ty::Int, text), Ty::Int))
            }
            "str::to_lowercase" | "str::to_uppercase" | "str::trim" => {
                arity(1)?;
                let (a, t) = self.lower(args[0], src)?;
                if t != Ty::Str {
                    return Err(format!(
                        "{name}() takes a string, but `{}` is {}",
                        show(args[0]),
                        article(t)
                    ));
                }
                let f = match name {
                    "str::to_lowercase" => StrFn::Lower,
                    "str::to_uppercase" => StrFn::Upper,
                    _ => StrFn::Trim,
                };
                let text = |s: &Self, _: &Op| format!("{name}({})", s.text(a));
                Ok((self.push(Op::StrFn(f, a), Ty::Str, text), Ty::Str))
            }
            "lookup" | "exists" => self.table_function(name, args, src),
            _ => {
                let mut msg = format!("unknown function `{name}`");
                let all = FUNCTIONS
                    .iter()
                    .chain(MORE_FUNCTIONS.iter())
                    .chain(super::lookup::TABLE_FUNCTIONS.iter())
                    .copied();
                if let Some(s) = did_you_mean(name, all.clone()) {
                    msg.push_str(&format!("; did you mean `{s}`?"));
                } else {
                    msg.push_str(&format!(
                        "; levee compiles {}",
                        all.collect::<Vec<_>>().join(", ")
                    ));
                }
                Err(msg)
            }
        }
    }

    /// The list that `contains()` searches: a named list or a literal tuple.
    fn list_argument(&mut self, arg: &ENode) -> Result<u32, String> {
        let arg = strip_root(arg);
        if let Operator::VariableIdentifierRead { identifier } = arg.operator() {
            return self.lists.get(identifier.as_str()).copied().ok_or_else(|| {
                let mut m = format!("contains() needs a list first, and `{identifier}` is no list");
                if let Some(s) = did_you_mean(identifier, self.lists.keys().map(|s| s.as_str())) {
                    m.push_str(&format!("; did you mean `{s}`?"));
                }
                m
            });
        }
        if !reads_variables(arg) {
            if let Ok(Value::Tuple(items)) = arg.eval() {
                let items = items
                    .iter()
                    .map(value_to_const)
                    .collect::<Option<Vec<_>>>()
                    .ok_or("contains() lists hold numbers and strings only")?;
                let name = show(arg);
                if let Some(i) = self.list_defs.iter().position(|l| l.name == name) {
                    return Ok(i as u32);
                }
                self.list_defs.push(ConstList { name, items });
                return Ok(self.list_defs.len() as u32 - 1);
            }
        }
        Err(format!(
            "contains() needs a list first (a name from `lists:` or a literal like (\"a\", \"b\")), not `{}`",
            show(arg)
        ))
    }
}
