//! `smsdesk budget set|list|remove`: budgets for scripts. Prints JSON; amounts are USD decimal
//! strings in and out (`"250.00"`), as finance writes them, and µ$ beside them.

use std::process::ExitCode;

use anyhow::Context;
use backend::audit::Actor;
use backend::db::{Db, now_micros};
use domain::budget::{Budget, DEFAULT_WARN_PERCENTS, Period, parse_warn_percents};
use domain::money::Money;
use domain::template::Category;

#[derive(Debug, clap::Subcommand)]
pub enum BudgetCommand {
    /// Sets the budget for a period (and category), replacing the one there was. Audited.
    Set(SetArgs),
    /// Lists every budget with what its current period has reserved.
    List(DbArgs),
    /// Removes the budget for a period (and category). Audited.
    Remove(RemoveArgs),
}

#[derive(Debug, clap::Args)]
pub struct DbArgs {
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/smsdesk.db")]
    database_url: String,
}

#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// day or month (UTC).
    #[arg(long)]
    period: Period,
    /// In US dollars, such as 250 or 99.50.
    #[arg(long)]
    amount: String,
    /// shipment, emergency, two_factor or driver; every message when left out.
    #[arg(long)]
    category: Option<Category>,
    /// Refuse messages that would take the period past the amount.
    #[arg(long)]
    hard_stop: bool,
    /// Warning levels in percent, such as 50,80,100 (the default).
    #[arg(long)]
    warn: Option<String>,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    #[arg(long)]
    period: Period,
    #[arg(long)]
    category: Option<Category>,
    #[command(flatten)]
    db: DbArgs,
}

async fn open(args: &DbArgs) -> anyhow::Result<Db> {
    let db = Db::connect(&args.database_url)
        .await
        .context("opening the database (DATABASE_URL)")?;
    db.migrate().await.context("migrating the database")?;
    Ok(db)
}

fn json(s: &backend::budgets::Standing) -> serde_json::Value {
    let b = &s.budget;
    serde_json::json!({
        "period": b.period.as_str(),
        "category": b.category.map(Category::as_str),
        "amount": Money::from_micros(b.amount_micros).to_decimal(),
        "amount_micros": b.amount_micros,
        "hard_stop": b.hard_stop,
        "warn_percents": b.warn_percents,
        "spent": Money::from_micros(s.spent_micros).to_decimal(),
        "spent_micros": s.spent_micros,
        "period_start_micros": s.period_start,
        "resets_at_micros": s.resets_at,
        "alerts_raised": s.raised,
    })
}

pub fn run(command: BudgetCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match command {
            BudgetCommand::Set(args) => {
                let amount_micros =
                    domain::budget::parse_amount(&args.amount).map_err(anyhow::Error::msg)?;
                let warn_percents = match &args.warn {
                    Some(w) => parse_warn_percents(w).map_err(anyhow::Error::msg)?,
                    None => DEFAULT_WARN_PERCENTS.to_vec(),
                };
                let budget = Budget {
                    period: args.period,
                    category: args.category,
                    amount_micros,
                    warn_percents,
                    hard_stop: args.hard_stop,
                };
                let db = open(&args.db).await?;
                let now = now_micros();
                backend::budgets::set(&db, &Actor::cli(), &budget, now)
                    .await
                    .context("saving the budget")?
                    .map_err(|e| anyhow::anyhow!("the budget is not valid: {e}"))?;
                let standings = backend::budgets::standings(&db, now).await?;
                let saved = standings
                    .iter()
                    .find(|s| {
                        s.budget.period == budget.period && s.budget.category == budget.category
                    })
                    .context("the budget just saved is missing")?;
                super::print_json(&json(saved))?;
            }
            BudgetCommand::List(args) => {
                let db = open(&args).await?;
                let standings = backend::budgets::standings(&db, now_micros()).await?;
                super::print_json(&serde_json::Value::Array(
                    standings.iter().map(json).collect(),
                ))?;
            }
            BudgetCommand::Remove(args) => {
                let db = open(&args.db).await?;
                let removed =
                    backend::budgets::remove(&db, &Actor::cli(), args.period, args.category)
                        .await?;
                super::print_json(&serde_json::json!({ "removed": removed }))?;
                if !removed {
                    return Ok(ExitCode::from(1));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
