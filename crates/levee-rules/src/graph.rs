//! The compiled rule graph: what runs.
//!
//! Each event type owns a [`Program`]: a flat, topologically ordered array of
//! typed operations over one value buffer. The buffer's first slots hold the
//! decoded event's fields; every [`Node`] after them writes one value, reading
//! only slots before its own. Identical subexpressions of all control points of
//! the type are one node (hash-consed), so shared predicates and derived values
//! are computed once per event.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use crate::model::{Action, FieldType};

/// A hash map with a fast, randomly seeded hasher (foldhash), for lookups
/// on every event.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// An index into an evaluation buffer: field slots first, then nodes.
pub type Slot = u32;

/// The static type of a value, as the type checker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ty {
    Bool,
    Int,
    Float,
    /// A number that may be an integer or a float at run time (e.g. `max(a, 1.5)`).
    Num,
    Str,
}

impl Ty {
    pub fn is_numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Float | Ty::Num)
    }

    pub fn name(self) -> &'static str {
        match self {
            Ty::Bool => "boolean",
            Ty::Int => "integer",
            Ty::Float => "float",
            Ty::Num => "number",
            Ty::Str => "string",
        }
    }
}

/// A constant value.
#[derive(Debug, Clone)]
pub enum Const {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<str>),
}

impl Const {
    pub fn ty(&self) -> Ty {
        match self {
            Const::Bool(_) => Ty::Bool,
            Const::Int(_) => Ty::Int,
            Const::Float(_) => Ty::Float,
            Const::Str(_) => Ty::Str,
        }
    }
}

// Bitwise equality, so that constants can key the hash-consing table
// (NaN equals itself there, and 0.0 differs from -0.0).
impl PartialEq for Const {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Const::Bool(a), Const::Bool(b)) => a == b,
            (Const::Int(a), Const::Int(b)) => a == b,
            (Const::Float(a), Const::Float(b)) => a.to_bits() == b.to_bits(),
            (Const::Str(a), Const::Str(b)) => a == b,
            _ => false,
        }
    }
}
impl Eq for Const {}
impl Hash for Const {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Const::Bool(b) => b.hash(state),
            Const::Int(i) => i.hash(state),
            Const::Float(f) => f.to_bits().hash(state),
            Const::Str(s) => s.hash(state),
        }
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
}

/// Arithmetic operators on numbers (evalexpr's: checked on integers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// Functions on one number that always return a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FloatFn {
    Floor,
    Round,
    Ceil,
    Sqrt,
    Ln,
}

/// Functions on one string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StrFn {
    Lower,
    Upper,
    Trim,
}

/// One operation. Operands are slots of earlier fields or nodes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    Const(Const),
    /// Numeric arithmetic: integer (checked) when both operands are integers
    /// at run time, float otherwise.
    Arith(Arith, Slot, Slot),
    /// `^`: always a float.
    Pow(Slot, Slot),
    Neg(Slot),
    /// `+` on two strings.
    Concat(Slot, Slot),
    /// `==`, exactly: values of different kinds (`1` and `1.0`) are unequal.
    Eq(Slot, Slot),
    Neq(Slot, Slot),
    /// Ordering of two strings, two integers, or else two numbers as floats.
    Cmp(Cmp, Slot, Slot),
    And(Slot, Slot),
    Or(Slot, Slot),
    Not(Slot),
    If(Slot, Slot, Slot),
    Min(Box<[Slot]>),
    Max(Box<[Slot]>),
    FloatFn(FloatFn, Slot),
    Abs(Slot),
    /// Membership in constant list number `.0` of the graph.
    Contains(u32, Slot),
    /// Length of a string in bytes.
    Len(Slot),
    /// A windowed aggregate: number `.0` of the event type's aggregates,
    /// computed from the subject's state by the engine.
    Aggregate(u32),
    StrFn(StrFn, Slot),
    /// A table read as of the event's time: table `.0` of the graph, column
    /// `.1` ([`EXISTS`]: whether a row is valid), by the key in slots `.2`
    /// (a scoped table's branch first). Missing when no row is valid.
    Lookup(u32, u32, Box<[Slot]>),
}

/// The column of an [`Op::Lookup`] that asks only whether a row is valid.
pub const EXISTS: u32 = u32::MAX;

impl Op {
    /// The slots this operation reads.
    pub fn operands(&self) -> Vec<Slot> {
        match self {
            Op::Const(_) => vec![],
            Op::Aggregate(_) => vec![],
            Op::Neg(a)
            | Op::Not(a)
            | Op::FloatFn(_, a)
            | Op::Abs(a)
            | Op::Contains(_, a)
            | Op::Len(a)
            | Op::StrFn(_, a) => vec![*a],
            Op::Arith(_, a, b)
            | Op::Pow(a, b)
            | Op::Concat(a, b)
            | Op::Eq(a, b)
            | Op::Neq(a, b)
            | Op::Cmp(_, a, b)
            | Op::And(a, b)
            | Op::Or(a, b) => vec![*a, *b],
            Op::If(c, a, b) => vec![*c, *a, *b],
            Op::Min(v) | Op::Max(v) | Op::Lookup(_, _, v) => v.to_vec(),
        }
    }
}

/// One node of a program: its operation, its static type, and its text.
#[derive(Debug, Clone)]
pub struct Node {
    pub op: Op,
    pub ty: Ty,
    /// The node as an infix expression over field and derived names (for
    /// `levee graph` and messages).
    pub text: String,
}

/// A windowed aggregate of one event type, per subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Aggregate {
    /// What state is kept under: a digest of the event type and the
    /// definition (`fn`, `of`, `where`, `over`, subject), so a window keeps
    /// its history across reloads and restores whatever else the catalog
    /// gains or loses, and a changed definition starts afresh.
    pub key: u64,
    pub func: crate::model::AggregateFn,
    /// The aggregated value (none for `count`).
    pub of: Option<Slot>,
    /// Only events where this holds are counted.
    pub filter: Option<Slot>,
    /// Window length in seconds.
    pub over: i64,
    /// The field whose value keys the state.
    pub subject: Slot,
}

/// A constant list (`lists:` in rule files, or a tuple literal).
#[derive(Debug, Clone)]
pub struct ConstList {
    pub name: String,
    pub items: Vec<Const>,
}

/// The flat program of one event type.
#[derive(Debug, Clone, Default)]
pub struct Program {
    /// Number of field slots at the start of the buffer.
    pub n_fields: u32,
    pub nodes: Vec<Node>,
}

impl Program {
    /// The node indices the given slots depend on (themselves included),
    /// in evaluation order; nodes in `skip` (and what only they need) are
    /// left out.
    pub fn cone(
        &self,
        roots: impl IntoIterator<Item = Slot>,
        aggregates: &[Aggregate],
        skip: &std::collections::HashSet<u32>,
    ) -> Vec<u32> {
        let mut seen: std::collections::HashSet<u32> = std::collections::HashSet::new();
        let mut stack: Vec<Slot> = roots.into_iter().collect();
        while let Some(s) = stack.pop() {
            let Some(i) = s.checked_sub(self.n_fields) else {
                continue;
            };
            if i as usize >= self.nodes.len() || skip.contains(&i) || !seen.insert(i) {
                continue;
            }
            let node = &self.nodes[i as usize];
            stack.extend(node.op.operands());
            if let Op::Aggregate(a) = node.op {
                if let Some(spec) = aggregates.get(a as usize) {
                    stack.extend(spec.of);
                    stack.extend(spec.filter);
                }
            }
        }
        let mut out: Vec<u32> = seen.into_iter().collect();
        out.sort_unstable();
        out
    }

    /// Total buffer length: fields then nodes.
    pub fn buffer_len(&self) -> usize {
        self.n_fields as usize + self.nodes.len()
    }

    /// The node behind a slot, if the slot is not a field.
    pub fn node(&self, slot: Slot) -> Option<&Node> {
        slot.checked_sub(self.n_fields)
            .and_then(|i| self.nodes.get(i as usize))
    }
}

/// Fields every event carries, whatever its type, in their slot order.
/// `occurred_at` is seconds since the epoch; the others are read in the
/// business time zone of the rules' [`crate::Calendar`], whatever offset the
/// event's timestamp carries: `occurred_hour` (0..23), `occurred_weekday`
/// (1 = Monday .. 7), `occurred_workday` (a working day: Monday to Friday
/// unless a holiday, and the make-up working days) and `occurred_holiday` (a
/// day off of a public holiday). The two calendar fields are missing on a
/// day the calendar does not know.
pub const COMMON_FIELDS: [(&str, FieldType); 7] = [
    ("event_id", FieldType::String),
    ("branch", FieldType::String),
    ("occurred_at", FieldType::Timestamp),
    ("occurred_hour", FieldType::Integer),
    ("occurred_weekday", FieldType::Integer),
    ("occurred_workday", FieldType::Boolean),
    ("occurred_holiday", FieldType::Boolean),
];

/// The slot of `occurred_workday` in every event type's buffer.
pub const WORKDAY_SLOT: Slot = 5;
/// The slot of `occurred_holiday` in every event type's buffer.
pub const HOLIDAY_SLOT: Slot = 6;

/// A field of an event type and its slot.
#[derive(Debug, Clone)]
pub struct FieldSpec {
    pub name: String,
    pub ty: FieldType,
    pub required: bool,
    /// True for the common fields, which the decoder fills from the envelope.
    pub common: bool,
    /// It holds an employee number (`person: true`).
    pub person: bool,
    /// Personal data (`sensitive: true`): hashed in a recorded sample.
    pub sensitive: bool,
}

/// One event type with its schema and program.
#[derive(Debug, Clone)]
pub struct EventType {
    pub name: String,
    pub stream: String,
    /// Slot of the field that is the event's main subject.
    pub subject: Slot,
    /// Fields in slot order (common fields first).
    pub fields: Vec<FieldSpec>,
    /// Field name → slot, for decoding.
    pub field_index: FastMap<String, Slot>,
    /// Derived values by name, with their slots.
    pub derived: Vec<(String, Slot)>,
    pub program: Program,
    /// Control points of this type, as indices into [`RuleGraph::control_points`].
    pub control_points: Vec<u32>,
    /// Windowed aggregates that this type's programs read.
    pub aggregates: Vec<Aggregate>,
    /// What each event evaluates, and how each control point's condition
    /// is decided.
    pub plan: crate::plan::Plan,
    /// Its events are requests: they get verdicts (`request: true`).
    pub request: bool,
    /// For a re-keyed copy (`purchase@approver_id`): the type it copies
    /// and its key ([`Rekeyed`]).
    pub rekeyed: Option<Rekeyed>,
    /// Its re-keyed copies (indices into [`RuleGraph::event_types`]).
    pub copies: Vec<u32>,
}

/// What makes an event type a re-keyed copy of another: the same fields in
/// the same slots, and, for a composite key, one more slot holding the
/// key's value (its parts' values joined by `|`), its `subject`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rekeyed {
    /// The event type it copies.
    pub of: u32,
    /// The key's fields, as slots of both types.
    pub key: Vec<Slot>,
}

impl EventType {
    /// The name events of this type carry: a copy's is its type's
    /// (`purchase` for `purchase@approver_id`).
    pub fn origin_name(&self) -> &str {
        match self.rekeyed {
            Some(_) => self.name.split('@').next().unwrap_or(&self.name),
            None => &self.name,
        }
    }
}

impl EventType {
    /// The name of a slot, if it is a field or a derived value.
    pub fn slot_name(&self, slot: Slot) -> Option<&str> {
        if let Some(f) = self.fields.get(slot as usize) {
            return Some(&f.name);
        }
        self.derived
            .iter()
            .find(|(_, s)| *s == slot)
            .map(|(n, _)| n.as_str())
    }
}

/// One compiled tier.
#[derive(Debug, Clone)]
pub struct Tier {
    pub tier: u8,
    /// Extra condition; `None` holds whenever the control point fires.
    pub when: Option<Slot>,
    pub when_src: Option<String>,
    pub notify: String,
    /// Recusal (回避): true when the role it notifies is held, in the
    /// event's branch, by one of the point's `people`, as written (the
    /// `roles` table); the alert then goes one tier up.
    pub recuse: Option<Slot>,
}

/// A piece of a message template.
#[derive(Debug, Clone)]
pub enum MessagePart {
    Text(String),
    Value(Slot),
    /// An amount of money as people read it (`message_zh` placeholders
    /// ending in `_cny`): thousands separators, two decimals.
    Amount(Slot),
}

impl MessagePart {
    /// The slot it reads, if any.
    pub fn slot(&self) -> Option<Slot> {
        match self {
            MessagePart::Text(_) => None,
            MessagePart::Value(s) | MessagePart::Amount(s) => Some(*s),
        }
    }
}

/// One compiled control point.
#[derive(Debug, Clone)]
pub struct ControlPoint {
    pub id: String,
    /// What its `for:` and `suppress:` state is kept under: a digest of
    /// its id, stable across reloads and restores.
    pub key: u64,
    pub domain: String,
    pub title: String,
    pub title_zh: Option<String>,
    pub description: Option<String>,
    pub event_type: u32,
    pub when_src: String,
    pub when: Slot,
    pub subject: Slot,
    /// What kind of thing the subject is, from its field's name without
    /// `_id` (`supplier_id` → `supplier`): profiles are kept under
    /// `<kind>:<subject>`.
    pub subject_kind: String,
    /// The slots of its `people` (person fields), in order: alerts carry
    /// their values.
    pub people: Vec<Slot>,
    /// Highest tier first.
    pub tiers: Vec<Tier>,
    pub action: Action,
    pub message: Vec<MessagePart>,
    /// The message in Chinese (`message_zh`), when the rule file gives one.
    pub message_zh: Option<Vec<MessagePart>>,
    /// The register's columns: risk grade, measure, owner, basis.
    pub register: crate::register::Register,
    /// The named fields and derived values its conditions and message read.
    pub evidence: Vec<(String, Slot)>,
    pub tags: Vec<String>,
    /// The rule file it came from, relative to the rules directory.
    pub file: String,
    /// `for:` in seconds.
    pub hold_for: Option<i64>,
    /// `suppress:` in seconds.
    pub suppress: Option<i64>,
    /// `escalate_after:`, in seconds or working days.
    pub escalate_after: Option<crate::duration::Period>,
    /// Whether its conditions read the working calendar (`occurred_workday`
    /// or `occurred_holiday`, directly, through derived values or through
    /// an aggregate's `of` or `where`): its alerts then say when the day's
    /// calendar is provisional.
    pub reads_calendar: bool,
    /// On a data-quality point ([`crate::quality`]): the field whose
    /// readings it guards.
    pub guards: Option<String>,
    /// The data-quality points (indices into the graph's control points,
    /// all of its event type) guarding a field this point reads: when one
    /// of them fires on an event, this point is not decided on it.
    pub guarded_by: Vec<u32>,
    /// `fail_closed:` the slots of the yes/no fields whose absence makes
    /// the point fire ([`crate::missing`]); empty for most points.
    pub fail_closed: Vec<Slot>,
    /// With `fail_closed`: every field slot its conditions read.
    pub fields_read: Vec<Slot>,
}

impl ControlPoint {
    /// Whether the control point keeps state per subject.
    pub fn is_stateful(&self) -> bool {
        self.hold_for.is_some() || self.suppress.is_some() || self.escalate_after.is_some()
    }
}

/// The whole compiled rule set: immutable, shared by every evaluator.
#[derive(Debug, Clone)]
pub struct RuleGraph {
    /// Content hash of the rule files that produced this graph.
    pub version: String,
    pub event_types: Vec<EventType>,
    pub type_index: HashMap<String, u32>,
    pub control_points: Vec<ControlPoint>,
    /// Control point id → its index in `control_points`.
    pub point_index: HashMap<String, u32>,
    pub lists: Vec<ConstList>,
    /// The business time zone and the working calendar.
    pub calendar: crate::Calendar,
    /// Reference data (`tables:`, and the lists as one-column tables).
    pub tables: Vec<crate::table::Table>,
}

impl RuleGraph {
    pub fn event_type(&self, name: &str) -> Option<(u32, &EventType)> {
        let i = *self.type_index.get(name)?;
        Some((i, &self.event_types[i as usize]))
    }

    /// A control point by its id.
    pub fn control_point(&self, id: &str) -> Option<&ControlPoint> {
        let i = *self.point_index.get(id)?;
        self.control_points.get(i as usize)
    }

    /// Sorted, de-duplicated domain names.
    pub fn domains(&self) -> Vec<&str> {
        let mut d: Vec<&str> = self
            .control_points
            .iter()
            .map(|c| c.domain.as_str())
            .collect();
        d.sort_unstable();
        d.dedup();
        d
    }

    /// `levee check`'s summary line.
    /// `N control points in M domains, K event types` (re-keyed copies
    /// are not event types of their own).
    pub fn summary(&self) -> String {
        format!(
            "{} control points in {} domains, {} event types",
            self.control_points.len(),
            self.domains().len(),
            self.type_index.len()
        )
    }
}
