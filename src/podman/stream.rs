//! Newline-delimited JSON: splitting a byte stream into lines.

/// Collects bytes and hands out complete lines (without their `\n` or `\r\n`).
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
}

impl LineBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes as they arrive.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete, non-blank line, if one has arrived.
    pub fn next_line(&mut self) -> Option<String> {
        loop {
            let end = self.buf.iter().position(|&b| b == b'\n')?;
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if !text.is_empty() {
                return Some(text.to_owned());
            }
        }
    }

    /// What is left when the stream ends: a last line without a newline.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf);
        let text = String::from_utf8_lossy(&rest);
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks() {
        let mut b = LineBuffer::new();
        b.extend(b"{\"a\":1}\n{\"b\"");
        assert_eq!(b.next_line().as_deref(), Some("{\"a\":1}"));
        assert_eq!(b.next_line(), None);
        b.extend(b":2}\r\n\n\n{\"c\":3}");
        assert_eq!(b.next_line().as_deref(), Some("{\"b\":2}"));
        assert_eq!(b.next_line(), None);
        assert_eq!(b.finish().as_deref(), Some("{\"c\":3}"));
        assert_eq!(b.finish(), None);
    }

    #[test]
    fn multibyte_characters_split_across_chunks_survive() {
        let mut b = LineBuffer::new();
        let s = "é\n".as_bytes();
        b.extend(&s[..1]);
        assert_eq!(b.next_line(), None);
        b.extend(&s[1..]);
        assert_eq!(b.next_line().as_deref(), Some("é"));
    }
}
