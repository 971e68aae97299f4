//! Helpers the integration tests share.
#![allow(dead_code)]

use std::collections::HashMap;

/// Rows of a small CSV file with a header, as column -> value maps.
/// Handles double-quoted fields with commas and `""` escapes.
pub fn csv_rows(text: &str) -> Vec<HashMap<String, String>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = split_csv_line(lines.next().expect("header"));
    lines
        .map(|line| {
            let fields = split_csv_line(line);
            header.iter().cloned().zip(fields.into_iter().chain(std::iter::repeat(String::new()))).collect()
        })
        .collect()
}

fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}
pub mod npy;
pub mod op_nets;
pub mod python;
pub mod random_net;
