//! The rule file format: what rule authors write, exactly as serde reads it.
//!
//! These types are the *configuration* form. Nothing here is evaluated: the
//! compiler ([`crate::compile`]) turns a set of [`RuleFile`]s into a
//! [`crate::RuleGraph`] once, and only the graph runs. Every struct rejects
//! unknown keys, so a typo in a rule file is an error rather than a silently
//! ignored setting.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// One YAML file under the rules directory. Any section may be absent, so a
/// catalog can keep its schemas, lists and control points in separate files.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Event types (schemas), by the value of the event's `type` field.
    #[serde(default)]
    pub event_types: BTreeMap<String, EventTypeDef>,
    /// Named constant lists that expressions test membership in with
    /// `contains(list_name, value)`.
    #[serde(default)]
    pub lists: BTreeMap<String, Vec<ListItem>>,
    /// Control points.
    #[serde(default)]
    pub control_points: Vec<ControlPointDef>,
    /// The business time zone, or one year's holiday notice
    /// (`rules/calendar/*.yaml`).
    #[serde(default)]
    pub calendar: Option<CalendarDef>,
    /// Reference data: registers as tables, looked up as of the event's
    /// time (`rules/tables/*.yaml`).
    #[serde(default)]
    pub tables: BTreeMap<String, crate::table::TableDef>,
}

/// The business calendar, as rule files declare it: the time zone in one
/// file, and each year's published holiday notice in a file of its own.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarDef {
    /// The IANA time zone in which `occurred_hour`, `occurred_weekday` and
    /// the working calendar are read, e.g. `Asia/Shanghai` (the default).
    /// Declared at most once.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// The year whose notice the `holidays` are (one file per year).
    #[serde(default)]
    pub year: Option<i32>,
    /// Where the facts come from: the notice's title, number and date.
    #[serde(default)]
    pub source: Option<String>,
    /// The year's public holidays as the notice lists them.
    #[serde(default)]
    pub holidays: Vec<HolidayDef>,
}

/// One public holiday of a notice: its days off and make-up working days.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HolidayDef {
    /// The holiday's name, e.g. `春节 Spring Festival`.
    pub name: String,
    /// The days off: one date (`2026-01-01`) or an inclusive range
    /// (`2026-02-15..2026-02-23`).
    pub off: String,
    /// Make-up working days (调休上班): Saturdays or Sundays worked.
    #[serde(default)]
    pub work: Vec<String>,
}

/// The schema of one event type.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTypeDef {
    /// The Kafka topic that carries this type, e.g. `events.vehicle_fuel`.
    pub stream: String,
    /// The field that names the event's main subject (also the Kafka key).
    pub subject: String,
    /// Human description of the event type.
    #[serde(default)]
    pub description: Option<String>,
    /// Fields beyond the common ones (`event_id`, `type`, `occurred_at`, `branch`).
    pub fields: BTreeMap<String, FieldDef>,
    /// Derived values: named expressions over the fields, computed once per
    /// event and shared by every control point that reads them.
    #[serde(default)]
    pub derived: BTreeMap<String, String>,
    /// Events of this type are requests that wait for an answer (an
    /// application, a payment request, a limit raise): they get a verdict,
    /// and `block` control points intercept them. Other events report what
    /// already happened: a `block` point on them raises its alert and
    /// blocks nothing.
    #[serde(default)]
    pub request: bool,
    /// Who answers for the data of this type: the role a data-quality
    /// alert notifies and the department that owns it. Required once a
    /// field declares `plausible`.
    #[serde(default)]
    pub data_owner: Option<DataOwnerDef>,
}

/// The owner of an event type's data ([`EventTypeDef::data_owner`]).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataOwnerDef {
    /// The role notified of an implausible reading, e.g. `fleet_data_steward`.
    pub notify: String,
    /// The owning department (责任部门), in Chinese, e.g. `综合部`.
    pub owner: String,
}

/// What a plausible reading of a field is (see [`crate::quality`]). A
/// reading outside it raises a data-quality alert to the type's data
/// owner, and no control point that reads the field fires on the event.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlausibleDef {
    /// The smallest plausible value.
    #[serde(default)]
    pub min: Option<f64>,
    /// The largest plausible value.
    #[serde(default)]
    pub max: Option<f64>,
    /// A condition (an expression over the event's fields and derived
    /// values) every plausible reading meets, e.g.
    /// `fuel_used_l <= standard_fuel_l * 3` or
    /// `odometer_end_km >= odometer_start_km`.
    #[serde(default)]
    pub holds: Option<String>,
}

/// One field of an event type.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// A required field missing from an event makes the event bad input.
    /// An optional one missing makes conditions that read it unknown.
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub description: Option<String>,
    /// The plausible readings of the field: a reading outside them is a
    /// data-quality problem, not an integrity risk.
    #[serde(default)]
    pub plausible: Option<PlausibleDef>,
    /// The field holds an HR employee number (工号), one namespace across
    /// every event type: whom person profiles (一人一档) and `people:` of
    /// control points name. Only a string field may say so.
    #[serde(default)]
    pub person: bool,
    /// Personal data (a name, a phone or ID number, a bank account, a
    /// licence plate): a recorded sample (`[sample]` of `levee run`) holds
    /// a keyed hash of it, never the value. Only string fields; conditions
    /// may compare it for equality with another sensitive field, test it
    /// for emptiness (`len(f) > 0`), count it or show it, nothing else.
    #[serde(default)]
    pub sensitive: bool,
}

/// The type of a field as JSON carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Any JSON number; always a float to the rules, so `200` and `200.0` agree.
    Number,
    /// A whole number.
    Integer,
    String,
    Boolean,
    /// An RFC 3339 string; to the rules, seconds since the Unix epoch (integer).
    Timestamp,
}

/// A member of a constant list.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ListItem {
    Int(i64),
    Float(f64),
    String(String),
}

/// The action a control point takes when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Raise an alert after the fact.
    #[default]
    Alert,
    /// Intercept: the request is refused (verdict `block`) and an alert raised.
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Alert => "alert",
            Action::Block => "block",
        }
    }
}

/// A control point's risk grade in the register (风险等级 高/中/低).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RiskGrade {
    /// 高
    High,
    /// 中
    Medium,
    /// 低
    Low,
}

impl RiskGrade {
    /// As rule files write it: `high`, `medium`, `low`.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskGrade::High => "high",
            RiskGrade::Medium => "medium",
            RiskGrade::Low => "low",
        }
    }

    /// As the register writes it: 高, 中, 低.
    pub fn zh(self) -> &'static str {
        match self {
            RiskGrade::High => "高",
            RiskGrade::Medium => "中",
            RiskGrade::Low => "低",
        }
    }
}

/// A control point's subject: one field, or several (a composite key).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SubjectDef {
    One(String),
    Composite(Vec<String>),
}

impl SubjectDef {
    /// The fields, in order.
    pub fn fields(&self) -> &[String] {
        match self {
            SubjectDef::One(f) => std::slice::from_ref(f),
            SubjectDef::Composite(fs) => fs,
        }
    }

    /// How the key is written in a re-keyed copy's name and in messages:
    /// `approver_id`, `project_id+category`.
    pub fn name(&self) -> String {
        self.fields().join("+")
    }
}

/// One integrity-risk control point.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlPointDef {
    /// Stable id with a per-domain prefix, e.g. `VF-001`.
    pub id: String,
    /// The business domain, e.g. `fuel_consumption`.
    pub domain: String,
    pub title: String,
    #[serde(default)]
    pub title_zh: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// The event type this control point checks.
    pub event_type: String,
    /// The condition (an evalexpr expression) under which the point is breached.
    pub when: String,
    /// The field naming whom the alert is about; defaults to the event type's subject.
    /// A stateful point keeps its state per it: any string or integer field
    /// (`approver_id`), or several (`[project_id, category]`), the events
    /// then re-keyed by it (docs/design.md#re-keying).
    #[serde(default)]
    pub subject: Option<SubjectDef>,
    /// Tiers, each with its own condition; the highest tier that holds wins.
    pub tiers: Vec<TierDef>,
    #[serde(default)]
    pub action: Action,
    /// Alert message with `{name}` placeholders naming fields or derived values.
    pub message: String,
    /// The message in Chinese, with the same placeholders as `message`.
    /// The compiler checks its placeholders when present; `levee check`
    /// requires it ([`crate::register`]).
    #[serde(default)]
    pub message_zh: Option<String>,
    /// The register's risk grade (风险等级): `high`, `medium` or `low`.
    #[serde(default)]
    pub risk_grade: Option<RiskGrade>,
    /// The control measure (防控措施), in Chinese, short.
    #[serde(default)]
    pub measure: Option<String>,
    /// The owning department (责任部门), in Chinese, e.g. `综合部`.
    #[serde(default)]
    pub owner: Option<String>,
    /// The basis (制度依据): a law, regulation or standard named with
    /// certainty, or `company rule` ([`crate::register::COMPANY_RULE`]) for
    /// the operator to fill in with its own rule.
    #[serde(default)]
    pub basis: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Windowed aggregates over this subject's recent events (the current one
    /// included), usable by name in `when`, tier conditions and the message.
    #[serde(default)]
    pub aggregates: BTreeMap<String, AggregateDef>,
    /// Fire only once the condition has held on every event of the subject
    /// for at least this long (event time), e.g. `180d`.
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
    /// At most one alert per subject and tier within this period, e.g. `24h`.
    #[serde(default)]
    pub suppress: Option<String>,
    /// An alert not rectified within this period is raised again one tier
    /// up: a duration (`30d`) or working days on the calendar (`10wd`).
    #[serde(default)]
    pub escalate_after: Option<String>,
    /// The people accountable for the event: fields of the event type
    /// marked `person: true` (requester, approver). Alerts carry their
    /// values (`people`), which person profiles (一人一档) are built on.
    /// Absent: every person field of the type. Written out, the list also
    /// drives recusal (回避): where the role a tier notifies is held by one
    /// of them in the event's branch (table `roles`), the alert goes one
    /// tier up instead.
    #[serde(default)]
    pub people: Option<Vec<String>>,
    /// The former name of `people`, refused with a pointer to it.
    #[serde(default)]
    #[schemars(skip)]
    pub accountable: Option<serde_json::Value>,
    /// Optional yes/no fields whose absence fails closed: when the
    /// condition is unknown only because some of these are missing (none
    /// of its terms false, no other field missing), the point fires, as a
    /// step the control requires (a review, an acceptance, a signature)
    /// that the request does not show as done. Others stay unknown.
    #[serde(default)]
    pub fail_closed: Vec<String>,
}

/// A windowed aggregate per subject.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateDef {
    /// `count`, `sum`, `min`, `max`, `avg` or `distinct` (count of distinct values).
    #[serde(rename = "fn")]
    pub func: AggregateFn,
    /// The expression aggregated (not for `count`).
    #[serde(default)]
    pub of: Option<String>,
    /// Only events for which this condition holds are counted.
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    /// The window, e.g. `24h` or `30d`: events whose time is within it of the
    /// current event's time.
    pub over: String,
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AggregateFn {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    Distinct,
}

/// One tier of a control point.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TierDef {
    /// 1 (line manager), 2 (branch leadership) or 3 (discipline inspection).
    pub tier: i64,
    /// Extra condition for this tier, on top of the control point's `when`.
    /// Absent means the tier holds whenever the control point fires.
    #[serde(default)]
    pub when: Option<String>,
    /// The role that must act; tiers 2 and 3 default to `branch_leadership`
    /// and `discipline_inspection`, tier 1 must name one.
    #[serde(default)]
    pub notify: Option<String>,
}

/// A rule test file under `rules/tests/`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    pub cases: Vec<TestCase>,
}

/// One test case: events in, expected alerts out.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    /// Input events, as they would arrive on their topics, in order. Two
    /// special steps may stand among them: `{rectify: CONTROL_POINT, event_id:
    /// ID, status: rectified|dismissed|acknowledged}` rectifies the alert that
    /// control point raised on that event, and `{tick: RFC3339}` lets time pass.
    pub events: Vec<serde_json::Value>,
    /// Alerts that must be raised: exactly these, every alert the events
    /// raise must match one of them (unless `expect_also_others`).
    #[serde(default)]
    pub expect: Vec<ExpectedAlert>,
    /// Let the events raise alerts `expect` does not list (by default a
    /// case fails on any alert it does not expect).
    #[serde(default)]
    pub expect_also_others: bool,
    /// Control points that must not fire on any of the events.
    #[serde(default)]
    pub expect_none: Vec<String>,
    /// How many alerts a control point must raise in all, where it matters
    /// (suppression, escalation): `{VF-010: 1}`.
    #[serde(default)]
    pub expect_count: BTreeMap<String, usize>,
    /// The processing clock of the case (RFC 3339): an event stamped more
    /// than an hour after it is refused as `future`, as `levee run` and
    /// `levee replay` refuse it. Without it, time is the events' alone.
    #[serde(default)]
    pub now: Option<String>,
    /// Events (by `event_id`) the case expects refused as `future`.
    #[serde(default)]
    pub expect_future: Vec<String>,
    /// Table rows the case runs with, by table: they replace the rows the
    /// rules give that table (`{fleet: [{vehicle_id: V1, …}]}`).
    #[serde(default)]
    pub tables: BTreeMap<String, Vec<serde_json::Value>>,
}

/// An alert a test case expects.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedAlert {
    pub control_point: String,
    pub tier: u8,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub action: Option<Action>,
    /// Whether the alert must be an escalation of an earlier one.
    #[serde(default)]
    pub escalated: Option<bool>,
    /// What the working calendar the alert read rests on: `provisional`
    /// or `unknown` (the alert's `calendar`), or `published` (none).
    #[serde(default)]
    pub calendar: Option<crate::calendar::Basis>,
}
