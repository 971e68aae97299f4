//! What the subcommands print. `main.rs` parses flags and calls these; everything here
//! returns text so that tests can check it.

pub mod devices;
pub mod fidelity;
pub mod generate;
pub mod import;
pub mod inspect;
pub mod mimic;
pub mod paired;
pub mod run;
pub mod text;
pub mod zoo;
