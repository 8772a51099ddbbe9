//! `/templates`, `/templates/new`, `/templates/:key`: the list, and the editor with its live
//! counter. Saving goes through `save_template`, which validates with the same code.

use domain::access::Permission;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::components::{ErrorNote, Guarded, LocalTime};
use crate::error::AppError;
use crate::templates::api::{
    DeleteTemplate, DuplicateTemplate, TemplateSummary, TemplateView, get_template, list_templates,
    save_template,
};
use crate::templates::{Field, FieldError, TemplateDraft, TemplateEditor, use_leave_guard};

#[component]
pub fn TemplatesPage() -> impl IntoView {
    // The page's resources are made here, once: the guard's closure may build its children
    // more than once while the server renders (see `Guarded`).
    let duplicate = ServerAction::<DuplicateTemplate>::new();
    let delete = ServerAction::<DeleteTemplate>::new();
    let templates = Resource::new(
        move || (duplicate.version().get(), delete.version().get()),
        |_| list_templates(),
    );
    view! {
        <Title text="Templates"/>
        <Guarded permission=Some(Permission::ViewTemplates)>
            <TemplateList duplicate delete templates/>
        </Guarded>
    }
}

#[component]
fn TemplateList(
    duplicate: ServerAction<DuplicateTemplate>,
    delete: ServerAction<DeleteTemplate>,
    templates: Resource<Result<Vec<TemplateSummary>, AppError>>,
) -> impl IntoView {
    let action_error = move || {
        duplicate
            .value()
            .get()
            .and_then(Result::err)
            .or_else(|| delete.value().get().and_then(Result::err))
    };
    view! {
        <div class="page-head">
            <h1>"Templates"</h1>
            <a class="button-primary" href="/templates/new">"New template"</a>
        </div>
        {move || action_error().map(|e| view! { <ErrorNote error=e/> })}
        <Suspense fallback=|| view! { <p class="muted">"Loading templates…"</p> }>
            {move || Suspend::new(async move {
                match templates.await {
                    Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <p>"No templates yet. " <a href="/templates/new">"Create one"</a> "."</p>
                    }
                    .into_any(),
                    Ok(list) => view! {
                        <table class="table" data-testid="template-list">
                            <thead>
                                <tr>
                                    <th scope="col">"Name"</th>
                                    <th scope="col">"Category"</th>
                                    <th scope="col">"Priority"</th>
                                    <th scope="col">"Body"</th>
                                    <th scope="col">"Changed"</th>
                                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                                </tr>
                            </thead>
                            <tbody>
                                {list
                                    .into_iter()
                                    .map(|t| {
                                        let href = format!("/templates/{}", t.key);
                                        let copy_key = format!("{}_copy", t.key);
                                        let confirm = format!("Delete the template {}? This cannot be undone.", t.key);
                                        let key_to_delete = t.key.clone();
                                        view! {
                                            <tr>
                                                <td><a href=href>{t.key.clone()}</a></td>
                                                <td>{t.category}</td>
                                                <td>{t.priority}</td>
                                                <td class="clip">{t.body}</td>
                                                <td><LocalTime micros=t.updated_at/> " · " {t.updated_by}</td>
                                                <td class="row-actions">
                                                    <ActionForm action=duplicate>
                                                        <input type="hidden" name="key" value=t.key.clone()/>
                                                        <input type="hidden" name="new_key" value=copy_key/>
                                                        <button type="submit" class="button-quiet">"Duplicate"</button>
                                                    </ActionForm>
                                                    <button
                                                        type="button"
                                                        class="button-quiet"
                                                        on:click=move |_| {
                                                            if window().confirm_with_message(&confirm).unwrap_or(false) {
                                                                delete.dispatch(DeleteTemplate { key: key_to_delete.clone() });
                                                            }
                                                        }
                                                    >
                                                        "Delete"
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

#[component]
pub fn NewTemplatePage() -> impl IntoView {
    view! {
        <Title text="New template"/>
        <Guarded permission=Some(Permission::EditTemplates)>
            <h1>"New template"</h1>
            <EditorWithSave initial=TemplateDraft::default() original_key=None/>
        </Guarded>
    }
}

#[component]
pub fn EditTemplatePage() -> impl IntoView {
    let key = use_params_map().with_untracked(|p| p.get("key").unwrap_or_default());
    let template = Resource::new(move || key.clone(), get_template);
    view! {
        <Title text="Edit template"/>
        <Guarded permission=Some(Permission::ViewTemplates)>
            <Suspense fallback=|| view! { <p class="muted">"Loading the template…"</p> }>
                {move || Suspend::new(async move {
                    match template.await {
                        Ok(TemplateView { draft, updated_at, updated_by }) => view! {
                            <h1>"Template " <code>{draft.key.clone()}</code></h1>
                            <p class="muted">"Last changed " <LocalTime micros=updated_at/> " by " {updated_by}</p>
                            <EditorWithSave original_key=Some(draft.key.clone()) initial=draft/>
                        }
                        .into_any(),
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    }
                })}
            </Suspense>
        </Guarded>
    }
}

/// The editor wired to `save_template`: errors come back next to their fields; after a save the
/// page follows the template's (possibly new) name.
#[component]
fn EditorWithSave(initial: TemplateDraft, original_key: Option<String>) -> impl IntoView {
    let dirty = RwSignal::new(false);
    use_leave_guard(dirty.into());
    let saved = RwSignal::new(initial.clone());
    let save = Action::new(move |draft: &TemplateDraft| {
        let draft = draft.clone();
        let original_key = original_key.clone();
        async move { save_template(original_key, draft).await }
    });
    let save_errors = Signal::derive(move || match save.value().get() {
        Some(Err(AppError::Fields(errors))) => errors,
        Some(Err(AppError::Invalid { field, message })) => {
            let field = match field.as_deref() {
                Some("key") => Field::Key,
                _ => Field::Form,
            };
            vec![FieldError::new(field, message)]
        }
        Some(Err(e)) => vec![FieldError::new(Field::Form, e.to_string())],
        _ => Vec::new(),
    });
    Effect::new(move |_| {
        if let Some(Ok(view)) = save.value().get() {
            let key = view.draft.key.clone();
            saved.set(view.draft);
            dirty.set(false);
            let path = format!("/templates/{key}");
            if window().location().pathname().ok().as_deref() != Some(path.as_str()) {
                let _ = window().location().set_href(&path);
            }
        }
    });
    let key_editable = true;
    view! {
        <TemplateEditor
            initial
            on_save=Callback::new(move |draft: TemplateDraft| {
                save.dispatch(draft);
            })
            save_errors
            saving=save.pending()
            saved=Signal::from(saved)
            dirty
            key_editable
        />
        {move || matches!(save.value().get(), Some(Ok(_)))
            .then(|| view! { <p class="hint" role="status" data-testid="saved">"Saved."</p> })}
    }
}
