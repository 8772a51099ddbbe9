//! What the template editor edits, and the checks it shares with the server.
//!
//! A [`TemplateDraft`] is the form as typed: nothing in it is checked. [`TemplateDraft::validate`]
//! turns it into a [`domain::template::Template`] or into [`FieldError`]s that name the field to
//! show them next to. The editor runs it on every keystroke and the server runs it again on save,
//! so the two can never disagree.

use domain::segments::{BodyError, SegmentedMessage};
use domain::template::{
    Category, Charset, DefinitionError, MAX_TTL_SECONDS, Part, Priority, RenderError, Template,
    TemplateBody, TemplateKey, TemplateParts, VariableError, VariableSpec,
};
use serde::{Deserialize, Serialize};

/// One declared variable, as typed in the editor's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariableDraft {
    pub name: String,
    /// Longest value, in characters. 0 when the field is empty or not a number (refused on save).
    pub max_len: usize,
    pub charset: Charset,
    pub sample: String,
}

impl Default for VariableDraft {
    fn default() -> Self {
        VariableDraft {
            name: String::new(),
            max_len: 20,
            charset: Charset::Gsm7,
            sample: String::new(),
        }
    }
}

/// A template as the editor holds it: unchecked, serialisable (server functions take and return it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateDraft {
    pub key: String,
    pub body: String,
    pub variables: Vec<VariableDraft>,
    pub category: Category,
    /// `None`: the category's default priority.
    pub priority: Option<Priority>,
    /// Must match the Messaging Service's setting, or the counts will be wrong.
    pub smart_encoding: bool,
    /// The TTL in seconds as typed; empty: none (two-factor codes: 10 minutes).
    #[serde(default)]
    pub ttl_seconds: String,
}

impl Default for TemplateDraft {
    fn default() -> Self {
        TemplateDraft {
            key: String::new(),
            body: String::new(),
            variables: Vec::new(),
            category: Category::Shipment,
            priority: None,
            smart_encoding: false,
            ttl_seconds: String::new(),
        }
    }
}

impl From<&Template> for TemplateDraft {
    fn from(t: &Template) -> Self {
        let parts = TemplateParts::from(t.clone());
        TemplateDraft {
            key: parts.key.to_string(),
            body: parts.body.source().to_owned(),
            variables: parts
                .variables
                .iter()
                .map(|v| VariableDraft {
                    name: v.name().to_owned(),
                    max_len: v.max_len(),
                    charset: v.charset(),
                    sample: v.sample().to_owned(),
                })
                .collect(),
            category: parts.category,
            priority: parts.priority,
            smart_encoding: parts.smart_encoding,
            ttl_seconds: parts.ttl_seconds.map(|t| t.to_string()).unwrap_or_default(),
        }
    }
}

/// Which control an error belongs next to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "field", content = "index")]
pub enum Field {
    Key,
    Body,
    Category,
    Priority,
    Ttl,
    /// The variables table as a whole.
    Variables,
    /// Row `n` (0-based) of the variables table.
    VariableName(usize),
    VariableMaxLen(usize),
    VariableSample(usize),
    /// Not about one field (e.g. "a template with this key exists", "you may not edit templates").
    Form,
}

/// An error to show next to a field: what is wrong and what to do, in a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: Field,
    pub message: String,
}

impl FieldError {
    pub fn new(field: Field, message: impl Into<String>) -> Self {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

impl TemplateDraft {
    /// Checks the draft with the domain's rules: every problem found, each next to its field.
    /// The server calls this on save; the editor on every change.
    pub fn validate(&self) -> Result<Template, Vec<FieldError>> {
        let mut errors = Vec::new();
        let key = TemplateKey::parse(self.key.trim())
            .map_err(|e| errors.push(FieldError::new(Field::Key, e.to_string())))
            .ok();
        let body = TemplateBody::parse(&self.body)
            .map_err(|e| errors.push(FieldError::new(Field::Body, e.to_string())))
            .ok();
        let mut variables = Vec::with_capacity(self.variables.len());
        for (i, v) in self.variables.iter().enumerate() {
            match VariableSpec::new(v.name.trim(), v.max_len, v.charset, v.sample.clone()) {
                Ok(spec) => variables.push(spec),
                Err(e) => {
                    let field = match e {
                        VariableError::BadName { .. } => Field::VariableName(i),
                        VariableError::ZeroMaxLen { .. } => Field::VariableMaxLen(i),
                        VariableError::BadSample { .. } => Field::VariableSample(i),
                    };
                    errors.push(FieldError::new(field, e.to_string()));
                }
            }
        }
        let ttl_seconds = match self.ttl_seconds.trim() {
            "" => None,
            t => match t.parse::<u32>() {
                Ok(seconds) => Some(seconds),
                Err(_) => {
                    errors.push(FieldError::new(
                        Field::Ttl,
                        format!(
                            "{t:?} is not a number of seconds: give a whole number from 1 to {MAX_TTL_SECONDS}, or leave it empty"
                        ),
                    ));
                    None
                }
            },
        };
        let (Some(key), Some(body), true) = (key, body, errors.is_empty()) else {
            return Err(errors);
        };
        Template::new(TemplateParts {
            key,
            body,
            variables,
            category: self.category,
            priority: self.priority,
            smart_encoding: self.smart_encoding,
            ttl_seconds,
        })
        .map_err(|e| self.definition_errors(e))
    }

    /// Places a [`DefinitionError`] next to the variable row it is about, or the body.
    fn definition_errors(&self, e: DefinitionError) -> Vec<FieldError> {
        let row = |name: &str| self.variables.iter().position(|v| v.name.trim() == name);
        match e {
            DefinitionError::DuplicateVariable { ref name } => {
                // Next to the second row with that name: the first one is the original.
                let field = self
                    .variables
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.name.trim() == name)
                    .nth(1)
                    .map_or(Field::Variables, |(i, _)| Field::VariableName(i));
                vec![FieldError::new(field, e.to_string())]
            }
            DefinitionError::UnknownVariables { .. } => {
                vec![FieldError::new(Field::Body, e.to_string())]
            }
            DefinitionError::Preview(RenderError::InvalidValues { problems }) => problems
                .into_iter()
                .map(|p| {
                    let field = row(&p.variable).map_or(Field::Body, Field::VariableSample);
                    FieldError::new(field, format!("sample value of {p}"))
                })
                .collect(),
            DefinitionError::Preview(other) => vec![FieldError::new(
                Field::Body,
                format!("the preview with the sample values does not render: {other}"),
            )],
            DefinitionError::Ttl { .. } => vec![FieldError::new(Field::Ttl, e.to_string())],
        }
    }

    /// The message as a phone would get it with the sample values: placeholders with a declared,
    /// non-empty sample replaced by it, others left as written (`{name}`), `{{`/`}}` unescaped.
    /// When the body does not parse, the body as written. This is what the counter counts, so it
    /// always has something to count while the template is half-typed.
    pub fn sample_message(&self) -> String {
        let Ok(body) = TemplateBody::parse(&self.body) else {
            return self.body.clone();
        };
        let mut out = String::with_capacity(self.body.len());
        for part in body.parts() {
            match part {
                Part::Text { text } => out.push_str(text),
                Part::Variable { name, .. } => {
                    match self
                        .variables
                        .iter()
                        .find(|v| v.name.trim() == name && !v.sample.is_empty())
                    {
                        Some(v) => out.push_str(&v.sample),
                        None => {
                            out.push('{');
                            out.push_str(name);
                            out.push('}');
                        }
                    }
                }
            }
        }
        out
    }

    /// Segments of [`Self::sample_message`], as Twilio would bill it.
    pub fn analyze_sample(&self) -> Result<SegmentedMessage, BodyError> {
        SegmentedMessage::analyze(&self.sample_message(), self.smart_encoding)
    }

    /// Declared variable names, in table order, without blanks or repeats: what typing `{` offers.
    pub fn variable_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for v in &self.variables {
            let n = v.name.trim();
            if !n.is_empty() && !names.iter().any(|m| m == n) {
                names.push(n.to_owned());
            }
        }
        names
    }
}

/// The segments of an analysed message as HTML: one `<span class="seg seg-a|seg-b">` per segment
/// (alternating), graphemes that are not GSM-7 wrapped in `<mark>` with what smart encoding would
/// send instead. One string so that the browser replaces the whole view in one DOM operation per
/// keystroke, however many characters are marked. All text is escaped.
pub fn segments_html(msg: &SegmentedMessage) -> String {
    let text = msg.text();
    let mut out = String::with_capacity(text.len() * 2 + 64 * msg.segment_count());
    let mut marks = msg.non_gsm().iter().peekable();
    for (i, seg) in msg.segments().iter().enumerate() {
        let class = if i % 2 == 0 { "seg seg-a" } else { "seg seg-b" };
        out.push_str(&format!(
            "<span class=\"{class}\" data-segment=\"{n}\" title=\"Segment {n}: {units} of {cap} {unit}\">",
            n = i + 1,
            units = seg.units,
            cap = seg.capacity,
            unit = match msg.encoding() {
                domain::segments::Encoding::Gsm7 => "septets",
                domain::segments::Encoding::Ucs2 => "UTF-16 units",
            },
        ));
        let mut at = seg.start;
        while let Some(m) = marks.next_if(|m| m.start < seg.end) {
            escape_into(&mut out, &text[at..m.start]);
            match &m.replacement {
                Some(r) => {
                    out.push_str("<mark class=\"non-gsm\" title=\"Not GSM-7; smart encoding sends ");
                    escape_into(&mut out, r);
                    out.push_str("\" data-replacement=\"");
                    escape_into(&mut out, r);
                    out.push_str("\">");
                }
                None => out.push_str(
                    "<mark class=\"non-gsm\" title=\"Not GSM-7, no replacement: the message goes as UCS-2\">",
                ),
            }
            escape_into(&mut out, &m.grapheme);
            out.push_str("</mark>");
            at = m.end;
        }
        escape_into(&mut out, &text[at..seg.end]);
        out.push_str("</span>");
    }
    out
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Graphemes that keep the message out of GSM-7, each once with how often it occurs and what
/// smart encoding would send instead, in order of first occurrence.
pub fn non_gsm_summary(msg: &SegmentedMessage) -> Vec<(String, usize, Option<String>)> {
    let mut out: Vec<(String, usize, Option<String>)> = Vec::new();
    for m in msg.non_gsm() {
        match out.iter_mut().find(|(g, _, _)| *g == m.grapheme) {
            Some(entry) => entry.1 += 1,
            None => out.push((m.grapheme.clone(), 1, m.replacement.clone())),
        }
    }
    out
}

/// Where the `{` autocompletion stands: the caret is just after `{` plus a partial name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPlaceholder {
    /// Byte index just after the `{`.
    pub name_start: usize,
    /// What is typed of the name so far.
    pub prefix: String,
}

/// Finds an unfinished placeholder ending at byte `caret` of `text`: identifier characters back
/// to a `{` that is not an escaped `{{`.
pub fn open_placeholder(text: &str, caret: usize) -> Option<OpenPlaceholder> {
    let before = text.get(..caret)?;
    let name_start = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_alphanumeric() || *c == '_')
        .last()
        .map_or(caret, |(i, _)| i);
    let braces = before[..name_start]
        .chars()
        .rev()
        .take_while(|&c| c == '{')
        .count();
    (braces % 2 == 1).then(|| OpenPlaceholder {
        name_start,
        prefix: before[name_start..].to_owned(),
    })
}

/// Byte index in `s` of the UTF-16 offset `u16_index` (what the DOM's `selectionStart` gives).
pub fn utf16_to_byte(s: &str, u16_index: usize) -> usize {
    let mut units = 0;
    for (i, c) in s.char_indices() {
        if units >= u16_index {
            return i;
        }
        units += c.len_utf16();
    }
    s.len()
}

/// UTF-16 offset of byte index `byte` in `s`.
pub fn byte_to_utf16(s: &str, byte: usize) -> usize {
    s[..byte].encode_utf16().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(body: &str, vars: &[(&str, usize, Charset, &str)]) -> TemplateDraft {
        TemplateDraft {
            key: "shipment_created".into(),
            body: body.into(),
            variables: vars
                .iter()
                .map(|&(name, max_len, charset, sample)| VariableDraft {
                    name: name.into(),
                    max_len,
                    charset,
                    sample: sample.into(),
                })
                .collect(),
            ..TemplateDraft::default()
        }
    }

    #[test]
    fn a_valid_draft_becomes_a_template() {
        let d = draft(
            "Shipment {tracking} created",
            &[("tracking", 12, Charset::Gsm7, "SS123")],
        );
        let t = d.validate().expect("valid");
        assert_eq!(t.render_samples().unwrap(), "Shipment SS123 created");
    }

    #[test]
    fn every_broken_field_gets_its_own_error() {
        let mut d = draft("Hi {name", &[("9x", 0, Charset::Gsm7, "")]);
        d.key = "Bad Key".into();
        let fields: Vec<Field> = d.validate().unwrap_err().iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            vec![Field::Key, Field::Body, Field::VariableName(0)]
        );
    }

    #[test]
    fn the_ttl_is_a_number_of_seconds_in_twilios_range() {
        let mut d = draft("Your code is 123456", &[]);
        d.category = Category::TwoFactor;
        assert_eq!(d.validate().unwrap().validity_seconds(), Some(600));
        d.ttl_seconds = " 120 ".into();
        let t = d.validate().unwrap();
        assert_eq!(t.ttl_seconds(), Some(120));
        assert_eq!(TemplateDraft::from(&t).ttl_seconds, "120");
        for bad in ["ten", "-5", "1.5"] {
            d.ttl_seconds = bad.into();
            let errors = d.validate().unwrap_err();
            assert_eq!(errors[0].field, Field::Ttl, "{bad}");
            assert!(errors[0].message.contains("whole number"), "{errors:?}");
        }
        for bad in ["0", "36001"] {
            d.ttl_seconds = bad.into();
            let errors = d.validate().unwrap_err();
            assert_eq!(errors[0].field, Field::Ttl, "{bad}");
            assert!(errors[0].message.contains("1 to 36000"), "{errors:?}");
        }
    }

    #[test]
    fn a_parse_error_names_its_position() {
        let errors = draft("Hello }", &[]).validate().unwrap_err();
        assert!(errors[0].message.contains("line 1, column 7"), "{errors:?}");
    }

    #[test]
    fn an_undeclared_placeholder_is_a_body_error() {
        let errors = draft("Hi {who}", &[]).validate().unwrap_err();
        assert_eq!(errors[0].field, Field::Body);
        assert!(errors[0].message.contains("who"));
    }

    #[test]
    fn a_duplicate_variable_is_reported_on_the_second_row() {
        let d = draft(
            "{a}",
            &[("a", 3, Charset::Gsm7, "x"), ("a", 3, Charset::Gsm7, "y")],
        );
        assert_eq!(d.validate().unwrap_err()[0].field, Field::VariableName(1));
    }

    #[test]
    fn a_sample_outside_its_charset_is_reported_on_its_row() {
        let d = draft("{a}", &[("a", 3, Charset::Gsm7, "ç")]);
        assert_eq!(d.validate().unwrap_err()[0].field, Field::VariableSample(0));
    }

    #[test]
    fn the_sample_message_fills_known_samples_and_keeps_the_rest() {
        let d = draft(
            "{{x}} {a} {b}",
            &[("a", 3, Charset::Gsm7, "AA"), ("b", 3, Charset::Gsm7, "")],
        );
        assert_eq!(d.sample_message(), "{x} AA {b}");
        assert_eq!(draft("broken {", &[]).sample_message(), "broken {");
    }

    #[test]
    fn segments_html_escapes_and_marks_non_gsm() {
        let msg = SegmentedMessage::analyze("<b>’", false).unwrap();
        let html = segments_html(&msg);
        assert!(html.starts_with("<span class=\"seg seg-a\" data-segment=\"1\""));
        assert!(html.contains("&lt;b&gt;<mark class=\"non-gsm\""), "{html}");
        assert!(html.contains("data-replacement=\"&#39;\""), "{html}");
    }

    #[test]
    fn segments_html_alternates_and_keeps_all_text() {
        let body = "a".repeat(152) + "€" + &"b".repeat(20);
        let msg = SegmentedMessage::analyze(&body, false).unwrap();
        let html = segments_html(&msg);
        assert_eq!(html.matches("<span").count(), msg.segment_count());
        assert!(html.contains("seg seg-b"));
        assert_eq!(strip_tags(&html), body);
    }

    /// The text of some HTML made by `segments_html` (tags dropped, entities undone).
    fn strip_tags(html: &str) -> String {
        let mut out = String::new();
        let mut in_tag = false;
        for c in html.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => out.push(c),
                _ => {}
            }
        }
        out.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }

    /// The figures end2end/tests/editor.spec.ts expects, from the domain crate.
    #[test]
    fn figures_the_end_to_end_test_expects() {
        let count = |body: &str| {
            let m = SegmentedMessage::analyze(body, false).unwrap();
            (
                m.encoding().as_str(),
                m.segment_count(),
                m.characters(),
                m.units_left_in_last_segment(),
            )
        };
        assert_eq!(count(&"😀".repeat(1600)), ("UCS-2", 49, 1600, 35));
        assert_eq!(count(&("a".repeat(158) + "€")), ("GSM-7", 1, 160, 0));
        assert_eq!(count(&("a".repeat(158) + "€a")), ("GSM-7", 2, 161, 145));
        let body = "a".repeat(152) + "€" + &"a".repeat(10);
        assert_eq!(count(&body), ("GSM-7", 2, 164, 141));
        let m = SegmentedMessage::analyze(&body, false).unwrap();
        assert_eq!(m.segments()[0].end, 152);
    }

    #[test]
    fn open_placeholder_finds_the_name_being_typed() {
        assert_eq!(
            open_placeholder("Hi {tra", 7),
            Some(OpenPlaceholder {
                name_start: 4,
                prefix: "tra".into()
            })
        );
        assert_eq!(open_placeholder("Hi {", 4).unwrap().prefix, "");
        assert_eq!(open_placeholder("Hi {{tra", 8), None);
        assert_eq!(open_placeholder("Hi {a} b", 8), None);
        assert_eq!(open_placeholder("Hi", 2), None);
    }

    #[test]
    fn utf16_offsets_round_trip() {
        let s = "a😜é{";
        assert_eq!(utf16_to_byte(s, 3), 5);
        assert_eq!(byte_to_utf16(s, 5), 3);
        assert_eq!(utf16_to_byte(s, 99), s.len());
    }

    #[test]
    fn drafts_travel_as_json() {
        let d = draft("x", &[("a", 3, Charset::Unicode, "é")]);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<TemplateDraft>(&json).unwrap(), d);
        let e = FieldError::new(Field::VariableSample(2), "m");
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"field":{"field":"variable_sample","index":2},"message":"m"}"#
        );
    }
}
