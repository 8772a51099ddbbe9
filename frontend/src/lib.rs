//! The browser entry point: `hydrate()` is called by the script cargo-leptos's `HydrationScripts`
//! puts in the page; it attaches the wasm app to the server-rendered HTML.
//! Empty on other targets (see Cargo.toml).
#![cfg(target_arch = "wasm32")]

use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
