//! `/spend` (finance and admins): what SMS cost over a range of days (in the address,
//! `?from=&to=`, so a view can be shared), as charts drawn on the server and as tables: per day
//! stacked by category with the daily budget, by template, by country, the month so far against
//! its budget; the estimate against what Twilio reported, with drift flagged and messages still
//! unpriced a day later; CSV of each table; and the budgets, set and removed here.

use domain::access::Permission;
use domain::money::Money;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::components::{ErrorNote, Guarded, LocalTime};
use crate::error::AppError;
use crate::spend::api::{
    AddAlertNumber, AlertNumberRow, BudgetRow, GroupRow, LEGEND, PriceRow, RemoveAlertNumber,
    RemoveBudget, SavePrices, SetBudget, SpendReport, list_alert_numbers, list_budgets,
    price_table, read_spend,
};

fn money(micros: i64) -> String {
    Money::from_micros(micros).to_string()
}

#[component]
pub fn SpendPage() -> impl IntoView {
    // Made here, once: the guard's closure may build its children more than once (`Guarded`).
    let address = use_query_map();
    let from = Memo::new(move |_| address.with(|q| q.get("from").filter(|v| !v.is_empty())));
    let to = Memo::new(move |_| address.with(|q| q.get("to").filter(|v| !v.is_empty())));
    let set = ServerAction::<SetBudget>::new();
    let remove = ServerAction::<RemoveBudget>::new();
    let save_prices = ServerAction::<SavePrices>::new();
    let changed = move || (set.version().get(), remove.version().get());
    let prices = Resource::new(move || save_prices.version().get(), |_| price_table());
    let add_number = ServerAction::<AddAlertNumber>::new();
    let remove_number = ServerAction::<RemoveAlertNumber>::new();
    let numbers = Resource::new(
        move || (add_number.version().get(), remove_number.version().get()),
        |_| list_alert_numbers(),
    );
    let report = Resource::new(
        move || (from.get(), to.get(), changed()),
        |(from, to, _)| read_spend(from, to),
    );
    let budgets = Resource::new(changed, |_| list_budgets());
    view! {
        <Title text="Spend"/>
        <Guarded permission=Some(Permission::ViewSpend)>
            <h1>"Spend"</h1>
            <RangeForm from to/>
            <Report report/>
            <Budgets budgets set remove/>
            <AlertNumbers numbers add=add_number remove=remove_number/>
            <Prices prices save=save_prices/>
        </Guarded>
    }
}

#[component]
fn RangeForm(from: Memo<Option<String>>, to: Memo<Option<String>>) -> impl IntoView {
    view! {
        <form method="get" action="/spend" class="field-row" aria-label="Days to show">
            <div class="field">
                <label for="spend-from">"From"</label>
                <input id="spend-from" name="from" type="date" value=move || from.get().unwrap_or_default()/>
            </div>
            <div class="field">
                <label for="spend-to">"To (included)"</label>
                <input id="spend-to" name="to" type="date" value=move || to.get().unwrap_or_default()/>
            </div>
            <button type="submit">"Show"</button>
            <p class="muted">"Days are UTC. Left empty: the last 30 days."</p>
        </form>
    }
}

#[component]
fn Report(report: Resource<Result<SpendReport, AppError>>) -> impl IntoView {
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match report.await {
                    Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    Ok(r) => view! { <ReportView r/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

fn export_link(r: &SpendReport, by: &str) -> String {
    format!("/spend/export.csv?by={by}&from={}&to={}", r.from, r.to)
}

#[component]
fn ReportView(r: SpendReport) -> impl IntoView {
    let total = r.total.clone();
    let per_day_export = export_link(&r, "day");
    let template_export = export_link(&r, "template");
    let country_export = export_link(&r, "country");
    let flagged = r.days.iter().filter(|d| d.flagged).count();
    let month_share = r.monthly_budget_micros.map(|b| {
        format!(
            " — {}% of the monthly budget of {}",
            r.month_estimated_micros.saturating_mul(100) / b.max(1),
            money(b)
        )
    });
    view! {
        <section aria-labelledby="spend-total">
            <h2 id="spend-total">{format!("{} to {}", r.from, r.to)}</h2>
            <dl class="counter-values" data-testid="spend-total">
                <div><dt>"Messages"</dt><dd>{total.messages}</dd></div>
                <div><dt>"Segments"</dt><dd>{total.segments}</dd></div>
                <div><dt>"Estimated"</dt><dd data-testid="spend-estimated">{money(total.estimated_micros)}</dd></div>
                <div><dt>"Reported by Twilio"</dt><dd>{money(total.actual_micros)}</dd></div>
            </dl>
        </section>
        <section aria-labelledby="spend-per-day">
            <h2 id="spend-per-day">"Estimated spend per day, by category"</h2>
            <div class="chart" data-testid="spend-chart" role="img"
                aria-label="Estimated spend per day, stacked by category; the dashed line is the daily budget"
                inner_html=r.per_day_svg.clone()></div>
            <ul class="legend">
                {LEGEND.iter().map(|(_, colour, label)| view! {
                    <li><span class="swatch" style=format!("background:{colour}")></span>{*label}</li>
                }).collect_view()}
                {r.daily_budget_micros.map(|b| view! { <li>{format!("dashed line: daily budget {}", money(b))}</li> })}
            </ul>
            <table class="table" data-testid="spend-days">
                <caption>
                    "Per day: the estimate at intake against what Twilio reported. "
                    {format!("Drift over {} % on a settled day is flagged", r.drift_percent)}
                    {(flagged > 0).then(|| format!(" ({flagged} flagged)"))} ". "
                    <a href=per_day_export rel="external" download>"CSV"</a>
                </caption>
                <thead><tr>
                    <th scope="col">"Day"</th><th scope="col">"Messages"</th><th scope="col">"Segments"</th>
                    <th scope="col">"Estimated"</th><th scope="col">"Reported"</th><th scope="col">"Drift"</th>
                </tr></thead>
                <tbody>
                    {r.days.iter().rev().map(|d| view! {
                        <tr class:flagged=d.flagged>
                            <td>{d.day.clone()}</td>
                            <td class="num">{d.messages}</td>
                            <td class="num">{d.segments}</td>
                            <td class="num">{money(d.estimated_micros)}</td>
                            <td class="num">{money(d.actual_micros)}</td>
                            <td class="num">{money(d.drift_micros)} {d.flagged.then_some(" ⚑")}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
        <section aria-labelledby="spend-month">
            <h2 id="spend-month">{format!("This month ({}) so far", r.month)}</h2>
            <div class="chart" role="img" aria-label="Estimated spend this month, cumulative; the dashed line is the monthly budget"
                inner_html=r.month_svg.clone()></div>
            <p data-testid="spend-month">
                {format!("Estimated {}, reported {}", money(r.month_estimated_micros), money(r.month_actual_micros))}
                {month_share}
            </p>
        </section>
        <Grouped title="By template" testid="spend-templates" svg=r.templates_svg.clone() rows=r.templates.clone() export=template_export empty="no template"/>
        <Grouped title="By country" testid="spend-countries" svg=r.countries_svg.clone() rows=r.countries.clone() export=country_export empty="unknown"/>
        <section aria-labelledby="spend-unpriced">
            <h2 id="spend-unpriced">"Still without a price from Twilio after 24 hours"</h2>
            {if r.unpriced.is_empty() {
                view! { <p data-testid="spend-unpriced">"None: every message older than a day has its price."</p> }.into_any()
            } else {
                view! {
                    <table class="table" data-testid="spend-unpriced">
                        <thead><tr><th scope="col">"Message"</th><th scope="col">"Created"</th><th scope="col">"Status"</th><th scope="col">"Country"</th><th scope="col">"Estimated"</th></tr></thead>
                        <tbody>
                            {r.unpriced.iter().map(|u| view! {
                                <tr>
                                    <td><a href=format!("/messages/{}", u.sid)>{u.sid.clone()}</a></td>
                                    <td><LocalTime micros=u.created_at/></td>
                                    <td>{u.status.clone()}</td>
                                    <td>{u.region.clone()}</td>
                                    <td class="num">{u.estimated_micros.map(money).unwrap_or_default()}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn Grouped(
    title: &'static str,
    testid: &'static str,
    svg: String,
    rows: Vec<GroupRow>,
    export: String,
    empty: &'static str,
) -> impl IntoView {
    let id = format!("{testid}-title");
    let labelled_by = id.clone();
    view! {
        <section aria-labelledby=labelled_by>
            <h2 id=id>{title}</h2>
            <div class="chart" role="img" aria-label=format!("Estimated spend {}, largest first (the table lists them in the same order)", title.to_lowercase())
                inner_html=svg></div>
            <table class="table" data-testid=testid>
                <caption><a href=export rel="external" download>"CSV"</a></caption>
                <thead><tr>
                    <th scope="col">{title.trim_start_matches("By ").to_owned()}</th><th scope="col">"Messages"</th>
                    <th scope="col">"Segments"</th><th scope="col">"Estimated"</th><th scope="col">"Reported"</th>
                </tr></thead>
                <tbody>
                    {rows.into_iter().map(|g| view! {
                        <tr>
                            <td>{if g.key.is_empty() { empty.to_owned() } else { g.key }}</td>
                            <td class="num">{g.messages}</td>
                            <td class="num">{g.segments}</td>
                            <td class="num">{money(g.estimated_micros)}</td>
                            <td class="num">{money(g.actual_micros)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}

#[component]
fn Budgets(
    budgets: Resource<Result<Vec<BudgetRow>, AppError>>,
    set: ServerAction<SetBudget>,
    remove: ServerAction<RemoveBudget>,
) -> impl IntoView {
    view! {
        <section aria-labelledby="budgets-title">
            <h2 id="budgets-title">"Budgets"</h2>
            <p class="muted">
                "A budget counts each message's estimate from the moment it is accepted (a canceled message gives it back). "
                "With a hard stop, smsdesk refuses messages that would take the period past the amount; emergencies pass while Settings exempt them, and still count. "
                "Periods are UTC days and calendar months."
            </p>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match budgets.await {
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                        Ok(list) if list.is_empty() => view! { <p data-testid="budgets-empty">"No budget yet: nothing stops sending for its cost."</p> }.into_any(),
                        Ok(list) => view! {
                            <table class="table" data-testid="budgets">
                                <thead><tr>
                                    <th scope="col">"Budget"</th><th scope="col">"Amount"</th><th scope="col">"Reserved"</th>
                                    <th scope="col">"Used"</th><th scope="col">"Warnings"</th><th scope="col">"Hard stop"</th>
                                    <th scope="col">"Resets"</th><th scope="col"><span class="visually-hidden">"Remove"</span></th>
                                </tr></thead>
                                <tbody>
                                    {list.into_iter().map(|b| {
                                        let used = b.spent_micros.saturating_mul(100) / b.amount_micros.max(1);
                                        let warns = b.warn_percents.iter().map(|w| {
                                            let mark = if b.raised.contains(w) { "●" } else { "○" };
                                            format!("{mark} {w} %")
                                        }).collect::<Vec<_>>().join("  ");
                                        view! {
                                            <tr>
                                                <td>{b.name.clone()}</td>
                                                <td class="num">{money(b.amount_micros)}</td>
                                                <td class="num">{money(b.spent_micros)}</td>
                                                <td class="num">
                                                    <meter min="0" max="100" low="50" high="80" optimum="0" value=used.min(100).to_string()></meter>
                                                    {format!(" {used} %")}
                                                </td>
                                                <td>{warns}</td>
                                                <td>{if b.hard_stop { "yes" } else { "no" }}</td>
                                                <td><LocalTime micros=b.resets_at/></td>
                                                <td>
                                                    <ActionForm action=remove>
                                                        <input type="hidden" name="period" value=b.period.clone()/>
                                                        <input type="hidden" name="category" value=b.category.clone()/>
                                                        <button type="submit" class="button-quiet" aria-label=format!("Remove the {}", b.name)>"Remove"</button>
                                                    </ActionForm>
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                    }
                })}
            </Suspense>
            {move || remove.value().get().and_then(Result::err).map(|e| view! { <ErrorNote error=e/> })}
            <h3>"Set a budget"</h3>
            <ActionForm action=set attr:class="field-grid" attr:aria-label="Set a budget">
                <div class="field">
                    <label for="budget-period">"Period"</label>
                    <select id="budget-period" name="period">
                        <option value="day">"Per day"</option>
                        <option value="month">"Per month"</option>
                    </select>
                </div>
                <div class="field">
                    <label for="budget-category">"Messages"</label>
                    <select id="budget-category" name="category">
                        <option value="">"All"</option>
                        <option value="shipment">"Shipment"</option>
                        <option value="emergency">"Emergency"</option>
                        <option value="two_factor">"Two-factor"</option>
                        <option value="driver">"Driver"</option>
                    </select>
                </div>
                <div class="field">
                    <label for="budget-amount">"Amount (US$)"</label>
                    <input id="budget-amount" name="amount" inputmode="decimal" required placeholder="250.00"/>
                </div>
                <div class="field">
                    <label for="budget-warn">"Warn at (%)"</label>
                    <input id="budget-warn" name="warn" value="50,80,100"/>
                </div>
                <div class="field field-check">
                    <input id="budget-hard-stop" name="hard_stop" type="checkbox" value="on"/>
                    <label for="budget-hard-stop">"Hard stop: refuse messages past the amount"</label>
                </div>
                <div class="form-actions">
                    <button type="submit" class="button-primary">"Save budget"</button>
                </div>
            </ActionForm>
            {move || set.value().get().map(|r| match r {
                Ok(()) => view! { <p role="status" data-testid="budget-saved">"Budget saved."</p> }.into_any(),
                Err(e) => view! { <ErrorNote error=e/> }.into_any(),
            })}
        </section>
    }
}

#[component]
fn Prices(
    prices: Resource<Result<Vec<PriceRow>, AppError>>,
    save: ServerAction<SavePrices>,
) -> impl IntoView {
    view! {
        <section aria-labelledby="prices-title">
            <h2 id="prices-title">"Prices per segment"</h2>
            <p class="muted">
                "Each message's estimate is its segments × the price for its country (and sender kind, where a row names one). "
                "A country without a price gets no estimate."
            </p>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match prices.await {
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                        Ok(rows) => {
                            let csv = std::iter::once("country,sender_kind,price_per_segment".to_owned())
                                .chain(rows.iter().map(|r| format!("{},{},{}", r.country, r.kind, r.price)))
                                .collect::<Vec<_>>()
                                .join("\n");
                            view! {
                                <table class="table" data-testid="prices">
                                    <thead><tr><th scope="col">"Country"</th><th scope="col">"Sender"</th><th scope="col">"Per segment"</th></tr></thead>
                                    <tbody>
                                        {rows.into_iter().map(|r| view! {
                                            <tr><td>{r.country}</td><td>{r.kind}</td><td class="num">{format!("${}", r.price)}</td></tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                                <ActionForm action=save attr:aria-label="Change the prices">
                                    <div class="field">
                                        <label for="price-list">
                                            "The table as CSV (it replaces the table), or Twilio's Pricing API answer for a country (JSON: replaces that country's rows)"
                                        </label>
                                        <textarea id="price-list" name="list" rows="6" required>{csv}</textarea>
                                    </div>
                                    <div class="form-actions">
                                        <button type="submit" class="button-primary">"Save prices"</button>
                                    </div>
                                </ActionForm>
                            }.into_any()
                        }
                    }
                })}
            </Suspense>
            {move || save.value().get().map(|r| match r {
                Ok(n) => view! { <p role="status" data-testid="prices-saved">{format!("Saved: {n} price rows.")}</p> }.into_any(),
                Err(e) => view! { <ErrorNote error=e/> }.into_any(),
            })}
        </section>
    }
}

#[component]
fn AlertNumbers(
    numbers: Resource<Result<Vec<AlertNumberRow>, AppError>>,
    add: ServerAction<AddAlertNumber>,
    remove: ServerAction<RemoveAlertNumber>,
) -> impl IntoView {
    view! {
        <section aria-labelledby="alert-numbers-title">
            <h3 id="alert-numbers-title">"Texted on every alert"</h3>
            <p class="muted">
                "Each warning level reached is also sent by SMS to these numbers (by smsdesk itself: past any hard stop, and counted). "
                "Alerts always show here as a banner and in the audit log, and go to the webhook set in Settings."
            </p>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match numbers.await {
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                        Ok(list) if list.is_empty() => view! { <p data-testid="alert-numbers-empty">"No number yet."</p> }.into_any(),
                        Ok(list) => view! {
                            <ul data-testid="alert-numbers">
                                {list.into_iter().map(|n| view! {
                                    <li>
                                        <code>{n.masked.clone()}</code> " "
                                        <ActionForm action=remove attr:class="inline">
                                            <input type="hidden" name="id" value=n.id.to_string()/>
                                            <button type="submit" class="button-quiet" aria-label=format!("Stop texting {}", n.masked)>"Remove"</button>
                                        </ActionForm>
                                    </li>
                                }).collect_view()}
                            </ul>
                        }.into_any(),
                    }
                })}
            </Suspense>
            <ActionForm action=add attr:class="field-row" attr:aria-label="Text alerts to a number">
                <div class="field">
                    <label for="alert-number">"Number"</label>
                    <input id="alert-number" name="number" type="tel" required placeholder="+14155552671"/>
                </div>
                <button type="submit">"Add"</button>
            </ActionForm>
            {move || add.value().get().and_then(Result::err).map(|e| view! { <ErrorNote error=e/> })}
            {move || remove.value().get().and_then(Result::err).map(|e| view! { <ErrorNote error=e/> })}
        </section>
    }
}
