//! Templates: their pages (the list, a new one, one opened), the server functions behind them,
//! the editor with its live segment counter, and the draft it edits.

pub mod api;
pub mod editor;
pub mod model;
pub mod pages;

pub use editor::{TemplateEditor, use_leave_guard};
pub use model::{Field, FieldError, TemplateDraft, VariableDraft};
