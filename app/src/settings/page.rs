//! `/settings` (admins): the sending engine's settings: rate limits, retries, sender pace, geo
//! permissions, default region, senders, the keyword replies, data protection (retention,
//! webhook allow list), when the fallback provider carries messages, the simulator's odds. They take effect at the worker's next step,
//! without a restart; every change is audited with before and after.

use domain::access::Permission;
use domain::sending::{Failover, SendingSettings};
use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::{ErrorNote, Guarded};
use crate::error::AppError;
use crate::settings::api::{SaveSendingSettings, get_sending_settings};

#[component]
pub fn SettingsPage() -> impl IntoView {
    // The page's resources are made here, once: the guard's closure may build its children
    // more than once while the server renders (see `Guarded`).
    let loaded = Resource::new(|| (), |_| get_sending_settings());
    view! {
        <Title text="Settings"/>
        <Guarded permission=Some(Permission::ManageSettings)>
            <Settings loaded/>
        </Guarded>
    }
}

#[component]
fn Settings(loaded: Resource<Result<SendingSettings, AppError>>) -> impl IntoView {
    view! {
        <h1>"Settings"</h1>
        <Suspense fallback=|| view! { <p class="muted">"Loading settings…"</p> }>
            {move || Suspend::new(async move {
                match loaded.await {
                    Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    Ok(s) => view! { <SettingsForm initial=s/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

fn split_list(text: &str, upper: bool) -> Vec<String> {
    text.split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            if upper {
                s.to_uppercase()
            } else {
                s.to_owned()
            }
        })
        .collect()
}

/// A whole-number input bound to one field of the settings.
#[component]
fn Number(
    id: &'static str,
    label: &'static str,
    settings: RwSignal<SendingSettings>,
    get: fn(&SendingSettings) -> u32,
    set: fn(&mut SendingSettings, u32),
) -> impl IntoView {
    view! {
        <div class="field">
            <label for=id>{label}</label>
            <input
                id=id
                type="number"
                min="0"
                prop:value=move || settings.with(get).to_string()
                on:input=move |ev| {
                    if let Ok(v) = event_target_value(&ev).trim().parse::<u32>() {
                        settings.update(|s| set(s, v));
                    }
                }
            />
        </div>
    }
}

/// A keyword reply bound to one field of the settings.
#[component]
fn Reply(
    id: &'static str,
    label: &'static str,
    settings: RwSignal<SendingSettings>,
    get: fn(&SendingSettings) -> &String,
    set: fn(&mut SendingSettings, String),
) -> impl IntoView {
    view! {
        <div class="field">
            <label for=id>{label}</label>
            <textarea
                id=id
                rows="2"
                maxlength="1600"
                prop:value=move || settings.with(|s| get(s).clone())
                on:change=move |ev| settings.update(|s| set(s, event_target_value(&ev)))
            ></textarea>
        </div>
    }
}

#[component]
fn SettingsForm(initial: SendingSettings) -> impl IntoView {
    let settings = RwSignal::new(initial);
    let save = ServerAction::<SaveSendingSettings>::new();
    let saved = move || matches!(save.value().get(), Some(Ok(())));
    // What is wrong with the failover fields as typed (the settings keep their last good value).
    let codes_error = RwSignal::new(None::<String>);
    let routes_error = RwSignal::new(None::<String>);
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if codes_error.with_untracked(Option::is_some)
            || routes_error.with_untracked(Option::is_some)
        {
            return;
        }
        save.dispatch(SaveSendingSettings {
            settings: settings.get_untracked(),
        });
    };
    let countries =
        move |get: fn(&SendingSettings) -> &Vec<String>| settings.with(|s| get(s).join(", "));
    view! {
        <form on:submit=on_submit class="settings-form" data-testid="settings-form">
            <fieldset>
                <legend>"Rate limits (never exceeded)"</legend>
                <div class="field-grid">
                    <Number id="per-second" label="Messages per second" settings get=|s| s.limits.per_second set=|s, v| s.limits.per_second = v/>
                    <Number id="per-minute" label="per minute" settings get=|s| s.limits.per_minute set=|s, v| s.limits.per_minute = v/>
                    <Number id="per-hour" label="per hour" settings get=|s| s.limits.per_hour set=|s, v| s.limits.per_hour = v/>
                    <Number id="recipient-hour" label="Per recipient per hour" settings get=|s| s.limits.per_recipient_per_hour set=|s, v| s.limits.per_recipient_per_hour = v/>
                    <Number id="recipient-day" label="Per recipient per day" settings get=|s| s.limits.per_recipient_per_day set=|s, v| s.limits.per_recipient_per_day = v/>
                    <Number id="network-margin" label="Network margin (ms)" settings get=|s| s.limits.network_margin_ms set=|s, v| s.limits.network_margin_ms = v/>
                </div>
                <label class="check">
                    <input
                        type="checkbox"
                        prop:checked=move || settings.with(|s| s.limits.emergency_exempt)
                        on:change=move |ev| settings.update(|s| s.limits.emergency_exempt = event_target_checked(&ev))
                    />
                    " Emergency messages skip the per-recipient limits"
                </label>
                <label class="check">
                    <input
                        type="checkbox"
                        prop:checked=move || settings.with(|s| s.limits.two_factor_exempt)
                        on:change=move |ev| settings.update(|s| s.limits.two_factor_exempt = event_target_checked(&ev))
                    />
                    " Two-factor codes skip the per-recipient limits (each number still gets at most 5 codes in 10 minutes)"
                </label>
            </fieldset>
            <fieldset>
                <legend>"Retries"</legend>
                <div class="field-grid">
                    <Number id="max-attempts" label="Attempts in all (1–10)" settings get=|s| s.retries.max_attempts set=|s, v| s.retries.max_attempts = v/>
                    <Number id="base-delay" label="First retry after (seconds, doubling)" settings get=|s| s.retries.base_delay_seconds set=|s, v| s.retries.base_delay_seconds = v/>
                </div>
            </fieldset>
            <fieldset>
                <legend>"Sender pace (segments per second)"</legend>
                <div class="field-grid">
                    <Number id="pace-long" label="Long code" settings get=|s| s.pace.long_code set=|s, v| s.pace.long_code = v/>
                    <Number id="pace-toll-free" label="Toll-free" settings get=|s| s.pace.toll_free set=|s, v| s.pace.toll_free = v/>
                    <Number id="pace-short" label="Short code" settings get=|s| s.pace.short_code set=|s, v| s.pace.short_code = v/>
                    <Number id="pace-alpha" label="Alphanumeric id" settings get=|s| s.pace.alphanumeric set=|s, v| s.pace.alphanumeric = v/>
                    <Number id="pace-mg" label="Messaging Service" settings get=|s| s.pace.messaging_service set=|s, v| s.pace.messaging_service = v/>
                </div>
            </fieldset>
            <fieldset>
                <legend>"Where and from"</legend>
                <div class="field">
                    <label for="allowed">"Countries smsdesk may send to (ISO codes: US, CA, AU)"</label>
                    <input id="allowed" prop:value=move || countries(|s| &s.allowed_countries)
                        on:change=move |ev| settings.update(|s| s.allowed_countries = split_list(&event_target_value(&ev), true))/>
                </div>
                <div class="field">
                    <label for="default-region">"Default region for numbers without +country"</label>
                    <input id="default-region" maxlength="2" prop:value=move || settings.with(|s| s.default_region.clone())
                        on:change=move |ev| settings.update(|s| s.default_region = event_target_value(&ev).trim().to_uppercase())/>
                </div>
                <div class="field">
                    <label for="extra-senders">"More sender numbers callers may name (E.164)"</label>
                    <input id="extra-senders" prop:value=move || countries(|s| &s.extra_senders)
                        on:change=move |ev| settings.update(|s| s.extra_senders = split_list(&event_target_value(&ev), false))/>
                </div>
                <div class="field">
                    <label for="alpha-id">"Alphanumeric sender id (up to 11 characters)"</label>
                    <input id="alpha-id" maxlength="11" prop:value=move || settings.with(|s| s.alphanumeric_id.clone().unwrap_or_default())
                        on:change=move |ev| {
                            let v = event_target_value(&ev).trim().to_owned();
                            settings.update(|s| s.alphanumeric_id = (!v.is_empty()).then_some(v));
                        }/>
                </div>
                <div class="field">
                    <label for="alpha-countries">"…used for these countries"</label>
                    <input id="alpha-countries" prop:value=move || countries(|s| &s.alphanumeric_countries)
                        on:change=move |ev| settings.update(|s| s.alphanumeric_countries = split_list(&event_target_value(&ev), true))/>
                </div>
            </fieldset>
            <fieldset>
                <legend>"Replies to keywords (empty: no reply)"</legend>
                <Reply id="reply-stop" label="To STOP and its synonyms" settings get=|s| &s.replies.opt_out set=|s, v| s.replies.opt_out = v/>
                <Reply id="reply-start" label="To START, YES, UNSTOP" settings get=|s| &s.replies.opt_in set=|s, v| s.replies.opt_in = v/>
                <Reply id="reply-help" label="To HELP, INFO" settings get=|s| &s.replies.help set=|s, v| s.replies.help = v/>
            </fieldset>
            <fieldset>
                <legend>"Data protection"</legend>
                <div class="field-grid">
                    <Number id="retention-days" label="Keep message texts (days, 1–3650)" settings get=|s| s.data.body_retention_days set=|s, v| s.data.body_retention_days = v/>
                </div>
                <p class="muted">"Older texts are removed (the rest of each record stays); two-factor codes as soon as they have left."</p>
                <div class="field">
                    <label for="webhook-allow">"Accept Twilio's webhooks only from these networks (CIDR, e.g. 54.172.60.0/23; empty: from anywhere, signature still required)"</label>
                    <input id="webhook-allow" prop:value=move || countries(|s| &s.data.webhook_allow_list)
                        on:change=move |ev| settings.update(|s| s.data.webhook_allow_list = split_list(&event_target_value(&ev), false))/>
                </div>
            </fieldset>
            <fieldset>
                <legend>"Budgets"</legend>
                <label class="check">
                    <input
                        type="checkbox"
                        prop:checked=move || settings.with(|s| s.budgets.exempt_emergency)
                        on:change=move |ev| settings.update(|s| s.budgets.exempt_emergency = event_target_checked(&ev))
                    />
                    " Emergency messages pass budgets' hard stops (they still count)"
                </label>
                <div class="field">
                    <label for="alert-webhook">"Post budget alerts to (https address; signed with SMSDESK_ALERT_WEBHOOK_SECRET; empty: none)"</label>
                    <input id="alert-webhook" type="url" prop:value=move || settings.with(|s| s.budgets.alert_webhook_url.clone().unwrap_or_default())
                        on:change=move |ev| {
                            let v = event_target_value(&ev).trim().to_owned();
                            settings.update(|s| s.budgets.alert_webhook_url = (!v.is_empty()).then_some(v));
                        }/>
                </div>
                <p class="muted">"Budgets themselves and the price table are set on the Spend page (finance and admins)."</p>
            </fieldset>
            <fieldset>
                <legend>"Fallback provider"</legend>
                <p class="muted">"Applies when a fallback account is configured (SMSDESK_FALLBACK_ACCOUNT_SID and the rest, see the README). It carries every message while Twilio is in a storm (429s, 5xx answers, timeouts), and:"</p>
                <div class="field">
                    <label for="failover-codes">"A message Twilio refuses with one of these error codes, at once (Twilio sent nothing)"</label>
                    <input id="failover-codes" prop:value=move || settings.with(|s| s.failover.codes_text())
                        on:change=move |ev| match Failover::parse_codes(&event_target_value(&ev)) {
                            Ok(codes) => {
                                codes_error.set(None);
                                settings.update(|s| s.failover.codes = codes);
                            }
                            Err(why) => codes_error.set(Some(why)),
                        }/>
                    {move || codes_error.get().map(|why| view! { <p class="error" role="alert" data-testid="failover-codes-error">{why}</p> })}
                </div>
                <div class="field">
                    <label for="failover-routes">"Messages it carries first, one route per line: a country, a category or both (AU, emergency, NZ two_factor)"</label>
                    <textarea id="failover-routes" rows="3" prop:value=move || settings.with(|s| s.failover.routes_text())
                        on:change=move |ev| match Failover::parse_routes(&event_target_value(&ev)) {
                            Ok(routes) => {
                                routes_error.set(None);
                                settings.update(|s| s.failover.routes = routes);
                            }
                            Err(why) => routes_error.set(Some(why)),
                        }></textarea>
                    {move || routes_error.get().map(|why| view! { <p class="error" role="alert" data-testid="failover-routes-error">{why}</p> })}
                </div>
            </fieldset>
            <fieldset>
                <legend>"Simulator"</legend>
                <div class="field-grid">
                    <Number id="sim-delivered" label="Delivered (percent)" settings get=|s| u32::from(s.simulator.delivered_percent) set=|s, v| s.simulator.delivered_percent = u8::try_from(v).unwrap_or(u8::MAX)/>
                    <Number id="sim-sent" label="Sent after (ms)" settings get=|s| s.simulator.sent_after_ms set=|s, v| s.simulator.sent_after_ms = v/>
                    <Number id="sim-final" label="Final status after (ms)" settings get=|s| s.simulator.final_after_ms set=|s, v| s.simulator.final_after_ms = v/>
                </div>
            </fieldset>
            <div class="form-actions">
                <button type="submit" class="button-primary">"Save settings"</button>
                {move || saved().then(|| view! { <span role="status" data-testid="settings-saved">"Saved: the worker uses them from its next step."</span> })}
            </div>
            {move || save.value().get().and_then(Result::err).map(|e| view! { <ErrorNote error=e/> })}
        </form>
    }
}
