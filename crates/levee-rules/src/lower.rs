//! Lowering evalexpr operator trees into typed, hash-consed program nodes.
//!
//! evalexpr parses; this module resolves every identifier to a field slot or
//! a derived value, checks types, folds constant subtrees (with evalexpr's own
//! evaluator, so folded values are exactly evalexpr's), and appends nodes to
//! the event type's program, re-using any identical node already there.

use std::collections::BTreeMap;
use std::rc::Rc;

use evalexpr::{Node as ENode, Operator};

mod functions;
mod lookup;
mod tree;

pub(crate) use self::tree::value_to_const;
pub use self::tree::FUNCTIONS;
use self::tree::{
    article, column_of, foldable, is_atomic, numeric_join, reads_variables, rounds, show,
    strip_root, symbol,
};
use crate::diag::did_you_mean;
use crate::graph::{Aggregate, Arith, Cmp, Const, ConstList, FastMap, Node, Op, Slot, Ty};

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
    /// The tables `lookup()` and `exists()` read.
    pub(crate) tables: &'a [crate::table::Table],
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
            tables: &[],
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
}
