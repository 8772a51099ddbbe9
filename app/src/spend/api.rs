//! Spend and budgets (finance and admins): the report behind the spend page, its charts (SVG
//! drawn on the server), the budgets with where they stand, setting and removing them, and the
//! alerts the banner shows.

#[cfg(feature = "ssr")]
use domain::access::Permission;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[cfg(feature = "ssr")]
use crate::auth::{current_user, require, state};

/// A group's figures, µ$.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRow {
    /// A template key, a country code, a category ('' for none).
    pub key: String,
    pub messages: i64,
    pub segments: i64,
    pub estimated_micros: i64,
    pub actual_micros: i64,
}

/// One day: its estimate per category, the reported total, and the drift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayRow {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub messages: i64,
    pub segments: i64,
    pub estimated_micros: i64,
    pub actual_micros: i64,
    pub drift_micros: i64,
    pub flagged: bool,
    /// (category, estimated µ$), in the chart's stacking order, zeros left out.
    pub categories: Vec<(String, i64)>,
}

/// A message Twilio has not priced a day after taking it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpricedRow {
    pub sid: String,
    pub created_at: i64,
    pub status: String,
    pub region: String,
    pub estimated_micros: Option<i64>,
}

/// Everything the spend page shows for a range of days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendReport {
    /// The range, `YYYY-MM-DD`, both days included.
    pub from: String,
    pub to: String,
    pub total: GroupRow,
    pub days: Vec<DayRow>,
    pub templates: Vec<GroupRow>,
    pub countries: Vec<GroupRow>,
    pub daily_budget_micros: Option<i64>,
    /// This month so far (UTC): estimated, reported, the monthly budget.
    pub month: String,
    pub month_estimated_micros: i64,
    pub month_actual_micros: i64,
    pub monthly_budget_micros: Option<i64>,
    pub unpriced: Vec<UnpricedRow>,
    /// A settled day's drift beyond this share of its estimate is flagged.
    pub drift_percent: i64,
    /// The charts, SVG.
    pub per_day_svg: String,
    pub templates_svg: String,
    pub countries_svg: String,
    pub month_svg: String,
}

/// The categories in the per-day chart's stacking order with their colours (CSS) and labels.
pub const LEGEND: [(&str, &str, &str); 5] = [
    ("emergency", "#B91C1C", "Emergency"),
    ("shipment", "#1D4ED8", "Shipment"),
    ("driver", "#047857", "Driver"),
    ("two_factor", "#7C3AED", "Two-factor"),
    ("", "#6B7280", "No category"),
];

#[cfg(feature = "ssr")]
const VIEW: &str = "read spend";

#[cfg(feature = "ssr")]
fn group_row(key: String, f: backend::spend::Figures) -> GroupRow {
    GroupRow {
        key,
        messages: f.messages,
        segments: f.segments,
        estimated_micros: f.estimated_micros,
        actual_micros: f.actual_micros,
    }
}

#[cfg(feature = "ssr")]
fn chart(drawn: Result<String, String>) -> Result<String, AppError> {
    drawn.map_err(|e| AppError::internal("drawing a chart", &std::io::Error::other(e)))
}

/// The spend page's report for `from`..`to` (`YYYY-MM-DD`, inclusive; the last 30 days when
/// empty).
#[server(endpoint = "read_spend")]
pub async fn read_spend(from: Option<String>, to: Option<String>) -> Result<SpendReport, AppError> {
    use backend::spend::{self, Group};
    use domain::budget::Period;
    require(Permission::ViewSpend, VIEW).await?;
    let st = state()?;
    let now = backend::db::now_micros();
    let (first, until) = spend::range(from.as_deref(), to.as_deref(), now)
        .map_err(|e| AppError::invalid("from", e).respond())?;
    let read = |e: backend::db::DbError| AppError::internal("reading the spend totals", &e);
    let per_day = spend::report(&st.db, Group::Category, true, first, until)
        .await
        .map_err(read)?;
    let templates = spend::report(&st.db, Group::Template, false, first, until)
        .await
        .map_err(read)?;
    let countries = spend::report(&st.db, Group::Country, false, first, until)
        .await
        .map_err(read)?;
    let (month_start, month_end) = (Period::Month.start(now), Period::Month.next_start(now));
    let month_rows = spend::report(&st.db, Group::Category, true, month_start, month_end)
        .await
        .map_err(read)?;
    let unpriced = spend::unpriced(&st.db, first, now, 50)
        .await
        .map_err(read)?;
    let budgets = backend::budgets::list(&st.db)
        .await
        .map_err(|e| AppError::internal("reading the budgets", &e))?;
    let overall = |period: Period| {
        budgets
            .iter()
            .find(|b| b.budget.period == period && b.budget.category.is_none())
            .map(|b| b.budget.amount_micros)
    };
    let (daily_budget_micros, monthly_budget_micros) =
        (overall(Period::Day), overall(Period::Month));

    let day = 86_400_000_000i64;
    let slots = usize::try_from((until - first) / day).unwrap_or(0);
    let per_day_svg = chart(spend::draw_per_day(
        &per_day,
        first,
        slots,
        daily_budget_micros,
    ))?;
    let templates_svg = chart(spend::draw_bars(&templates))?;
    let countries_svg = chart(spend::draw_bars(&countries))?;
    let month_days = usize::try_from((month_end - month_start) / day).unwrap_or(31);
    let elapsed = usize::try_from((now - month_start) / day + 1).unwrap_or(1);
    let mut cumulative = vec![0i64; elapsed.min(month_days)];
    for row in &month_rows {
        let slot = usize::try_from((row.day - month_start) / day).unwrap_or(0);
        for c in cumulative.iter_mut().skip(slot) {
            *c += row.figures.estimated_micros;
        }
    }
    let month_svg = chart(spend::draw_month(
        &cumulative,
        month_days,
        monthly_budget_micros,
    ))?;

    let mut total = backend::spend::Figures::default();
    for r in &per_day {
        total.add(&r.figures);
    }
    let days = spend::reconcile(&per_day, now)
        .into_iter()
        .map(|d| DayRow {
            day: spend::format_day(d.day),
            messages: d.figures.messages,
            segments: d.figures.segments,
            estimated_micros: d.figures.estimated_micros,
            actual_micros: d.figures.actual_micros,
            drift_micros: d.drift_micros,
            flagged: d.flagged,
            categories: spend::STACK
                .iter()
                .filter_map(|c| {
                    let micros: i64 = per_day
                        .iter()
                        .filter(|r| r.day == d.day && r.key == *c)
                        .map(|r| r.figures.estimated_micros)
                        .sum();
                    (micros != 0).then(|| ((*c).to_owned(), micros))
                })
                .collect(),
        })
        .collect();
    let mut month_figures = backend::spend::Figures::default();
    for r in &month_rows {
        month_figures.add(&r.figures);
    }
    Ok(SpendReport {
        from: spend::format_day(first),
        to: spend::format_day(until - day),
        total: group_row(String::new(), total),
        days,
        templates: templates
            .into_iter()
            .map(|r| group_row(r.key, r.figures))
            .collect(),
        countries: countries
            .into_iter()
            .map(|r| group_row(r.key, r.figures))
            .collect(),
        daily_budget_micros,
        month: spend::format_day(month_start)[..7].to_owned(),
        month_estimated_micros: month_figures.estimated_micros,
        month_actual_micros: month_figures.actual_micros,
        monthly_budget_micros,
        unpriced: unpriced
            .into_iter()
            .map(|u| UnpricedRow {
                sid: u.sid,
                created_at: u.created_at,
                status: u.status,
                region: u.region,
                estimated_micros: u.estimated_micros,
            })
            .collect(),
        drift_percent: spend::DRIFT_PERCENT,
        per_day_svg,
        templates_svg,
        countries_svg,
        month_svg,
    })
}

/// A budget as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetRow {
    /// day | month
    pub period: String,
    /// A category, or '' for every message.
    pub category: String,
    /// "daily budget", "monthly shipment budget".
    pub name: String,
    pub amount_micros: i64,
    pub warn_percents: Vec<u8>,
    pub hard_stop: bool,
    pub spent_micros: i64,
    pub resets_at: i64,
    pub raised: Vec<u8>,
}

/// Every budget with where its current period stands.
#[server(endpoint = "list_budgets")]
pub async fn list_budgets() -> Result<Vec<BudgetRow>, AppError> {
    require(Permission::ViewSpend, VIEW).await?;
    let standings = backend::budgets::standings(&state()?.db, backend::db::now_micros())
        .await
        .map_err(|e| AppError::internal("reading the budgets", &e))?;
    Ok(standings
        .into_iter()
        .map(|s| BudgetRow {
            period: s.budget.period.as_str().to_owned(),
            category: s.budget.category.map_or("", |c| c.as_str()).to_owned(),
            name: backend::budgets::describe(&s.budget),
            amount_micros: s.budget.amount_micros,
            warn_percents: s.budget.warn_percents,
            hard_stop: s.budget.hard_stop,
            spent_micros: s.spent_micros,
            resets_at: s.resets_at,
            raised: s.raised,
        })
        .collect())
}

#[cfg(feature = "ssr")]
const MANAGE: &str = "set budgets";

#[cfg(feature = "ssr")]
fn period_and_category(
    period: &str,
    category: &str,
) -> Result<(domain::budget::Period, Option<domain::template::Category>), AppError> {
    let period = period
        .parse()
        .map_err(|e: String| AppError::invalid("period", e).respond())?;
    let category = match category.trim() {
        "" => None,
        c => Some(c.parse().map_err(|_| {
            AppError::invalid(
                "category",
                "choose a category: shipment, emergency, two_factor or driver",
            )
            .respond()
        })?),
    };
    Ok((period, category))
}

/// Sets the budget for a period and category (replacing the one there was). `amount` in
/// dollars (`250`, `99.50`); `warn` in percents (`50,80,100`); `hard_stop` present when ticked.
#[server(endpoint = "set_budget")]
pub async fn set_budget(
    period: String,
    category: String,
    amount: String,
    warn: String,
    hard_stop: Option<String>,
) -> Result<(), AppError> {
    let user = require(Permission::ManageBudgets, MANAGE).await?;
    let (period, category) = period_and_category(&period, &category)?;
    let amount_micros = domain::budget::parse_amount(&amount)
        .map_err(|e| AppError::invalid("amount", e).respond())?;
    let warn_percents = domain::budget::parse_warn_percents(&warn)
        .map_err(|e| AppError::invalid("warn", e).respond())?;
    let budget = domain::budget::Budget {
        period,
        category,
        amount_micros,
        warn_percents,
        hard_stop: hard_stop.is_some(),
    };
    let actor = backend::audit::Actor::user(user.id, &user.email);
    backend::budgets::set(&state()?.db, &actor, &budget, backend::db::now_micros())
        .await
        .map_err(|e| AppError::internal("saving the budget", &e))?
        .map_err(|e| AppError::invalid("amount", e).respond())?;
    Ok(())
}

/// Removes the budget for a period and category.
#[server(endpoint = "remove_budget")]
pub async fn remove_budget(period: String, category: String) -> Result<(), AppError> {
    let user = require(Permission::ManageBudgets, MANAGE).await?;
    let (period, category) = period_and_category(&period, &category)?;
    let actor = backend::audit::Actor::user(user.id, &user.email);
    let removed = backend::budgets::remove(&state()?.db, &actor, period, category)
        .await
        .map_err(|e| AppError::internal("removing the budget", &e))?;
    if removed {
        Ok(())
    } else {
        Err(AppError::invalid("period", "there is no such budget (already removed?)").respond())
    }
}

/// A warning level reached in a running period, for the banner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertLine {
    pub name: String,
    pub level: u8,
    pub spent_micros: i64,
    pub amount_micros: i64,
}

/// The highest warning level each budget has reached in its running period: shown to finance
/// and admins, nothing for other roles.
#[server(endpoint = "budget_alerts")]
pub async fn budget_alerts() -> Result<Vec<AlertLine>, AppError> {
    let Some(user) = current_user().await? else {
        return Ok(Vec::new());
    };
    if !user.can(Permission::ViewSpend) {
        return Ok(Vec::new());
    }
    let alerts = backend::budgets::current_alerts(&state()?.db, backend::db::now_micros())
        .await
        .map_err(|e| AppError::internal("reading the budget alerts", &e))?;
    Ok(alerts
        .into_iter()
        .map(|a| AlertLine {
            name: a.budget_name(),
            level: a.level,
            spent_micros: a.spent_micros,
            amount_micros: a.amount_micros,
        })
        .collect())
}

/// One row of the price table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceRow {
    pub country: String,
    /// any | long_code | toll_free | short_code | alphanumeric | messaging_service
    pub kind: String,
    /// USD per segment, decimal (`0.0083`).
    pub price: String,
}

/// The price table every message's estimate comes from.
#[server(endpoint = "price_table")]
pub async fn price_table() -> Result<Vec<PriceRow>, AppError> {
    require(Permission::ViewSpend, VIEW).await?;
    let settings = backend::settings::sending(&state()?.db)
        .await
        .map_err(|e| AppError::internal("reading the settings", &e))?;
    Ok(settings
        .prices
        .iter()
        .map(|p| PriceRow {
            country: p.country.clone(),
            kind: domain::pricing::kind_name(p.kind).to_owned(),
            price: p.per_segment.to_decimal(),
        })
        .collect())
}

/// Replaces the price table from CSV (`country,sender_kind,price_per_segment`), or replaces the
/// countries in Twilio's Pricing API answer (JSON). Audited with the settings. Answers how many
/// rows the table has now.
#[server(endpoint = "save_prices")]
pub async fn save_prices(list: String) -> Result<usize, AppError> {
    let user = require(Permission::ManageBudgets, "change the prices").await?;
    let db = &state()?.db;
    let mut settings = backend::settings::sending(db)
        .await
        .map_err(|e| AppError::internal("reading the settings", &e))?;
    settings.prices = backend::settings::apply_price_list(&settings.prices, &list)
        .map_err(|e| AppError::invalid("list", e.to_string()).respond())?;
    let rows = settings.prices.len();
    let actor = backend::audit::Actor::user(user.id, &user.email);
    backend::settings::save_sending(db, &actor, &settings)
        .await
        .map_err(|e| match e {
            backend::settings::SettingsStoreError::Invalid(e) => {
                AppError::invalid("list", e.to_string()).respond()
            }
            other => AppError::internal("saving the prices", &other),
        })?;
    Ok(rows)
}

/// A number texted on every budget alert (masked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertNumberRow {
    pub id: i64,
    pub masked: String,
}

/// The numbers texted on every budget alert, masked.
#[server(endpoint = "list_alert_numbers")]
pub async fn list_alert_numbers() -> Result<Vec<AlertNumberRow>, AppError> {
    require(Permission::ViewSpend, VIEW).await?;
    let numbers = backend::budgets::alert_numbers(&state()?.db)
        .await
        .map_err(|e| AppError::internal("reading the alert numbers", &e))?;
    Ok(numbers
        .into_iter()
        .map(|n| AlertNumberRow {
            id: n.id,
            masked: n.masked,
        })
        .collect())
}

/// Texts every budget alert to `number` too (typed in any format; stored encrypted).
#[server(endpoint = "add_alert_number")]
pub async fn add_alert_number(number: String) -> Result<(), AppError> {
    let user = require(Permission::ManageBudgets, MANAGE).await?;
    let st = state()?;
    let region = backend::settings::sending(&st.db)
        .await
        .map_err(|e| AppError::internal("reading the settings", &e))?
        .default_region;
    let parsed = domain::phone::PhoneNumber::parse(&number, Some(&region)).map_err(|e| {
        AppError::invalid(
            "number",
            format!("that is not a phone number ({e}): write it as +14155552671"),
        )
        .respond()
    })?;
    let actor = backend::audit::Actor::user(user.id, &user.email);
    backend::budgets::add_alert_number(
        &st.db,
        &st.key,
        &actor,
        parsed.e164(),
        &parsed.masked(),
        backend::db::now_micros(),
    )
    .await
    .map_err(|e| AppError::internal("saving the alert number", &e))?
    .map_err(|e| AppError::invalid("number", e).respond())
}

/// Stops texting budget alerts to a number.
#[server(endpoint = "remove_alert_number")]
pub async fn remove_alert_number(id: i64) -> Result<(), AppError> {
    let user = require(Permission::ManageBudgets, MANAGE).await?;
    let actor = backend::audit::Actor::user(user.id, &user.email);
    let removed = backend::budgets::remove_alert_number(&state()?.db, &actor, id)
        .await
        .map_err(|e| AppError::internal("removing the alert number", &e))?;
    if removed {
        Ok(())
    } else {
        Err(AppError::invalid("id", "that number is no longer texted (already removed?)").respond())
    }
}
