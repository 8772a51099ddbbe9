//! The template editor: a form with a live segment counter that runs the `domain` crate in the
//! browser, so what it shows while typing is what the server will bill.
//!
//! Keeping up with typing: the body textarea is not re-rendered from its signal (the browser owns
//! its text); each keystroke updates one `body` signal, the analysis is a memo, and each counter
//! value is its own memo so only the text nodes whose value changed are touched. The segment view
//! is one HTML string set in one DOM operation, however many characters it marks.

use domain::segments::{BodyError, Encoding, SegmentedMessage};
use domain::template::{Category, Charset, Priority, WorstCase};
use leptos::ev;
use leptos::prelude::*;

use super::model::{
    Field, FieldError, OpenPlaceholder, TemplateDraft, VariableDraft, byte_to_utf16,
    non_gsm_summary, open_placeholder, segments_html, utf16_to_byte,
};

/// One row of the variables table. Fields are signals so that typing in one cell re-renders
/// nothing but that cell; `id` keeps rows stable when one is removed.
#[derive(Clone, Copy)]
struct Row {
    id: u32,
    name: RwSignal<String>,
    /// As typed: a number or not; parsed when the draft is built.
    max_len: RwSignal<String>,
    charset: RwSignal<Charset>,
    sample: RwSignal<String>,
}

impl Row {
    fn new(id: u32, v: &VariableDraft) -> Row {
        Row {
            id,
            name: RwSignal::new(v.name.clone()),
            max_len: RwSignal::new(v.max_len.to_string()),
            charset: RwSignal::new(v.charset),
            sample: RwSignal::new(v.sample.clone()),
        }
    }

    fn draft(&self) -> VariableDraft {
        VariableDraft {
            name: self.name.get(),
            max_len: self.max_len.get().trim().parse().unwrap_or(0),
            charset: self.charset.get(),
            sample: self.sample.get(),
        }
    }
}

/// Edits one template. The page owns loading and saving; the editor owns the form.
///
/// ```text
/// let dirty = RwSignal::new(false);
/// use_leave_guard(dirty.into());
/// view! { <TemplateEditor initial=draft on_save=Callback::new(|d| save.dispatch(d)) save_errors dirty/> }
/// ```
#[component]
pub fn TemplateEditor(
    /// The template to start from: the saved one, or a new one's defaults.
    initial: TemplateDraft,
    /// Called with the current draft on Save and Ctrl+S (Cmd+S). Typically dispatches a server
    /// action whose errors come back through `save_errors`.
    on_save: Callback<TemplateDraft>,
    /// Errors from the last save (the server's validation, a key already taken...), each shown
    /// next to its field; `Field::Form` ones above the Save button.
    #[prop(into, optional)]
    save_errors: Signal<Vec<FieldError>>,
    /// True while a save is in flight: the Save button is disabled.
    #[prop(into, optional)]
    saving: Signal<bool>,
    /// The draft as last saved, which `dirty` compares against; `initial` when not given. The page
    /// sets it to the saved draft after a successful save.
    #[prop(into, optional)]
    saved: Option<Signal<TemplateDraft>>,
    /// Written with whether the form differs from `saved` (for `use_leave_guard`). Updated in the
    /// browser only.
    #[prop(optional)]
    dirty: Option<RwSignal<bool>>,
    /// False when editing an existing template: its key names it in the API and logs.
    #[prop(default = true)]
    key_editable: bool,
) -> impl IntoView {
    let key = RwSignal::new(initial.key.clone());
    let body = RwSignal::new(initial.body.clone());
    let category = RwSignal::new(initial.category);
    let priority = RwSignal::new(initial.priority);
    let smart = RwSignal::new(initial.smart_encoding);
    let ttl = RwSignal::new(initial.ttl_seconds.clone());
    let next_id = StoredValue::new(initial.variables.len() as u32);
    let rows = RwSignal::new(
        initial
            .variables
            .iter()
            .enumerate()
            .map(|(i, v)| Row::new(i as u32, v))
            .collect::<Vec<Row>>(),
    );
    let initial_body = initial.body.clone();
    let baseline = saved.unwrap_or_else(|| Signal::stored(initial));

    let draft = Memo::new(move |_| TemplateDraft {
        key: key.get(),
        body: body.get(),
        variables: rows.with(|rs| rs.iter().map(Row::draft).collect()),
        category: category.get(),
        priority: priority.get(),
        smart_encoding: smart.get(),
        ttl_seconds: ttl.get(),
    });
    let is_dirty = Memo::new(move |_| draft.with(|d| baseline.with(|b| d != b)));
    if let Some(dirty) = dirty {
        Effect::new(move |_| dirty.set(is_dirty.get()));
    }

    // The counter: the body with the sample values, as Twilio would segment it.
    let analysis: Memo<Result<SegmentedMessage, BodyError>> =
        Memo::new(move |_| draft.with(TemplateDraft::analyze_sample));
    let counter = move |f: fn(&SegmentedMessage) -> String| {
        Memo::new(move |_| analysis.with(|a| a.as_ref().map_or_else(|_| "—".to_owned(), f)))
    };
    let encoding = counter(|m| m.encoding().as_str().to_owned());
    let segments = counter(|m| m.segment_count().to_string());
    let characters = counter(|m| m.characters().to_string());
    let left = counter(|m| m.units_left_in_last_segment().to_string());
    let unit = counter(|m| {
        match m.encoding() {
            Encoding::Gsm7 => "septets",
            Encoding::Ucs2 => "UTF-16 units",
        }
        .to_owned()
    });
    let code_points = counter(|m| m.unicode_scalars().to_string());
    let seg_html =
        Memo::new(move |_| analysis.with(|a| a.as_ref().map(segments_html).unwrap_or_default()));
    let too_long = Memo::new(move |_| analysis.with(|a| a.as_ref().err().map(ToString::to_string)));
    let non_gsm =
        Memo::new(move |_| analysis.with(|a| a.as_ref().map(non_gsm_summary).unwrap_or_default()));

    // Validation with the server's rules, and what it allows: worst case, unused variables.
    let validation = Memo::new(move |_| draft.with(TemplateDraft::validate));
    let live_errors = Memo::new(move |_| {
        validation.with(|v| match v {
            Ok(_) => Vec::new(),
            // An empty key on a new template is not worth shouting about until Save.
            Err(errors) => errors
                .iter()
                .filter(|e| !(e.field == Field::Key && key.with(String::is_empty)))
                .cloned()
                .collect(),
        })
    });
    let worst: Memo<Option<WorstCase>> =
        Memo::new(move |_| validation.with(|v| v.as_ref().ok().map(|t| t.worst_case())));
    let unused = Memo::new(move |_| {
        validation.with(|v| {
            v.as_ref()
                .map(|t| t.unused_variables().join(", "))
                .unwrap_or_default()
        })
    });
    let errors_for = move |field: Field| {
        move || {
            let msgs: Vec<String> = save_errors
                .get()
                .into_iter()
                .chain(live_errors.get())
                .filter(|e| e.field == field)
                .map(|e| e.message)
                .fold(Vec::new(), |mut acc, m| {
                    if !acc.contains(&m) {
                        acc.push(m);
                    }
                    acc
                });
            (!msgs.is_empty()).then(|| {
                view! {
                    <ul class="field-errors">
                        {msgs.into_iter().map(|m| view! { <li>{m}</li> }).collect_view()}
                    </ul>
                }
            })
        }
    };

    let save = move || on_save.run(draft.get_untracked());
    let ctrl_s = window_event_listener(ev::keydown, move |e| {
        if (e.ctrl_key() || e.meta_key()) && e.key().eq_ignore_ascii_case("s") {
            e.prevent_default();
            if !saving.get_untracked() {
                save();
            }
        }
    });
    on_cleanup(move || ctrl_s.remove());

    // Typing `{` offers the declared names.
    let textarea = NodeRef::<leptos::html::Textarea>::new();
    let open: RwSignal<Option<OpenPlaceholder>> = RwSignal::new(None);
    let active = RwSignal::new(0usize);
    let names = Memo::new(move |_| draft.with(TemplateDraft::variable_names));
    let options = Memo::new(move |_| match open.get() {
        Some(o) => names.with(|ns| {
            ns.iter()
                .filter(|n| n.starts_with(&o.prefix))
                .cloned()
                .collect::<Vec<_>>()
        }),
        None => Vec::new(),
    });
    let caret = move |el: &web_sys::HtmlTextAreaElement, text: &str| {
        let at = el.selection_start().ok().flatten().unwrap_or(0) as usize;
        utf16_to_byte(text, at)
    };
    let refresh_open = move || {
        if let Some(el) = textarea.get_untracked() {
            let text = el.value();
            let found = open_placeholder(&text, caret(&el, &text));
            if found != open.get_untracked() {
                open.set(found);
                active.set(0);
            }
        }
    };
    let accept = move |name: String| {
        let (Some(el), Some(o)) = (textarea.get_untracked(), open.get_untracked()) else {
            return;
        };
        let text = el.value();
        let at = caret(&el, &text).max(o.name_start);
        let rest = &text[at..];
        let close = if rest.starts_with('}') { "" } else { "}" };
        let new = format!("{}{name}{close}{rest}", &text[..o.name_start]);
        let after = byte_to_utf16(&new, o.name_start + name.len() + 1) as u32;
        el.set_value(&new);
        let _ = el.set_selection_range(after, after);
        body.set(new);
        open.set(None);
    };
    let on_keydown = move |e: ev::KeyboardEvent| {
        let opts = options.get_untracked();
        if opts.is_empty() {
            return;
        }
        let n = opts.len();
        match e.key().as_str() {
            "ArrowDown" => {
                e.prevent_default();
                active.update(|a| *a = (*a + 1) % n);
            }
            "ArrowUp" => {
                e.prevent_default();
                active.update(|a| *a = (*a + n - 1) % n);
            }
            "Enter" => {
                e.prevent_default();
                accept(opts[active.get_untracked().min(n - 1)].clone());
            }
            "Escape" => {
                e.prevent_default();
                open.set(None);
            }
            _ => {}
        }
    };

    let add_row = move |_| {
        let id = next_id.get_value();
        next_id.set_value(id + 1);
        rows.update(|rs| rs.push(Row::new(id, &VariableDraft::default())));
    };
    let row_index = move |id: u32| rows.with(|rs| rs.iter().position(|r| r.id == id).unwrap_or(0));

    // Built as separate erased views: one nested view type for the whole form exceeds the
    // compiler's type recursion limit.
    let head_fields = view! {
                <div class="field-row">
                    <div class="field">
                        <label for="template-key">"Key"</label>
                        <input
                            id="template-key"
                            type="text"
                            autocomplete="off"
                            spellcheck="false"
                            placeholder="shipment_created"
                            readonly=!key_editable
                            bind:value=key
                        />
                        {errors_for(Field::Key)}
                    </div>
                    <div class="field">
                        <label for="template-category">"Category"</label>
                        <select
                            id="template-category"
                            on:change=move |e| {
                                if let Ok(c) = event_target_value(&e).parse::<Category>() {
                                    category.set(c);
                                }
                            }
                        >
                            {Category::ALL
                                .into_iter()
                                .map(|c| {
                                    view! {
                                        <option value=c.as_str() selected=move || category.get() == c>
                                            {category_label(c)}
                                        </option>
                                    }
                                })
                                .collect_view()}
                        </select>
                        {errors_for(Field::Category)}
                    </div>
                    <div class="field">
                        <label for="template-priority">"Priority"</label>
                        <select
                            id="template-priority"
                            on:change=move |e| {
                                priority.set(event_target_value(&e).parse::<Priority>().ok());
                            }
                        >
                            <option value="" selected=move || priority.get().is_none()>
                                {move || {
                                    format!(
                                        "Category default ({})",
                                        priority_label(category.get().default_priority()),
                                    )
                                }}
                            </option>
                            {Priority::ALL
                                .into_iter()
                                .map(|p| {
                                    view! {
                                        <option value=p.as_str() selected=move || priority.get() == Some(p)>
                                            {priority_label(p)}
                                        </option>
                                    }
                                })
                                .collect_view()}
                        </select>
                        {errors_for(Field::Priority)}
                    </div>
                    <div class="field">
                        <label for="template-ttl">"Valid for (seconds)"</label>
                        <input
                            id="template-ttl"
                            inputmode="numeric"
                            aria-describedby="template-ttl-hint"
                            prop:value=move || ttl.get()
                            on:input=move |e| ttl.set(event_target_value(&e))
                            placeholder=move || {
                                if category.get() == Category::TwoFactor { "600" } else { "no limit" }
                            }
                        />
                        <p class="hint" id="template-ttl-hint">
                            "Not sent once this has passed (Twilio's validity period, 1 to 36000). Empty: 10 minutes for two-factor codes, no limit for the rest."
                        </p>
                        {errors_for(Field::Ttl)}
                    </div>
                </div>

    }
    .into_any();
    let body_field = view! {
                <div class="field">
                    <label for="template-body">"Body"</label>
                    <p class="hint" id="template-body-hint">
                        "Type " <kbd>"{"</kbd> " for a declared variable; write " <code>"{{"</code>
                        " and " <code>"}}"</code> " for literal braces."
                    </p>
                    <div class="body-input">
                        <textarea
                            id="template-body"
                            node_ref=textarea
                            rows="8"
                            spellcheck="true"
                            aria-describedby="template-body-hint"
                            aria-autocomplete="list"
                            aria-controls="body-suggestions"
                            aria-expanded=move || (!options.with(Vec::is_empty)).to_string()
                            aria-activedescendant=move || {
                                (!options.with(Vec::is_empty))
                                    .then(|| format!("body-suggestion-{}", active.get()))
                            }
                            on:input=move |e| {
                                body.set(event_target_value(&e));
                                refresh_open();
                            }
                            on:keydown=on_keydown
                            on:keyup=move |e: ev::KeyboardEvent| {
                                if matches!(e.key().as_str(), "ArrowLeft" | "ArrowRight" | "Home" | "End") {
                                    refresh_open();
                                }
                            }
                            on:click=move |_| refresh_open()
                            on:blur=move |_| open.set(None)
                        >
                            {initial_body}
                        </textarea>
                        <ul
                            id="body-suggestions"
                            class="suggestions"
                            role="listbox"
                            aria-label="Declared variables"
                            hidden=move || options.with(Vec::is_empty)
                        >
                            {move || {
                                options
                                    .get()
                                    .into_iter()
                                    .enumerate()
                                    .map(|(i, name)| {
                                        let chosen = name.clone();
                                        view! {
                                            <li
                                                id=format!("body-suggestion-{i}")
                                                role="option"
                                                class:active=move || active.get() == i
                                                aria-selected=move || (active.get() == i).to_string()
                                                on:mousedown=move |e: ev::MouseEvent| {
                                                    e.prevent_default();
                                                    accept(chosen.clone());
                                                }
                                            >
                                                {name}
                                            </li>
                                        }
                                    })
                                    .collect_view()
                            }}
                        </ul>
                    </div>
                    {errors_for(Field::Body)}
                    <label class="checkbox">
                        <input type="checkbox" bind:checked=smart/>
                        " Smart encoding (replace look-alikes such as “ ” ’ with GSM-7 characters; must match the Messaging Service)"
                    </label>
                </div>

    }
    .into_any();
    let variables_field = view! {
                <fieldset class="variables">
                    <legend>"Variables"</legend>
                    <table class="vars">
                        <thead>
                            <tr>
                                <th scope="col">"Name"</th>
                                <th scope="col">"Max length"</th>
                                <th scope="col">"Characters"</th>
                                <th scope="col">"Sample value"</th>
                                <th scope="col"><span class="visually-hidden">"Remove"</span></th>
                            </tr>
                        </thead>
                        <tbody>
                            <For each=move || rows.get() key=|r| r.id let:r>
                                <tr>
                                    <td>
                                        <input
                                            type="text"
                                            class="var-name"
                                            aria-label="Variable name"
                                            autocomplete="off"
                                            spellcheck="false"
                                            bind:value=r.name
                                        />
                                        {move || errors_for(Field::VariableName(row_index(r.id)))()}
                                    </td>
                                    <td>
                                        <input
                                            type="number"
                                            class="var-max"
                                            min="1"
                                            max="1600"
                                            aria-label="Maximum length"
                                            bind:value=r.max_len
                                        />
                                        {move || errors_for(Field::VariableMaxLen(row_index(r.id)))()}
                                    </td>
                                    <td>
                                        <select
                                            aria-label="Characters allowed"
                                            on:change=move |e| {
                                                r.charset.set(if event_target_value(&e) == "unicode" {
                                                    Charset::Unicode
                                                } else {
                                                    Charset::Gsm7
                                                });
                                            }
                                        >
                                            <option value="gsm7" selected=move || r.charset.get() == Charset::Gsm7>
                                                "GSM-7 only"
                                            </option>
                                            <option value="unicode" selected=move || r.charset.get() == Charset::Unicode>
                                                "Any Unicode"
                                            </option>
                                        </select>
                                    </td>
                                    <td>
                                        <input
                                            type="text"
                                            class="var-sample"
                                            aria-label="Sample value"
                                            bind:value=r.sample
                                        />
                                        {move || errors_for(Field::VariableSample(row_index(r.id)))()}
                                    </td>
                                    <td>
                                        <button
                                            type="button"
                                            class="button-quiet"
                                            aria-label=move || format!("Remove variable {}", r.name.get())
                                            on:click=move |_| rows.update(|rs| rs.retain(|x| x.id != r.id))
                                        >
                                            "Remove"
                                        </button>
                                    </td>
                                </tr>
                            </For>
                        </tbody>
                    </table>
                    {errors_for(Field::Variables)}
                    <button type="button" class="button-secondary" on:click=add_row>
                        "Add variable"
                    </button>
                    <Show when=move || unused.with(|u| !u.is_empty())>
                        <p class="warning">
                            "Declared but not used in the body: " {move || unused.get()}
                        </p>
                    </Show>
                </fieldset>

    }
    .into_any();
    let actions = view! {
                <div class="form-actions">
                    {errors_for(Field::Form)}
                    <button type="submit" class="button-primary" disabled=move || saving.get()>
                        {move || if saving.get() { "Saving…" } else { "Save" }}
                    </button>
                    <span class="hint"><kbd>"Ctrl"</kbd> "+" <kbd>"S"</kbd></span>
                    <Show when=move || is_dirty.get()>
                        <span class="dirty" data-testid="dirty">"Unsaved changes"</span>
                    </Show>
                </div>
    }
    .into_any();
    let side = view! {
            <aside class="editor-side" aria-label="Segments and cost">
                <section class="counter" aria-labelledby="counter-title">
                    <h2 id="counter-title">"With the sample values"</h2>
                    <dl class="counter-values">
                        <div>
                            <dt>"Encoding"</dt>
                            <dd data-testid="counter-encoding">{encoding}</dd>
                        </div>
                        <div>
                            <dt>"Segments"</dt>
                            <dd data-testid="counter-segments">{segments}</dd>
                        </div>
                        <div>
                            <dt>"Characters"</dt>
                            <dd data-testid="counter-characters">{characters}</dd>
                        </div>
                        <div>
                            <dt>"Left in this segment"</dt>
                            <dd>
                                <span data-testid="counter-left">{left}</span>
                                " "
                                <span class="unit">{unit}</span>
                            </dd>
                        </div>
                    </dl>
                    <p class="hint">{code_points} " of 1,600 characters Twilio accepts"</p>
                    {move || too_long.get().map(|m| view! { <p class="error" role="alert">{m}</p> })}
                </section>

                <section class="worst-case" aria-labelledby="worst-title">
                    <h2 id="worst-title">"Any values"</h2>
                    {move || match worst.get() {
                        Some(w) => view! { <WorstCaseView w/> }.into_any(),
                        None => {
                            view! {
                                <p class="muted">
                                    "Fix the errors in the form to see the range of segments."
                                </p>
                            }
                                .into_any()
                        }
                    }}
                </section>

                <section class="preview" aria-labelledby="preview-title">
                    <h2 id="preview-title">"Preview, segment by segment"</h2>
                    <div class="segment-view" data-testid="segment-view" inner_html=seg_html></div>
                    <Show when=move || non_gsm.with(|n| !n.is_empty())>
                        <h3>"Not in GSM-7"</h3>
                        <ul class="non-gsm-list">
                            {move || {
                                non_gsm
                                    .get()
                                    .into_iter()
                                    .take(20)
                                    .map(|(g, count, replacement)| {
                                        view! {
                                            <li>
                                                <mark class="non-gsm">{g}</mark>
                                                {(count > 1).then(|| format!(" ×{count}"))}
                                                {match replacement {
                                                    Some(r) => format!(" → “{r}” with smart encoding"),
                                                    None => " no GSM-7 replacement".to_owned(),
                                                }}
                                            </li>
                                        }
                                    })
                                    .collect_view()
                            }}
                        </ul>
                    </Show>
                </section>
            </aside>
    }
    .into_any();
    view! {
        <form
            class="template-editor"
            on:submit=move |e: ev::SubmitEvent| {
                e.prevent_default();
                save();
            }
        >
            <div class="editor-main">{head_fields} {body_field} {variables_field} {actions}</div>
            {side}
        </form>
    }
}

/// The range of segments any allowed values can give.
#[component]
fn WorstCaseView(w: WorstCase) -> impl IntoView {
    let range = if w.min_segments == w.max_segments {
        format!("{} segment{}", w.max_segments, plural(w.max_segments))
    } else {
        format!("{} to {} segments", w.min_segments, w.max_segments)
    };
    let ucs2 = match (w.static_encoding, w.ucs2_variables.is_empty()) {
        (Encoding::Ucs2, _) => {
            Some("The text itself is not GSM-7: every message goes as UCS-2.".to_owned())
        }
        (Encoding::Gsm7, false) => Some(format!(
            "Can switch to UCS-2 (fewer characters per segment) because of: {}.",
            w.ucs2_variables.join(", ")
        )),
        (Encoding::Gsm7, true) => None,
    };
    view! {
        <p>
            <strong data-testid="worst-range">{range}</strong>
            " per message, up to " {w.max_chars} " characters, "
            {w.max_encoding.as_str()} " at worst."
        </p>
        {ucs2.map(|t| view! { <p class="warning">{t}</p> })}
        {w
            .over_limit
            .then(|| {
                view! {
                    <p class="error">
                        "Values at their maximum length exceed Twilio's 1,600 characters: such messages will be refused. Lower the maximum lengths."
                    </p>
                }
            })}
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn category_label(c: Category) -> &'static str {
    match c {
        Category::Shipment => "Shipment",
        Category::Emergency => "Emergency",
        Category::TwoFactor => "Two-factor code",
        Category::Driver => "Driver",
    }
}

fn priority_label(p: Priority) -> &'static str {
    match p {
        Priority::Normal => "normal",
        Priority::TwoFactor => "two-factor",
        Priority::Emergency => "emergency (first)",
    }
}

/// Asks before leaving while `dirty`: closing or reloading the tab (`beforeunload`) and following a
/// link inside the console (the router would otherwise swap the page without asking).
pub fn use_leave_guard(dirty: Signal<bool>) {
    let unload = window_event_listener(ev::beforeunload, move |e| {
        if dirty.get_untracked() {
            e.prevent_default();
            e.set_return_value("");
        }
    });
    on_cleanup(move || unload.remove());

    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        use wasm_bindgen::closure::Closure;

        // Capture phase: runs before the router's click handler, which honours preventDefault.
        let on_click =
            Closure::<dyn Fn(web_sys::MouseEvent)>::new(move |e: web_sys::MouseEvent| {
                if !dirty.get_untracked() || e.default_prevented() {
                    return;
                }
                let link = e
                    .target()
                    .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                    .and_then(|el| el.closest("a[href]").ok().flatten());
                if link.is_some()
                    && !window()
                        .confirm_with_message(
                            "This template has unsaved changes. Leave without saving?",
                        )
                        .unwrap_or(true)
                {
                    e.prevent_default();
                    e.stop_immediate_propagation();
                }
            });
        let options = web_sys::AddEventListenerOptions::new();
        options.set_capture(true);
        let _ = window().add_event_listener_with_callback_and_add_event_listener_options(
            "click",
            on_click.as_ref().unchecked_ref(),
            &options,
        );
        let on_click = StoredValue::new_local(on_click);
        on_cleanup(move || {
            on_click.with_value(|c| {
                let _ = window().remove_event_listener_with_callback_and_bool(
                    "click",
                    c.as_ref().unchecked_ref(),
                    true,
                );
            });
        });
    }
}
