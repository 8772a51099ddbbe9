//! `/api-keys` (admins): the keys other services send with. A new key's secret is shown once,
//! with the account sid and base URL Twilio's libraries need; revoking is immediate and audited.

use domain::access::Permission;
use leptos::prelude::*;
use leptos_meta::Title;

use crate::api_keys::api::{ApiKeyView, CreateApiKey, RevokeApiKey, list_api_keys};
use crate::components::{ErrorNote, Guarded, LocalTime};
use crate::error::AppError;

#[component]
pub fn ApiKeysPage() -> impl IntoView {
    // The page's resources are made here, once: the guard's closure may build its children
    // more than once while the server renders (see `Guarded`).
    let create = ServerAction::<CreateApiKey>::new();
    let revoke = ServerAction::<RevokeApiKey>::new();
    let keys = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        |_| list_api_keys(),
    );
    view! {
        <Title text="API keys"/>
        <Guarded permission=Some(Permission::ManageSettings)>
            <ApiKeys create revoke keys/>
        </Guarded>
    }
}

#[component]
fn ApiKeys(
    create: ServerAction<CreateApiKey>,
    revoke: ServerAction<RevokeApiKey>,
    keys: Resource<Result<Vec<ApiKeyView>, AppError>>,
) -> impl IntoView {
    let error = move || {
        create
            .value()
            .get()
            .and_then(Result::err)
            .or_else(|| revoke.value().get().and_then(Result::err))
    };
    view! {
        <h1>"API keys"</h1>
        <p class="hint">
            "Services send with " <code>"POST /api/v1/messages"</code> " (see "
            <a href="/api/v1/openapi.json">"the OpenAPI document"</a>
            "), or with Twilio's own libraries pointed at this server."
        </p>
        <section aria-labelledby="new-key">
            <h2 id="new-key">"New key"</h2>
            <ActionForm action=create attr:class="field-row">
                <div class="field">
                    <label for="new-key-name">"Which service uses it"</label>
                    <input id="new-key-name" name="name" required maxlength="100"/>
                </div>
                <button type="submit" class="button-primary">"Create key"</button>
            </ActionForm>
        </section>
        {move || error().map(|e| view! { <ErrorNote error=e/> })}
        {move || create.value().get().and_then(Result::ok).map(|k| view! {
            <div class="warning" role="status" data-testid="new-key">
                <p>"Secret for " {k.key.name.clone()} " — shown only now: store it in the service's secrets."</p>
                <dl class="key-facts">
                    <dt>"Key id (username)"</dt><dd><code>{k.key.id.clone()}</code></dd>
                    <dt>"Secret (password)"</dt><dd><code data-testid="new-key-secret">{k.secret.clone()}</code></dd>
                    <dt>"Account SID (Twilio libraries)"</dt><dd><code>{k.account_sid.clone()}</code></dd>
                </dl>
            </div>
        })}
        <Suspense fallback=|| view! { <p class="muted">"Loading keys…"</p> }>
            {move || Suspend::new(async move {
                match keys.await {
                    Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    Ok(list) if list.is_empty() => view! { <p>"No API keys yet."</p> }.into_any(),
                    Ok(list) => view! {
                        <table class="table" data-testid="key-list">
                            <thead>
                                <tr>
                                    <th scope="col">"Name"</th>
                                    <th scope="col">"Key id"</th>
                                    <th scope="col">"Created"</th>
                                    <th scope="col">"Last used"</th>
                                    <th scope="col">"State"</th>
                                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                                </tr>
                            </thead>
                            <tbody>
                                {list.into_iter().map(|k| {
                                    let id = k.id.clone();
                                    let revoked = k.revoked_at.is_some();
                                    view! {
                                        <tr>
                                            <td>{k.name.clone()}</td>
                                            <td><code>{k.id.clone()}</code></td>
                                            <td><LocalTime micros=k.created_at/> " by " {k.created_by.clone()}</td>
                                            <td>{k.last_used_at.map(|t| view! { <LocalTime micros=t/> }.into_any()).unwrap_or_else(|| "never".into_any())}</td>
                                            <td>{if revoked { "revoked" } else { "active" }}</td>
                                            <td class="row-actions">
                                                <button
                                                    type="button"
                                                    class="button-quiet"
                                                    disabled=revoked
                                                    on:click=move |_| {
                                                        revoke.dispatch(RevokeApiKey { id: id.clone() });
                                                    }
                                                >
                                                    "Revoke"
                                                </button>
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }
                    .into_any(),
                }
            })}
        </Suspense>
    }
}
