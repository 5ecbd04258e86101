//! Lowering evalexpr operator trees into typed, hash-consed program nodes.
//!
//! evalexpr parses; this module resolves every identifier to a field slot or
//! a derived value, checks types, folds constant subtrees (with evalexpr's own
//! evaluator, so folded values are exactly evalexpr's), and appends nodes to
//! the event type's program, re-using any identical node already there.

use std::collections::BTreeMap;
use std::rc::Rc;

use evalexpr::{Node as ENode, Operator, Value};

use crate::diag::did_you_mean;
use crate::graph::{
    Aggregate, Arith, Cmp, Const, ConstList, FastMap, FloatFn, Node, Op, Slot, StrFn, Ty,
};

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
const MORE_FUNCTIONS: [&str; 1] = ["str::trim"];

enum Derived {
    Pending(String),
    InProgress,
    Done(Result<(Slot, Ty), String>),
}

/// Builds the program of one event type.
pub(crate) struct Builder<'a> {
    type_name: String,
    n_fields: u32,
    field_index: &'a FastMap<String, Slot>,
    /// Field names by slot (for node texts and messages).
    field_names: Vec<&'a str>,
    field_types: Vec<Ty>,
    lists: &'a FastMap<String, u32>,
    list_defs: &'a mut Vec<ConstList>,
    derived: BTreeMap<String, Derived>,
    derived_slots: Vec<(String, Slot)>,
    /// Derived values on the resolution stack, for cycle messages.
    stack: Vec<String>,
    pub(crate) nodes: Vec<Node>,
    dedup: FastMap<Op, Slot>,
    /// Expressions parsed so far, by source text: many control points
    /// share conditions, tiers and filters word for word.
    trees: FastMap<String, Rc<ENode>>,
    pub(crate) aggregates: Vec<Aggregate>,
    /// Names local to the control point being compiled (its aggregates).
    pub(crate) locals: FastMap<String, (Slot, Ty)>,
    /// Warnings for the expression being lowered; drained by the caller.
    pub(crate) warnings: Vec<String>,
}

impl<'a> Builder<'a> {
    pub(crate) fn new(
        type_name: &str,
        field_index: &'a FastMap<String, Slot>,
        field_types: Vec<Ty>,
        derived: &BTreeMap<String, String>,
        lists: &'a FastMap<String, u32>,
        list_defs: &'a mut Vec<ConstList>,
    ) -> Self {
        let mut field_names = vec![""; field_types.len()];
        for (name, &slot) in field_index {
            if let Some(n) = field_names.get_mut(slot as usize) {
                *n = name.as_str();
            }
        }
        Builder {
            type_name: type_name.to_owned(),
            n_fields: field_types.len() as u32,
            field_index,
            field_names,
            field_types,
            lists,
            list_defs,
            derived: derived
                .iter()
                .map(|(k, v)| (k.clone(), Derived::Pending(v.clone())))
                .collect(),
            derived_slots: Vec::new(),
            stack: Vec::new(),
            nodes: Vec::new(),
            dedup: FastMap::default(),
            trees: FastMap::default(),
            aggregates: Vec::new(),
            locals: FastMap::default(),
            warnings: Vec::new(),
        }
    }

    pub(crate) fn derived_slots(&self) -> Vec<(String, Slot)> {
        self.derived_slots.clone()
    }

    /// The field name of a field slot (for messages).
    pub(crate) fn slot_name(&self, slot: Slot) -> String {
        self.field_names
            .get(slot as usize)
            .map(|n| (*n).to_owned())
            .unwrap_or_default()
    }

    pub(crate) fn is_field(&self, slot: Slot) -> bool {
        slot < self.n_fields
    }

    fn text(&self, slot: Slot) -> String {
        match slot.checked_sub(self.n_fields) {
            Some(i) => {
                let n = &self.nodes[i as usize];
                match &n.op {
                    Op::Const(_) => n.text.clone(),
                    _ if is_atomic(&n.text) => n.text.clone(),
                    _ => format!("({})", n.text),
                }
            }
            None => self.slot_name(slot),
        }
    }

    /// The slot of `op`: an identical node's, or a new node's, whose text
    /// `text` writes (called only then: many nodes are shared).
    fn push(&mut self, op: Op, ty: Ty, text: impl FnOnce(&Self, &Op) -> String) -> Slot {
        if let Some(&s) = self.dedup.get(&op) {
            return s;
        }
        let text = text(self, &op);
        let slot = self.n_fields + self.nodes.len() as u32;
        self.dedup.insert(op.clone(), slot);
        self.nodes.push(Node { op, ty, text });
        slot
    }

    fn constant(&mut self, c: Const) -> Slot {
        let ty = c.ty();
        let op = Op::Const(c);
        self.push(op, ty, |_, op| match op {
            Op::Const(Const::Bool(b)) => b.to_string(),
            Op::Const(Const::Int(i)) => i.to_string(),
            Op::Const(Const::Float(f)) => format!("{f:?}"),
            Op::Const(Const::Str(s)) => format!("{s:?}"),
            _ => String::new(),
        })
    }

    /// Lowers every derived value, reporting each error once by name.
    pub(crate) fn lower_all_derived(&mut self) -> Vec<(String, String)> {
        let names: Vec<String> = self.derived.keys().cloned().collect();
        let mut errors = Vec::new();
        for name in names {
            if let Err(e) = self.derived_value(&name) {
                errors.push((name, e));
            }
        }
        errors
    }

    fn derived_value(&mut self, name: &str) -> Result<(Slot, Ty), String> {
        let state = match self.derived.get_mut(name) {
            Some(s) => s,
            None => return Err(format!("no derived value `{name}`")),
        };
        match std::mem::replace(state, Derived::InProgress) {
            Derived::Done(r) => {
                *state = Derived::Done(r.clone());
                r.map_err(|_| format!("derived value `{name}` has errors (reported above)"))
            }
            Derived::InProgress => {
                let start = self.stack.iter().position(|n| n == name).unwrap_or(0);
                let mut cycle: Vec<&str> = self.stack[start..].iter().map(|s| s.as_str()).collect();
                cycle.push(name);
                Err(format!(
                    "derived values form a cycle: {}",
                    cycle.join(" -> ")
                ))
            }
            Derived::Pending(src) => {
                self.stack.push(name.to_owned());
                let r = self.expression(&src);
                self.stack.pop();
                if let Ok((slot, _)) = &r {
                    self.derived_slots.push((name.to_owned(), *slot));
                }
                if let Some(s) = self.derived.get_mut(name) {
                    *s = Derived::Done(r.clone());
                }
                r.map_err(|e| {
                    if self.stack.is_empty() {
                        e
                    } else {
                        format!("in derived value `{name}` (`{src}`): {e}")
                    }
                })
            }
        }
    }

    /// Parses and lowers one expression.
    pub(crate) fn expression(&mut self, src: &str) -> Result<(Slot, Ty), String> {
        let tree = self.parse(src)?;
        self.lower(&tree, src)
    }

    /// evalexpr's tree of an expression, parsed once per source text.
    fn parse(&mut self, src: &str) -> Result<Rc<ENode>, String> {
        if let Some(tree) = self.trees.get(src) {
            return Ok(tree.clone());
        }
        let tree =
            evalexpr::build_operator_tree(src).map_err(|e| format!("does not parse: {e}"))?;
        let tree = Rc::new(tree);
        self.trees.insert(src.to_owned(), tree.clone());
        Ok(tree)
    }

    /// As [`Builder::expression`], also appending to `reads` the names the
    /// expression reads (variables, in order) that it does not hold yet;
    /// nothing when the expression does not parse.
    pub(crate) fn expression_reading(
        &mut self,
        src: &str,
        reads: &mut Vec<String>,
    ) -> Result<(Slot, Ty), String> {
        let tree = self.parse(src)?;
        for id in tree.iter_read_variable_identifiers() {
            if !reads.iter().any(|n| n == id) {
                reads.push(id.to_owned());
            }
        }
        self.lower(&tree, src)
    }

    /// Resolves a bare name (a field or derived value), for placeholders.
    pub(crate) fn name(&mut self, name: &str) -> Result<(Slot, Ty), String> {
        self.identifier(name, None)
    }

    /// As [`Builder::name`], for callers that only need to know whether the
    /// name resolves: no error message (nor "did you mean" search) is built.
    pub(crate) fn resolve(&mut self, name: &str) -> Option<(Slot, Ty)> {
        if let Some(&found) = self.locals.get(name) {
            return Some(found);
        }
        if let Some(&slot) = self.field_index.get(name) {
            return Some((slot, self.field_types[slot as usize]));
        }
        if self.derived.contains_key(name) {
            return self.derived_value(name).ok();
        }
        None
    }

    /// Adds a windowed aggregate (shared with any identical one) and
    /// returns its slot.
    pub(crate) fn aggregate(&mut self, spec: Aggregate, ty: Ty, name: &str) -> Slot {
        let index = match self.aggregates.iter().position(|a| *a == spec) {
            Some(i) => i,
            None => {
                self.aggregates.push(spec);
                self.aggregates.len() - 1
            }
        };
        self.push(Op::Aggregate(index as u32), ty, |_, _| name.to_owned())
    }

    fn identifier(&mut self, id: &str, src: Option<&str>) -> Result<(Slot, Ty), String> {
        if let Some(&found) = self.locals.get(id) {
            return Ok(found);
        }
        if let Some(&slot) = self.field_index.get(id) {
            return Ok((slot, self.field_types[slot as usize]));
        }
        if self.derived.contains_key(id) {
            return self.derived_value(id);
        }
        if self.lists.contains_key(id) {
            return Err(format!(
                "`{id}` is a list; test membership with contains({id}, value)"
            ));
        }
        let mut msg = format!("unknown name `{id}`");
        if let Some(col) = src.and_then(|s| column_of(s, id)) {
            msg.push_str(&format!(" at column {col}"));
        }
        msg.push_str(&format!(
            ": not a field or derived value of `{}`",
            self.type_name
        ));
        let candidates: Vec<&str> = self
            .field_index
            .keys()
            .chain(self.derived.keys())
            .chain(self.lists.keys())
            .chain(self.locals.keys())
            .map(|s| s.as_str())
            .collect();
        if let Some(s) = did_you_mean(id, candidates) {
            msg.push_str(&format!("; did you mean `{s}`?"));
        }
        Err(msg)
    }

    fn lower(&mut self, n: &ENode, src: &str) -> Result<(Slot, Ty), String> {
        if !matches!(n.operator(), Operator::RootNode)
            && !reads_variables(n)
            && foldable(n)
            && !rounds(n)
        {
            return match n.eval() {
                Ok(v) => {
                    let c = value_to_const(&v)
                        .ok_or_else(|| format!("`{}` is not a single value", show(n)))?;
                    let ty = c.ty();
                    Ok((self.constant(c), ty))
                }
                Err(e) => Err(format!("`{}` cannot be evaluated: {e}", show(n))),
            };
        }
        let ch = n.children();
        let unary = matches!(n.operator(), Operator::Neg | Operator::Not);
        let binary = matches!(
            n.operator(),
            Operator::Add
                | Operator::Sub
                | Operator::Mul
                | Operator::Div
                | Operator::Mod
                | Operator::Exp
                | Operator::Eq
                | Operator::Neq
                | Operator::Gt
                | Operator::Lt
                | Operator::Geq
                | Operator::Leq
                | Operator::And
                | Operator::Or
        );
        if (unary && ch.len() != 1) || (binary && ch.len() != 2) {
            return Err(format!(
                "`{}` is missing an operand of `{}`",
                show(n),
                symbol(n.operator())
            ));
        }
        match n.operator() {
            Operator::RootNode => match ch {
                [one] => self.lower(one, src),
                [] => Err("empty expression".to_owned()),
                _ => Err("more than one expression".to_owned()),
            },
            Operator::VariableIdentifierRead { identifier } => {
                self.identifier(identifier, Some(src))
            }
            Operator::Add
            | Operator::Sub
            | Operator::Mul
            | Operator::Div
            | Operator::Mod
            | Operator::Exp => {
                let (a, ta) = self.lower(&ch[0], src)?;
                let (b, tb) = self.lower(&ch[1], src)?;
                let sym = symbol(n.operator());
                if matches!(n.operator(), Operator::Add) && ta == Ty::Str && tb == Ty::Str {
                    let text = |s: &Self, _: &Op| format!("{} + {}", s.text(a), s.text(b));
                    return Ok((self.push(Op::Concat(a, b), Ty::Str, text), Ty::Str));
                }
                if !ta.is_numeric() || !tb.is_numeric() {
                    return Err(format!(
                        "`{sym}` needs two numbers{}, but `{}` is {} and `{}` is {}",
                        if sym == "+" { " or two strings" } else { "" },
                        show(&ch[0]),
                        article(ta),
                        show(&ch[1]),
                        article(tb)
                    ));
                }
                let text = |s: &Self, _: &Op| format!("{} {sym} {}", s.text(a), s.text(b));
                if matches!(n.operator(), Operator::Exp) {
                    return Ok((self.push(Op::Pow(a, b), Ty::Float, text), Ty::Float));
                }
                let op = match n.operator() {
                    Operator::Add => Arith::Add,
                    Operator::Sub => Arith::Sub,
                    Operator::Mul => Arith::Mul,
                    Operator::Div => Arith::Div,
                    _ => Arith::Mod,
                };
                if matches!(op, Arith::Div) && ta == Ty::Int && tb == Ty::Int {
                    self.warnings.push(format!(
                        "`{}` divides two integers, which drops the fraction (7 / 2 is 3); \
                         write `{} * 1.0 / {}` for a fractional result",
                        show(n),
                        show(&ch[0]),
                        show(&ch[1])
                    ));
                }
                let ty = numeric_join(ta, tb);
                Ok((self.push(Op::Arith(op, a, b), ty, text), ty))
            }
            Operator::Neg => {
                let (a, ta) = self.lower(&ch[0], src)?;
                if !ta.is_numeric() {
                    return Err(format!(
                        "`-` needs a number, but `{}` is {}",
                        show(&ch[0]),
                        article(ta)
                    ));
                }
                let text = |s: &Self, _: &Op| format!("-{}", s.text(a));
                Ok((self.push(Op::Neg(a), ta, text), ta))
            }
            Operator::Eq | Operator::Neq => {
                let (a, ta) = self.lower(&ch[0], src)?;
                let (b, tb) = self.lower(&ch[1], src)?;
                let sym = symbol(n.operator());
                let comparable = ta == tb || (ta.is_numeric() && tb.is_numeric());
                if !comparable {
                    return Err(format!(
                        "`{}` compares {} with {}: they are never equal",
                        show(n),
                        article(ta),
                        article(tb)
                    ));
                }
                if matches!((ta, tb), (Ty::Int, Ty::Float) | (Ty::Float, Ty::Int)) {
                    self.warnings.push(format!(
                        "`{}` compares an integer with a float with `{sym}`: evalexpr never \
                         finds those equal (1 == 1.0 is false); compare with `>=` and `<=`, \
                         or write both sides as the same kind of number",
                        show(n)
                    ));
                }
                let text = |s: &Self, _: &Op| format!("{} {sym} {}", s.text(a), s.text(b));
                let op = if sym == "==" {
                    Op::Eq(a, b)
                } else {
                    Op::Neq(a, b)
                };
                Ok((self.push(op, Ty::Bool, text), Ty::Bool))
            }
            Operator::Gt | Operator::Lt | Operator::Geq | Operator::Leq => {
                let (a, ta) = self.lower(&ch[0], src)?;
                let (b, tb) = self.lower(&ch[1], src)?;
                let sym = symbol(n.operator());
                if !((ta == Ty::Str && tb == Ty::Str) || (ta.is_numeric() && tb.is_numeric())) {
                    return Err(format!(
                        "`{sym}` compares two numbers or two strings, but `{}` is {} and `{}` is {}",
                        show(&ch[0]),
                        article(ta),
                        show(&ch[1]),
                        article(tb)
                    ));
                }
                let cmp = match n.operator() {
                    Operator::Gt => Cmp::Gt,
                    Operator::Lt => Cmp::Lt,
                    Operator::Geq => Cmp::Ge,
                    _ => Cmp::Le,
                };
                let text = |s: &Self, _: &Op| format!("{} {sym} {}", s.text(a), s.text(b));
                Ok((self.push(Op::Cmp(cmp, a, b), Ty::Bool, text), Ty::Bool))
            }
            Operator::And | Operator::Or => {
                let (a, ta) = self.lower(&ch[0], src)?;
                let (b, tb) = self.lower(&ch[1], src)?;
                let sym = symbol(n.operator());
                for (t, c) in [(ta, &ch[0]), (tb, &ch[1])] {
                    if t != Ty::Bool {
                        return Err(format!(
                            "`{sym}` needs two conditions, but `{}` is {}",
                            show(c),
                            article(t)
                        ));
                    }
                }
                let text = |s: &Self, _: &Op| format!("{} {sym} {}", s.text(a), s.text(b));
                let op = if sym == "&&" {
                    Op::And(a, b)
                } else {
                    Op::Or(a, b)
                };
                Ok((self.push(op, Ty::Bool, text), Ty::Bool))
            }
            Operator::Not => {
                let (a, ta) = self.lower(&ch[0], src)?;
                if ta != Ty::Bool {
                    return Err(format!(
                        "`!` needs a condition, but `{}` is {}",
                        show(&ch[0]),
                        article(ta)
                    ));
                }
                let text = |s: &Self, _: &Op| format!("!{}", s.text(a));
                Ok((self.push(Op::Not(a), Ty::Bool, text), Ty::Bool))
            }
            Operator::FunctionIdentifier { identifier } => {
                let args: Vec<&ENode> = match ch {
                    [one] => {
                        let one = strip_root(one);
                        if matches!(one.operator(), Operator::Tuple) {
                            one.children().iter().collect()
                        } else {
                            vec![one]
                        }
                    }
                    _ => vec![],
                };
                self.function(identifier, &args, src)
            }
            Operator::Tuple => Err(format!(
                "`{}`: a tuple is only allowed as a function's arguments",
                show(n)
            )),
            Operator::Const { .. } => Err("unexpected constant".to_owned()),
            _ => Err(format!(
                "`{}`: assignments and `;` are not allowed in rules (use `==` to compare)",
                show(n)
            )),
        }
    }

    fn function(&mut self, name: &str, args: &[&ENode], src: &str) -> Result<(Slot, Ty), String> {
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
            _ => {
                let mut msg = format!("unknown function `{name}`");
                let all = FUNCTIONS.iter().chain(MORE_FUNCTIONS.iter()).copied();
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

/// Parentheses make a root node in evalexpr's tree; see through them.
fn strip_root(n: &ENode) -> &ENode {
    match (n.operator(), n.children()) {
        (Operator::RootNode, [one]) => strip_root(one),
        _ => n,
    }
}

/// Whether evalexpr may fold this constant subtree: only functions levee
/// compiles itself, and not `math::abs`, which panics in evalexpr on the
/// smallest integer (levee's own `abs` wraps instead).
fn foldable(n: &ENode) -> bool {
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
fn rounds(n: &ENode) -> bool {
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

fn reads_variables(n: &ENode) -> bool {
    matches!(
        n.operator(),
        Operator::VariableIdentifierRead { .. } | Operator::VariableIdentifierWrite { .. }
    ) || n.children().iter().any(reads_variables)
}

fn numeric_join(a: Ty, b: Ty) -> Ty {
    match (a, b) {
        (Ty::Int, Ty::Int) => Ty::Int,
        (Ty::Float, _) | (_, Ty::Float) => Ty::Float,
        _ => Ty::Num,
    }
}

fn article(t: Ty) -> String {
    match t {
        Ty::Int => "an integer".to_owned(),
        other => format!("a {}", other.name()),
    }
}

fn is_atomic(text: &str) -> bool {
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

fn symbol(op: &Operator) -> &'static str {
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
fn column_of(src: &str, id: &str) -> Option<usize> {
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
