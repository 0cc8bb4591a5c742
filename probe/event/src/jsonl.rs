//! JSON-lines reading and writing of events (`record` / `replay`).

use crate::Event;
use std::io::{BufRead, Write};

/// A line of a JSON-lines event file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JsonlError {
    #[error("{source_name}:{line}: cannot read: {err}")]
    Io {
        source_name: String,
        line: usize,
        #[source]
        err: std::io::Error,
    },
    #[error("{source_name}:{line}:{column}: not a valid event: {err}")]
    Json {
        source_name: String,
        line: usize,
        column: usize,
        #[source]
        err: serde_json::Error,
    },
}

/// Streams events out of a JSON-lines source, one `Result` per non-blank line,
/// so a bad line is reported (with its line number) and the rest still read.
pub struct JsonlReader<R> {
    inner: R,
    source_name: String,
    line: usize,
    buf: String,
}

impl<R: BufRead> JsonlReader<R> {
    pub fn new(inner: R, source_name: impl Into<String>) -> Self {
        JsonlReader {
            inner,
            source_name: source_name.into(),
            line: 0,
            buf: String::new(),
        }
    }
}

impl<R: BufRead> Iterator for JsonlReader<R> {
    type Item = Result<Event, JsonlError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            self.line += 1;
            match self.inner.read_line(&mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(err) => {
                    return Some(Err(JsonlError::Io {
                        source_name: self.source_name.clone(),
                        line: self.line,
                        err,
                    }))
                }
            }
            let text = self.buf.trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            return Some(serde_json::from_str(text).map_err(|err| JsonlError::Json {
                source_name: self.source_name.clone(),
                line: self.line,
                column: err.column(),
                err,
            }));
        }
    }
}

/// Read a whole JSON-lines source; stops at the first bad line.
pub fn read_jsonl<R: BufRead>(inner: R, source_name: &str) -> Result<Vec<Event>, JsonlError> {
    JsonlReader::new(inner, source_name).collect()
}

/// Write one event as a JSON line.
pub fn write_jsonl<W: Write>(out: &mut W, ev: &Event) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, ev)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_line_names_line_and_column() {
        let input = "{\"type\":\"openat\"}\n\n# comment\n{\"type\": 7}\n";
        let items: Vec<_> = JsonlReader::new(input.as_bytes(), "ev.jsonl").collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        let err = items[1].as_ref().unwrap_err().to_string();
        assert!(err.starts_with("ev.jsonl:4:"), "{err}");
    }
}
