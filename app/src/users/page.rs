//! `/users` (admins): create users, change roles, disable, reset passwords. A generated password
//! is shown once, to hand over; the roles that must sign in with a second factor. Every change
//! goes to the audit log.

use domain::access::{Permission, Role};
use leptos::prelude::*;
use leptos_meta::Title;

use crate::auth::second::{SetSecondFactorRoles, second_factor_roles};
use crate::components::{ErrorNote, Guarded, LocalTime};
use crate::error::AppError;
use crate::users::api::{
    CreateUser, ResetUserPassword, SetUserDisabled, SetUserRole, UserView, list_users,
};

#[component]
pub fn UsersPage() -> impl IntoView {
    // The page's resources are made here, once: the guard's closure may build its children
    // more than once while the server renders (see `Guarded`).
    let create = ServerAction::<CreateUser>::new();
    let set_role = ServerAction::<SetUserRole>::new();
    let set_disabled = ServerAction::<SetUserDisabled>::new();
    let reset = ServerAction::<ResetUserPassword>::new();
    let users = Resource::new(
        move || {
            (
                create.version().get(),
                set_role.version().get(),
                set_disabled.version().get(),
                reset.version().get(),
            )
        },
        |_| list_users(),
    );
    let set_required = ServerAction::<SetSecondFactorRoles>::new();
    let required = Resource::new(
        move || set_required.version().get(),
        |_| second_factor_roles(),
    );
    view! {
        <Title text="Users"/>
        <Guarded permission=Some(Permission::ManageUsers)>
            <Users create set_role set_disabled reset users/>
            <RequiredSecondFactor set_required required/>
        </Guarded>
    }
}

/// Which roles must sign in with a second factor (a code texted to the user's phone).
#[component]
fn RequiredSecondFactor(
    set_required: ServerAction<SetSecondFactorRoles>,
    required: Resource<Result<Vec<Role>, AppError>>,
) -> impl IntoView {
    let chosen = RwSignal::new(Vec::<Role>::new());
    Effect::new(move |_| {
        if let Some(Ok(roles)) = required.get() {
            chosen.set(roles);
        }
    });
    let error = move || set_required.value().get().and_then(Result::err);
    let saved = move || matches!(set_required.value().get(), Some(Ok(_)));
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let roles = chosen
            .get()
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",");
        set_required.dispatch(SetSecondFactorRoles { roles });
    };
    view! {
        <section aria-labelledby="required-second-factor">
            <h2 id="required-second-factor">"Second factor"</h2>
            <p class="hint">
                "People in these roles sign in with their password and a code texted to their phone; those without a phone add one at their next sign-in. Sessions already open go on until they end."
            </p>
            <form class="stack" on:submit=save>
                <fieldset>
                    <legend>"Require a second factor for"</legend>
                    {Role::ALL.into_iter().map(|role| view! {
                        <label class="check">
                            <input
                                type="checkbox"
                                name="role"
                                value=role.as_str()
                                prop:checked=move || chosen.get().contains(&role)
                                on:change=move |ev| {
                                    let on = event_target_checked(&ev);
                                    chosen.update(|c| {
                                        c.retain(|r| *r != role);
                                        if on {
                                            c.push(role);
                                        }
                                    });
                                }
                            />
                            {role.label()}
                        </label>
                    }).collect_view()}
                </fieldset>
                {move || error().map(|e| view! { <ErrorNote error=e/> })}
                {move || saved().then(|| view! { <p role="status">"Saved."</p> })}
                <button type="submit" disabled=move || set_required.pending().get()>
                    "Save"
                </button>
            </form>
        </section>
    }
}

#[component]
fn Users(
    create: ServerAction<CreateUser>,
    set_role: ServerAction<SetUserRole>,
    set_disabled: ServerAction<SetUserDisabled>,
    reset: ServerAction<ResetUserPassword>,
    users: Resource<Result<Vec<UserView>, AppError>>,
) -> impl IntoView {
    // The one password to show: the newest created or reset.
    let shown_password = move || {
        let created = create.value().get().and_then(Result::ok);
        let reset = reset.value().get().and_then(Result::ok);
        created.or(reset)
    };
    let error = move || {
        [
            create.value().get().and_then(Result::err),
            set_role.value().get().and_then(Result::err),
            set_disabled.value().get().and_then(Result::err),
            reset.value().get().and_then(Result::err),
        ]
        .into_iter()
        .flatten()
        .next()
    };
    view! {
        <h1>"Users"</h1>
        <section aria-labelledby="new-user">
            <h2 id="new-user">"New user"</h2>
            <ActionForm action=create attr:class="field-row">
                <div class="field">
                    <label for="new-user-email">"E-mail"</label>
                    <input id="new-user-email" name="email" type="email" required/>
                </div>
                <div class="field">
                    <label for="new-user-role">"Role"</label>
                    <select id="new-user-role" name="role">
                        {Role::ALL
                            .map(|r| view! { <option value=r.as_str()>{r.label()}</option> })
                            .collect_view()}
                    </select>
                </div>
                <button type="submit" class="button-primary">"Create user"</button>
            </ActionForm>
        </section>
        {move || error().map(|e| view! { <ErrorNote error=e/> })}
        {move || shown_password().map(|p| view! {
            <p class="warning" role="status" data-testid="new-password">
                "Password for " {p.user.email} ": " <code>{p.password}</code>
                " — shown only now: pass it on safely; they can change it after signing in."
            </p>
        })}
        <Suspense fallback=|| view! { <p class="muted">"Loading users…"</p> }>
            {move || Suspend::new(async move {
                match users.await {
                    Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    Ok(list) => view! {
                        <table class="table" data-testid="user-list">
                            <thead>
                                <tr>
                                    <th scope="col">"E-mail"</th>
                                    <th scope="col">"Role"</th>
                                    <th scope="col">"State"</th>
                                    <th scope="col">"Created"</th>
                                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                                </tr>
                            </thead>
                            <tbody>
                                {list
                                    .into_iter()
                                    .map(|u| {
                                        let id = u.id;
                                        let state = if u.disabled { "disabled" } else if u.locked { "locked" } else { "active" };
                                        let role_label = format!("Role of {}", u.email);
                                        view! {
                                            <tr>
                                                <td>{u.email.clone()}</td>
                                                <td>
                                                    <select
                                                        aria-label=role_label
                                                        on:change=move |ev| {
                                                            if let Ok(role) = event_target_value(&ev).parse::<Role>() {
                                                                set_role.dispatch(SetUserRole { id, role });
                                                            }
                                                        }
                                                    >
                                                        {Role::ALL
                                                            .map(|r| view! {
                                                                <option value=r.as_str() selected=r == u.role>{r.label()}</option>
                                                            })
                                                            .collect_view()}
                                                    </select>
                                                </td>
                                                <td>{state}</td>
                                                <td><LocalTime micros=u.created_at/></td>
                                                <td class="row-actions">
                                                    <button
                                                        type="button"
                                                        class="button-quiet"
                                                        on:click=move |_| {
                                                            set_disabled.dispatch(SetUserDisabled { id, disabled: !u.disabled });
                                                        }
                                                    >
                                                        {if u.disabled { "Enable" } else { "Disable" }}
                                                    </button>
                                                    <button
                                                        type="button"
                                                        class="button-quiet"
                                                        on:click=move |_| {
                                                            reset.dispatch(ResetUserPassword { id });
                                                        }
                                                    >
                                                        "Reset password"
                                                    </button>
                                                </td>
                                            </tr>
                                        }
                                    })
                                    .collect_view()}
                            </tbody>
                        </table>
                    }
                    .into_any(),
                }
            })}
        </Suspense>
    }
}
