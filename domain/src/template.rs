//! Message templates: a body with `{placeholders}`, the variables it declares, and what a rendered
//! message can cost.
//!
//! A SafeShipper template reads `SafeShipper: Shipment {tracking_number} created. Track: {tracking_url}`.
//! [`TemplateBody::parse`] checks the syntax, [`VariableSpec`] says what each value may hold,
//! [`Template::new`] ties them together, [`Template::render`] fills in values and
//! [`Template::worst_case`] says how few and how many segments a message from it can take, before
//! any value is known.
//!
//! **Values never fuse with the text around them.** A value that starts with a combining mark or
//! a joiner, or ends with a character that joins the next one (a prepended sign, half a flag), would
//! merge with the template's own text into one character on the phone. [`Template::render`] rejects
//! such values. Besides catching garbled messages, this makes the grapheme clusters of a message
//! exactly those of its pieces (static text, then each value), which is what lets
//! [`Template::worst_case`] reason piece by piece.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::segments::{
    self, BodyError, Encoding, Layout, MAX_BODY_CHARS, gsm7_septets, is_gsm7_grapheme,
    smart_encode, smart_replacements,
};

/// Longest variable name, in characters. Long enough for `delivery_window_start_local_time`,
/// short enough to show in an error message and a form label.
pub const MAX_VARIABLE_NAME_CHARS: usize = 64;

/// Longest template key, in characters.
pub const MAX_TEMPLATE_KEY_CHARS: usize = 64;

// ---------------------------------------------------------------------------------------------
// Positions and names
// ---------------------------------------------------------------------------------------------

/// Where something is in a template body: a 0-based index in characters (Unicode scalar values),
/// and the 1-based line and column a person sees in the editor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    pub index: usize,
    pub line: usize,
    pub column: usize,
}

impl Position {
    fn of(chars: &[char], index: usize) -> Position {
        let before = &chars[..index];
        let line = 1 + before.iter().filter(|&&c| c == '\n').count();
        let line_start = before.iter().rposition(|&c| c == '\n').map_or(0, |i| i + 1);
        Position {
            index,
            line,
            column: index - line_start + 1,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why a variable name is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum NameError {
    #[error("a variable name cannot be empty")]
    Empty,
    #[error("a variable name must start with a letter (A-Z, a-z) or `_`, not `{ch}`")]
    BadStart { ch: char },
    #[error(
        "a variable name may contain only letters (A-Z, a-z), digits and `_`, not `{}`",
        ch.escape_default()
    )]
    BadChar { ch: char },
    #[error("a variable name is at most {max} characters; this one has {chars}", max = MAX_VARIABLE_NAME_CHARS)]
    TooLong { chars: usize },
}

/// Checks a variable name: an ASCII letter or `_`, then ASCII letters, digits or `_`, at most
/// [`MAX_VARIABLE_NAME_CHARS`]. ASCII only, so that a name reads the same in every font and can
/// be a form field or a JSON key without escaping.
pub fn check_variable_name(name: &str) -> Result<(), NameError> {
    let mut chars = name.chars();
    let first = chars.next().ok_or(NameError::Empty)?;
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Err(NameError::BadStart { ch: first });
    }
    if let Some(ch) = chars.find(|c| !(c.is_ascii_alphanumeric() || *c == '_')) {
        return Err(NameError::BadChar { ch });
    }
    let count = name.chars().count();
    if count > MAX_VARIABLE_NAME_CHARS {
        return Err(NameError::TooLong { chars: count });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Template bodies
// ---------------------------------------------------------------------------------------------

/// Why a template body does not parse. Every variant says where, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TemplateError {
    #[error(
        "the `{{` at {at} is never closed: add `}}` after the variable name, or write `{{{{` for a literal `{{`"
    )]
    UnclosedBrace { at: Position },
    #[error("the `}}` at {at} does not close anything: write `}}}}` for a literal `}}`")]
    StrayClosingBrace { at: Position },
    #[error(
        "`{{}}` at {at} has no variable name: write one between the braces, e.g. `{{tracking_number}}`, or `{{{{}}}}` for literal braces"
    )]
    EmptyName { at: Position },
    #[error("`{{{name}}}` at {at}: {reason}")]
    BadName {
        name: String,
        at: Position,
        reason: NameError,
    },
    #[error(
        "the `{{` at {at} is inside the variable opened at {outer}: variables cannot be nested; close the first one with `}}`, or write `{{{{` for a literal `{{`"
    )]
    NestedBrace { at: Position, outer: Position },
}

/// One piece of a parsed body.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Part {
    /// Literal text, braces unescaped (`{{` is stored as `{`). Never empty; never two in a row.
    Text { text: String },
    /// A `{name}` placeholder; `at` is the character index of its `{` in the source.
    Variable { name: String, at: usize },
}

/// A parsed template body: its source as written, and its parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TemplateBody {
    source: String,
    parts: Vec<Part>,
}

impl TemplateBody {
    /// Parses a body: `{name}` is a placeholder, `{{` and `}}` are literal braces.
    pub fn parse(source: &str) -> Result<TemplateBody, TemplateError> {
        let chars: Vec<char> = source.chars().collect();
        let at = |i: usize| Position::of(&chars, i);
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '{' if chars.get(i + 1) == Some(&'{') => {
                    text.push('{');
                    i += 2;
                }
                '}' if chars.get(i + 1) == Some(&'}') => {
                    text.push('}');
                    i += 2;
                }
                '}' => return Err(TemplateError::StrayClosingBrace { at: at(i) }),
                '{' => {
                    let open = i;
                    let mut j = i + 1;
                    let close = loop {
                        match chars.get(j) {
                            None => return Err(TemplateError::UnclosedBrace { at: at(open) }),
                            Some('}') => break j,
                            Some('{') => {
                                return Err(TemplateError::NestedBrace {
                                    at: at(j),
                                    outer: at(open),
                                });
                            }
                            Some(_) => j += 1,
                        }
                    };
                    let name: String = chars[open + 1..close].iter().collect();
                    match check_variable_name(&name) {
                        Ok(()) => {}
                        Err(NameError::Empty) => {
                            return Err(TemplateError::EmptyName { at: at(open) });
                        }
                        Err(reason) => {
                            return Err(TemplateError::BadName {
                                name,
                                at: at(open),
                                reason,
                            });
                        }
                    }
                    if !text.is_empty() {
                        parts.push(Part::Text {
                            text: std::mem::take(&mut text),
                        });
                    }
                    parts.push(Part::Variable { name, at: open });
                    i = close + 1;
                }
                c => {
                    text.push(c);
                    i += 1;
                }
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text { text });
        }
        Ok(TemplateBody {
            source: source.to_owned(),
            parts,
        })
    }

    /// The body as written, escapes included.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Variable names in order of first use, each once.
    pub fn variables(&self) -> Vec<&str> {
        let mut seen = BTreeSet::new();
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Variable { name, .. } => Some(name.as_str()),
                Part::Text { .. } => None,
            })
            .filter(|n| seen.insert(*n))
            .collect()
    }

    /// The literal text with every placeholder removed: what the template says on its own.
    fn static_text(&self) -> String {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Text { text } => Some(text.as_str()),
                Part::Variable { .. } => None,
            })
            .collect()
    }
}

impl TryFrom<String> for TemplateBody {
    type Error = TemplateError;
    fn try_from(source: String) -> Result<Self, Self::Error> {
        TemplateBody::parse(&source)
    }
}

impl From<TemplateBody> for String {
    fn from(body: TemplateBody) -> String {
        body.source
    }
}

impl FromStr for TemplateBody {
    type Err = TemplateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TemplateBody::parse(s)
    }
}

/// Escapes literal text for a template body: `{` becomes `{{` and `}` becomes `}}`.
pub fn escape_literal(text: &str) -> String {
    text.replace('{', "{{").replace('}', "}}")
}

// ---------------------------------------------------------------------------------------------
// Variables
// ---------------------------------------------------------------------------------------------

/// The characters a value may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Charset {
    /// Only the GSM-7 alphabet, extension characters (`€ [ ] { } ^ ~ | \`) included: the value can
    /// never push a message to UCS-2. Tracking numbers, URLs, codes.
    Gsm7,
    /// Anything. Names and addresses, which may need accents GSM-7 lacks.
    Unicode,
}

impl Charset {
    pub fn as_str(self) -> &'static str {
        match self {
            Charset::Gsm7 => "gsm7",
            Charset::Unicode => "unicode",
        }
    }

    fn allows(self, c: char) -> bool {
        match self {
            Charset::Gsm7 => gsm7_septets(c).is_some(),
            Charset::Unicode => true,
        }
    }
}

/// Why a variable specification is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum VariableError {
    #[error("variable `{name}`: {reason}")]
    BadName { name: String, reason: NameError },
    #[error("variable `{name}`: the maximum length must be at least 1 character")]
    ZeroMaxLen { name: String },
    #[error("variable `{name}`: the sample value is invalid: {problem}")]
    BadSample { name: String, problem: ValueProblem },
}

/// What a value of one variable may be: at most `max_len` characters (Unicode scalar values, as
/// Twilio counts its 1,600-character limit), in `charset`. Every value has at least one character:
/// an empty value leaves a gap in the text (`Shipment  created`) and is refused at render time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "VariableSpecParts", into = "VariableSpecParts")]
pub struct VariableSpec {
    name: String,
    max_len: usize,
    charset: Charset,
    sample: String,
}

/// The fields of a [`VariableSpec`], unchecked: what forms and JSON carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariableSpecParts {
    pub name: String,
    pub max_len: usize,
    pub charset: Charset,
    pub sample: String,
}

impl VariableSpec {
    /// Checks the name, that `max_len >= 1`, and that the sample is a value this spec allows.
    pub fn new(
        name: impl Into<String>,
        max_len: usize,
        charset: Charset,
        sample: impl Into<String>,
    ) -> Result<VariableSpec, VariableError> {
        let name = name.into();
        let sample = sample.into();
        if let Err(reason) = check_variable_name(&name) {
            return Err(VariableError::BadName { name, reason });
        }
        if max_len == 0 {
            return Err(VariableError::ZeroMaxLen { name });
        }
        let spec = VariableSpec {
            name,
            max_len,
            charset,
            sample,
        };
        if let Some(problem) = spec.check_value(&spec.sample) {
            return Err(VariableError::BadSample {
                name: spec.name,
                problem,
            });
        }
        Ok(spec)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    pub fn charset(&self) -> Charset {
        self.charset
    }

    pub fn sample(&self) -> &str {
        &self.sample
    }

    /// What is wrong with a value on its own (length, charset), if anything.
    pub fn check_value(&self, value: &str) -> Option<ValueProblem> {
        let chars = value.chars().count();
        if chars == 0 {
            return Some(ValueProblem::Empty);
        }
        if chars > self.max_len {
            return Some(ValueProblem::TooLong {
                chars,
                max: self.max_len,
            });
        }
        value
            .chars()
            .enumerate()
            .find(|&(_, c)| !self.charset.allows(c))
            .map(|(index, ch)| ValueProblem::NotGsm7 { ch, index })
    }
}

impl TryFrom<VariableSpecParts> for VariableSpec {
    type Error = VariableError;
    fn try_from(p: VariableSpecParts) -> Result<Self, Self::Error> {
        VariableSpec::new(p.name, p.max_len, p.charset, p.sample)
    }
}

impl From<VariableSpec> for VariableSpecParts {
    fn from(s: VariableSpec) -> Self {
        VariableSpecParts {
            name: s.name,
            max_len: s.max_len,
            charset: s.charset,
            sample: s.sample,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Category and priority
// ---------------------------------------------------------------------------------------------

/// What a template is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Shipment created, picked up, delayed, delivered.
    Shipment,
    /// Dangerous goods incidents: spills, leaks, evacuations.
    Emergency,
    /// One-time sign-in codes.
    TwoFactor,
    /// Instructions to drivers.
    Driver,
}

impl Category {
    pub const ALL: [Category; 4] = [
        Category::Shipment,
        Category::Emergency,
        Category::TwoFactor,
        Category::Driver,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Shipment => "shipment",
            Category::Emergency => "emergency",
            Category::TwoFactor => "two_factor",
            Category::Driver => "driver",
        }
    }

    /// The priority a template of this category gets unless it says otherwise.
    pub fn default_priority(self) -> Priority {
        match self {
            Category::Emergency => Priority::Emergency,
            Category::TwoFactor => Priority::TwoFactor,
            Category::Shipment | Category::Driver => Priority::Normal,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A category or priority name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`: expected one of {expected}")]
pub struct UnknownName {
    pub kind: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl FromStr for Category {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "category",
                value: s.to_owned(),
                expected: "shipment, emergency, two_factor, driver",
            })
    }
}

/// Which messages go first when the send rate is the bottleneck. Ordered from lowest to highest,
/// so the worker sorts by `Reverse(priority)` (or takes the `max`): an evacuation notice must not
/// wait behind a batch of delivery updates, and a sign-in code expires within minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Shipment and driver updates.
    Normal,
    /// One-time codes.
    TwoFactor,
    /// Dangerous goods emergencies: before everything else.
    Emergency,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::Normal, Priority::TwoFactor, Priority::Emergency];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::TwoFactor => "two_factor",
            Priority::Emergency => "emergency",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "priority",
                value: s.to_owned(),
                expected: "normal, two_factor, emergency",
            })
    }
}

// ---------------------------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------------------------

/// The key a template is found by (`shipment_created`): 1 to 64 lowercase ASCII letters, digits,
/// `_` or `-`, starting with a letter. Stable, so that the API and logs can name templates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TemplateKey(String);

/// Why a template key is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "template key `{key}` is invalid: use 1 to {max} lowercase letters, digits, `_` or `-`, starting with a letter (e.g. `shipment_created`)",
    max = MAX_TEMPLATE_KEY_CHARS
)]
pub struct TemplateKeyError {
    pub key: String,
}

impl TemplateKey {
    pub fn parse(key: &str) -> Result<TemplateKey, TemplateKeyError> {
        let ok = key.len() <= MAX_TEMPLATE_KEY_CHARS
            && key.starts_with(|c: char| c.is_ascii_lowercase())
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if ok {
            Ok(TemplateKey(key.to_owned()))
        } else {
            Err(TemplateKeyError {
                key: key.to_owned(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TemplateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TemplateKey {
    type Error = TemplateKeyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TemplateKey::parse(&s)
    }
}

impl From<TemplateKey> for String {
    fn from(k: TemplateKey) -> String {
        k.0
    }
}

/// Why a template cannot be defined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    #[error(
        "unknown template variables: {}: declare them, or remove them from the body",
        names.join(", ")
    )]
    UnknownVariables { names: Vec<String> },
    #[error("variable `{name}` is declared more than once")]
    DuplicateVariable { name: String },
    /// The preview with the sample values does not render: fix the samples (or the body).
    #[error("the preview with the sample values does not render: {0}")]
    Preview(RenderError),
    #[error(
        "a TTL of {seconds} seconds is out of range: give 1 to {MAX_TTL_SECONDS} seconds (Twilio's longest validity period, 10 hours), or leave it empty"
    )]
    Ttl { seconds: u32 },
}

/// The fields of a [`Template`], unchecked: what forms and JSON carry. `priority: None` means the
/// category's default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateParts {
    pub key: TemplateKey,
    pub body: TemplateBody,
    pub variables: Vec<VariableSpec>,
    pub category: Category,
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Whether messages go out with Twilio's smart encoding (look-alikes replaced by GSM-7).
    /// It must match the Messaging Service's setting, or segment counts will be wrong.
    #[serde(default)]
    pub smart_encoding: bool,
    /// How long a message from this template stays worth sending, in seconds (Twilio's
    /// `ValidityPeriod`, 1 to 36,000): a two-factor code is useless once it has expired. `None`:
    /// [`DEFAULT_TWO_FACTOR_TTL_SECONDS`] for two-factor templates, no limit for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u32>,
}

/// Twilio's longest `ValidityPeriod`, in seconds (10 hours).
pub const MAX_TTL_SECONDS: u32 = 36_000;
/// A two-factor template's TTL when it sets none: 10 minutes.
pub const DEFAULT_TWO_FACTOR_TTL_SECONDS: u32 = 600;

/// A template ready to send: every placeholder declared, samples valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TemplateParts", into = "TemplateParts")]
pub struct Template {
    key: TemplateKey,
    body: TemplateBody,
    variables: Vec<VariableSpec>,
    category: Category,
    priority: Priority,
    priority_overridden: bool,
    smart_encoding: bool,
    ttl_seconds: Option<u32>,
}

impl Template {
    /// Checks that every placeholder is declared (naming every one that is not), that no variable
    /// is declared twice, and that the sample values render. Declared variables the body does not
    /// use are allowed, so that editing the body never makes a template unsaveable; the editor
    /// shows them as a warning ([`Template::unused_variables`]).
    pub fn new(parts: TemplateParts) -> Result<Template, DefinitionError> {
        let mut declared = BTreeSet::new();
        for v in &parts.variables {
            if !declared.insert(v.name()) {
                return Err(DefinitionError::DuplicateVariable {
                    name: v.name().to_owned(),
                });
            }
        }
        let unknown: Vec<String> = parts
            .body
            .variables()
            .into_iter()
            .filter(|n| !declared.contains(n))
            .map(str::to_owned)
            .collect();
        if !unknown.is_empty() {
            return Err(DefinitionError::UnknownVariables { names: unknown });
        }
        if let Some(seconds) = parts.ttl_seconds
            && !(1..=MAX_TTL_SECONDS).contains(&seconds)
        {
            return Err(DefinitionError::Ttl { seconds });
        }
        let template = Template {
            key: parts.key,
            body: parts.body,
            variables: parts.variables,
            category: parts.category,
            priority: parts
                .priority
                .unwrap_or_else(|| parts.category.default_priority()),
            priority_overridden: parts.priority.is_some(),
            smart_encoding: parts.smart_encoding,
            ttl_seconds: parts.ttl_seconds,
        };
        template
            .render_samples()
            .map_err(DefinitionError::Preview)?;
        Ok(template)
    }

    pub fn key(&self) -> &TemplateKey {
        &self.key
    }

    pub fn body(&self) -> &TemplateBody {
        &self.body
    }

    pub fn variables(&self) -> &[VariableSpec] {
        &self.variables
    }

    pub fn variable(&self, name: &str) -> Option<&VariableSpec> {
        self.variables.iter().find(|v| v.name() == name)
    }

    pub fn category(&self) -> Category {
        self.category
    }

    pub fn priority(&self) -> Priority {
        self.priority
    }

    pub fn smart_encoding(&self) -> bool {
        self.smart_encoding
    }

    /// The TTL the template sets, if any.
    pub fn ttl_seconds(&self) -> Option<u32> {
        self.ttl_seconds
    }

    /// How long its messages may wait before they are no longer worth sending (Twilio's
    /// `ValidityPeriod`): the template's TTL, else 10 minutes for two-factor codes, else none.
    pub fn validity_seconds(&self) -> Option<u32> {
        self.ttl_seconds
            .or((self.category == Category::TwoFactor).then_some(DEFAULT_TWO_FACTOR_TTL_SECONDS))
    }

    /// Declared variables the body does not use: harmless, but probably a leftover.
    pub fn unused_variables(&self) -> Vec<&str> {
        let used: BTreeSet<&str> = self.body.variables().into_iter().collect();
        self.variables
            .iter()
            .map(VariableSpec::name)
            .filter(|n| !used.contains(n))
            .collect()
    }

    /// Fills in the values. Fails naming every missing value; otherwise naming every value that
    /// is empty, too long, outside its charset (with the offending character) or would fuse with
    /// the text next to it; otherwise when the message exceeds Twilio's 1,600 characters.
    /// Values for variables the body does not use are ignored.
    pub fn render<L: Lookup + ?Sized>(&self, values: &L) -> Result<String, RenderError> {
        let used = self.body.variables();
        let missing: Vec<String> = used
            .iter()
            .filter(|n| values.lookup(n).is_none())
            .map(|n| (*n).to_owned())
            .collect();
        if !missing.is_empty() {
            return Err(RenderError::MissingValues { names: missing });
        }
        let mut problems = Vec::new();
        for name in &used {
            let spec = self.variable(name).expect("checked by Template::new");
            let value = values.lookup(name).expect("checked above");
            if let Some(problem) = spec.check_value(value) {
                problems.push(ValueError {
                    variable: (*name).to_owned(),
                    problem,
                });
            }
        }
        if !problems.is_empty() {
            return Err(RenderError::InvalidValues { problems });
        }
        let pieces: Vec<Piece<'_>> = self
            .body
            .parts()
            .iter()
            .map(|p| match p {
                Part::Text { text } => Piece::Text(text),
                Part::Variable { name, .. } => {
                    Piece::Value(name, values.lookup(name).expect("checked above"))
                }
            })
            .collect();
        self.check_fusing(&pieces)?;
        let body: String = pieces.iter().map(|p| p.text()).collect();
        let chars = body.chars().count();
        if chars > MAX_BODY_CHARS {
            return Err(RenderError::Body(BodyError::TooLong { chars }));
        }
        Ok(body)
    }

    /// The body filled with the sample values: the editor's preview.
    pub fn render_samples(&self) -> Result<String, RenderError> {
        let samples: BTreeMap<String, String> = self
            .variables
            .iter()
            .map(|v| (v.name().to_owned(), v.sample().to_owned()))
            .collect();
        self.render(&samples)
    }

    /// Rejects values that would fuse with their neighbours into one grapheme cluster: the
    /// text as sent (smart-encoded when the template says so) must have a cluster boundary at
    /// both ends of every value.
    fn check_fusing(&self, pieces: &[Piece<'_>]) -> Result<(), RenderError> {
        let encoded: Vec<String> = pieces.iter().map(|p| self.encode(p.text())).collect();
        let full: String = encoded.concat();
        let mut boundaries = BTreeSet::new();
        let mut at = 0;
        boundaries.insert(0);
        for g in segments::graphemes(&full) {
            at += g.len();
            boundaries.insert(at);
        }
        let mut problems = Vec::new();
        let mut start = 0;
        for (piece, enc) in pieces.iter().zip(&encoded) {
            let end = start + enc.len();
            if let Piece::Value(name, _) = piece {
                let side = match (boundaries.contains(&start), boundaries.contains(&end)) {
                    (true, true) => None,
                    (false, _) => Some(Side::Start),
                    (true, false) => Some(Side::End),
                };
                if let Some(side) = side {
                    problems.push(ValueError {
                        variable: (*name).to_owned(),
                        problem: ValueProblem::FusesWithText { side },
                    });
                }
            }
            start = end;
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(RenderError::InvalidValues { problems })
        }
    }

    fn encode(&self, text: &str) -> String {
        if self.smart_encoding {
            smart_encode(text)
        } else {
            text.to_owned()
        }
    }
}

impl TryFrom<TemplateParts> for Template {
    type Error = DefinitionError;
    fn try_from(parts: TemplateParts) -> Result<Self, Self::Error> {
        Template::new(parts)
    }
}

impl From<Template> for TemplateParts {
    fn from(t: Template) -> Self {
        TemplateParts {
            key: t.key,
            body: t.body,
            variables: t.variables,
            category: t.category,
            priority: t.priority_overridden.then_some(t.priority),
            smart_encoding: t.smart_encoding,
            ttl_seconds: t.ttl_seconds,
        }
    }
}

enum Piece<'a> {
    Text(&'a str),
    Value(&'a str, &'a str),
}

impl Piece<'_> {
    fn text(&self) -> &str {
        match self {
            Piece::Text(t) => t,
            Piece::Value(_, v) => v,
        }
    }
}

/// Where values come from when rendering.
pub trait Lookup {
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl Lookup for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> Lookup for HashMap<String, String, S> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Lookup for [(K, V)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| v.as_ref())
    }
}

/// Which end of a value fuses with the text next to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Start,
    End,
}

/// What is wrong with one value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ValueProblem {
    #[error("it is empty")]
    Empty,
    #[error("it is {chars} characters long; at most {max} are allowed")]
    TooLong { chars: usize, max: usize },
    #[error(
        "character {} (`{}`, U+{:04X}) is not in the GSM-7 alphabet, which this variable is limited to",
        index + 1, ch.escape_default(), *ch as u32
    )]
    NotGsm7 { ch: char, index: usize },
    #[error(
        "its {} would merge with the text next to it into one character (a combining mark, joiner or half a flag): remove that character",
        match side { Side::Start => "first character", Side::End => "last character" }
    )]
    FusesWithText { side: Side },
}

/// One variable's invalid value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("`{variable}`: {problem}")]
pub struct ValueError {
    pub variable: String,
    pub problem: ValueProblem,
}

/// Why a template cannot be rendered with these values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("missing values for {}", names.join(", "))]
    MissingValues { names: Vec<String> },
    #[error(
        "invalid values: {}",
        problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    InvalidValues { problems: Vec<ValueError> },
    #[error(transparent)]
    Body(#[from] BodyError),
}

// ---------------------------------------------------------------------------------------------
// Worst case
// ---------------------------------------------------------------------------------------------

/// How few and how many segments a message from a template can take, over every set of values
/// its variable specs allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorstCase {
    /// No allowed values give fewer segments.
    pub min_segments: usize,
    /// No allowed values give more segments (an upper bound; see [`Template::worst_case`]).
    pub max_segments: usize,
    /// The encoding of the most expensive messages: UCS-2 when any value (or the text) can force it.
    pub max_encoding: Encoding,
    /// The encoding of the template's own text, values aside. When it is UCS-2, every message is.
    pub static_encoding: Encoding,
    /// Unicode variables whose values can push a GSM-7 template to UCS-2 (more than doubling
    /// the segments of a long message). Empty when the text is already UCS-2.
    pub ucs2_variables: Vec<String>,
    /// Whether values at their maximum length can exceed Twilio's 1,600 characters (such
    /// messages fail to render).
    pub over_limit: bool,
    /// The longest message, in characters (Unicode scalar values).
    pub max_chars: usize,
}

impl Template {
    /// The range of segments a message from this template can take.
    ///
    /// **Minimum.** Every value is one character of one unit (`a`, or `ç` in the one Unicode
    /// variable that makes the message UCS-2), or nothing when smart encoding can erase it
    /// (a zero-width character). This is the true minimum: since values never fuse with the text
    /// around them (see the module documentation), any allowed message is the minimal one with
    /// grapheme clusters inserted or grown, and the calculator's layout never needs fewer
    /// segments after an insertion or growth (next-fit packing is monotone; for the first
    /// segment's retroactive header the cut moves by at most the inserted units, so the second
    /// segment only gets fuller). Both encodings are tried when both are possible.
    ///
    /// **Maximum.** Filling GSM-7 variables with `€` and Unicode variables with `😜` is *not*
    /// the worst case: segments are filled with whole grapheme clusters, and a value can be made
    /// of clusters of any size (`😜` followed by tag characters, two UTF-16 units each). Clusters of
    /// 34 units waste 33 units of every 67-unit segment, which nearly doubles the count. So the
    /// maximum is computed by dynamic programming over the layout: the state after each piece is
    /// (segments, units in the last one), ordered lexicographically; the layout step is monotone
    /// in both the state and the size of the next cluster, so keeping the largest state per
    /// number of characters used (and per size of the still-open cluster) is exact for next-fit
    /// packing. In GSM-7 each character is its own cluster of 1 or 2 septets (or the GSM-7
    /// characters smart encoding turns it into), and the result is exact. In UCS-2 a character
    /// may join the cluster being built; the layout counted is plain next-fit at 67 units, which
    /// never needs fewer segments than the calculator (whose only difference, the retroactive
    /// header of the first segment, can only overfill the second one), so the result is an upper
    /// bound, and exact unless clusters of more than about 30 units meet the end of the first
    /// segment. With smart encoding, a replaced character may also join the cluster before it;
    /// real text can do that only after a prepended sign, so the bound may be a little high.
    pub fn worst_case(&self) -> WorstCase {
        let pieces = self.model_pieces();
        let static_encoding = if pieces.iter().all(|p| match p {
            ModelPiece::Text(gs) => gs.iter().all(|g| is_gsm7_grapheme(g)),
            ModelPiece::Value(_) => true,
        }) {
            Encoding::Gsm7
        } else {
            Encoding::Ucs2
        };
        let unicode_vars: Vec<&VariableSpec> = pieces
            .iter()
            .filter_map(|p| match p {
                ModelPiece::Value(v) if v.charset == Charset::Unicode => Some(*v),
                _ => None,
            })
            .collect();
        let gsm_possible = static_encoding == Encoding::Gsm7;
        let ucs2_possible = static_encoding == Encoding::Ucs2 || !unicode_vars.is_empty();

        let mut min_segments = usize::MAX;
        let mut max_segments = 0;
        if gsm_possible {
            min_segments = min_segments.min(self.min_layout(&pieces, None));
            max_segments = max_segments.max(self.max_segments_in(&pieces, &GSM7_PACKING));
        }
        if ucs2_possible {
            if static_encoding == Encoding::Ucs2 {
                min_segments = min_segments.min(self.min_layout(&pieces, None));
            } else {
                for (i, _) in pieces.iter().enumerate().filter(
                    |(_, p)| matches!(p, ModelPiece::Value(v) if v.charset == Charset::Unicode),
                ) {
                    min_segments = min_segments.min(self.min_layout(&pieces, Some(i)));
                }
            }
            max_segments = max_segments.max(self.max_segments_in(&pieces, &UCS2_PACKING));
        }

        let static_chars = self.body.static_text().chars().count();
        let max_chars = static_chars
            + pieces
                .iter()
                .map(|p| match p {
                    ModelPiece::Value(v) => v.max_len,
                    ModelPiece::Text(_) => 0,
                })
                .sum::<usize>();
        WorstCase {
            min_segments,
            max_segments,
            max_encoding: if ucs2_possible {
                Encoding::Ucs2
            } else {
                Encoding::Gsm7
            },
            static_encoding,
            ucs2_variables: if static_encoding == Encoding::Gsm7 {
                let mut seen = BTreeSet::new();
                unicode_vars
                    .iter()
                    .map(|v| v.name.clone())
                    .filter(|n| seen.insert(n.clone()))
                    .collect()
            } else {
                Vec::new()
            },
            over_limit: max_chars > MAX_BODY_CHARS,
            max_chars,
        }
    }

    /// The body as the layout sees it: static text as its grapheme clusters (smart-encoded when
    /// asked), values as slots.
    fn model_pieces(&self) -> Vec<ModelPiece<'_>> {
        self.body
            .parts()
            .iter()
            .map(|p| match p {
                Part::Text { text } => ModelPiece::Text(
                    segments::graphemes(&self.encode(text))
                        .map(str::to_owned)
                        .collect(),
                ),
                Part::Variable { name, .. } => {
                    ModelPiece::Value(self.variable(name).expect("checked by Template::new"))
                }
            })
            .collect()
    }

    /// Segments of the smallest message: the real layout over the static clusters and one-unit
    /// values (`a`; `ç` for the value at `ucs2_at`, which makes the message UCS-2), values that
    /// smart encoding can erase left out.
    fn min_layout(&self, pieces: &[ModelPiece<'_>], ucs2_at: Option<usize>) -> usize {
        let mut graphemes: Vec<&str> = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            match p {
                ModelPiece::Text(gs) => graphemes.extend(gs.iter().map(String::as_str)),
                ModelPiece::Value(_) if ucs2_at == Some(i) => graphemes.push("ç"),
                ModelPiece::Value(v) => {
                    if !char_profile(v.charset, self.smart_encoding).can_vanish {
                        graphemes.push("a");
                    }
                }
            }
        }
        Layout::of_graphemes(&graphemes).segments.len()
    }

    /// An upper bound on segments in one encoding (see [`Template::worst_case`]).
    fn max_segments_in(&self, pieces: &[ModelPiece<'_>], packing: &PackingRules) -> usize {
        let mut state = Packing::START;
        let mut max_units = 0;
        for p in pieces {
            match p {
                ModelPiece::Text(gs) => {
                    for g in gs {
                        let units = packing.units(g);
                        max_units += units;
                        state = state.add(units, packing.capacity);
                    }
                }
                ModelPiece::Value(v) => {
                    let profile = char_profile(v.charset, self.smart_encoding);
                    let (next, units_per_char) = match packing.encoding {
                        Encoding::Gsm7 => (
                            fill_separately(state, v.max_len, &profile.gsm7_options, packing),
                            profile.max_septets,
                        ),
                        Encoding::Ucs2 if v.charset == Charset::Gsm7 => (
                            fill_separately(state, v.max_len, &profile.ucs2_options, packing),
                            profile.max_ucs2_units,
                        ),
                        Encoding::Ucs2 => (
                            fill_joining(state, v.max_len, &profile.ucs2_options, packing),
                            profile.max_ucs2_units,
                        ),
                    };
                    state = next;
                    max_units += v.max_len * units_per_char;
                }
            }
        }
        if max_units <= packing.single {
            1
        } else {
            state.segments.max(2)
        }
    }
}

enum ModelPiece<'a> {
    Text(Vec<String>),
    Value(&'a VariableSpec),
}

/// Segment sizes of one encoding, in its units.
struct PackingRules {
    encoding: Encoding,
    /// Units a lone segment holds.
    single: usize,
    /// Units each part of a concatenated message holds.
    capacity: usize,
}

const GSM7_PACKING: PackingRules = PackingRules {
    encoding: Encoding::Gsm7,
    single: 160,
    capacity: 153,
};

const UCS2_PACKING: PackingRules = PackingRules {
    encoding: Encoding::Ucs2,
    single: 70,
    capacity: 67,
};

impl PackingRules {
    fn units(&self, grapheme: &str) -> usize {
        match self.encoding {
            Encoding::Gsm7 => grapheme
                .chars()
                .map(|c| gsm7_septets(c).map_or(0, <[u8]>::len))
                .sum(),
            Encoding::Ucs2 => grapheme.encode_utf16().count(),
        }
    }
}

/// Next-fit packing state: segments so far and units in the last one. Ordered lexicographically:
/// adding a cluster to a larger state, or a larger cluster to a state, never gives a smaller one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Packing {
    segments: usize,
    /// Capped at capacity + 1: a segment that full takes nothing more, however full it is.
    fill: usize,
}

impl Packing {
    const START: Packing = Packing {
        segments: 1,
        fill: 0,
    };

    /// Adds one grapheme cluster of `units`; one that does not fit opens a new segment (even
    /// when larger than a segment, as the calculator does).
    fn add(self, units: usize, capacity: usize) -> Packing {
        if self.fill + units <= capacity {
            Packing {
                segments: self.segments,
                fill: self.fill + units,
            }
        } else {
            Packing {
                segments: self.segments + 1,
                fill: units.min(capacity + 1),
            }
        }
    }

    fn add_all(self, units: &[usize], capacity: usize) -> Packing {
        units.iter().fold(self, |p, &u| p.add(u, capacity))
    }
}

/// The largest state after up to `len` characters, each its own cluster (or clusters, when smart
/// encoding expands it), chosen among `options`. Greedy is exact: the step is monotone.
fn fill_separately(
    mut state: Packing,
    len: usize,
    options: &[Vec<usize>],
    packing: &PackingRules,
) -> Packing {
    for _ in 0..len {
        state = options
            .iter()
            .map(|o| state.add_all(o, packing.capacity))
            .max()
            .unwrap_or(state);
    }
    state
}

/// The largest state after up to `len` UCS-2 characters that may build clusters of any size:
/// each character adds two units to the open cluster or opens a new one; a character smart
/// encoding expands adds its first unit to the open cluster or opens a new one, then separate
/// one-character clusters, the last of which stays open. Keeps, per open-cluster size, the
/// largest closed state.
fn fill_joining(
    start: Packing,
    len: usize,
    expansions: &[Vec<usize>],
    packing: &PackingRules,
) -> Packing {
    let cap = packing.capacity;
    let width = cap + 2;
    // best[o]: the largest closed state with an open cluster of `o` units (0: none open).
    let mut best: Vec<Option<Packing>> = vec![None; width];
    best[0] = Some(start);
    let keep = |slot: &mut Option<Packing>, s: Packing| {
        if slot.is_none_or(|old| s > old) {
            *slot = Some(s);
        }
    };
    for _ in 0..len {
        // Fewer characters are allowed too.
        let mut next = best.clone();
        for (open, state) in best.iter().enumerate() {
            let Some(state) = *state else { continue };
            let closed = if open > 0 {
                state.add(open, cap)
            } else {
                state
            };
            // A two-unit character: joins the open cluster, or starts one.
            if open > 0 {
                keep(&mut next[(open + 2).min(cap + 1)], state);
            }
            keep(&mut next[2], closed);
            for units in expansions.iter().filter(|u| u.len() > 1) {
                let (first, rest) = units.split_first().expect("not empty");
                let (last, middle) = rest.split_last().expect("more than one");
                let mut starts = vec![closed.add(*first, cap)];
                if open > 0 {
                    starts.push(state.add((open + first).min(cap + 1), cap));
                }
                for s in starts {
                    keep(&mut next[(*last).min(cap + 1)], s.add_all(middle, cap));
                }
            }
        }
        best = next;
    }
    best.iter()
        .enumerate()
        .filter_map(|(open, s)| s.map(|s| if open > 0 { s.add(open, cap) } else { s }))
        .max()
        .unwrap_or(start)
}

/// What one character of a value can become, for a charset with or without smart encoding.
struct CharProfile {
    /// Septets of the clusters of one character that stays GSM-7 (after smart encoding).
    gsm7_options: Vec<Vec<usize>>,
    /// UTF-16 units of the clusters of one character: `[1]`, `[2]` (Unicode) and the expansions
    /// of smart encoding.
    ucs2_options: Vec<Vec<usize>>,
    max_septets: usize,
    max_ucs2_units: usize,
    /// Whether smart encoding can erase a character altogether.
    can_vanish: bool,
}

fn char_profile(charset: Charset, smart: bool) -> &'static CharProfile {
    static PROFILES: [OnceLock<CharProfile>; 4] = [const { OnceLock::new() }; 4];
    let slot = match (charset, smart) {
        (Charset::Gsm7, false) => 0,
        (Charset::Gsm7, true) => 1,
        (Charset::Unicode, false) => 2,
        (Charset::Unicode, true) => 3,
    };
    PROFILES[slot].get_or_init(|| build_profile(charset, smart))
}

fn build_profile(charset: Charset, smart: bool) -> CharProfile {
    let mut gsm7 = BTreeSet::new();
    let mut ucs2 = BTreeSet::new();
    let mut can_vanish = false;
    // A character smart encoding leaves alone counts as itself, so one representative of each
    // kind stands for all of them (one septet, two septets, one UTF-16 unit that is not GSM-7, an
    // astral character); the look-alikes smart encoding replaces count one by one.
    let candidates = ['a', '€', 'ç', '😜']
        .into_iter()
        .chain(smart_replacements().map(|(c, _)| c))
        .filter(|&c| charset.allows(c));
    for c in candidates {
        let encoded = if smart {
            smart_encode(c.encode_utf8(&mut [0; 4]))
        } else {
            c.to_string()
        };
        if encoded.is_empty() {
            can_vanish = true;
            continue;
        }
        // Replacements are GSM-7 text, one cluster per character.
        if encoded
            .chars()
            .all(|e| is_gsm7_grapheme(e.encode_utf8(&mut [0; 4])))
        {
            gsm7.insert(
                encoded
                    .chars()
                    .map(|e| gsm7_septets(e).map_or(0, <[u8]>::len))
                    .collect::<Vec<_>>(),
            );
        }
        ucs2.insert(encoded.chars().map(char::len_utf16).collect::<Vec<_>>());
    }
    let max_septets = gsm7.iter().map(|o| o.iter().sum()).max().unwrap_or(0);
    let max_ucs2_units = ucs2.iter().map(|o| o.iter().sum()).max().unwrap_or(0);
    CharProfile {
        gsm7_options: gsm7.into_iter().collect(),
        ucs2_options: ucs2.into_iter().collect(),
        max_septets,
        max_ucs2_units,
        can_vanish,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segments::SegmentedMessage;
    use proptest::prelude::*;

    const SEED: &str = "SafeShipper: Shipment {tracking_number} created. Track: {tracking_url}";

    fn parse_err(source: &str) -> TemplateError {
        TemplateBody::parse(source).expect_err("should not parse")
    }

    fn pos(index: usize, line: usize, column: usize) -> Position {
        Position {
            index,
            line,
            column,
        }
    }

    fn var(name: &str, max_len: usize, charset: Charset, sample: &str) -> VariableSpec {
        VariableSpec::new(name, max_len, charset, sample).expect("a valid spec")
    }

    fn template_with(
        body: &str,
        variables: Vec<VariableSpec>,
        smart_encoding: bool,
    ) -> Result<Template, DefinitionError> {
        Template::new(TemplateParts {
            key: TemplateKey::parse("test").unwrap(),
            body: TemplateBody::parse(body).expect("a valid body"),
            variables,
            category: Category::Shipment,
            priority: None,
            smart_encoding,
            ttl_seconds: None,
        })
    }

    fn template(body: &str, variables: Vec<VariableSpec>) -> Template {
        template_with(body, variables, false).expect("a valid template")
    }

    fn seed() -> Template {
        template(
            SEED,
            vec![
                var("tracking_number", 20, Charset::Gsm7, "SS-2024-000123"),
                var(
                    "tracking_url",
                    60,
                    Charset::Gsm7,
                    "https://safeshipper.example/t/SS-2024-000123",
                ),
            ],
        )
    }

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn segments_of(t: &Template, body: &str) -> usize {
        SegmentedMessage::analyze(body, t.smart_encoding())
            .expect("a valid body")
            .segment_count()
    }

    // --- Parsing ------------------------------------------------------------------------------

    #[test]
    fn seed_template_parses_into_text_and_variables() {
        let body = TemplateBody::parse(SEED).unwrap();
        assert_eq!(body.source(), SEED);
        assert_eq!(body.variables(), vec!["tracking_number", "tracking_url"]);
        assert_eq!(
            body.parts()[0],
            Part::Text {
                text: "SafeShipper: Shipment ".into()
            }
        );
        assert_eq!(
            body.parts()[1],
            Part::Variable {
                name: "tracking_number".into(),
                at: 22
            }
        );
        assert_eq!(body.parts().len(), 4);
    }

    #[test]
    fn variables_are_listed_once_in_order_of_first_use() {
        let body = TemplateBody::parse("{b} {a} {b} {c} {a}").unwrap();
        assert_eq!(body.variables(), vec!["b", "a", "c"]);
    }

    #[test]
    fn doubled_braces_are_literal_braces() {
        let body = TemplateBody::parse("{{not_a_var}} {x} }}{{").unwrap();
        assert_eq!(body.variables(), vec!["x"]);
        assert_eq!(
            body.parts()[0],
            Part::Text {
                text: "{not_a_var} ".into()
            }
        );
        assert_eq!(body.parts()[2], Part::Text { text: " }{".into() });
    }

    #[test]
    fn unclosed_brace_is_rejected_at_the_opening_brace() {
        let err = parse_err("Shipment {tracking_number created");
        assert_eq!(err, TemplateError::UnclosedBrace { at: pos(9, 1, 10) });
        assert!(err.to_string().contains("line 1, column 10"));
        assert!(err.to_string().contains("never closed"));
    }

    #[test]
    fn stray_closing_brace_is_rejected_where_it_stands() {
        let err = parse_err("Done} now");
        assert_eq!(err, TemplateError::StrayClosingBrace { at: pos(4, 1, 5) });
        assert!(err.to_string().contains("`}}`"));
    }

    #[test]
    fn empty_braces_are_rejected() {
        let err = parse_err("Code: {}");
        assert_eq!(err, TemplateError::EmptyName { at: pos(6, 1, 7) });
        assert!(err.to_string().contains("no variable name"));
    }

    #[test]
    fn name_with_a_space_is_rejected_naming_the_space() {
        let err = parse_err("Shipment {tracking number}");
        assert_eq!(
            err,
            TemplateError::BadName {
                name: "tracking number".into(),
                at: pos(9, 1, 10),
                reason: NameError::BadChar { ch: ' ' },
            }
        );
        assert!(err.to_string().contains("{tracking number}"));
    }

    #[test]
    fn name_starting_with_a_digit_is_rejected() {
        let err = parse_err("x{1abc}");
        assert_eq!(
            err,
            TemplateError::BadName {
                name: "1abc".into(),
                at: pos(1, 1, 2),
                reason: NameError::BadStart { ch: '1' },
            }
        );
    }

    #[test]
    fn name_over_64_characters_is_rejected_and_64_is_accepted() {
        let ok = "a".repeat(64);
        assert!(TemplateBody::parse(&format!("{{{ok}}}")).is_ok());
        let long = "a".repeat(65);
        let err = parse_err(&format!("{{{long}}}"));
        assert!(matches!(
            err,
            TemplateError::BadName {
                reason: NameError::TooLong { chars: 65 },
                ..
            }
        ));
    }

    #[test]
    fn non_ascii_names_are_rejected() {
        assert!(matches!(
            parse_err("{número}"),
            TemplateError::BadName {
                reason: NameError::BadChar { ch: 'ú' },
                ..
            }
        ));
    }

    #[test]
    fn nested_brace_is_rejected_with_both_positions() {
        let err = parse_err("a {outer {inner}}");
        assert_eq!(
            err,
            TemplateError::NestedBrace {
                at: pos(9, 1, 10),
                outer: pos(2, 1, 3)
            }
        );
    }

    #[test]
    fn positions_count_characters_lines_and_columns() {
        let err = parse_err("Évacuez 🚨\nZone {zone\n");
        // "Évacuez 🚨\n" is 10 characters; the `{` is the 6th character of line 2.
        assert_eq!(err, TemplateError::UnclosedBrace { at: pos(15, 2, 6) });
    }

    #[test]
    fn body_serializes_as_its_source_and_rejects_bad_source() {
        let body = TemplateBody::parse(SEED).unwrap();
        let json = serde_json::to_string(&body).unwrap();
        assert_eq!(json, serde_json::to_string(SEED).unwrap());
        assert_eq!(serde_json::from_str::<TemplateBody>(&json).unwrap(), body);
        assert!(serde_json::from_str::<TemplateBody>("\"{oops\"").is_err());
    }

    // --- Variables, categories, priorities ------------------------------------------------------

    #[test]
    fn variable_spec_rejects_bad_name_zero_length_and_invalid_sample() {
        assert!(matches!(
            VariableSpec::new("tracking number", 10, Charset::Gsm7, "x"),
            Err(VariableError::BadName { .. })
        ));
        assert!(matches!(
            VariableSpec::new("code", 0, Charset::Gsm7, "x"),
            Err(VariableError::ZeroMaxLen { .. })
        ));
        assert_eq!(
            VariableSpec::new("code", 4, Charset::Gsm7, "12345"),
            Err(VariableError::BadSample {
                name: "code".into(),
                problem: ValueProblem::TooLong { chars: 5, max: 4 }
            })
        );
        assert_eq!(
            VariableSpec::new("name", 10, Charset::Gsm7, "François"),
            Err(VariableError::BadSample {
                name: "name".into(),
                problem: ValueProblem::NotGsm7 { ch: 'ç', index: 4 }
            })
        );
        assert!(matches!(
            VariableSpec::new("name", 10, Charset::Gsm7, ""),
            Err(VariableError::BadSample {
                problem: ValueProblem::Empty,
                ..
            })
        ));
    }

    #[test]
    fn max_len_counts_unicode_scalar_values() {
        assert!(VariableSpec::new("name", 3, Charset::Unicode, "😜😜😜").is_ok());
        assert!(VariableSpec::new("name", 3, Charset::Gsm7, "€€€").is_ok());
    }

    #[test]
    fn variable_spec_deserialization_revalidates() {
        let ok = r#"{"name":"code","max_len":6,"charset":"gsm7","sample":"123456"}"#;
        let spec: VariableSpec = serde_json::from_str(ok).unwrap();
        assert_eq!(spec.max_len(), 6);
        let bad = r#"{"name":"code","max_len":6,"charset":"gsm7","sample":"1234567"}"#;
        assert!(serde_json::from_str::<VariableSpec>(bad).is_err());
    }

    #[test]
    fn categories_round_trip_through_their_names() {
        for c in Category::ALL {
            assert_eq!(c.as_str().parse::<Category>(), Ok(c));
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        assert!("sms".parse::<Category>().is_err());
    }

    #[test]
    fn emergency_outranks_two_factor_which_outranks_the_rest() {
        assert!(Priority::Emergency > Priority::TwoFactor);
        assert!(Priority::TwoFactor > Priority::Normal);
        assert_eq!(Category::Emergency.default_priority(), Priority::Emergency);
        assert_eq!(Category::TwoFactor.default_priority(), Priority::TwoFactor);
        assert_eq!(Category::Shipment.default_priority(), Priority::Normal);
        assert_eq!(Category::Driver.default_priority(), Priority::Normal);
        let mut queue = vec![Priority::Normal, Priority::Emergency, Priority::TwoFactor];
        queue.sort_by_key(|p| std::cmp::Reverse(*p));
        assert_eq!(
            queue,
            vec![Priority::Emergency, Priority::TwoFactor, Priority::Normal]
        );
        for p in Priority::ALL {
            assert_eq!(p.as_str().parse::<Priority>(), Ok(p));
        }
    }

    // --- Templates --------------------------------------------------------------------------

    #[test]
    fn template_key_must_be_a_lowercase_slug() {
        assert!(TemplateKey::parse("shipment_created").is_ok());
        assert!(TemplateKey::parse("Shipment").is_err());
        assert!(TemplateKey::parse("").is_err());
        assert!(TemplateKey::parse("1st").is_err());
        assert!(TemplateKey::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn undeclared_variables_are_all_named() {
        let err =
            template_with("{a} {b} {c}", vec![var("b", 3, Charset::Gsm7, "x")], false).unwrap_err();
        assert_eq!(
            err,
            DefinitionError::UnknownVariables {
                names: vec!["a".into(), "c".into()]
            }
        );
        assert!(
            err.to_string()
                .starts_with("unknown template variables: a, c")
        );
    }

    #[test]
    fn declared_but_unused_variables_are_allowed_and_reported() {
        let t = template(
            "Hello {a}",
            vec![
                var("a", 3, Charset::Gsm7, "x"),
                var("b", 3, Charset::Gsm7, "y"),
            ],
        );
        assert_eq!(t.unused_variables(), vec!["b"]);
    }

    #[test]
    fn a_variable_declared_twice_is_rejected() {
        let err = template_with(
            "{a}",
            vec![
                var("a", 3, Charset::Gsm7, "x"),
                var("a", 4, Charset::Gsm7, "y"),
            ],
            false,
        )
        .unwrap_err();
        assert_eq!(err, DefinitionError::DuplicateVariable { name: "a".into() });
    }

    #[test]
    fn a_body_whose_text_fuses_with_every_value_is_rejected_through_its_preview() {
        // A combining acute accent right after the placeholder would land on the value.
        let err =
            template_with("{a}\u{301}", vec![var("a", 3, Charset::Gsm7, "e")], false).unwrap_err();
        assert!(matches!(err, DefinitionError::Preview(_)));
    }

    #[test]
    fn priority_defaults_to_the_category_and_can_be_overridden() {
        let mut parts = TemplateParts::from(seed());
        assert_eq!(seed().priority(), Priority::Normal);
        parts.priority = Some(Priority::Emergency);
        let t = Template::new(parts).unwrap();
        assert_eq!(t.priority(), Priority::Emergency);
        assert_eq!(t.category(), Category::Shipment);
    }

    #[test]
    fn template_round_trips_through_json_and_deserialization_revalidates() {
        let t = seed();
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["priority"], serde_json::Value::Null);
        assert_eq!(serde_json::from_value::<Template>(json.clone()).unwrap(), t);
        let mut bad = json;
        bad["body"] = serde_json::Value::String("Shipment {unknown}".into());
        let err = serde_json::from_value::<Template>(bad).unwrap_err();
        assert!(err.to_string().contains("unknown template variables"));
    }

    // --- Rendering --------------------------------------------------------------------------

    #[test]
    fn seed_template_renders_with_its_values() {
        let t = seed();
        let body = t
            .render(&values(&[
                ("tracking_number", "SS-1"),
                ("tracking_url", "https://ss.example/t/1"),
            ]))
            .unwrap();
        assert_eq!(
            body,
            "SafeShipper: Shipment SS-1 created. Track: https://ss.example/t/1"
        );
        assert_eq!(
            t.render_samples().unwrap(),
            "SafeShipper: Shipment SS-2024-000123 created. Track: https://safeshipper.example/t/SS-2024-000123"
        );
    }

    #[test]
    fn render_accepts_any_lookup() {
        let t = seed();
        let pairs = [("tracking_number", "A"), ("tracking_url", "B")];
        assert!(t.render(&pairs[..]).is_ok());
        let map: HashMap<String, String> = values(&pairs).into_iter().collect();
        assert!(t.render(&map).is_ok());
    }

    #[test]
    fn render_names_every_missing_value() {
        let err = seed().render(&values(&[])).unwrap_err();
        assert_eq!(
            err,
            RenderError::MissingValues {
                names: vec!["tracking_number".into(), "tracking_url".into()]
            }
        );
        assert_eq!(
            err.to_string(),
            "missing values for tracking_number, tracking_url"
        );
    }

    #[test]
    fn render_names_every_invalid_value_and_the_offending_character() {
        let err = seed()
            .render(&values(&[
                ("tracking_number", "SS—1"),
                ("tracking_url", &"x".repeat(61)),
            ]))
            .unwrap_err();
        assert_eq!(
            err,
            RenderError::InvalidValues {
                problems: vec![
                    ValueError {
                        variable: "tracking_number".into(),
                        problem: ValueProblem::NotGsm7 {
                            ch: '—', index: 2
                        }
                    },
                    ValueError {
                        variable: "tracking_url".into(),
                        problem: ValueProblem::TooLong { chars: 61, max: 60 }
                    },
                ]
            }
        );
        let text = err.to_string();
        assert!(text.contains("U+2014"), "{text}");
        assert!(text.contains("61 characters"), "{text}");
    }

    #[test]
    fn render_rejects_empty_values() {
        let err = seed()
            .render(&values(&[("tracking_number", ""), ("tracking_url", "u")]))
            .unwrap_err();
        assert!(
            matches!(err, RenderError::InvalidValues { problems } if problems[0].problem == ValueProblem::Empty)
        );
    }

    #[test]
    fn render_rejects_values_that_fuse_with_the_text() {
        let t = template(
            "Driver {name}!",
            vec![var("name", 10, Charset::Unicode, "Ana")],
        );
        let err = t.render(&values(&[("name", "\u{301}Ana")])).unwrap_err();
        assert_eq!(
            err,
            RenderError::InvalidValues {
                problems: vec![ValueError {
                    variable: "name".into(),
                    problem: ValueProblem::FusesWithText { side: Side::Start }
                }]
            }
        );
        // Half a flag at the end pairs with a flag in the text.
        let t = template("{flag}🇫🇷", vec![var("flag", 4, Charset::Unicode, "🇩🇪")]);
        assert!(t.render(&values(&[("flag", "🇩🇪")])).is_ok());
        assert!(t.render(&values(&[("flag", "🇩")])).is_err());
    }

    #[test]
    fn render_rejects_messages_over_1600_characters() {
        let t = template(
            "{a}{b}",
            vec![
                var("a", 1000, Charset::Gsm7, "x"),
                var("b", 1000, Charset::Gsm7, "y"),
            ],
        );
        let long = "x".repeat(1000);
        let err = t
            .render(&values(&[("a", &long), ("b", &long)]))
            .unwrap_err();
        assert_eq!(err, RenderError::Body(BodyError::TooLong { chars: 2000 }));
        assert!(t.worst_case().over_limit);
    }

    // --- Worst case -------------------------------------------------------------------------

    #[test]
    fn seed_template_stays_gsm7_and_fits_one_or_two_segments() {
        let w = seed().worst_case();
        assert_eq!(w.static_encoding, Encoding::Gsm7);
        assert_eq!(w.max_encoding, Encoding::Gsm7);
        assert!(w.ucs2_variables.is_empty());
        assert_eq!(w.min_segments, 1);
        // 39 static septets + 20 and 60 characters of `€` (2 septets each) = 199 septets.
        assert_eq!(w.max_segments, 2);
        assert!(!w.over_limit);
        assert_eq!(w.max_chars, 39 + 80);
    }

    #[test]
    fn worst_case_of_gsm7_values_is_extension_characters() {
        let t = template("{a}", vec![var("a", 80, Charset::Gsm7, "x")]);
        assert_eq!(t.worst_case().max_segments, 1); // 160 septets
        let t = template("{a}", vec![var("a", 81, Charset::Gsm7, "x")]);
        assert_eq!(t.worst_case().max_segments, 2);
        let body = t.render(&values(&[("a", &"€".repeat(81))])).unwrap();
        assert_eq!(segments_of(&t, &body), 2);
    }

    #[test]
    fn unicode_variables_are_named_as_able_to_force_ucs2() {
        let t = template(
            "Driver {name}: pick up {tracking_number}",
            vec![
                var("name", 30, Charset::Unicode, "José"),
                var("tracking_number", 20, Charset::Gsm7, "SS-1"),
            ],
        );
        let w = t.worst_case();
        assert_eq!(w.static_encoding, Encoding::Gsm7);
        assert_eq!(w.max_encoding, Encoding::Ucs2);
        assert_eq!(w.ucs2_variables, vec!["name".to_owned()]);
        assert_eq!(w.min_segments, 1);
    }

    #[test]
    fn static_ucs2_text_is_reported_as_such() {
        let t = template(
            "⚠️ Évacuation {zone}",
            vec![
                var("name", 30, Charset::Unicode, "A"),
                var("zone", 5, Charset::Gsm7, "Z1"),
            ],
        );
        let w = t.worst_case();
        assert_eq!(w.static_encoding, Encoding::Ucs2);
        assert!(w.ucs2_variables.is_empty());
    }

    #[test]
    fn big_clusters_beat_filling_with_emoji() {
        // 85 emoji are 170 units: 3 segments. But segments take whole clusters, and a value can
        // build clusters of any size from an emoji and tag characters (two units each). Clusters
        // of 2 and 66 (or 70) units cannot share a 67-unit segment: 5 segments.
        let t = template("{v}", vec![var("v", 85, Charset::Unicode, "x")]);
        let emoji = t.render(&values(&[("v", &"😜".repeat(85))])).unwrap();
        assert_eq!(segments_of(&t, &emoji), 3);
        let cluster = |chars: usize| format!("😜{}", "\u{E0041}".repeat(chars - 1));
        let value = [
            cluster(1),
            cluster(35),
            cluster(1),
            cluster(33),
            "😜".repeat(15),
        ]
        .concat();
        assert_eq!(value.chars().count(), 85);
        let adversarial = t.render(&values(&[("v", &value)])).unwrap();
        assert_eq!(segments_of(&t, &adversarial), 5);
        assert_eq!(t.worst_case().max_segments, 5);
    }

    #[test]
    fn smart_encoding_counts_expansions_and_erasures() {
        // A tab becomes seven spaces: 20 tabs are 140 septets, one segment; 23 are two.
        let t = template_with("{v}", vec![var("v", 23, Charset::Unicode, "x")], true).unwrap();
        let w = t.worst_case();
        let tabs = t.render(&values(&[("v", &"\t".repeat(23))])).unwrap();
        assert_eq!(segments_of(&t, &tabs), 2);
        assert!(w.max_segments >= 2);
        // A zero-width space disappears: an empty message.
        let zw = t.render(&values(&[("v", "\u{200B}")])).unwrap();
        assert_eq!(segments_of(&t, &zw), 1);
        assert_eq!(w.min_segments, 1);
    }

    #[test]
    fn template_without_variables_has_its_own_segment_count() {
        for body in [
            "Hello",
            &"a".repeat(400),
            &"ç".repeat(150),
            "⚠️ Leak at depot",
        ] {
            let t = template(&escape_literal(body), vec![]);
            let n = segments_of(&t, body);
            let w = t.worst_case();
            assert_eq!((w.min_segments, w.max_segments), (n, n), "{body}");
        }
    }

    #[test]
    fn ttl_is_checked_and_two_factor_codes_expire_by_default() {
        let parts = |category, ttl_seconds| TemplateParts {
            key: TemplateKey::parse("code").unwrap(),
            body: TemplateBody::parse("Your code is 123456").unwrap(),
            variables: vec![],
            category,
            priority: None,
            smart_encoding: false,
            ttl_seconds,
        };
        let two_factor = Template::new(parts(Category::TwoFactor, None)).unwrap();
        assert_eq!(two_factor.ttl_seconds(), None);
        assert_eq!(two_factor.validity_seconds(), Some(600));
        let short = Template::new(parts(Category::TwoFactor, Some(120))).unwrap();
        assert_eq!(short.validity_seconds(), Some(120));
        let shipment = Template::new(parts(Category::Shipment, None)).unwrap();
        assert_eq!(shipment.validity_seconds(), None);
        let timed = Template::new(parts(Category::Shipment, Some(36_000))).unwrap();
        assert_eq!(timed.validity_seconds(), Some(36_000));
        for bad in [0, 36_001] {
            let err = Template::new(parts(Category::TwoFactor, Some(bad))).unwrap_err();
            assert_eq!(err, DefinitionError::Ttl { seconds: bad });
            assert!(err.to_string().contains("1 to 36000"), "{err}");
        }
        // Stored JSON without the field (templates saved before it existed) still reads.
        let json = serde_json::to_value(&shipment).unwrap();
        assert!(json.get("ttl_seconds").is_none());
        let back: Template = serde_json::from_value(json).unwrap();
        assert_eq!(back, shipment);
        let json = serde_json::to_string(&short).unwrap();
        assert_eq!(serde_json::from_str::<Template>(&json).unwrap(), short);
    }

    // --- Properties -------------------------------------------------------------------------

    /// Characters values are made of: plain, extension, non-GSM, emoji, tags, combining marks,
    /// flags, joiners, prepended signs, Indic, and what smart encoding replaces or erases.
    fn value_char() -> impl Strategy<Value = char> {
        prop_oneof![
            6 => Just('a'),
            2 => Just('€'),
            2 => Just('ç'),
            3 => Just('😜'),
            3 => Just('\u{E0041}'),
            1 => Just('\u{301}'),
            1 => Just('🇫'),
            1 => Just('\u{200D}'),
            1 => Just('\u{110BD}'),
            1 => Just('क'),
            1 => Just('\u{94D}'),
            1 => Just('…'),
            1 => Just('\t'),
            1 => Just('\u{200B}'),
            1 => Just('“'),
            1 => Just('\n'),
        ]
    }

    fn gsm_char() -> impl Strategy<Value = char> {
        prop_oneof![Just('a'), Just('€'), Just('['), Just('\n'), Just('@')]
    }

    fn literal() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("SafeShipper: Shipment ".to_owned()),
            Just(" created. Track: ".to_owned()),
            Just("⚠️ Fuite ".to_owned()),
            Just("€".repeat(70)),
            Just("x".repeat(150)),
            Just("ç".repeat(60)),
            proptest::collection::vec(value_char(), 0..40).prop_map(|v| v.into_iter().collect()),
        ]
    }

    /// A template: literals and up to three variables, with random values for them.
    fn template_and_values() -> impl Strategy<Value = (Template, BTreeMap<String, String>)> {
        let var = (1usize..120, any::<bool>());
        (
            proptest::collection::vec((literal(), var), 1..4),
            literal(),
            any::<bool>(),
        )
            .prop_flat_map(|(slots, tail, smart)| {
                let value_strategies: Vec<_> = slots
                    .iter()
                    .map(|(_, (max_len, unicode))| {
                        let chars = if *unicode {
                            value_char().boxed()
                        } else {
                            gsm_char().boxed()
                        };
                        proptest::collection::vec(chars, 1..=*max_len)
                            .prop_map(|v| v.into_iter().collect::<String>())
                    })
                    .collect();
                (Just((slots, tail, smart)), value_strategies)
            })
            .prop_filter_map("a valid template", |((slots, tail, smart), vals)| {
                let mut source = String::new();
                let mut specs = Vec::new();
                let mut map = BTreeMap::new();
                for (i, ((lit, (max_len, unicode)), value)) in slots.iter().zip(vals).enumerate() {
                    let name = format!("v{i}");
                    source.push_str(&escape_literal(lit));
                    source.push_str(&format!("{{{name}}}"));
                    let charset = if *unicode {
                        Charset::Unicode
                    } else {
                        Charset::Gsm7
                    };
                    specs.push(VariableSpec::new(&name, *max_len, charset, "x").ok()?);
                    map.insert(name, value);
                }
                source.push_str(&escape_literal(&tail));
                let t = template_with(&source, specs, smart).ok()?;
                Some((t, map))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn rendered_messages_stay_within_the_worst_case((t, vals) in template_and_values()) {
            let w = t.worst_case();
            prop_assert!(w.min_segments <= w.max_segments);
            match t.render(&vals) {
                Ok(body) => {
                    let n = segments_of(&t, &body);
                    prop_assert!(n >= w.min_segments, "{} < min {} for {:?}", n, w.min_segments, body);
                    prop_assert!(n <= w.max_segments, "{} > max {} for {:?}", n, w.max_segments, body);
                    prop_assert!(body.chars().count() <= w.max_chars);
                }
                Err(RenderError::InvalidValues { problems }) => {
                    let all_fusing = problems.iter().all(|p| matches!(p.problem, ValueProblem::FusesWithText { .. }));
                    prop_assert!(all_fusing, "unexpected problems {:?}", problems);
                }
                Err(RenderError::Body(_)) => prop_assert!(w.over_limit),
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }

        #[test]
        fn max_filled_values_reach_the_gsm7_maximum_exactly(
            lit in "[a-z €]{0,200}",
            max_len in 1usize..300,
        ) {
            let t = template(&format!("{}{{v}}", escape_literal(&lit)), vec![var("v", max_len, Charset::Gsm7, "x")]);
            let w = t.worst_case();
            if let Ok(body) = t.render(&values(&[("v", &"€".repeat(max_len))])) {
                prop_assert_eq!(segments_of(&t, &body), w.max_segments);
            }
            let body = t.render(&values(&[("v", "a")])).unwrap();
            prop_assert_eq!(segments_of(&t, &body), w.min_segments);
        }

        #[test]
        fn parsing_the_source_of_escaped_parts_gives_them_back(
            parts in proptest::collection::vec(
                prop_oneof![
                    "[a-z{} ]{1,8}".prop_map(|t| (true, t)),
                    "[a-z_][a-z0-9_]{0,10}".prop_map(|n| (false, n)),
                ],
                0..8,
            )
        ) {
            let mut source = String::new();
            let mut text = String::new();
            let mut expected = Vec::new();
            for (literal, s) in &parts {
                if *literal {
                    source.push_str(&escape_literal(s));
                    text.push_str(s);
                } else {
                    if !text.is_empty() {
                        expected.push(std::mem::take(&mut text));
                    }
                    expected.push(format!("{{{s}}}"));
                    source.push_str(&format!("{{{s}}}"));
                }
            }
            if !text.is_empty() {
                expected.push(text);
            }
            let body = TemplateBody::parse(&source).unwrap();
            let got: Vec<String> = body.parts().iter().map(|p| match p {
                Part::Text { text } => text.clone(),
                Part::Variable { name, .. } => format!("{{{name}}}"),
            }).collect();
            prop_assert_eq!(got, expected);
            prop_assert_eq!(body.source(), source.as_str());
            prop_assert_eq!(TemplateBody::parse(body.source()).unwrap(), body);
        }

        #[test]
        fn parse_never_panics_and_errors_point_inside_the_body(source in "[a-z{} \n]{0,30}") {
            match TemplateBody::parse(&source) {
                Ok(body) => prop_assert_eq!(body.source(), source.as_str()),
                Err(e) => {
                    let at = match e {
                        TemplateError::UnclosedBrace { at }
                        | TemplateError::StrayClosingBrace { at }
                        | TemplateError::EmptyName { at }
                        | TemplateError::BadName { at, .. }
                        | TemplateError::NestedBrace { at, .. } => at,
                    };
                    prop_assert!(at.index < source.chars().count());
                    let c = source.chars().nth(at.index).unwrap();
                    prop_assert!(c == '{' || c == '}', "error at {:?}", c);
                }
            }
        }
    }
}
