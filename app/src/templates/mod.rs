//! Templates: the editor with its live segment counter, and the draft it edits.

pub mod editor;
pub mod model;

pub use editor::{TemplateEditor, use_leave_guard};
pub use model::{Field, FieldError, TemplateDraft, VariableDraft};
