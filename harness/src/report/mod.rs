//! Reporters: consumers of the [`Event`](crate::event::Event) stream.
//!
//! - [`human::Human`]: the default, coloured on a TTY.
//! - [`json::Json`]: one JSON object per line (`header`, `result`…, `summary`).
//! - [`tap::Tap`]: TAP 13, in the form kselftest prints.
//! - [`junit::Junit`]: a JUnit XML file, written when the run finishes.

pub mod human;
pub mod json;
pub mod junit;
pub mod tap;

use crate::event::Event;

/// Something that turns events into output.
pub trait Reporter {
    /// Handles one event. Errors writing output are reported once, by the
    /// caller, and do not stop the run.
    fn event(&mut self, event: &Event) -> std::io::Result<()>;
}
