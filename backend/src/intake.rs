//! Intake: how every message enters smsdesk. The JSON API (one and batch), the Twilio-compatible
//! endpoint and the console's send page all call [`Intake`]: it parses each submission, runs every
//! check (number, geo permissions, consent, template and variables, body, sender, validity), then
//! writes the messages with their first events in one transaction and returns them as stored.
//! Nothing is sent here: the worker takes them from the outbox.
//!
//! A batch costs a fixed number of queries whatever its size: consent is looked up for all its
//! numbers in one query and each template named is read once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use domain::money::Money;
use domain::phone::PhoneNumber;
use domain::segments::{MAX_BODY_CHARS, SegmentedMessage};
use domain::sending::SendingSettings;
use domain::template::{Category, DEFAULT_TWO_FACTOR_TTL_SECONDS, MAX_TTL_SECONDS, Priority};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tracing::Instrument;

use crate::crypto::DataKey;
use crate::db::{Db, DbError, Tx};
use crate::outbox::{self, Accepted, MessageView, Source};
use crate::settings::is_alphanumeric_id;
use crate::{consent, templates};

/// Longest `ValidityPeriod` Twilio takes (and its default), in seconds.
pub const MAX_VALIDITY_SECONDS: u32 = MAX_TTL_SECONDS;

/// What a caller asks to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    pub to: String,
    pub content: Content,
    pub category: Option<Category>,
    /// A number (E.164) among the configured senders, or the alphanumeric id.
    pub sender: Option<String>,
    pub validity_seconds: Option<u32>,
}

/// A body as given, or a template and its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    Body(String),
    Template {
        key: String,
        variables: BTreeMap<String, String>,
    },
}

/// Why a submission was refused. `code` is stable for programs, `field` names the input,
/// `twilio_code` is the Twilio error code with the same meaning where Twilio has one (the
/// Twilio-compatible endpoint answers with it), `message` says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub code: RefusalCode,
    pub field: String,
    pub message: String,
    pub twilio_code: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    MissingTo,
    InvalidNumber,
    CountryNotAllowed,
    OptedOut,
    UnknownTemplate,
    UnknownVariable,
    TemplateValues,
    EmptyBody,
    BodyTooLong,
    InvalidSender,
    CategoryMismatch,
    /// Emergency priority asked for by a caller that may not give it.
    CategoryNotAllowed,
    InvalidValidity,
    /// A budget's hard stop: the message would take its period past the amount.
    BudgetExceeded,
}

impl RefusalCode {
    /// The stable name programs match on (`invalid_number`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::MissingTo => "missing_to",
            RefusalCode::InvalidNumber => "invalid_number",
            RefusalCode::CountryNotAllowed => "country_not_allowed",
            RefusalCode::OptedOut => "opted_out",
            RefusalCode::UnknownTemplate => "unknown_template",
            RefusalCode::UnknownVariable => "unknown_variable",
            RefusalCode::TemplateValues => "template_values",
            RefusalCode::EmptyBody => "empty_body",
            RefusalCode::BodyTooLong => "body_too_long",
            RefusalCode::InvalidSender => "invalid_sender",
            RefusalCode::CategoryMismatch => "category_mismatch",
            RefusalCode::CategoryNotAllowed => "category_not_allowed",
            RefusalCode::InvalidValidity => "invalid_validity",
            RefusalCode::BudgetExceeded => "budget_exceeded",
        }
    }
}

fn refuse(code: RefusalCode, field: &str, twilio_code: Option<u32>, message: String) -> Refusal {
    Refusal {
        code,
        field: field.to_owned(),
        message,
        twilio_code,
    }
}

/// A submission that passed every check, ready for the outbox.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub e164: String,
    /// The keyed hash the number is found by.
    pub to_hash: String,
    pub region: String,
    pub masked: String,
    pub body: String,
    pub template_key: Option<String>,
    pub category: Option<Category>,
    pub priority: Priority,
    pub encoding: &'static str,
    pub segments: u32,
    pub smart_encoded: bool,
    pub validity_seconds: Option<u32>,
    pub sender: Option<String>,
    /// Segments × the price table's price for the country (and sender), µ$; `None` without a
    /// price for the country.
    pub estimated_micros: Option<i64>,
    /// Passes budgets' hard stops (an emergency, while the settings exempt them); still counts.
    pub budget_exempt: bool,
}

impl Prepared {
    /// What this message reserves against the budgets.
    pub fn charge(&self) -> domain::budget::Charge {
        domain::budget::Charge {
            category: self.category,
            micros: self.estimated_micros.unwrap_or(0),
            exempt: self.budget_exempt,
        }
    }
}

/// Each submission's outcome, in the order given.
pub type Checked = Vec<Result<Prepared, Refusal>>;

/// A template as intake uses it, or why it cannot be used.
type TemplateLookup = Result<domain::template::Template, Refusal>;

/// The way in. Cheap to clone; every clone shares one group-commit writer.
#[derive(Clone, Debug)]
pub struct Intake {
    db: Db,
    key: DataKey,
    writer: Writer,
    wake: Arc<Notify>,
}

impl Intake {
    /// Starts intake's writer task. `wake` is notified whenever messages were written, so the
    /// worker takes them at once.
    pub fn new(db: Db, key: DataKey, wake: Arc<Notify>) -> Intake {
        let writer = Writer::spawn(db.clone(), key.clone());
        Intake {
            db,
            key,
            writer,
            wake,
        }
    }

    /// Checks submissions against the settings and the consent ledger, without writing. Its
    /// queries: one for consent, one per distinct template named.
    pub async fn check(
        &self,
        settings: &SendingSettings,
        source: &Source,
        submissions: Vec<Submission>,
    ) -> Result<Checked, DbError> {
        let numbers: Vec<Result<PhoneNumber, Refusal>> = submissions
            .iter()
            .map(|s| check_number(settings, &s.to))
            .collect();
        let hashes: Vec<Option<String>> = numbers
            .iter()
            .map(|n| n.as_ref().ok().map(|n| self.key.lookup_hash(n.e164())))
            .collect();
        let opted_out =
            consent::opted_out_among(&self.db, &hashes.iter().flatten().collect::<Vec<_>>())
                .await?;
        let mut found: HashMap<String, TemplateLookup> = HashMap::new();
        for submission in &submissions {
            if let Content::Template { key, .. } = &submission.content
                && !found.contains_key(key)
            {
                let lookup = load_template(&self.db, key).await?;
                found.insert(key.clone(), lookup);
            }
        }
        Ok(submissions
            .into_iter()
            .zip(numbers)
            .zip(hashes)
            .map(|((submission, number), hash)| {
                let number = number?;
                let hash = hash.expect("a parsed number has a hash");
                if opted_out.contains(&hash) {
                    return Err(refuse(
                        RefusalCode::OptedOut,
                        "to",
                        Some(21610),
                        format!(
                            "{} has opted out (replied STOP): smsdesk will not send to it until it replies START",
                            number.masked()
                        ),
                    ));
                }
                check_message(settings, source, &found, submission, &number, hash)
            })
            .collect())
    }

    /// Writes checked messages with their first events, with intake's next group commit, and
    /// returns them as stored, or refused by a budget's hard stop (checked in the same
    /// transaction). Wakes the worker.
    pub async fn write(
        &self,
        prepared: Vec<Prepared>,
        source: &Source,
        now: i64,
    ) -> Result<Vec<Result<MessageView, Refusal>>, Arc<DbError>> {
        if prepared.is_empty() {
            return Ok(Vec::new());
        }
        let span = tracing::info_span!("intake", source = source.kind(), messages = prepared.len());
        let (prepared, outcomes) = self
            .writer
            .write(prepared, source.clone(), now)
            .instrument(span.clone())
            .await?;
        let written = views(prepared, outcomes, source, now);
        span.in_scope(|| log_written(source, &written));
        self.wake.notify_one();
        Ok(written)
    }

    /// Writes checked messages inside the caller's transaction (which also holds, say, an
    /// idempotency record). The caller wakes the worker with [`Intake::written`] after commit.
    pub async fn write_in(
        &self,
        tx: &mut Tx,
        prepared: Vec<Prepared>,
        source: &Source,
        now: i64,
    ) -> Result<Vec<Result<MessageView, Refusal>>, DbError> {
        let span = tracing::info_span!("intake", source = source.kind(), messages = prepared.len());
        let pairs: Vec<(&Prepared, &Source)> = prepared.iter().map(|p| (p, source)).collect();
        let outcomes = write_batch(tx, &self.key, &pairs, now)
            .instrument(span.clone())
            .await?;
        let written = views(prepared, outcomes, source, now);
        span.in_scope(|| log_written(source, &written));
        Ok(written)
    }

    /// Tells the worker that a transaction holding new messages committed.
    pub fn written(&self) {
        self.wake.notify_one();
    }

    /// Checks and writes: each submission's stored message or the reason it was refused.
    pub async fn submit(
        &self,
        settings: &SendingSettings,
        source: &Source,
        submissions: Vec<Submission>,
        now: i64,
    ) -> Result<Vec<Result<MessageView, Refusal>>, Arc<DbError>> {
        let checked = self.check(settings, source, submissions).await?;
        let (slots, prepared) = split(source, checked);
        let written = self.write(prepared, source, now).await?;
        Ok(merge(slots, written, |r| r))
    }
}

/// A debug line per message written, so a message's id leads to its intake in the logs; the
/// counts of accepted and refused (by a budget) messages.
fn log_written(source: &Source, written: &[Result<MessageView, Refusal>]) {
    let mut accepted = 0;
    for w in written {
        match w {
            Ok(m) => {
                accepted += 1;
                tracing::debug!(message_id = m.id, sid = %m.sid, "accepted");
            }
            Err(r) => crate::telemetry::refused(source, r.code),
        }
    }
    crate::telemetry::accepted(source, accepted);
}

/// Admits `items` against the budgets and writes those admitted with their first events, in
/// the caller's transaction: each item's row, or the budget refusal.
async fn write_batch(
    tx: &mut Tx,
    key: &DataKey,
    items: &[(&Prepared, &Source)],
    now: i64,
) -> Result<Vec<Result<Accepted, Refusal>>, DbError> {
    let charges: Vec<domain::budget::Charge> = items.iter().map(|(p, _)| p.charge()).collect();
    let admitted = crate::budgets::reserve(tx, &charges, now).await?;
    let to_write: Vec<(&Prepared, &Source)> = items
        .iter()
        .zip(&admitted)
        .filter(|(_, a)| a.is_ok())
        .map(|(item, _)| *item)
        .collect();
    let mut rows = outbox::insert_many(tx, key, &to_write, now)
        .await?
        .into_iter();
    Ok(items
        .iter()
        .zip(admitted)
        .map(|((p, _), a)| match a {
            Ok(()) => Ok(rows.next().expect("a row per admitted message")),
            Err(exceeded) => Err(refuse(
                RefusalCode::BudgetExceeded,
                "budget",
                Some(30010),
                exceeded.explain(p.estimated_micros.unwrap_or(0)),
            )),
        })
        .collect())
}

/// Separates what passed from what was refused (counting the refusals): a slot per submission
/// (the index of its prepared message, or its refusal) and the prepared messages.
pub fn split(source: &Source, checked: Checked) -> (Vec<Result<usize, Refusal>>, Vec<Prepared>) {
    let mut prepared = Vec::new();
    let slots = checked
        .into_iter()
        .map(|c| match c {
            Ok(p) => {
                prepared.push(p);
                Ok(prepared.len() - 1)
            }
            Err(r) => {
                crate::telemetry::refused(source, r.code);
                Err(r)
            }
        })
        .collect();
    (slots, prepared)
}

/// Puts written messages (or their budget refusals, as `refused` makes them) back in their
/// submissions' order.
pub fn merge<E>(
    slots: Vec<Result<usize, E>>,
    written: Vec<Result<MessageView, Refusal>>,
    refused: impl Fn(Refusal) -> E,
) -> Vec<Result<MessageView, E>> {
    let mut written: Vec<Option<Result<MessageView, Refusal>>> =
        written.into_iter().map(Some).collect();
    slots
        .into_iter()
        .map(|slot| {
            slot.and_then(|i| {
                written[i]
                    .take()
                    .expect("each message is placed once")
                    .map_err(&refused)
            })
        })
        .collect()
}

/// The messages just written, as stored: built from what was written, not read back.
fn views(
    prepared: Vec<Prepared>,
    outcomes: Vec<Result<Accepted, Refusal>>,
    source: &Source,
    now: i64,
) -> Vec<Result<MessageView, Refusal>> {
    prepared
        .into_iter()
        .zip(outcomes)
        .map(|(p, a)| a.map(|a| MessageView::written(p, a, source.clone(), now)))
        .collect()
}

fn check_number(settings: &SendingSettings, to: &str) -> Result<PhoneNumber, Refusal> {
    let to = to.trim();
    if to.is_empty() {
        return Err(refuse(
            RefusalCode::MissingTo,
            "to",
            Some(21604),
            "a recipient is required: give `to` as +14155552671".into(),
        ));
    }
    let number = PhoneNumber::parse(to, Some(&settings.default_region)).map_err(|e| {
        refuse(
            RefusalCode::InvalidNumber,
            "to",
            Some(21211),
            format!("{to:?} is not a valid phone number: {e}"),
        )
    })?;
    if !settings
        .allowed_countries
        .iter()
        .any(|c| c == number.region())
    {
        return Err(refuse(
            RefusalCode::CountryNotAllowed,
            "to",
            Some(21408),
            format!(
                "sending to {} ({}) is not allowed: the geo permissions allow {}; an admin can add the country in Settings",
                number.masked(),
                number.region(),
                settings.allowed_countries.join(", ")
            ),
        ));
    }
    Ok(number)
}

async fn load_template(db: &Db, key: &str) -> Result<TemplateLookup, DbError> {
    Ok(match templates::get(db, key).await {
        Ok(Some(t)) => Ok(t.template),
        Ok(None) => Err(refuse(
            RefusalCode::UnknownTemplate,
            "template",
            None,
            format!("there is no template named {key:?}: the console's Templates page lists them"),
        )),
        Err(templates::TemplateStoreError::Db(e)) => return Err(e),
        Err(e) => Err(refuse(
            RefusalCode::UnknownTemplate,
            "template",
            None,
            e.to_string(),
        )),
    })
}

/// The checks after the number: content, category, body, sender, validity.
fn check_message(
    settings: &SendingSettings,
    source: &Source,
    templates: &HashMap<String, TemplateLookup>,
    submission: Submission,
    number: &PhoneNumber,
    to_hash: String,
) -> Result<Prepared, Refusal> {
    use RefusalCode as C;
    // The validity when the submission gives none: the template's TTL; two-factor codes expire.
    let (body, template_key, category, priority, smart, default_validity) = match submission.content
    {
        Content::Body(body) => {
            let category = submission.category;
            let priority = category.map_or(Priority::Normal, Category::default_priority);
            // Emergency priority jumps the queue and skips recipients' limits: free text gets it
            // only from a sender trusted with it (emergency templates carry it themselves).
            if priority == Priority::Emergency && !source.may_send_emergency() {
                return Err(refuse(
                    C::CategoryNotAllowed,
                    "category",
                    None,
                    "emergency messages go out through an emergency template (the console's Templates page) or from the console; \
                     an API key cannot give free text emergency priority: name the template, or leave `category` out"
                        .into(),
                ));
            }
            let validity =
                (category == Some(Category::TwoFactor)).then_some(DEFAULT_TWO_FACTOR_TTL_SECONDS);
            (body, None, category, priority, false, validity)
        }
        Content::Template { key, variables } => {
            let template = match templates.get(&key) {
                Some(Ok(t)) => t,
                Some(Err(refusal)) => return Err(refusal.clone()),
                None => unreachable!("every template named was looked up"),
            };
            let unknown: Vec<&str> = variables
                .keys()
                .map(String::as_str)
                .filter(|name| template.variable(name).is_none())
                .collect();
            if !unknown.is_empty() {
                let known: Vec<&str> = template.variables().iter().map(|v| v.name()).collect();
                return Err(refuse(
                    C::UnknownVariable,
                    "variables",
                    None,
                    format!(
                        "template {key:?} has no variable {}: it takes {}",
                        unknown.join(", "),
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
            if let Some(given) = submission.category
                && given != template.category()
            {
                return Err(refuse(
                    C::CategoryMismatch,
                    "category",
                    None,
                    format!(
                        "template {key:?} is a {} template: leave `category` out or give {}",
                        template.category(),
                        template.category()
                    ),
                ));
            }
            let body = template.render(&variables).map_err(|e| {
                refuse(
                    C::TemplateValues,
                    "variables",
                    None,
                    format!("template {key:?} cannot be rendered: {e}"),
                )
            })?;
            (
                body,
                Some(key),
                Some(template.category()),
                template.priority(),
                template.smart_encoding(),
                template.validity_seconds(),
            )
        }
    };
    if body.trim().is_empty() {
        return Err(refuse(
            C::EmptyBody,
            "body",
            Some(21602),
            "the message body is empty: give `body` or a template".into(),
        ));
    }
    let analyzed = SegmentedMessage::analyze(&body, smart)
        .map_err(|e| refuse(C::BodyTooLong, "body", Some(21617), e.to_string()))?;
    let sender = check_sender(settings, submission.sender.as_deref(), number)?;
    let validity_seconds = match submission.validity_seconds {
        Some(v) if (1..=MAX_VALIDITY_SECONDS).contains(&v) => Some(v),
        Some(v) => {
            return Err(refuse(
                C::InvalidValidity,
                "validity_seconds",
                Some(21626),
                format!(
                    "validity of {v} seconds is out of range: give 1 to {MAX_VALIDITY_SECONDS}"
                ),
            ));
        }
        None => default_validity,
    };
    debug_assert!(body.chars().count() <= MAX_BODY_CHARS);
    let segments = u32::try_from(analyzed.segment_count()).unwrap_or(u32::MAX);
    let price = domain::pricing::lookup(
        &settings.prices,
        number.region(),
        sender.as_deref().map(domain::sending::SenderKind::of),
    );
    Ok(Prepared {
        e164: number.e164().to_owned(),
        to_hash,
        region: number.region().to_owned(),
        masked: number.masked(),
        encoding: analyzed.encoding().as_str(),
        segments,
        estimated_micros: domain::pricing::estimate(segments, price).map(Money::micros),
        // Emergencies while Settings exempt them, and smsdesk's own alerts (a budget's alert
        // must reach finance when the budget is spent).
        budget_exempt: (settings.budgets.exempt_emergency && priority == Priority::Emergency)
            || matches!(source, Source::System(_)),
        body,
        template_key,
        category,
        priority,
        smart_encoded: smart,
        validity_seconds,
        sender,
    })
}

fn check_sender(
    settings: &SendingSettings,
    given: Option<&str>,
    number: &PhoneNumber,
) -> Result<Option<String>, Refusal> {
    let alphanumeric_allowed = settings
        .alphanumeric_countries
        .iter()
        .any(|c| c == number.region());
    match given.map(str::trim) {
        None | Some("") => Ok(settings
            .alphanumeric_id
            .clone()
            .filter(|_| alphanumeric_allowed)),
        Some(s) if settings.extra_senders.iter().any(|e| e == s) => Ok(Some(s.to_owned())),
        Some(s) if settings.alphanumeric_id.as_deref() == Some(s) => {
            if !alphanumeric_allowed {
                return Err(refuse(
                    RefusalCode::InvalidSender,
                    "sender",
                    Some(21212),
                    format!(
                        "the alphanumeric sender {s:?} is allowed only for {}: leave `sender` out to use the number",
                        settings.alphanumeric_countries.join(", ")
                    ),
                ));
            }
            Ok(Some(s.to_owned()))
        }
        Some(s) => {
            let what = if is_alphanumeric_id(s) {
                "is not the configured alphanumeric sender id"
            } else {
                "is not one of smsdesk's sender numbers"
            };
            Err(refuse(
                RefusalCode::InvalidSender,
                "sender",
                Some(21212),
                format!(
                    "sender {s:?} {what}: leave `sender` out to use the default, or ask an admin to add it in Settings"
                ),
            ))
        }
    }
}

/// Intake's group commit: requests hand their checked messages to one writer task, which writes
/// everything waiting in one transaction (up to 1,000 messages), so concurrent requests share a
/// commit instead of queueing for one each.
#[derive(Clone, Debug)]
struct Writer {
    jobs: tokio::sync::mpsc::Sender<Job>,
}

#[derive(Debug)]
struct Job {
    items: Vec<Prepared>,
    source: Source,
    now: i64,
    /// The job's messages back, with what was written for each.
    reply: tokio::sync::oneshot::Sender<Result<Written, Arc<DbError>>>,
}

/// A job's messages and, in the same order, each one's row or budget refusal.
type Written = (Vec<Prepared>, Vec<Result<Accepted, Refusal>>);

impl Writer {
    /// Starts the writer task; it ends when every `Writer` is dropped.
    fn spawn(db: Db, key: DataKey) -> Writer {
        let (jobs, mut queue) = tokio::sync::mpsc::channel::<Job>(4_096);
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut batch = vec![first];
                let mut count = batch[0].items.len();
                while count < 1_000 {
                    match queue.try_recv() {
                        Ok(job) => {
                            count += job.items.len();
                            batch.push(job);
                        }
                        Err(_) => break,
                    }
                }
                // The batch is stamped with its latest request's time, so that no message is
                // written as created before the request that asked for it.
                let now = batch.iter().map(|j| j.now).max().unwrap_or_default();
                let written = async {
                    let all: Vec<(&Prepared, &Source)> = batch
                        .iter()
                        .flat_map(|j| j.items.iter().map(|p| (p, &j.source)))
                        .collect();
                    let mut tx = db.begin().await?;
                    let outcomes = write_batch(&mut tx, &key, &all, now).await?;
                    tx.commit().await?;
                    Ok::<_, DbError>(outcomes)
                }
                .await;
                match written {
                    Ok(outcomes) => {
                        let mut rest = outcomes.into_iter();
                        for job in batch {
                            let mine: Vec<_> = rest.by_ref().take(job.items.len()).collect();
                            let _ = job.reply.send(Ok((job.items, mine)));
                        }
                    }
                    Err(e) => {
                        let e = Arc::new(e);
                        for job in batch {
                            let _ = job.reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
        Writer { jobs }
    }

    /// Writes `items` (from `source`) with the next group commit; returns them with their rows
    /// once they are durable.
    async fn write(
        &self,
        items: Vec<Prepared>,
        source: Source,
        now: i64,
    ) -> Result<Written, Arc<DbError>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped = || Arc::new(DbError::Query(sqlx::Error::PoolClosed));
        self.jobs
            .send(Job {
                items,
                source,
                now,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}
